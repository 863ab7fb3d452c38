"""How each message of an agent run reads as one line."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import orjson
import pytest

from agents.describe import (
    actor,
    agent_of_subject,
    clip,
    describe,
    describe_node,
    is_error,
    target,
)
from bus.trace import TraceRecord, build_tree, format_tree

from .run_fixtures import record_team_run

pytestmark = pytest.mark.anyio


def rec(type: str, payload: Any, subject: str = "x.y", kind: str = "event") -> TraceRecord:
    return TraceRecord(
        id="1", subject=subject, kind=kind, type=type, sender="a.work", timestamp=1.0,
        payload=payload,  # type: ignore[arg-type]
    )  # fmt: skip


@pytest.fixture
async def records(tmp_path: Path) -> list[TraceRecord]:
    return (await record_team_run(tmp_path / "team.jsonl"))[0]


def texts(records: list[TraceRecord], type: str) -> list[str]:
    return [describe(r, model="gpt-test") for r in records if r.type == type]


async def test_a_task_and_its_answer(records: list[TraceRecord]) -> None:
    assert texts(records, "Task")[0] == 'task "How many bees in the north hive?"'
    answer = texts(records, "AgentResult")[0]
    assert answer.startswith('answer "The north hive holds 12000 bees." · 2 steps · 2 tool calls')
    assert " tok · " in answer


async def test_llm_calls_show_the_model_the_conversation_and_the_answer(
    records: list[TraceRecord],
) -> None:
    first_call = texts(records, "ChatRequest")[0]
    assert first_call == "gpt-test · 2 messages · tools: count_bees"
    calls, said = texts(records, "ChatResult")[:2]
    assert (
        calls.startswith('calls count_bees({"hive":"north"}), count_bees({"hive":5}) · ')
        and " tok · " in calls
    )
    assert said.startswith('"The north hive holds 12000 bees." · ')


async def test_tool_calls_show_arguments_and_results(records: list[TraceRecord]) -> None:
    requests = texts(records, "ToolCallRequest")  # the two calls of one answer run at once
    assert sorted(requests[:2]) == ['count_bees({"hive":"north"})', 'count_bees({"hive":5})']
    results = sorted(texts(records, "ToolResult")[:2])
    assert results[0] == 'count_bees = "12000"'
    assert results[1].startswith('count_bees failed: "invalid arguments')


async def test_agent_events_say_what_happened(records: list[TraceRecord]) -> None:
    events = texts(records, "AgentEvent")
    assert events[0] == "step 1"
    assert 'calls count_bees({"hive":"north"})' in events
    assert any(e.startswith("count_bees answered ") for e in events)
    assert 'finished "The north hive holds 12000 bees."' in events
    assert any(e.startswith("FAILED: MaxStepsExceeded") for e in events)


async def test_memory_traffic_in_words(records: list[TraceRecord]) -> None:
    # the task's message is stored with the first window request, one round trip
    windows = texts(records, "MemoryWindow")
    assert windows[0] == "append 1 message (user), then window"
    assert windows[1] == "append 3 messages (assistant, tool, tool), then window"
    assert texts(records, "Window")[0].startswith("1 message, ")
    assert texts(records, "MemoryAppend")[0] == "append 1 message (assistant)"  # the answer
    assert texts(records, "Appended")[0] == "5 messages stored"
    plain = rec("MemoryWindow", {"conversation_id": "c", "max_tokens": 500})
    assert describe(plain) == "window of at most 500"


async def test_a_tree_line_joins_a_request_and_its_reply(records: list[TraceRecord]) -> None:
    roots = build_tree(records)
    llm_call = next(n for _, n in roots[0].walk() if n.record.subject == "llm.chat")
    text = describe_node(llm_call)
    assert text.startswith("gpt-4o-mini · 2 messages · tools: count_bees  ⇒ calls count_bees(")


def test_errors_and_dead_letters() -> None:
    error = rec("ErrorReply", {"remote_type": "ValueError", "message": "no\nmore"}, kind="reply")
    assert describe(error) == "error ValueError: no more"
    assert is_error(error)
    dead = rec(
        "DeadLetter",
        {"reason": "handler_error", "envelope": {"subject": "a.b"}, "error_type": "E",
         "error_message": "boom"},
    )  # fmt: skip
    assert describe(dead) == "dead letter (handler_error) from a.b: E: boom"
    assert is_error(rec("ToolResult", {"is_error": True, "name": "t", "content": "x"}))
    assert not is_error(rec("ToolResult", {"is_error": False, "name": "t", "content": "x"}))


def test_unknown_and_look_alike_messages_fall_back_to_json() -> None:
    assert describe(rec("Ping", {"n": 1})) == '{"n":1}'
    assert describe(rec("Note", "just text")) == '"just text"'
    # A user's own "AgentResult" of another shape is not misread.
    assert describe(rec("AgentResult", {"steps": "many"})) == '{"steps":"many"}'
    # A "Task" that is not on an agent's inbox is somebody else's type.
    assert describe(rec("Task", {"text": "x"}, subject="team.task")) == '{"text":"x"}'


def test_long_text_is_clipped_to_one_line() -> None:
    assert clip("a\n b   c") == "a b c"
    assert clip("x" * 100, 10) == "x" * 9 + "…"
    long_task = rec("Task", {"content": "word " * 50}, subject="agent.a.inbox")
    assert len(describe(long_task)) < 100


def test_names_of_actors_and_targets() -> None:
    assert actor("researcher.work") == "researcher" and actor("") == "?"
    assert agent_of_subject("agent.bob.events") == "bob"
    assert agent_of_subject("agent.bob.other") is None
    assert [target(rec("T", {}, subject=s)) for s in ("agent.bob.inbox", "llm.chat")] == [
        "bob",
        "llm",
    ]
    assert [target(rec("T", {}, subject=s)) for s in ("tool.call", "memory.window", "a.b")] == [
        "tools",
        "memory",
        "a.b",
    ]


def test_a_handed_on_task_names_who_passed_it() -> None:
    task = rec("Task", {"content": "refund", "handoffs": ["triage"]}, subject="agent.billing.inbox")
    assert describe(task) == 'task "refund" (handed on by triage)'


def test_event_kinds_each_have_a_line() -> None:
    def event(kind: str, **extra: Any) -> str:
        return describe(rec("AgentEvent", {"kind": kind, "step": 2, **extra}))

    assert event("output_invalid", text="bad json", is_error=True) == "invalid output: bad json"
    assert event("handed_off", text="to billing: money") == "handed off to billing: money"
    assert event("llm_answered", text="hi") == 'LLM answered "hi"'
    assert event("something_new", text="x") == 'something_new "x"'


ESC_TEXT = "\x1b[2J\x1b[31mbilling\u202e issue\x9b1m\x07\u200b"
"""What a model may say: escape sequences (ESC, and the 8-bit CSI), a bell, a bidi override
and a zero-width space, none of which may reach the terminal as they are."""

RAW_CONTROLS = re.compile(r"[\x00-\x1f\x7f-\x9f\u200b\u202e]")


def test_control_characters_from_a_model_are_shown_as_escapes() -> None:
    handed_off = describe(rec("AgentEvent", {"kind": "handed_off", "text": f"to b: {ESC_TEXT}"}))
    assert handed_off == (
        "handed off to b: \\x1b[2J\\x1b[31mbilling\\u202e issue\\x9b1m\\x07\\u200b"
    )
    assert clip("a\x1bb\tc") == "a\\x1bb c"  # whitespace is still folded, not escaped
    # quoted texts stay JSON strings of the same text: JSON escapes
    answered = describe(rec("AgentEvent", {"kind": "llm_answered", "text": ESC_TEXT}))
    assert answered.startswith('LLM answered "\\u001b[2J\\u001b[31mbilling\\u202e issue')
    assert orjson.loads(answered.removeprefix("LLM answered ")) == ESC_TEXT
    # every renderer: tool calls and results, tasks, errors, unknown messages, names
    lines = [
        describe(rec("ToolCallRequest", {"name": f"t{ESC_TEXT}", "arguments": ESC_TEXT})),
        describe(rec("ToolResult", {"name": "t", "content": ESC_TEXT})),
        describe(rec("Task", {"content": ESC_TEXT}, subject="agent.a.inbox")),
        describe(rec("ErrorReply", {"remote_type": "E\x1b", "message": ESC_TEXT})),
        describe(rec("Ping", {"n": ESC_TEXT})),
        describe(rec("Ping", ESC_TEXT)),
        describe(rec("ChatResult", {"message": {"content": ESC_TEXT}, "model": "m\x1b"})),
        actor("a\x1b[31m.work"),
        target(rec("T", {}, subject="x\x1b.y")),
    ]
    for line in lines:
        assert not RAW_CONTROLS.search(line), line
        assert "\\x1b" in line or "\\u001b" in line, line


def test_a_trees_lines_show_control_characters_as_escapes() -> None:
    task = TraceRecord(
        id="1", subject="agent.a.inbox", kind="request", type="Task", sender="u\x1b",
        timestamp=1.0, correlation_id="1", reply_to="_INBOX.x", payload={"content": ESC_TEXT},
    )  # fmt: skip
    answer = TraceRecord(
        id="2", subject="_INBOX.x", kind="reply", type="AgentResult", sender="a.work",
        timestamp=2.0, correlation_id="1", payload={"text": ESC_TEXT, "steps": 1},
    )  # fmt: skip
    plain = TraceRecord(id="3", subject="x.y", kind="event", type="Ping", sender="s",
                        timestamp=3.0, payload={"n": ESC_TEXT})  # fmt: skip
    roots = build_tree([task, answer, plain])
    for line in [*format_tree(roots, describe_node), *format_tree(roots)]:
        assert not RAW_CONTROLS.search(line), line
