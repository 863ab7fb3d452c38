"""The mock LLM over loopback: the wire format, streaming, auth, faults, latency, counters."""

from __future__ import annotations

import functools
import random
import time
from typing import Annotated, Any, Literal

import aiohttp
import anyio
import msgspec
import orjson
import pytest
from multidict import CIMultiDictProxy

from agents.llm.mock import (
    Faults,
    Latency,
    MockConfigError,
    MockLLM,
    RateLimit,
    parse_duration,
    run_standalone,
)
from agents.llm.policy import Policy, PolicyIncomplete, Rule, ScriptedCall
from agents.llm.wire import chunk_decoder, completion_decoder

pytestmark = pytest.mark.anyio

SEARCH = {
    "type": "function",
    "function": {
        "name": "search",
        "parameters": {
            "type": "object",
            "properties": {"query": {"type": "string"}, "limit": {"type": "integer"}},
            "required": ["query", "limit"],
        },
    },
}


def chat(text: str = "Tell me about bees", **extra: Any) -> dict[str, Any]:
    return {"model": "mock-1", "messages": [{"role": "user", "content": text}], **extra}


class Answer(msgspec.Struct, frozen=True):
    status: int
    body: bytes
    headers: CIMultiDictProxy[str]

    def json(self) -> Any:
        return orjson.loads(self.body)

    def events(self) -> list[bytes]:
        """The payloads of the SSE ``data:`` lines, in order."""
        lines = self.body.decode().split("\n\n")
        assert lines[-1] == "", "every event ends with a blank line"
        assert all(line.startswith("data: ") for line in lines[:-1])
        return [line.removeprefix("data: ").encode() for line in lines[:-1]]


async def post(
    url: str,
    payload: dict[str, Any] | bytes,
    *,
    headers: dict[str, str] | None = None,
    timeout: float = 5.0,
) -> Answer:
    body = payload if isinstance(payload, bytes) else orjson.dumps(payload)
    headers = {"Content-Type": "application/json", **(headers or {})}
    client_timeout = aiohttp.ClientTimeout(total=timeout)
    async with (
        aiohttp.ClientSession(timeout=client_timeout) as session,
        session.post(f"{url}/chat/completions", data=body, headers=headers) as response,
    ):
        return Answer(response.status, await response.read(), response.headers)


async def get(url: str, path: str, headers: dict[str, str] | None = None) -> Answer:
    async with aiohttp.ClientSession() as session, session.get(url + path, headers=headers) as r:
        return Answer(r.status, await r.read(), r.headers)


def assemble(events: list[bytes]) -> tuple[str, dict[int, dict[str, Any]], list[str | None]]:
    """Content, tool calls by index and finish reasons, put together from stream chunks."""
    content = ""
    calls: dict[int, dict[str, Any]] = {}
    finish_reasons = []
    for event in events:
        if event == b"[DONE]":
            continue
        for choice in orjson.loads(event)["choices"]:
            delta = choice["delta"]
            content += delta.get("content") or ""
            for fragment in delta.get("tool_calls", []):
                call = calls.setdefault(fragment["index"], {"arguments": "", "fragments": 0})
                call["fragments"] += 1
                for key in ("id", "type"):
                    if key in fragment:
                        assert key not in call, f"{key} sent twice"
                        call[key] = fragment[key]
                if "name" in fragment["function"]:
                    call["name"] = fragment["function"]["name"]
                call["arguments"] += fragment["function"].get("arguments", "")
            finish_reasons.append(choice["finish_reason"])
    return content, calls, finish_reasons


# -- the wire format -----------------------------------------------------------------------


async def test_the_url_is_a_loopback_v1_base() -> None:
    async with MockLLM() as url:
        assert url.startswith("http://127.0.0.1:")
        assert url.endswith("/v1")


async def test_a_completion_has_every_key_the_spec_requires() -> None:
    async with MockLLM() as url:
        answer = await post(url, chat())
    assert answer.status == 200
    assert answer.headers["Content-Type"].startswith("application/json")
    body = answer.json()
    assert set(body) >= {"id", "object", "created", "model", "choices", "usage"}
    assert body["id"].startswith("chatcmpl-")
    assert body["object"] == "chat.completion"
    assert body["model"] == "mock-1"
    assert isinstance(body["created"], int)
    [choice] = body["choices"]
    assert choice["index"] == 0
    assert choice["finish_reason"] == "stop"
    assert "logprobs" in choice and choice["logprobs"] is None
    message = choice["message"]
    assert message["role"] == "assistant"
    assert "refusal" in message and message["refusal"] is None
    assert "bees" in message["content"]
    assert "tool_calls" not in message
    usage = body["usage"]
    assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"]
    assert usage["prompt_tokens"] == len("Tell me about bees") // 4 + 1
    completion_decoder.decode(answer.body)


async def test_a_completion_echoes_the_requested_model() -> None:
    async with MockLLM() as url:
        answer = await post(url, {**chat(), "model": "gpt-4o-mini"})
    assert answer.json()["model"] == "gpt-4o-mini"


async def test_tool_calls_carry_an_id_a_type_and_json_arguments() -> None:
    async with MockLLM() as url:
        answer = await post(url, chat(tools=[SEARCH]))
    [choice] = answer.json()["choices"]
    assert choice["finish_reason"] == "tool_calls"
    assert choice["message"]["content"] is None
    [call] = choice["message"]["tool_calls"]
    assert call["id"].startswith("call_")
    assert call["type"] == "function"
    assert call["function"]["name"] == "search"
    assert orjson.loads(call["function"]["arguments"]) == {
        "query": "Tell me about bees",
        "limit": 1,
    }


async def test_n_asks_for_that_many_choices() -> None:
    async with MockLLM() as url:
        answer = await post(url, chat(n=3))
    assert [c["index"] for c in answer.json()["choices"]] == [0, 1, 2]


async def test_max_tokens_cuts_the_content_with_finish_reason_length() -> None:
    async with MockLLM() as url:
        answer = await post(url, chat(max_tokens=2))
    [choice] = answer.json()["choices"]
    assert len(choice["message"]["content"]) == 8
    assert choice["finish_reason"] == "length"


async def test_a_stop_sequence_cuts_the_content_before_it() -> None:
    policy = Policy([Rule(text="one two STOP three")])
    async with MockLLM(policy) as url:
        answer = await post(url, chat(stop=["STOP", "two"]))
    assert answer.json()["choices"][0]["message"]["content"] == "one "


async def test_models_lists_the_configured_models() -> None:
    async with MockLLM(models=["a", "b"]) as url:
        answer = await get(url, "/models")
    assert answer.status == 200
    body = answer.json()
    assert body["object"] == "list"
    assert [(m["id"], m["object"]) for m in body["data"]] == [("a", "model"), ("b", "model")]
    assert all(set(m) == {"id", "object", "created", "owned_by"} for m in body["data"])


async def test_a_model_is_retrieved_by_id_and_an_unknown_one_is_a_404() -> None:
    async with MockLLM(models=["a"]) as url:
        found, missing = await get(url, "/models/a"), await get(url, "/models/zzz")
    assert found.json()["id"] == "a"
    assert missing.status == 404
    assert missing.json()["error"]["code"] == "model_not_found"


async def test_an_unknown_path_is_a_404_in_the_openai_error_shape() -> None:
    async with MockLLM() as url:
        answer = await get(url, "/completions")
    assert answer.status == 404
    assert answer.json() == {
        "error": {
            "message": "Invalid URL (GET /v1/completions)",
            "type": "invalid_request_error",
            "param": None,
            "code": None,
        }
    }


# -- streaming -----------------------------------------------------------------------------


async def test_a_stream_reassembles_to_the_plain_answer() -> None:
    async with MockLLM() as url:
        plain = await post(url, chat())
        streamed = await post(url, chat(stream=True))
    assert streamed.headers["Content-Type"].startswith("text/event-stream")
    events = streamed.events()
    assert events[-1] == b"[DONE]"
    first = orjson.loads(events[0])
    assert first["choices"][0]["delta"]["role"] == "assistant"
    content, calls, finish_reasons = assemble(events)
    assert content == plain.json()["choices"][0]["message"]["content"]
    assert calls == {}
    assert finish_reasons[-1] == "stop"
    assert set(finish_reasons[:-1]) == {None}
    assert len(events) > 5, "the content arrives in several chunks"


async def test_every_chunk_has_the_keys_the_spec_requires() -> None:
    async with MockLLM() as url:
        events = (await post(url, chat(stream=True, tools=[SEARCH]))).events()
    ids = set()
    for event in events[:-1]:
        chunk = orjson.loads(event)
        assert chunk["object"] == "chat.completion.chunk"
        assert {"id", "created", "model", "choices"} <= set(chunk)
        assert "usage" not in chunk
        for choice in chunk["choices"]:
            assert {"index", "delta", "finish_reason"} <= set(choice)
        ids.add(chunk["id"])
        chunk_decoder.decode(event)
    assert len(ids) == 1


async def test_a_streamed_tool_call_reassembles_its_arguments_exactly() -> None:
    arguments = '{"query": "a long query about the habits of bees", "limit": 5}'
    policy = Policy([Rule(tool_calls=[ScriptedCall(name="search", arguments=arguments)])])
    async with MockLLM(policy) as url:
        events = (await post(url, chat(stream=True, tools=[SEARCH]))).events()
    content, calls, finish_reasons = assemble(events)
    assert content == ""
    [call] = calls.values()
    assert call["arguments"] == arguments
    assert (call["type"], call["name"]) == ("function", "search")
    assert call["id"].startswith("call_")
    assert call["fragments"] > 3
    assert finish_reasons[-1] == "tool_calls"


async def test_two_streamed_tool_calls_keep_their_own_index() -> None:
    calls = [ScriptedCall(name="a", arguments={"x": 1}), ScriptedCall(name="b", arguments={"y": 2})]
    async with MockLLM(Policy([Rule(tool_calls=calls)])) as url:
        events = (await post(url, chat(stream=True))).events()
    _, assembled, _ = assemble(events)
    assert {i: (c["name"], c["arguments"]) for i, c in assembled.items()} == {
        0: ("a", '{"x":1}'),
        1: ("b", '{"y":2}'),
    }


async def test_include_usage_adds_a_usage_chunk_with_no_choices_before_done() -> None:
    async with MockLLM() as url:
        answer = await post(url, chat(stream=True, stream_options={"include_usage": True}))
    events = answer.events()
    assert events[-1] == b"[DONE]"
    *chunks, usage_chunk = [orjson.loads(e) for e in events[:-1]]
    assert usage_chunk["choices"] == []
    assert usage_chunk["usage"]["total_tokens"] > 0
    assert all("usage" in c and c["usage"] is None for c in chunks)


# -- request errors and auth ---------------------------------------------------------------


async def test_a_body_missing_a_field_is_a_400_naming_it() -> None:
    async with MockLLM() as url:
        answer = await post(url, {"messages": [{"role": "user", "content": "hi"}]})
    assert answer.status == 400
    error = answer.json()["error"]
    assert error["type"] == "invalid_request_error"
    assert error["param"] == "model"
    assert "model" in error["message"]
    assert error["code"] is None


async def test_a_bad_value_deep_in_the_body_is_a_400_naming_its_path() -> None:
    async with MockLLM() as url:
        answer = await post(url, {"model": "m", "messages": [{"role": "robot", "content": "x"}]})
    error = answer.json()["error"]
    assert answer.status == 400
    assert error["param"] == "messages[0].role"
    assert "robot" in error["message"]


async def test_a_body_that_is_not_json_is_a_400() -> None:
    async with MockLLM() as url:
        answer = await post(url, b"{not json")
    assert answer.status == 400
    assert "could not parse the JSON body" in answer.json()["error"]["message"]


async def test_a_conversation_without_messages_is_a_400() -> None:
    async with MockLLM() as url:
        answer = await post(url, {"model": "m", "messages": []})
    assert answer.status == 400
    assert answer.json()["error"]["param"] == "messages"


async def test_a_wrong_key_is_a_401_that_does_not_echo_either_key() -> None:
    async with MockLLM(api_key="sk-right-123") as url:
        answer = await post(url, chat(), headers={"Authorization": "Bearer sk-wrong-456"})
    assert answer.status == 401
    assert answer.json()["error"]["code"] == "invalid_api_key"
    assert set(answer.json()["error"]) == {"message", "type", "param", "code"}
    assert b"sk-" not in answer.body


async def test_a_missing_key_is_a_401() -> None:
    async with MockLLM(api_key="sk-right-123") as url:
        chat_answer, models_answer = await post(url, chat()), await get(url, "/models")
    assert (chat_answer.status, models_answer.status) == (401, 401)
    assert "API key" in chat_answer.json()["error"]["message"]


async def test_the_right_key_is_let_in() -> None:
    async with MockLLM(api_key="sk-right-123") as url:
        answer = await post(url, chat(), headers={"Authorization": "Bearer sk-right-123"})
    assert answer.status == 200


# -- faults --------------------------------------------------------------------------------


async def test_fault_429_sends_retry_after_in_seconds_and_milliseconds() -> None:
    async with MockLLM(faults="429:1,retry_after=0.25") as url:
        answer = await post(url, chat())
    assert answer.status == 429
    assert answer.headers["Retry-After"] == "1"
    assert answer.headers["retry-after-ms"] == "250"
    error = answer.json()["error"]
    assert (error["type"], error["code"], error["param"]) == (
        "requests",
        "rate_limit_exceeded",
        None,
    )


@pytest.mark.parametrize("status", [500, 503])
async def test_fault_5xx_answers_a_server_error(status: int) -> None:
    async with MockLLM(faults=f"{status}:1") as url:
        answer = await post(url, chat())
    assert answer.status == status
    assert answer.json()["error"]["type"] == "server_error"
    assert set(answer.json()["error"]) == {"message", "type", "param", "code"}


async def test_fault_reset_drops_the_connection_without_a_response() -> None:
    mock = MockLLM(faults="reset:1")
    async with mock as url:
        with pytest.raises(aiohttp.ClientConnectionError):
            await post(url, chat())
    assert mock.stats().faults["reset"] == 1
    assert mock.stats().responses == {}


async def test_fault_timeout_outlasts_the_client_and_ends_when_the_server_stops() -> None:
    mock = MockLLM(faults="timeout:1")  # hangs for the default 30 s
    async with mock as url:
        with pytest.raises(TimeoutError):
            await post(url, chat(), timeout=0.2)
        started = time.monotonic()
    assert time.monotonic() - started < 2
    assert mock.stats().faults["timeout"] == 1


async def test_fault_timeout_answers_after_hang_seconds() -> None:
    async with MockLLM(faults="timeout:1,hang=0.1") as url:
        started = time.monotonic()
        answer = await post(url, chat())
    assert answer.status == 200
    assert time.monotonic() - started >= 0.1


async def test_fault_badjson_is_a_200_whose_body_does_not_parse() -> None:
    async with MockLLM(faults="badjson:1") as url:
        answer = await post(url, chat())
    assert answer.status == 200
    with pytest.raises(orjson.JSONDecodeError):
        answer.json()


async def test_fault_badjson_in_a_stream_is_a_chunk_that_does_not_parse() -> None:
    async with MockLLM(faults="badjson:1") as url:
        events = (await post(url, chat(stream=True))).events()
    assert events[-1] == b"[DONE]"
    broken = []
    for event in events[:-1]:
        try:
            orjson.loads(event)
        except orjson.JSONDecodeError:
            broken.append(event)
    assert len(broken) == 1


async def test_fault_truncated_stops_a_stream_halfway_without_done() -> None:
    async with MockLLM() as url:
        whole = (await post(url, chat(stream=True))).events()
    async with MockLLM(faults="truncated:1") as url:
        cut = (await post(url, chat(stream=True))).events()
    assert b"[DONE]" not in cut
    assert cut == whole[: len(cut)]
    assert len(cut) < len(whole) - 1
    assert set(assemble(cut)[2]) == {None}, "no chunk carries a finish_reason"


async def test_fault_truncated_cuts_a_json_body_in_half() -> None:
    async with MockLLM(faults="truncated:1") as url:
        answer = await post(url, chat())
    assert answer.status == 200
    assert answer.body.startswith(b'{"id":"chatcmpl-')
    with pytest.raises(orjson.JSONDecodeError):
        answer.json()


async def test_fault_badargs_sends_tool_call_arguments_that_are_not_json() -> None:
    async with MockLLM(faults="badargs:1") as url:
        plain = await post(url, chat(tools=[SEARCH]))
        streamed = await post(url, chat(tools=[SEARCH], stream=True))
    [call] = plain.json()["choices"][0]["message"]["tool_calls"]
    _, calls, _ = assemble(streamed.events())
    for arguments in (call["function"]["arguments"], calls[0]["arguments"]):
        with pytest.raises(orjson.JSONDecodeError):
            orjson.loads(arguments)


async def test_fault_badargs_without_tools_answers_normally_and_is_not_counted() -> None:
    mock = MockLLM(faults="badargs:1")
    async with mock as url:
        answer = await post(url, chat())
    assert answer.status == 200
    assert mock.stats().faults["badargs"] == 0


async def test_fault_rates_are_roughly_honoured() -> None:
    mock = MockLLM(faults="500:0.2,503:0.1", seed=7)
    async with mock as url, aiohttp.ClientSession() as session:
        for _ in range(300):
            async with session.post(f"{url}/chat/completions", json=chat()) as response:
                await response.read()
    stats = mock.stats()
    assert 40 <= stats.responses[500] <= 80
    assert 15 <= stats.responses[503] <= 45
    assert stats.faults["500"] == stats.responses[500]
    assert sum(stats.responses.values()) == 300


async def test_the_same_seed_gives_the_same_faults() -> None:
    async def statuses(seed: int) -> list[int]:
        async with MockLLM(faults="429:0.3,500:0.3", seed=seed) as url:
            return [(await post(url, chat())).status for _ in range(20)]

    first = await statuses(3)
    assert first == await statuses(3)
    assert len(set(first)) == 3


async def test_a_scripted_fault_on_a_step_lets_the_retry_through() -> None:
    policy = Policy([Rule(step=0, fault="429", once=True), Rule(step=0, text="made it")])
    async with MockLLM(policy) as url:
        first, second = await post(url, chat()), await post(url, chat())
    assert first.status == 429
    assert second.json()["choices"][0]["message"]["content"] == "made it"
    policy.assert_complete()


async def test_a_drawn_fault_does_not_use_up_a_scripted_rule() -> None:
    policy = Policy([Rule(text="scripted", once=True)])
    async with MockLLM(policy, faults="503:1") as url:
        await post(url, chat())
    assert policy.uses == {"rules[0]": 0}


# -- latency -------------------------------------------------------------------------------


async def test_a_fixed_latency_delays_each_response() -> None:
    async with MockLLM(latency="100ms") as url:
        started = time.monotonic()
        answer = await post(url, chat())
    assert answer.status == 200
    assert time.monotonic() - started >= 0.1


async def test_per_token_latency_spaces_the_stream_chunks() -> None:
    async with MockLLM(Policy([Rule(text="a b c d e")]), latency="0;per_token=20ms") as url:
        started = time.monotonic()
        events = (await post(url, chat(stream=True))).events()
    assert time.monotonic() - started >= 0.02 * (len(events) - 1)


def test_latency_specs_parse_to_typed_values() -> None:
    assert Latency.parse("50ms") == Latency(seconds=0.05)
    assert Latency.parse("0.05") == Latency.parse(0.05) == Latency(seconds=0.05)
    assert Latency.parse("uniform:0.01,0.05") == Latency(
        distribution="uniform", seconds=0.01, high=0.05
    )
    assert Latency.parse("uniform:10ms,50ms") == Latency.parse("uniform:0.01,0.05")
    assert Latency.parse("lognormal:50ms,0.25") == Latency(
        distribution="lognormal", seconds=0.05, sigma=0.25
    )
    assert Latency.parse("50ms,lognormal") == Latency(distribution="lognormal", seconds=0.05)
    assert Latency.parse("20ms;per_token=2ms") == Latency(seconds=0.02, per_token=0.002)
    assert Latency.parse(None) == Latency()


@pytest.mark.parametrize(
    "spec", ["fast", "uniform:1", "50ms,gaussian", "10ms;speed=2", "lognormal:x", "-5ms"]
)
def test_a_bad_latency_spec_is_refused_naming_it(spec: str) -> None:
    with pytest.raises(MockConfigError, match=f"latency '{spec}'"):
        Latency.parse(spec)


def test_latency_draws_stay_in_their_distribution() -> None:
    rng = random.Random(1)
    uniform = Latency.parse("uniform:10ms,20ms")
    assert all(0.01 <= uniform.sample(rng) <= 0.02 for _ in range(200))
    lognormal = Latency.parse("lognormal:50ms,0.5")
    draws = sorted(lognormal.sample(rng) for _ in range(2001))
    assert 0.04 < draws[1000] < 0.06


def test_durations_read_seconds_and_milliseconds() -> None:
    assert (parse_duration("2s"), parse_duration("250ms"), parse_duration(" 1.5 ")) == (
        2.0,
        0.25,
        1.5,
    )


# -- fault specs ---------------------------------------------------------------------------


def test_fault_specs_parse_every_kind_and_the_options() -> None:
    spec = (
        "429:0.05,500:0.02,503:0.01,reset:0.01,"
        "timeout:0.01,badjson:0.01,truncated:0.01,badargs:0.01"
    )
    faults = Faults.parse(spec + ",retry_after=500ms,hang=2s")
    assert faults.rates == {
        "429": 0.05,
        "500": 0.02,
        "503": 0.01,
        "reset": 0.01,
        "timeout": 0.01,
        "badjson": 0.01,
        "truncated": 0.01,
        "badargs": 0.01,
    }
    assert (faults.retry_after, faults.hang_seconds) == (0.5, 2.0)
    assert Faults.parse({"500": 0.5}).rates == {"500": 0.5}


@pytest.mark.parametrize(
    ("spec", "problem"),
    [
        ("418:0.1", "unknown kind '418'"),
        ("429:1.5", "not between 0 and 1"),
        ("429:0.6,500:0.6", "add up to 1.2"),
        ("429", "want KIND:RATE"),
        ("429:lots", "could not convert"),
    ],
)
def test_a_bad_fault_spec_is_refused_naming_the_problem(spec: str, problem: str) -> None:
    with pytest.raises(MockConfigError, match=problem):
        Faults.parse(spec)


# -- rate-limit headers --------------------------------------------------------------------


async def test_ratelimit_headers_count_down_the_window() -> None:
    async with MockLLM(ratelimit=True) as url:
        first, second = await post(url, chat()), await post(url, chat())
    assert first.headers["x-ratelimit-limit-requests"] == "10000"
    assert first.headers["x-ratelimit-remaining-requests"] == "9999"
    assert second.headers["x-ratelimit-remaining-requests"] == "9998"
    assert int(second.headers["x-ratelimit-remaining-tokens"]) < 2_000_000
    assert second.headers["x-ratelimit-reset-requests"].endswith("s")
    assert second.headers["x-ratelimit-reset-tokens"].endswith("s")


async def test_an_enforced_ratelimit_refuses_requests_past_the_limit() -> None:
    async with MockLLM(ratelimit=RateLimit(requests=2, is_enforced=True)) as url:
        answers = [await post(url, chat()) for _ in range(3)]
    assert [a.status for a in answers] == [200, 200, 429]
    refused = answers[2]
    assert refused.headers["x-ratelimit-remaining-requests"] == "0"
    assert 0 < int(refused.headers["retry-after-ms"]) <= 60_000
    assert refused.json()["error"]["type"] == "requests"


# -- counters ------------------------------------------------------------------------------


async def test_peak_in_flight_counts_concurrent_requests() -> None:
    mock = MockLLM(latency="150ms")
    async with mock as url, aiohttp.ClientSession() as session:

        async def one() -> None:
            async with session.post(f"{url}/chat/completions", json=chat()) as response:
                await response.read()

        async with anyio.create_task_group() as tg:
            for _ in range(25):
                tg.start_soon(one)
    stats = mock.stats()
    assert stats.peak_in_flight == 25
    assert stats.in_flight == 0


async def test_peak_in_flight_shows_a_client_side_cap_was_kept() -> None:
    mock = MockLLM(latency="50ms")
    cap = anyio.Semaphore(4)
    async with mock as url, aiohttp.ClientSession() as session:

        async def one() -> None:
            async with cap, session.post(f"{url}/chat/completions", json=chat()) as response:
                await response.read()

        async with anyio.create_task_group() as tg:
            for _ in range(16):
                tg.start_soon(one)
    assert mock.stats().peak_in_flight == 4


async def test_stats_count_requests_responses_streams_and_tokens() -> None:
    mock = MockLLM(faults={"429": 0.0})
    async with mock as url:
        await post(url, chat())
        await post(url, chat(stream=True))
        await post(url, b"{}")
        await get(url, "/models")
    stats = mock.stats()
    assert stats.requests == 4
    assert stats.responses == {200: 3, 400: 1}
    assert stats.streams == 1
    assert stats.prompt_tokens == 2 * (len("Tell me about bees") // 4 + 1)
    assert stats.completion_tokens > 0
    assert set(stats.faults.values()) == {0}


# -- an agent loop, and standalone use -----------------------------------------------------


async def test_an_agent_loop_on_the_default_policy_calls_a_tool_then_answers() -> None:
    messages: list[dict[str, Any]] = [
        {"role": "system", "content": "You are researcher."},
        {"role": "user", "content": "How do bees talk?"},
    ]
    async with MockLLM() as url:
        first = (await post(url, {"model": "m", "messages": messages, "tools": [SEARCH]})).json()
        message = first["choices"][0]["message"]
        [call] = message["tool_calls"]
        messages += [
            message,
            {"role": "tool", "tool_call_id": call["id"], "content": "They dance."},
        ]
        second = (await post(url, {"model": "m", "messages": messages, "tools": [SEARCH]})).json()
    assert first["choices"][0]["finish_reason"] == "tool_calls"
    assert second["choices"][0]["finish_reason"] == "stop"
    assert second["choices"][0]["message"]["content"] == "Based on search: They dance."


async def test_run_standalone_serves_until_cancelled() -> None:
    ready = anyio.Event()
    urls: list[str] = []

    def on_ready(url: str) -> None:
        urls.append(url)
        ready.set()

    argv = ["--port", "0", "--latency", "1ms", "--faults", "500:0", "--ratelimit"]
    async with anyio.create_task_group() as tg:
        tg.start_soon(functools.partial(run_standalone, argv, on_ready=on_ready))
        with anyio.fail_after(5):
            await ready.wait()
        answer = await post(urls[0], chat())
        tg.cancel_scope.cancel()
    assert answer.status == 200
    assert "x-ratelimit-remaining-requests" in answer.headers


async def test_run_standalone_refuses_a_bad_spec_before_serving(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert await run_standalone(["--port", "0", "--faults", "418:0.5"]) == 2
    assert "unknown kind '418'" in capsys.readouterr().err


# -- lifecycle -----------------------------------------------------------------------------


async def test_start_and_stop_work_without_a_context_manager_and_stop_twice_is_fine() -> None:
    mock = MockLLM()
    url = await mock.start()
    assert mock.url == url
    assert (await get(url, "/models")).status == 200
    await mock.stop()
    await mock.stop()
    with pytest.raises(aiohttp.ClientConnectionError):
        await get(url, "/models")


async def test_two_mocks_listen_on_their_own_ports() -> None:
    async with MockLLM() as first, MockLLM() as second:
        assert first != second


async def test_a_client_that_hangs_up_ends_its_request_on_the_server() -> None:
    mock = MockLLM(faults="timeout:1")
    async with mock as url:
        with pytest.raises(TimeoutError):
            await post(url, chat(), timeout=0.1)
        with anyio.fail_after(2):
            # the server's handler ends on its own once it sees the hang-up: nothing to await
            while mock.stats().in_flight:  # noqa: ASYNC110
                await anyio.sleep(0.01)
        assert mock.stats().peak_in_flight == 1


async def test_stopping_mid_stream_ends_the_stream_promptly() -> None:
    mock = MockLLM(Policy([Rule(text="word " * 200)]), latency="0;per_token=50ms")
    streaming = anyio.Event()
    received: list[bytes] = []

    async def read_stream(url: str) -> None:
        async with (
            aiohttp.ClientSession() as session,
            session.post(f"{url}/chat/completions", json=chat(stream=True)) as response,
        ):
            async for data in response.content.iter_any():
                received.append(data)
                streaming.set()

    async with anyio.create_task_group() as tg:
        url = await mock.start()
        tg.start_soon(read_stream, url)
        with anyio.fail_after(2):
            await streaming.wait()
        started = time.monotonic()
        await mock.stop()
    assert time.monotonic() - started < 2
    assert b"[DONE]" not in b"".join(received)


# -- more of the wire ----------------------------------------------------------------------


async def test_each_completion_gets_its_own_id() -> None:
    async with MockLLM() as url:
        ids = {(await post(url, chat())).json()["id"] for _ in range(3)}
    assert len(ids) == 3


class Verdict(msgspec.Struct, frozen=True):
    label: Literal["spam", "ham"]
    score: Annotated[float, msgspec.Meta(ge=0, le=1)]
    reasons: list[str]


async def test_a_json_schema_request_is_answered_with_json_that_validates() -> None:
    response_format = {
        "type": "json_schema",
        "json_schema": {"name": "verdict", "schema": msgspec.json.schema(Verdict)},
    }
    async with MockLLM() as url:
        answer = await post(url, chat(response_format=response_format))
    content = answer.json()["choices"][0]["message"]["content"]
    verdict = msgspec.json.decode(content, type=Verdict)  # raises unless it validates
    assert len(verdict.reasons) == 1


async def test_an_enforced_token_limit_refuses_with_type_tokens() -> None:
    async with MockLLM(ratelimit=RateLimit(tokens=5, is_enforced=True)) as url:
        first = await post(url, chat("a fairly long question " * 4))
        second = await post(url, chat())
    assert first.status == 200
    assert first.headers["x-ratelimit-remaining-tokens"] == "0"
    assert second.status == 429
    assert second.json()["error"]["type"] == "tokens"
    assert int(second.headers["Retry-After"]) >= 1


async def test_a_short_ratelimit_window_resets_in_milliseconds() -> None:
    async with MockLLM(ratelimit=RateLimit(window=0.5)) as url:
        answer = await post(url, chat())
    assert answer.headers["x-ratelimit-reset-requests"].endswith("ms")


# -- a scripted workflow -------------------------------------------------------------------


def scripted_research() -> Policy:
    return Policy(
        [
            Rule(
                agent="researcher",
                step=0,
                tool_calls=[ScriptedCall(name="search", arguments={"query": "bees", "limit": 2})],
                once=True,
            ),
            Rule(agent="researcher", step=1, role="tool", text="Bees dance.", once=True),
        ]
    )


async def run_researcher(url: str, steps: int) -> list[dict[str, Any]]:
    messages: list[dict[str, Any]] = [
        {"role": "system", "content": "You are researcher, thorough and brief."},
        {"role": "user", "content": "How do bees talk?"},
    ]
    for _ in range(steps):
        message = (await post(url, {"model": "m", "messages": messages, "tools": [SEARCH]})).json()
        message = message["choices"][0]["message"]
        messages.append(message)
        messages.extend(
            {"role": "tool", "tool_call_id": call["id"], "content": "waggle"}
            for call in message.get("tool_calls") or []
        )
    return messages


async def test_a_scripted_workflow_runs_its_script_and_is_complete() -> None:
    policy = scripted_research()
    async with MockLLM(policy) as url:
        messages = await run_researcher(url, steps=2)
    assert messages[2]["tool_calls"][0]["function"]["arguments"] == '{"query":"bees","limit":2}'
    assert messages[-1]["content"] == "Bees dance."
    policy.assert_complete()


async def test_a_scripted_workflow_that_stops_early_is_incomplete() -> None:
    policy = scripted_research()
    async with MockLLM(policy) as url:
        await run_researcher(url, steps=1)
    with pytest.raises(PolicyIncomplete, match=r"rules\[1\] \(role='tool', agent='researcher'"):
        policy.assert_complete()
