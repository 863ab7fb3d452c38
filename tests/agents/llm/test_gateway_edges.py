"""The gateway's edges: configuration, typed errors across the bus, provider quirks,
quota headers, cancellation, several gateways sharing the load."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from pathlib import Path

import anyio
import pytest
from aiohttp import web

from agents.config import load_config
from agents.llm.client import chat
from agents.llm.endpoint import Endpoint
from agents.llm.errors import LLMError, RetriesExhausted, StreamError
from agents.llm.gateway import LLMGateway
from agents.llm.messages import ChatRequest
from agents.llm.mock import MockLLM, RateLimit
from agents.llm.retry import Backoff
from agents.llm.wire import UserMessage
from bus import Bus

pytestmark = pytest.mark.anyio

FAST = Backoff(max_attempts=3, base=0.001, cap=0.01)


def ask(text: str = "hello", **options: object) -> ChatRequest:
    return ChatRequest(messages=[UserMessage(content=text)], **options)  # type: ignore[arg-type]


async def test_a_gateway_from_a_configuration_file(tmp_path: Path) -> None:
    async with MockLLM() as url:
        path = tmp_path / "hivebus.toml"
        path.write_text(
            f'[llm]\nbase_url = "{url}"\nmodel = "mock-1"\nmax_concurrency = 7\n'
            "[llm.prices.mock-1]\ninput = 1.0\noutput = 2.0\n"
        )
        gateway = LLMGateway.from_config(load_config(path, env={}).llm)
        assert gateway.endpoints[0].admission.max_concurrency == 7
        async with Bus() as bus:
            await bus.add(gateway)
            result = await chat(bus, ask())
    assert (result.endpoint, result.model) == ("primary", "mock-1")
    assert result.cost is not None and result.cost > 0


async def test_prices_give_a_cost_per_call_per_model_and_in_total() -> None:
    async with MockLLM() as url:
        endpoint = Endpoint(name="m", base_url=url, model="mock-1", prices=(1.0, 2.0))
        gateway = LLMGateway([endpoint], retry=FAST)
        async with Bus() as bus:
            await bus.add(gateway)
            result = await chat(bus, ask("price me", agent="critic"))
    usage = result.usage
    expected = (usage.prompt_tokens * 1.0 + usage.completion_tokens * 2.0) / 1e6
    assert result.cost == pytest.approx(expected)
    stats = gateway.stats()
    assert stats.total.cost == pytest.approx(expected)
    assert stats.by_agent["critic"].cost == pytest.approx(expected)


def test_a_configuration_without_endpoint_asks_for_the_mock() -> None:
    config = load_config(None, env={})
    assert config.llm.uses_mock
    with pytest.raises(ValueError, match="start the mock LLM"):
        LLMGateway.from_config(config.llm)


async def test_typed_errors_survive_the_bus() -> None:
    async with MockLLM(faults="503:1.0") as url, Bus() as bus:
        await bus.add(LLMGateway([Endpoint(name="m", base_url=url, model="x")], retry=FAST))
        with pytest.raises(RetriesExhausted) as info:
            await chat(bus, ask())
    assert isinstance(info.value, LLMError)
    assert "3 attempts failed; last: m/x: 503 provider error" in str(info.value)


async def test_quota_headers_make_the_gateway_wait_instead_of_meeting_429s() -> None:
    server = MockLLM(ratelimit=RateLimit(requests=2, window=0.3, is_enforced=True))
    async with server:
        gateway = LLMGateway([Endpoint(name="m", base_url=server.url, model="x")], retry=FAST)
        async with Bus() as bus:
            await bus.add(gateway)
            started = time.monotonic()
            for i in range(5):
                await chat(bus, ask(f"q{i}"))
            elapsed = time.monotonic() - started
    assert 429 not in server.stats().responses  # it paused when the quota ran out
    assert elapsed >= 0.25
    assert gateway.stats().endpoints[0].limits.paused_seconds > 0


async def test_a_caller_giving_up_cancels_the_http_request() -> None:
    server = MockLLM(latency="5")
    async with server, Bus() as bus:
        await bus.add(LLMGateway([Endpoint(name="m", base_url=server.url, model="x")]))
        with anyio.move_on_after(0.2):
            await chat(bus, ask())
        with anyio.fail_after(2):
            while server.stats().in_flight:  # noqa: ASYNC110 - the server counts it
                await anyio.sleep(0.01)
        assert bus.stats().cancelled == 1


async def test_gateways_in_one_queue_group_share_the_calls() -> None:
    async with MockLLM() as url:
        first = LLMGateway([Endpoint(name="a", base_url=url, model="x")], name="gw-1")
        second = LLMGateway([Endpoint(name="b", base_url=url, model="x")], name="gw-2")
        async with Bus() as bus:
            await bus.add(first)
            await bus.add(second)
            results = [await chat(bus, ask(f"q{i}")) for i in range(10)]
    assert {r.endpoint for r in results} == {"a", "b"}
    assert first.stats().calls + second.stats().calls == 10


@pytest.fixture
async def quirky_server() -> AsyncIterator[str]:
    """An OpenAI-compatible server with the quirks real ones have."""

    async def completions(request: web.Request) -> web.StreamResponse:
        body = await request.json()
        text = body["messages"][-1]["content"]
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        chunk = b'{"id":"q","object":"chat.completion.chunk","created":1,"model":"q","extra":1,'
        await response.write(b": keep-alive comment\n\n")
        await response.write(
            b"data: " + chunk + b'"choices":[{"index":0,"delta":{"content":"hi"}}]}\n\n'
        )
        if text == "fail":
            await response.write(
                b'data: {"error":{"message":"overloaded","type":"server_error"}}\n\n'
            )
            return response
        await response.write(
            b"data: " + chunk + b'"choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}\n\n'
        )
        # a usage chunk with choices: null, as some servers send it
        await response.write(
            b"data: " + chunk + b'"choices":null,"usage":{"prompt_tokens":3,'
            b'"completion_tokens":1,"total_tokens":4}}\n\n'
        )
        await response.write(b"data: [DONE]\n\n")
        return response

    app = web.Application()
    app.router.add_post("/v1/chat/completions", completions)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        yield f"http://127.0.0.1:{port}/v1"
    finally:
        await runner.cleanup()


async def test_provider_quirks_in_a_stream_are_tolerated(quirky_server: str) -> None:
    async with Bus() as bus:
        await bus.add(LLMGateway([Endpoint(name="q", base_url=quirky_server, model="q")]))
        result = await chat(bus, ask("hello", stream=True))
    assert (result.text, result.finish_reason, result.usage.total_tokens) == ("hi", "stop", 4)


async def test_an_error_inside_a_stream_is_a_typed_error(quirky_server: str) -> None:
    async with Bus() as bus:
        gateway = LLMGateway(
            [Endpoint(name="q", base_url=quirky_server, model="q")], retry=Backoff(max_attempts=1)
        )
        await bus.add(gateway)
        with pytest.raises(RetriesExhausted, match="error inside the stream: overloaded"):
            await chat(bus, ask("fail", stream=True))
    assert gateway.stats().failures == {"RetriesExhausted": 1}
    assert issubclass(StreamError, LLMError) and StreamError.retryable


@pytest.fixture
async def status_server() -> AsyncIterator[str]:
    """Answers each request with the HTTP status named in the last user message."""

    async def completions(request: web.Request) -> web.Response:
        body = await request.json()
        status = int(body["messages"][-1]["content"])
        error = {"message": f"status {status}", "type": "x", "param": None, "code": "c"}
        return web.json_response({"error": error}, status=status)

    app = web.Application()
    app.router.add_post("/v1/chat/completions", completions)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    try:
        yield f"http://127.0.0.1:{runner.addresses[0][1]}/v1"
    finally:
        await runner.cleanup()


@pytest.mark.parametrize(
    ("status", "error_type", "retried"),
    [
        (400, "BadRequest", False),
        (401, "AuthenticationFailed", False),
        (403, "AuthenticationFailed", False),
        (404, "ModelNotFound", False),
        (413, "BadRequest", False),
        (422, "BadRequest", False),
        (418, "BadRequest", False),
        (500, "ProviderError", True),
        (502, "ProviderError", True),
        (504, "ProviderError", True),
        (429, "RateLimited", True),
    ],
)
async def test_each_http_status_becomes_its_typed_error(
    status_server: str, status: int, error_type: str, retried: bool
) -> None:
    gateway = LLMGateway(
        [Endpoint(name="s", base_url=status_server, model="x")],
        retry=Backoff(max_attempts=2, base=0.001),
    )
    async with Bus() as bus:
        await bus.add(gateway)
        with pytest.raises(LLMError) as info:
            await chat(bus, ask(str(status)))
    final = "RetriesExhausted" if retried else error_type
    assert type(info.value).__name__ == final
    assert f"status {status} (c)" in str(info.value)
    assert gateway.stats().retries == ({error_type: 1} if retried else {})


async def test_waiting_for_a_full_cap_counts_against_the_deadline() -> None:
    async with MockLLM(latency="2") as url:
        gateway = LLMGateway(
            [Endpoint(name="m", base_url=url, model="x", max_concurrency=1)], concurrency=4
        )
        async with Bus() as bus, anyio.create_task_group() as tg:
            await bus.add(gateway)
            tg.start_soon(chat, bus, ask("slow"))
            await anyio.sleep(0.05)  # it holds the only slot
            started = time.monotonic()
            with pytest.raises(LLMError, match="deadline passed waiting for the endpoint's cap"):
                await chat(bus, ask("waits", timeout=0.2))
            assert time.monotonic() - started < 1
            tg.cancel_scope.cancel()


async def test_a_call_queued_behind_a_saturated_gateway_still_meets_its_deadline() -> None:
    from agents.llm.errors import DeadlineExceeded

    async with MockLLM(latency="2") as url:
        gateway = LLMGateway([Endpoint(name="m", base_url=url, model="x", max_concurrency=1)])
        assert gateway.concurrency == 1  # calls beyond the cap wait on the bus
        async with Bus() as bus, anyio.create_task_group() as tg:
            await bus.add(gateway)
            tg.start_soon(chat, bus, ask("slow"))
            await anyio.sleep(0.05)
            started = time.monotonic()
            with pytest.raises(DeadlineExceeded, match=r"no answer within 0\.2s"):
                await chat(bus, ask("queued", timeout=0.2))
            assert time.monotonic() - started < 1.5
            tg.cancel_scope.cancel()


async def test_invalid_tool_arguments_reach_the_caller_as_they_came() -> None:
    from agents.llm.wire import FunctionDefinition, FunctionTool

    tool = FunctionTool(function=FunctionDefinition(name="lookup", parameters={"type": "object"}))
    async with MockLLM(faults="badargs:1.0") as url, Bus() as bus:
        await bus.add(LLMGateway([Endpoint(name="m", base_url=url, model="x")]))
        result = await chat(bus, ChatRequest(messages=[UserMessage(content="go")], tools=[tool]))
    (call,) = result.tool_calls
    with pytest.raises(ValueError):
        import json

        json.loads(call.function.arguments)  # the tool executor will report it to the model


async def test_a_remote_error_that_is_not_an_llm_error_stays_a_remote_error() -> None:
    from bus import RemoteError

    async with Bus() as bus:
        from agents.llm.messages import LLM_CHAT

        async def broken(request: ChatRequest) -> None:
            raise KeyError("not an LLM error")

        bus.subscribe(LLM_CHAT, broken)
        with pytest.raises(RemoteError, match="KeyError"):
            await chat(bus, ask())


async def test_a_recorded_run_replays_identically_with_the_server_gone(tmp_path: Path) -> None:
    from agents.llm.cassette import Cassette

    path = tmp_path / "calls.jsonl"
    questions = ["What is a hive?", "Who leads it?", "What is a hive?"]
    async with MockLLM(seed=5) as url:
        recording = LLMGateway(
            [Endpoint(name="m", base_url=url, model="mock-1")], cassette=Cassette(path, "record")
        )
        async with Bus() as bus:
            await bus.add(recording)
            recorded = [await chat(bus, ask(q)) for q in questions]
    dead = Endpoint(name="m", base_url=url, model="mock-1")  # that server is stopped now
    replaying = LLMGateway([dead], cassette=Cassette(path, "replay"))
    async with Bus() as bus:
        await bus.add(replaying)
        replayed = [await chat(bus, ask(q, stream=True)) for q in questions]
        from agents.llm.errors import CassetteMiss

        with pytest.raises(CassetteMiss, match=r"differs at messages\[0\]\.content"):
            await chat(bus, ask("What is a bee?"))
    assert [r.message for r in replayed] == [r.message for r in recorded]
    assert [r.usage for r in replayed] == [r.usage for r in recorded]


async def test_record_and_replay_modes_come_from_configuration(tmp_path: Path) -> None:
    async with MockLLM() as url:
        env = {"HIVEBUS_BASE_URL": url, "HIVEBUS_MODE": "record"}
        env["HIVEBUS_CASSETTE"] = str(tmp_path / "c.jsonl")
        gateway = LLMGateway.from_config(load_config(None, env=env).llm)
        assert gateway.cassette is not None and gateway.cassette.mode == "record"
        async with Bus() as bus:
            await bus.add(gateway)
            first = await chat(bus, ask("configured"))
    env["HIVEBUS_MODE"] = "replay"
    async with Bus() as bus:
        await bus.add(LLMGateway.from_config(load_config(None, env=env).llm))
        again = await chat(bus, ask("configured"))
    assert again.message == first.message


async def test_an_abandoned_stream_gives_its_connection_back() -> None:
    server = MockLLM(latency="0;per_token=50ms")  # a slow stream: a token every 50 ms
    async with server:
        endpoint = Endpoint(name="m", base_url=server.url, model="x", max_concurrency=1)
        async with Bus() as bus:
            await bus.add(LLMGateway([endpoint]))
            with anyio.move_on_after(0.2) as scope:
                await chat(bus, ask("a long story please " * 5, stream=True))
            assert scope.cancelled_caught  # it was still streaming when the caller left
            with anyio.fail_after(5):  # the only pooled connection is free again
                result = await chat(bus, ask("short"))
    assert result.text
    assert endpoint.admission.stats().in_flight == 0


async def test_answers_and_refusals_give_their_connection_back_to_a_pool_of_one() -> None:
    """A read to the end returns the connection by itself (the gateway does not release
    it again); an error answer is released on its way out. With one pooled connection,
    every call after the first needs it back."""
    async with MockLLM(faults="500:0.5", seed=7) as url:
        endpoint = Endpoint(name="m", base_url=url, model="x", max_concurrency=1)
        gateway = LLMGateway([endpoint], retry=Backoff(max_attempts=1))
        async with Bus() as bus:
            await bus.add(gateway)
            outcomes = []
            with anyio.fail_after(10):
                for n in range(40):
                    try:
                        outcomes.append((await chat(bus, ask(f"call {n}"))).text is not None)
                    except LLMError:
                        outcomes.append(False)
            connector = endpoint._session.connector if endpoint._session else None
            assert connector is not None and len(connector._acquired) == 0  # none held
    assert True in outcomes and False in outcomes  # both kinds of answer were seen
    assert endpoint.admission.stats().in_flight == 0


async def test_the_rate_limit_holds_across_calls_on_the_gateway() -> None:
    slept: list[float] = []
    now = [0.0]

    async def sleep(seconds: float) -> None:
        slept.append(seconds)
        now[0] += seconds
        await anyio.lowlevel.checkpoint()

    async with MockLLM() as url:
        endpoint = Endpoint(
            name="m", base_url=url, model="x", rpm=60, clock=lambda: now[0], sleep=sleep
        )
        gateway = LLMGateway([endpoint])
        async with Bus() as bus:
            await bus.add(gateway)
            for i in range(62):
                await chat(bus, ask(f"q{i}"))
    assert slept == pytest.approx([1.0, 1.0])  # 60 at once, then one a second
    assert gateway.stats().endpoints[0].limits.wait_seconds_rate == pytest.approx(2.0)


async def test_a_lone_endpoint_cooling_down_is_still_probed_not_failed_outright() -> None:
    async with MockLLM(faults="500:0.5", seed=4) as url:
        endpoint = Endpoint(name="m", base_url=url, model="x", cooldown=60, cooldown_after=2)
        async with Bus() as bus:
            await bus.add(LLMGateway([endpoint], retry=Backoff(max_attempts=8, base=0.001)))
            results = [await chat(bus, ask(f"q{i}")) for i in range(10)]
    assert len(results) == 10  # no call failed just because the endpoint had cooled down
    assert endpoint.cooling_for == 0


async def test_an_endpoint_that_starts_cooling_mid_call_hands_over_to_the_fallback() -> None:
    async with MockLLM(faults="500:1.0") as bad, MockLLM() as good:
        primary = Endpoint(name="primary", base_url=bad, model="x", cooldown_after=2)
        gateway = LLMGateway(
            [primary, Endpoint(name="fallback", base_url=good, model="x")],
            retry=Backoff(max_attempts=8, base=0.001),
        )
        async with Bus() as bus:
            await bus.add(gateway)
            result = await chat(bus, ask())
    assert result.endpoint == "fallback"
    assert gateway.stats().retries == {"ProviderError": 1}  # 2 attempts, then it cooled down


async def test_typed_errors_keep_their_fields_across_the_bus() -> None:
    from agents.llm.errors import RateLimited

    async with MockLLM(faults="429:1.0,retry_after=0.01") as url, Bus() as bus:
        await bus.add(LLMGateway([Endpoint(name="p", base_url=url, model="m")], retry=FAST))
        with pytest.raises(RetriesExhausted) as info:
            await chat(bus, ask(max_attempts=2))
    error = info.value
    assert (error.endpoint, error.model, error.status) == ("p", "m", 429)
    assert isinstance(error.last, RateLimited)
    assert error.last.retry_after == pytest.approx(0.01)


async def test_a_retry_after_past_the_deadline_moves_on_to_the_fallback() -> None:
    async with MockLLM(faults="429:1.0,retry_after=60") as limited, MockLLM() as healthy:
        primary = Endpoint(name="primary", base_url=limited, model="m")
        gateway = LLMGateway([primary, Endpoint(name="fallback", base_url=healthy, model="m")])
        async with Bus() as bus:
            await bus.add(gateway)
            result = await chat(bus, ask(timeout=10))
    assert result.endpoint == "fallback"
    assert primary.admission.paused_for > 50  # other calls will not knock on it meanwhile


async def test_a_backoff_holds_no_concurrency_slot() -> None:
    async with MockLLM(faults="500:0.5", seed=6) as url:
        endpoint = Endpoint(name="m", base_url=url, model="x", max_concurrency=1)
        gateway = LLMGateway([endpoint], retry=Backoff(max_attempts=6, base=0.05, cap=0.05))
        seen_in_backoff: list[int] = []

        async def watch(seconds: float) -> None:
            seen_in_backoff.append(endpoint.admission.stats().in_flight)
            await anyio.sleep(seconds)

        gateway._sleep = watch
        async with Bus() as bus:
            await bus.add(gateway)
            for i in range(8):
                await chat(bus, ask(f"q{i}"))
    assert seen_in_backoff and set(seen_in_backoff) == {0}


async def test_requests_the_provider_refuses_do_not_cool_the_endpoint_down(
    status_server: str,
) -> None:
    endpoint = Endpoint(name="s", base_url=status_server, model="x", cooldown_after=2)
    async with Bus() as bus:
        await bus.add(LLMGateway([endpoint], retry=FAST))
        for _ in range(4):
            with pytest.raises(LLMError, match="400 bad request"):
                await chat(bus, ask("400"))
    assert endpoint.cooling_for == 0 and endpoint.consecutive_failures == 0


async def test_while_the_primary_is_paused_later_calls_go_to_the_fallback() -> None:
    async with MockLLM(faults="429:1.0,retry_after=60") as limited, MockLLM() as healthy:
        gateway = LLMGateway(
            [
                Endpoint(name="primary", base_url=limited, model="m"),
                Endpoint(name="fallback", base_url=healthy, model="m"),
            ]
        )
        async with Bus() as bus:
            await bus.add(gateway)
            started = time.monotonic()
            results = [await chat(bus, ask(f"q{i}", timeout=2)) for i in range(3)]
            assert time.monotonic() - started < 5  # nobody waited out the pause (60 s)
    assert [r.endpoint for r in results] == ["fallback"] * 3


async def test_streamed_attempts_count_across_the_fallback_chain() -> None:
    from agents.llm.messages import ChatDelta, stream_topic

    async with MockLLM(faults="truncated:1.0") as cut, MockLLM() as whole:
        gateway = LLMGateway(
            [
                Endpoint(name="primary", base_url=cut, model="m"),
                Endpoint(name="fallback", base_url=whole, model="m"),
            ],
            retry=Backoff(max_attempts=2, base=0.001),
        )
        deltas: list[ChatDelta] = []
        async with Bus() as bus:
            await bus.add(gateway)
            async with bus.stream(stream_topic("x")) as stream:
                result = await chat(bus, ask("tell a story", stream=True, stream_id="x"))
                while stream.pending():
                    deltas.append(await stream.__anext__())
    assert (result.endpoint, result.attempts) == ("fallback", 3)
    kept = "".join(d.content or "" for d in deltas if d.attempt == result.attempts)
    assert kept == result.text
    assert {d.attempt for d in deltas} == {1, 2, 3}


async def test_an_attempt_with_no_time_left_fails_at_once() -> None:
    from agents.llm.errors import LLMTimeout
    from agents.llm.wire import ChatCompletionRequest

    async with MockLLM(latency="3") as url:
        endpoint = Endpoint(name="m", base_url=url, model="x")
        await endpoint.start()
        try:
            started = time.monotonic()
            with pytest.raises(LLMTimeout, match="no time left"):
                await endpoint.attempt(ChatCompletionRequest(model="x", messages=[]), 0.0)
            assert time.monotonic() - started < 0.5
        finally:
            await endpoint.close()
