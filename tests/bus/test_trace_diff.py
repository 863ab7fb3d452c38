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
    call_id: str
    latency: float
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
                Answer(
                    text=answer,
                    call_id=f"call-{id(ctx)}",  # minted per run
                    latency=pause + 0.001,
                    conversation_id=ctx.id,  # an envelope id, quoted in a payload
                ),
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
    a = [
        rec("1", "t.a", 1.0, payload={"call_id": "call_x", "tool_call_id": "call_x"}),
        rec("2", "t.b", 2.0, payload={"call_id": "call_y"}),
    ]
    b = [
        rec("1", "t.a", 1.0, payload={"call_id": "call_p", "tool_call_id": "call_p"}),
        rec("2", "t.b", 2.0, payload={"call_id": "call_p"}),  # reused: a different structure
    ]
    found = diff_traces(a, b)
    assert found is not None
    assert (found.position, found.field) == (2, "payload.call_id")
    assert (found.value_a, found.value_b) == ("<id 2>", "<id 1>")


def test_clock_readings_never_count_as_differences() -> None:
    a = [rec("1", "t.a", 1.0, payload={"latency": 0.1, "inner": [{"duration": 3, "timeout": 9.5}]})]
    b = [rec("1", "t.a", 7.0, payload={"latency": 0.9, "inner": [{"duration": 4, "timeout": 1.2}]})]
    assert diff_traces(a, b) is None


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
