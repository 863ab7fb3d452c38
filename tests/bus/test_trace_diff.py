"""diff_traces: where two recorded runs first diverge, ids and clocks aside."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from bus import Bus, Context, Message, Topic, TraceRecorder, read_trace
from bus.trace import MISSING, TraceRecord, causation_order, diff_traces

from .messages import RPC, Other, Ping, Pong

pytestmark = pytest.mark.anyio


class Answer(Message, frozen=True, kw_only=True):
    text: str
    conversation_id: str


STEP = Topic("test.step", Other)
ANSWER = Topic("test.answer", Answer)


async def record_run(path: Path, *, answer: str = "42", pause: float = 0.0) -> list[TraceRecord]:
    """A small run: a request whose handler publishes a step and an answer that quotes ids."""
    async with Bus("run") as bus:

        async def serve(msg: Ping, ctx: Context) -> Pong:
            await asyncio.sleep(pause)
            await ctx.publish(STEP, Other(text=f"working on {msg.n}"))
            await ctx.publish(
                ANSWER,
                Answer(text=answer, conversation_id=ctx.id),  # an envelope id, quoted
            )
            return Pong(n=msg.n)

        bus.subscribe(RPC, serve, name="server")
        bus.subscribe(STEP, lambda m: None)
        bus.subscribe(ANSWER, lambda m: None)
        with TraceRecorder(bus, path):
            await bus.request(RPC, Ping(n=7), sender="client")
            await bus.drain()
    return read_trace(path)


def rec(id: str, subject: str, ts: float, **fields: Any) -> TraceRecord:
    return TraceRecord(
        **{"id": id, "subject": subject, "kind": "event", "type": "T", "sender": "s"} | fields,
        timestamp=ts,
    )


def tool_call(call_id: str, name: str) -> dict[str, Any]:
    """A tool call as the OpenAI wire format (and ChatResult.message) carries it."""
    return {"type": "function", "id": call_id, "function": {"name": name, "arguments": "{}"}}


async def test_two_runs_of_one_program_are_identical(tmp_path: Path) -> None:
    first = await record_run(tmp_path / "a.jsonl")
    second = await record_run(tmp_path / "b.jsonl", pause=0.01)  # other timings, other ids
    assert first[0].id != second[0].id
    assert diff_traces(first, second) is None


async def test_a_changed_payload_field_is_named_with_both_values(tmp_path: Path) -> None:
    first = await record_run(tmp_path / "a.jsonl")
    second = await record_run(tmp_path / "b.jsonl", answer="41")
    found = diff_traces(first, second)
    assert found is not None
    assert found.field == "payload.text"
    assert (found.value_a, found.value_b) == ("42", "41")
    assert found.record_a is not None and found.record_a.subject == "test.answer"
    assert found.position == 3  # request, step, answer — in causation order
    assert found.count_a == found.count_b == 4
    assert found.line_a == 3 and found.line_b == 3


def test_a_trace_that_goes_on_longer_diverges_where_the_other_ends() -> None:
    a = [rec("x-1", "a.b", 1.0)]
    b = [rec("y-1", "a.b", 1.0), rec("y-2", "a.c", 2.0, causation_id="y-1")]
    found = diff_traces(a, b)
    assert found is not None
    assert (found.position, found.field) == (2, "")
    assert found.record_a is None and found.line_a is None
    assert found.value_a is MISSING and found.value_b == "a.c"
    assert found.record_b is not None and found.record_b.id == "y-2"


def test_ids_are_compared_by_the_position_of_their_message() -> None:
    a = [
        rec("aaaaaaaa-1", "t.one", 1.0),
        rec("aaaaaaaa-2", "t.two", 2.0, causation_id="aaaaaaaa-1", payload={"of": "aaaaaaaa-1"}),
    ]
    same = [
        rec("bbbbbbbb-1", "t.one", 5.0),
        rec("bbbbbbbb-2", "t.two", 6.0, causation_id="bbbbbbbb-1", payload={"of": "bbbbbbbb-1"}),
    ]
    assert diff_traces(a, same) is None
    other_cause = [
        rec("bbbbbbbb-1", "t.one", 5.0),
        rec("bbbbbbbb-2", "t.two", 6.0, payload={"of": "bbbbbbbb-1"}),
    ]
    found = diff_traces(a, other_cause)
    assert found is not None
    assert (found.position, found.field) == (2, "causation_id")
    assert (found.value_a, found.value_b) == ("#1", None)


def test_inbox_subjects_and_ids_inside_text_are_normalised() -> None:
    a = [rec("0123abcd-9", "_INBOX.0123abcd", 1.0, payload={"note": "see 0123abcd-9 now"})]
    b = [rec("feedbeef-3", "_INBOX.feedbeef", 1.0, payload={"note": "see feedbeef-3 now"})]
    assert diff_traces(a, b) is None


def test_ids_minted_per_run_are_compared_by_first_appearance() -> None:
    def run(first: str, second: str) -> list[TraceRecord]:
        return [
            rec("1", "llm.x", 1.0, type="ChatResult",
                payload={"message": {"tool_calls": [tool_call(first, "a")]}}),
            rec("2", "t.call", 2.0, type="ToolCallRequest", payload={"call_id": first}),
            rec("3", "t.ev", 3.0, type="AgentEvent", payload={"call_id": first}),
            rec("4", "llm.y", 4.0, type="ChatRequest", payload={"messages": [
                {"role": "assistant", "tool_calls": [tool_call(first, "a")]},
                {"role": "tool", "tool_call_id": first, "content": "A"},
            ]}),
            rec("5", "t.call", 5.0, type="ToolCallRequest", payload={"call_id": second}),
        ]  # fmt: skip

    assert diff_traces(run("call_x", "call_y"), run("call_p", "call_q")) is None
    found = diff_traces(run("call_x", "call_y"), run("call_p", "call_p"))  # reused: different
    assert found is not None
    assert (found.position, found.field) == (5, "payload.call_id")
    assert (found.value_a, found.value_b) == ("<id 2>", "<id 1>")


def test_clock_readings_of_hivebus_messages_never_count_as_differences() -> None:
    def run(at: float) -> list[TraceRecord]:
        task = {"content": "go", "timeout": 9.5 - at}  # the budget left when it was sent
        return [
            rec("aaaaaaaa-1", "agent.w.inbox", at, type="Task", kind="request", payload=task),
            rec("aaaaaaaa-2", "llm.chat", at, type="ChatRequest", kind="request",
                causation_id="aaaaaaaa-1", payload={"messages": [], "timeout": 8.0 - at}),
            rec("aaaaaaaa-3", "_INBOX.x", at, type="ChatResult", kind="reply",
                correlation_id="aaaaaaaa-2", payload={"model": "m", "latency": at / 10}),
            rec("aaaaaaaa-4", "_INBOX.x", at, type="AgentResult", kind="reply",
                correlation_id="aaaaaaaa-1", payload={"text": "done", "duration": at}),
            rec("aaaaaaaa-5", "chat.c.inbox", at, type="GroupChatTask", payload={"timeout": at}),
            rec("aaaaaaaa-6", "_INBOX.x", at, type="GroupChatResult", kind="reply",
                payload={"turns": 2, "duration": at}),
            rec("aaaaaaaa-7", "_bus.dead", at, type="DeadLetter", causation_id="aaaaaaaa-1",
                payload={"reason": "handler_error", "envelope": {
                    "id": "aaaaaaaa-1", "timestamp": at, "payload": task}}),
        ]  # fmt: skip

    assert diff_traces(run(1.0), run(7.0)) is None


def test_a_users_fields_are_compared_whatever_their_names() -> None:
    # Order.id is the user's data, not an id minted per run; nor are a user's `duration`,
    # `timeout` or `call_id` clock readings or LLM ids
    a = [rec("1", "orders.placed", 1.0, type="Order", payload={"id": "ORD-1001", "qty": 3})]
    b = [rec("1", "orders.placed", 1.0, type="Order", payload={"id": "ORD-9999", "qty": 3})]
    found = diff_traces(a, b)
    assert found is not None and found.field == "payload.id"
    assert (found.value_a, found.value_b) == ("ORD-1001", "ORD-9999")
    for field, x, y in [("duration", 3, 4), ("timeout", 9.5, 1.2), ("call_id", "c1", "c2"),
                        ("latency", 0.1, 0.9), ("created", 1, 2)]:  # fmt: skip
        found = diff_traces(
            [rec("1", "t.a", 1.0, payload={"inner": [{field: x}]})],
            [rec("1", "t.a", 1.0, payload={"inner": [{field: y}]})],
        )
        assert found is not None and found.field == f"payload.inner[0].{field}", field
    # an `id` beside a `function` that is not a tool call's shape is the user's too
    found = diff_traces(
        [rec("1", "t.a", 1.0, payload={"id": "a", "function": {}, "owner": "x"})],
        [rec("1", "t.a", 1.0, payload={"id": "b", "function": {}, "owner": "x"})],
    )
    assert found is not None and found.field == "payload.id"


def test_lists_report_the_first_differing_or_missing_item() -> None:
    a = [rec("1", "t.a", 1.0, payload={"items": [1, 2, 3]})]
    b = [rec("1", "t.a", 1.0, payload={"items": [1, 2]})]
    found = diff_traces(a, b)
    assert found is not None
    assert found.field == "payload.items[2]"
    assert (found.value_a, found.value_b) == (3, MISSING)
    assert repr(MISSING) == "<missing>"


def test_a_key_only_one_side_has_is_a_difference() -> None:
    a = [rec("1", "t.a", 1.0, payload={"a": 1})]
    b = [rec("1", "t.a", 1.0, payload={"a": 1, "b": None})]
    found = diff_traces(a, b)
    assert found is not None
    assert found.field == "payload.b"
    assert (found.value_a, found.value_b) == (MISSING, None)


def test_numbers_compare_by_value_but_booleans_are_not_numbers() -> None:
    assert diff_traces([rec("1", "t", 1.0, payload=1)], [rec("1", "t", 1.0, payload=1.0)]) is None
    found = diff_traces([rec("1", "t", 1.0, payload=1)], [rec("1", "t", 1.0, payload=True)])
    assert found is not None and found.field == "payload"


def test_causation_order_does_not_depend_on_interleaving() -> None:
    def run(offset_b: float) -> list[TraceRecord]:
        return [
            rec("a", "root.a", 1.0),
            rec("b", "root.b", 1.5),
            rec("a1", "child.a", 2.0 + offset_b, causation_id="a"),
            rec("b1", "child.b", 2.5 - offset_b, causation_id="b"),
        ]

    assert [r.id for r in causation_order(run(0.0))] == ["a", "a1", "b", "b1"]
    assert [r.id for r in causation_order(run(1.0))] == ["a", "a1", "b", "b1"]
    assert diff_traces(run(0.0), run(1.0)) is None


def test_a_reply_comes_after_what_its_request_caused_and_orphans_come_last() -> None:
    records = [
        rec("r", "svc", 1.0, kind="request", correlation_id="r", reply_to="_INBOX.x"),
        rec("e", "svc.step", 2.0, causation_id="r"),
        rec("re", "_INBOX.x", 3.0, kind="reply", correlation_id="r", causation_id="r"),
        rec("lost", "_INBOX.x", 0.5, kind="reply", correlation_id="gone"),
    ]
    assert [r.id for r in causation_order(records)] == ["r", "e", "re", "lost"]


def parallel_calls(first_done: str) -> list[TraceRecord]:
    """One step of an agent calling tools a and b at once; ``first_done`` answers first."""
    task, call = "feed01-1", {"a": "feed01-3", "b": "feed01-5"}

    def event(number: int, kind: str, tool: str) -> TraceRecord:
        payload = {"kind": kind, "call_id": f"call_{tool}"}
        return rec(f"feed01-{number}", "agent.w.events", number, causation_id=task,
                   type="AgentEvent", payload=payload)  # fmt: skip

    def request(number: int, subject: str, type: str, payload: Any = None) -> TraceRecord:
        return rec(f"feed01-{number}", subject, number, kind="request", type=type,
                   causation_id=task, correlation_id=f"feed01-{number}", reply_to="_INBOX.x",
                   payload=payload)  # fmt: skip

    def reply(number: int, tool: str) -> TraceRecord:
        return rec(f"feed01-{number}", "_INBOX.x", number, kind="reply", type="ToolResult",
                   correlation_id=call[tool], causation_id=call[tool],
                   payload={"call_id": f"call_{tool}", "content": tool.upper()})  # fmt: skip

    second = "b" if first_done == "a" else "a"
    return [
        rec(task, "agent.w.inbox", 0, kind="request", type="Task", reply_to="_INBOX.x",
            correlation_id=task),
        event(2, "tool_called", "a"),
        request(3, "tool.call", "ToolCallRequest", {"call_id": "call_a", "name": "a"}),
        event(4, "tool_called", "b"),
        request(5, "tool.call", "ToolCallRequest", {"call_id": "call_b", "name": "b"}),
        reply(6, first_done),
        event(7, "tool_answered", first_done),
        reply(8, second),
        event(9, "tool_answered", second),
        request(10, "memory.append", "MemoryAppend"),
    ]  # fmt: skip


def test_parallel_tool_calls_read_the_same_whichever_finished_first() -> None:
    ordered = causation_order(parallel_calls("b"))
    assert [(r.payload or {}).get("kind", r.type) for r in ordered] == [
        "Task",
        "tool_called", "ToolCallRequest", "ToolResult", "tool_answered",  # call a, together
        "tool_called", "ToolCallRequest", "ToolResult", "tool_answered",  # then call b
        "MemoryAppend",
    ]  # fmt: skip
    calls = [(r.payload or {}).get("call_id") for r in ordered[1:9]]
    assert calls == ["call_a"] * 4 + ["call_b"] * 4
    assert diff_traces(parallel_calls("a"), parallel_calls("b")) is None


def test_a_call_id_used_again_after_other_work_is_a_call_of_its_own() -> None:
    # a replayed answer can repeat a step's tool call ids: the second step's events stay
    # in the second step, after the message of no call between them
    records = [
        rec("feed02-1", "t.root", 1.0),
        rec("feed02-2", "t.ev", 1.1, causation_id="feed02-1", payload={"call_id": "call_1"}),
        rec("feed02-3", "t.step", 1.2, causation_id="feed02-1"),
        rec("feed02-4", "t.ev", 1.3, causation_id="feed02-1", payload={"call_id": "call_1"}),
    ]
    assert [r.id for r in causation_order(records)] == [f"feed02-{n}" for n in (1, 2, 3, 4)]
