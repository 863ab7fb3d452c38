"""The LLM gateway on the bus against the real mock LLM over loopback."""

from __future__ import annotations

import socket
import time
from collections.abc import AsyncIterator

import anyio
import pytest

from agents.llm.client import chat
from agents.llm.endpoint import Endpoint
from agents.llm.errors import (
    AllEndpointsFailed,
    AuthenticationFailed,
    DeadlineExceeded,
    LLMError,
    ModelNotFound,
    RetriesExhausted,
)
from agents.llm.gateway import LLMGateway
from agents.llm.messages import ChatDelta, ChatRequest, stream_topic
from agents.llm.mock import MockLLM
from agents.llm.retry import Backoff
from agents.llm.wire import FunctionDefinition, FunctionTool, SystemMessage, UserMessage
from bus import Bus

pytestmark = pytest.mark.anyio

FAST = Backoff(max_attempts=4, base=0.001, cap=0.01)


def ask(text: str = "hello", **options: object) -> ChatRequest:
    return ChatRequest(messages=[UserMessage(content=text)], **options)  # type: ignore[arg-type]


def endpoint(url: str, name: str = "mock", **options: object) -> Endpoint:
    return Endpoint(name=name, base_url=url, model="mock-1", **options)  # type: ignore[arg-type]


def dead_url() -> str:
    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}/v1"


@pytest.fixture
async def mock() -> AsyncIterator[MockLLM]:
    server = MockLLM(seed=1)
    async with server:
        yield server


async def run_gateway(gateway: LLMGateway) -> Bus:
    bus = Bus("llm-test", request_timeout=30)
    await bus.__aenter__()
    await bus.add(gateway)
    return bus


async def test_a_call_returns_the_answer_with_usage_and_how_it_was_got(mock: MockLLM) -> None:
    gateway = LLMGateway([endpoint(mock.url)], retry=FAST)
    async with Bus() as bus:
        await bus.add(gateway)
        result = await chat(bus, ask("What is a hive?", agent="researcher"))
    assert result.text and result.finish_reason == "stop"
    assert (result.endpoint, result.model, result.attempts) == ("mock", "mock-1", 1)
    assert result.usage.total_tokens == result.usage.prompt_tokens + result.usage.completion_tokens
    assert result.latency > 0
    stats = gateway.stats()
    assert (stats.calls, stats.succeeded, stats.failed) == (1, 1, 0)
    assert stats.by_agent["researcher"].calls == 1
    assert stats.by_model["mock-1"].prompt_tokens == result.usage.prompt_tokens


@pytest.mark.parametrize("fault", ["500", "503", "reset", "badjson", "truncated"])
async def test_a_fault_is_retried_until_an_attempt_succeeds(fault: str) -> None:
    server = MockLLM(seed=3, faults=f"{fault}:0.5")
    async with server:
        gateway = LLMGateway([endpoint(server.url)], retry=Backoff(max_attempts=8, base=0.001))
        async with Bus() as bus:
            await bus.add(gateway)
            results = [await chat(bus, ask(f"q{i}")) for i in range(12)]
    attempts = sum(r.attempts for r in results)
    assert attempts == server.stats().requests  # every attempt reached the server once
    assert attempts > 12  # some were retried
    assert server.stats().faults[fault] == attempts - 12
    assert sum(gateway.stats().retries.values()) == attempts - 12


async def test_a_fault_every_time_exhausts_the_retry_budget() -> None:
    server = MockLLM(faults="500:1.0")
    async with server, Bus() as bus:
        await bus.add(LLMGateway([endpoint(server.url)], retry=FAST))
        with pytest.raises(RetriesExhausted, match=r"4 attempts failed; last: .*500"):
            await chat(bus, ask())
        with pytest.raises(RetriesExhausted, match="2 attempts failed"):
            await chat(bus, ask(max_attempts=2))
    assert server.stats().requests == 6


async def test_a_hang_past_the_request_timeout_is_retried_as_a_timeout() -> None:
    server = MockLLM(faults="timeout:1.0,hang=5s")
    async with server:
        gateway = LLMGateway([endpoint(server.url, request_timeout=0.1)], retry=FAST)
        async with Bus() as bus:
            await bus.add(gateway)
            started = time.monotonic()
            with pytest.raises(RetriesExhausted, match=r"no complete answer within 0\.1s"):
                await chat(bus, ask(max_attempts=2))
            assert time.monotonic() - started < 2
    assert gateway.stats().retries == {"LLMTimeout": 1}


async def test_retry_after_pauses_the_endpoint_before_the_retry() -> None:
    server = MockLLM(faults="429:1.0,retry_after=0.3")
    async with server:
        gateway = LLMGateway([endpoint(server.url)], retry=FAST)
        async with Bus() as bus:
            await bus.add(gateway)
            started = time.monotonic()
            with pytest.raises(RetriesExhausted):
                await chat(bus, ask(max_attempts=3))
            elapsed = time.monotonic() - started
    assert elapsed >= 0.6  # two waits of Retry-After, not the tiny backoff
    assert gateway.stats().endpoints[0].limits.paused_seconds >= 0.5


async def test_a_retry_after_beyond_the_deadline_fails_at_once() -> None:
    server = MockLLM(faults="429:1.0,retry_after=60")
    async with server, Bus() as bus:
        await bus.add(LLMGateway([endpoint(server.url)], retry=FAST))
        started = time.monotonic()
        with pytest.raises(DeadlineExceeded, match="Retry-After 60s is past"):
            await chat(bus, ask(timeout=5.0))
        assert time.monotonic() - started < 4.0  # failed at once, not at the 5 s deadline
    assert server.stats().requests == 1


async def test_a_refused_key_is_not_retried_and_never_shown() -> None:
    server = MockLLM(api_key="right-key")
    async with server:
        wrong = endpoint(server.url, api_key="sk-wrong-secret-123")
        gateway = LLMGateway([wrong], retry=FAST)
        async with Bus() as bus:
            await bus.add(gateway)
            with pytest.raises(AuthenticationFailed) as info:
                await chat(bus, ask())
    assert "API key was refused" in str(info.value)
    assert "sk-wrong-secret-123" not in str(info.value) + repr(wrong) + repr(gateway.stats())
    assert server.stats().requests == 1


async def test_a_wrong_path_is_model_not_found_and_not_retried(mock: MockLLM) -> None:
    async with Bus() as bus:
        await bus.add(LLMGateway([endpoint(mock.url + "/nope")], retry=FAST))
        with pytest.raises(ModelNotFound, match="404"):
            await chat(bus, ask())
    assert mock.stats().responses == {404: 1}  # asked once: a 404 is not retried


async def test_the_concurrency_cap_is_never_exceeded() -> None:
    server = MockLLM(latency="0.02")
    async with server:
        gateway = LLMGateway([endpoint(server.url, max_concurrency=5)], retry=FAST)
        async with Bus() as bus:
            await bus.add(gateway)
            async with anyio.create_task_group() as tg:
                for i in range(40):
                    tg.start_soon(chat, bus, ask(f"q{i}"))
    assert server.stats().peak_in_flight == 5
    stats = gateway.stats()
    assert stats.max_queued > 0 and stats.queued == 0  # the rest waited on the bus


async def test_the_fallback_answers_when_the_primary_is_down_and_then_it_cools_down(
    mock: MockLLM,
) -> None:
    primary = endpoint(dead_url(), name="primary", cooldown=60, cooldown_after=2)
    fallback = endpoint(mock.url, name="fallback")
    gateway = LLMGateway([primary, fallback], retry=Backoff(max_attempts=2, base=0.001))
    async with Bus() as bus:
        await bus.add(gateway)
        first = await chat(bus, ask("one"))
        second = await chat(bus, ask("two"))
    assert (first.endpoint, second.endpoint) == ("fallback", "fallback")
    assert primary.cooling_for > 50  # two failures: cooling down, skipped on the next call
    assert gateway.stats().retries == {"ConnectionFailed": 1}
    assert gateway.stats().fallbacks == 2


async def test_when_every_endpoint_fails_each_cause_is_named() -> None:
    gateway = LLMGateway(
        [endpoint(dead_url(), name="a"), endpoint(dead_url(), name="b")],
        retry=Backoff(max_attempts=1),
    )
    async with Bus() as bus:
        await bus.add(gateway)
        with pytest.raises(AllEndpointsFailed, match=r"a: .*connection failed.*; b: "):
            await chat(bus, ask())
    async with Bus() as single:
        await single.add(LLMGateway([endpoint(dead_url())], retry=Backoff(max_attempts=1)))
        # one endpoint: its own error, not a one-item AllEndpointsFailed
        with pytest.raises(RetriesExhausted, match=r"1 attempt failed; last: .*connection failed"):
            await chat(single, ask())


async def test_a_streamed_call_publishes_deltas_and_returns_the_assembled_message(
    mock: MockLLM,
) -> None:
    deltas: list[ChatDelta] = []
    async with Bus() as bus:
        await bus.add(LLMGateway([endpoint(mock.url)], retry=FAST))
        async with bus.stream(stream_topic("s1")) as stream:
            result = await chat(bus, ask("tell me about bees", stream=True, stream_id="s1"))
            while stream.pending():
                deltas.append(await stream.__anext__())
    assert len(deltas) > 2
    assert "".join(d.content or "" for d in deltas) == result.text
    assert deltas[-1].finish_reason == "stop"
    assert result.usage.total_tokens > 0


async def test_streamed_tool_call_arguments_are_assembled(mock: MockLLM) -> None:
    tool = FunctionTool(
        function=FunctionDefinition(
            name="search",
            parameters={
                "type": "object",
                "properties": {"query": {"type": "string"}, "limit": {"type": "integer"}},
                "required": ["query", "limit"],
            },
        )
    )
    request = ChatRequest(
        messages=[SystemMessage(content="You are researcher."), UserMessage(content="bees")],
        tools=[tool],
        stream=True,
    )
    async with Bus() as bus:
        await bus.add(LLMGateway([endpoint(mock.url)], retry=FAST))
        streamed = await chat(bus, request)
        plain = await chat(bus, ChatRequest(messages=request.messages, tools=[tool]))
    assert streamed.finish_reason == plain.finish_reason == "tool_calls"
    (call,) = streamed.tool_calls
    assert call.function.name == "search"
    assert call.function.arguments == plain.tool_calls[0].function.arguments
    assert '"query"' in call.function.arguments


async def test_with_every_fault_mixed_in_each_call_ends_in_a_result_or_a_typed_error() -> None:
    faults = "429:0.05,500:0.05,503:0.05,reset:0.05,timeout:0.03,badjson:0.05,truncated:0.05"
    server = MockLLM(seed=11, faults=f"{faults},retry_after=0.01,hang=1s")
    outcomes: list[object] = []
    async with server:
        gateway = LLMGateway(
            [endpoint(server.url, request_timeout=0.2)],
            retry=Backoff(max_attempts=3, base=0.001, cap=0.01),
        )
        async with Bus() as bus:
            await bus.add(gateway)

            async def call(i: int) -> None:
                try:
                    outcomes.append(await chat(bus, ask(f"q{i}", stream=i % 2 == 0)))
                except LLMError as exc:
                    outcomes.append(exc)

            async with anyio.create_task_group() as tg:
                for i in range(80):
                    tg.start_soon(call, i)
            await bus.drain()
            assert bus.stats().balanced and bus.stats().in_flight == 0
    assert len(outcomes) == 80
    stats = gateway.stats()
    assert stats.succeeded + stats.failed == 80 and stats.in_flight == 0
    assert stats.succeeded > 60  # most calls get through their retries
    assert all(isinstance(o, LLMError) for o in outcomes if not hasattr(o, "usage"))
    # every attempt reached the mock exactly once: one per call plus one per retry
    assert server.stats().requests == 80 + sum(stats.retries.values())


async def test_a_stream_retried_midway_numbers_its_attempts_so_consumers_can_reset() -> None:
    server = MockLLM(seed=2, faults="truncated:0.6")
    async with server, Bus() as bus:
        await bus.add(
            LLMGateway([endpoint(server.url)], retry=Backoff(max_attempts=10, base=0.001))
        )
        for i in range(12):
            deltas: list[ChatDelta] = []
            async with bus.stream(stream_topic(f"s{i}")) as stream:
                result = await chat(bus, ask(f"story {i}", stream=True, stream_id=f"s{i}"))
                while stream.pending():
                    deltas.append(await stream.__anext__())
            last = max(d.attempt for d in deltas)
            assert last == result.attempts
            kept = "".join(d.content or "" for d in deltas if d.attempt == last)
            assert kept == result.text  # earlier attempts' fragments are not part of it
    assert server.stats().faults["truncated"] > 0  # some streams were cut and retried
