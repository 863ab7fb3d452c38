"""The summary of a run, computed from its trace records alone."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from rich.console import Console

from agents.run_summary import (
    agent_table,
    headline,
    seconds,
    summarize,
    summary_data,
)
from bus.trace import TraceRecord

from .run_fixtures import record_team_run

pytestmark = pytest.mark.anyio


async def test_each_agent_is_counted_from_its_events_and_requests(tmp_path: Path) -> None:
    records, result = await record_team_run(tmp_path / "team.jsonl")
    summary = summarize(records)
    researcher, looper = summary.agents["researcher"], summary.agents["looper"]
    assert (researcher.tasks, researcher.failed, researcher.steps) == (1, 0, 2)
    assert (researcher.llm_calls, researcher.tool_calls, researcher.errors) == (2, 2, 1)
    assert researcher.tokens == result.usage.total_tokens > 0
    assert (looper.tasks, looper.failed, looper.steps, looper.llm_calls) == (1, 1, 1, 1)
    assert looper.errors == 1  # its failed task
    assert 0 < researcher.time <= summary.duration


async def test_the_run_totals_cover_every_call(tmp_path: Path) -> None:
    records, _ = await record_team_run(tmp_path / "team.jsonl")
    summary = summarize(records)
    assert summary.messages == len(records)
    assert summary.llm_calls == 3 and summary.llm_errors == 0
    assert summary.tokens == sum(a.tokens for a in summary.agents.values())
    assert summary.tool_calls == 3 and summary.tool_errors == 1
    assert summary.subjects["agent.researcher.inbox"] == 1
    assert summary.kinds["request"] == summary.kinds["reply"]
    assert summary.errors == 1  # the looper's task ended with an error reply
    assert summary.cost == 0.0  # the mock has no prices


async def test_the_order_of_the_records_does_not_matter(tmp_path: Path) -> None:
    records, _ = await record_team_run(tmp_path / "team.jsonl")
    assert summarize(records[::-1]) == summarize(records)


def test_an_empty_trace_sums_to_nothing() -> None:
    summary = summarize([])
    assert (summary.messages, summary.duration, summary.agents) == (0, 0.0, {})
    assert headline(summary).startswith("0 messages · 0 LLM calls · 0 tokens")


def test_costs_and_failed_calls_come_from_the_replies() -> None:
    def rec(
        id: str, subject: str, kind: str, type: str, payload: object, **kw: object
    ) -> TraceRecord:
        return TraceRecord(
            id=id, subject=subject, kind=kind, type=type, sender="x.work", timestamp=1.0,
            payload=payload, **kw,  # type: ignore[arg-type]
        )  # fmt: skip

    records = [
        rec("1", "llm.chat", "request", "ChatRequest", {"agent": "a"}, correlation_id="1"),
        rec("2", "_INBOX.x", "reply", "ChatResult", {"usage": {"prompt_tokens": 3,
            "completion_tokens": 4, "total_tokens": 7}, "cost": 0.25}, correlation_id="1"),
        rec("3", "llm.chat", "request", "ChatRequest", {"agent": ""}, correlation_id="3"),
        rec("4", "_INBOX.x", "reply", "ErrorReply", {"remote_type": "X"}, correlation_id="3"),
        rec("5", "_bus.dead", "event", "DeadLetter", {"reason": "handler_error"}),
        rec("6", "_INBOX.x", "reply", "Pong", {"n": 1}, correlation_id="unknown"),
    ]  # fmt: skip
    summary = summarize(records)
    assert (summary.llm_calls, summary.llm_errors, summary.errors) == (2, 1, 1)
    assert (summary.prompt_tokens, summary.completion_tokens, summary.cost) == (3, 4, 0.25)
    assert summary.dead_letters == 1
    assert list(summary.agents) == ["a"]  # calls without an agent count in the totals only
    assert (summary.agents["a"].tokens, summary.agents["a"].cost) == (7, 0.25)
    assert summary_data(summary)["llm"] == {
        "calls": 2,
        "errors": 1,
        "prompt_tokens": 3,
        "completion_tokens": 4,
        "total_tokens": 7,
        "cost": 0.25,
    }


async def test_the_table_has_a_row_per_agent_and_a_total(tmp_path: Path) -> None:
    records, _ = await record_team_run(tmp_path / "team.jsonl")
    out = io.StringIO()
    Console(file=out, width=160).print(agent_table(summarize(records)))
    text = out.getvalue()
    for header in ("agent", "tasks", "steps", "LLM calls", "tokens", "cost", "tool calls"):
        assert header in text
    assert "errors" in text and "time" in text
    rows = {line.split("│")[1].strip(): line for line in text.splitlines() if "│" in line}
    assert "1 (1 failed)" in rows["looper"]
    assert "total" in rows and "$0.0000" in rows["total"]
    assert "\x1b" not in text


async def test_the_json_summary_holds_every_agent(tmp_path: Path) -> None:
    records, _ = await record_team_run(tmp_path / "team.jsonl")
    data = summary_data(summarize(records))
    assert set(data["agents"]) == {"looper", "researcher"}
    assert data["agents"]["researcher"]["steps"] == 2
    assert data["tools"] == {"calls": 3, "errors": 1}
    assert data["messages"] == len(records)


@pytest.mark.parametrize(
    ("value", "text"), [(0.0004, "0ms"), (0.25, "250ms"), (2.5, "2.50s"), (185.0, "3m05s")]
)
def test_durations_read_well(value: float, text: str) -> None:
    assert seconds(value) == text
