"""What a recorded run amounted to: messages per subject, LLM calls, tokens and cost, tool
calls, errors, and the same per agent — computed from the trace's records alone.

Per agent: ``tasks`` on its inbox (``failed`` of them), ``steps`` (its ``step_started``
events), the LLM and tool calls it asked for (``ChatRequest.agent``,
``ToolCallRequest.agent``) with the tokens and cost of their answers, ``errors`` (its
events flagged ``is_error``: failed tool calls, invalid outputs, failed tasks) and
``time``, from its first task to its last event.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from typing import Any

import msgspec
from rich.table import Table

from bus.trace import TraceRecord

from .describe import agent_of_subject, tokens_of


class AgentSummary(msgspec.Struct, kw_only=True):
    """One agent's share of a run (see the module's docstring)."""

    tasks: int = 0
    failed: int = 0
    steps: int = 0
    llm_calls: int = 0
    tokens: int = 0
    cost: float = 0.0
    tool_calls: int = 0
    errors: int = 0
    first: float | None = None
    last: float | None = None

    @property
    def time(self) -> float:
        """Seconds from its first task to its last message."""
        return 0.0 if self.first is None or self.last is None else self.last - self.first

    def seen(self, timestamp: float) -> None:
        self.first = timestamp if self.first is None else min(self.first, timestamp)
        self.last = timestamp if self.last is None else max(self.last, timestamp)


class RunSummary(msgspec.Struct, kw_only=True):
    """A whole run (see the module's docstring); ``errors`` counts error replies."""

    messages: int = 0
    subjects: dict[str, int] = {}
    kinds: dict[str, int] = {}
    duration: float = 0.0
    llm_calls: int = 0
    llm_errors: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost: float = 0.0
    tool_calls: int = 0
    tool_errors: int = 0
    errors: int = 0
    dead_letters: int = 0
    agents: dict[str, AgentSummary] = {}

    @property
    def tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens


def summarize(records: Iterable[TraceRecord]) -> RunSummary:
    """Count a run from its trace records (in any order)."""
    records = sorted(records, key=lambda r: r.timestamp)
    summary = RunSummary(
        messages=len(records),
        subjects=dict(Counter(r.subject for r in records if r.kind != "reply")),
        kinds=dict(Counter(r.kind for r in records)),
    )
    if records:
        summary.duration = records[-1].timestamp - records[0].timestamp
    requests = {r.id: r for r in records if r.kind == "request"}
    for record in records:
        payload = record.payload if isinstance(record.payload, dict) else {}
        if record.kind == "reply":
            request = requests.get(record.correlation_id or "")
            if request is not None:
                _count_reply(summary, request, record, payload)
        else:
            _count_message(summary, record, payload)
    return summary


def _agent(summary: RunSummary, name: str) -> AgentSummary:
    found = summary.agents.get(name)
    if found is None:
        found = summary.agents[name] = AgentSummary()
    return found


def _count_message(summary: RunSummary, record: TraceRecord, payload: dict[str, Any]) -> None:
    if record.type == "DeadLetter":
        summary.dead_letters += 1
    agent = agent_of_subject(record.subject)
    if agent is not None and record.subject.endswith(".inbox"):
        tally = _agent(summary, agent)
        tally.tasks += 1
        tally.seen(record.timestamp)
    elif agent is not None and record.type == "AgentEvent":
        tally = _agent(summary, str(payload.get("agent") or agent))
        tally.seen(record.timestamp)
        tally.steps += payload.get("kind") == "step_started"
        tally.errors += payload.get("is_error") is True
        tally.failed += payload.get("kind") == "failed"
    elif record.subject == "llm.chat" and record.kind == "request":
        summary.llm_calls += 1
        if payload.get("agent"):
            _agent(summary, str(payload["agent"])).llm_calls += 1
    elif record.subject == "tool.call" and record.kind == "request":
        summary.tool_calls += 1
        if payload.get("agent"):
            _agent(summary, str(payload["agent"])).tool_calls += 1


def _count_reply(
    summary: RunSummary, request: TraceRecord, reply: TraceRecord, payload: dict[str, Any]
) -> None:
    failed = reply.type == "ErrorReply"
    summary.errors += failed
    asker = request.payload.get("agent") if isinstance(request.payload, dict) else None
    tally = _agent(summary, str(asker)) if asker else None
    if request.subject == "llm.chat":
        summary.llm_errors += failed
        usage = payload.get("usage")
        if isinstance(usage, dict):
            summary.prompt_tokens += int(usage.get("prompt_tokens") or 0)
            summary.completion_tokens += int(usage.get("completion_tokens") or 0)
        cost = float(payload.get("cost") or 0.0)
        summary.cost += cost
        if tally is not None:
            tally.tokens += tokens_of(payload)
            tally.cost += cost
    elif request.subject == "tool.call":
        summary.tool_errors += failed or payload.get("is_error") is True
    elif request.type == "Task" and tally is None:
        agent = agent_of_subject(request.subject)
        if agent is not None:
            _agent(summary, agent).seen(reply.timestamp)


def seconds(value: float) -> str:
    """A duration for people: ``340ms``, ``2.51s``, ``3m05s``."""
    if value < 1:
        return f"{value * 1000:.0f}ms"
    if value < 60:
        return f"{value:.2f}s"
    return f"{int(value // 60)}m{int(value % 60):02d}s"


def agent_table(summary: RunSummary) -> Table:
    """The per-agent table, with a total row."""
    table = Table(show_footer=len(summary.agents) > 1)
    columns = ("tasks", "steps", "LLM calls", "tokens", "cost", "tool calls", "errors", "time")
    table.add_column("agent", footer="total")
    totals = [
        sum(a.tasks for a in summary.agents.values()),
        sum(a.steps for a in summary.agents.values()),
        summary.llm_calls,
        summary.tokens,
        summary.cost,
        summary.tool_calls,
        sum(a.errors for a in summary.agents.values()),
        summary.duration,
    ]
    for column, total in zip(columns, totals, strict=True):
        table.add_column(column, justify="right", footer=_cell(column, total))
    for name, agent in sorted(summary.agents.items()):
        tasks = f"{agent.tasks}" + (f" ({agent.failed} failed)" if agent.failed else "")
        values = [agent.steps, agent.llm_calls, agent.tokens, agent.cost]
        values += [agent.tool_calls, agent.errors, agent.time]
        table.add_row(name, tasks, *(_cell(c, v) for c, v in zip(columns[1:], values, strict=True)))
    return table


def _cell(column: str, value: float) -> str:
    if column == "cost":
        return f"${value:.4f}"
    if column == "time":
        return seconds(value)
    return f"{int(value):,}"


def headline(summary: RunSummary) -> str:
    """One line: messages, LLM calls, tokens, cost, tool calls, errors, duration."""
    parts = [
        _count(summary.messages, "message"),
        _count(summary.llm_calls, "LLM call"),
        _count(summary.tokens, "token"),
        f"${summary.cost:.4f}",
        _count(summary.tool_calls, "tool call"),
        _count(summary.errors + summary.dead_letters, "error"),
        seconds(summary.duration),
    ]
    return " · ".join(parts)


def _count(number: int, word: str) -> str:
    return f"{number:,} {word}" + ("" if number == 1 else "s")


def summary_data(summary: RunSummary) -> dict[str, Any]:
    """The summary as plain data for ``--json`` output."""
    return {
        "messages": summary.messages,
        "duration_s": round(summary.duration, 6),
        "llm": {
            "calls": summary.llm_calls,
            "errors": summary.llm_errors,
            "prompt_tokens": summary.prompt_tokens,
            "completion_tokens": summary.completion_tokens,
            "total_tokens": summary.tokens,
            "cost": round(summary.cost, 8),
        },
        "tools": {"calls": summary.tool_calls, "errors": summary.tool_errors},
        "errors": summary.errors,
        "dead_letters": summary.dead_letters,
        "agents": {
            name: {
                "tasks": a.tasks,
                "failed": a.failed,
                "steps": a.steps,
                "llm_calls": a.llm_calls,
                "tokens": a.tokens,
                "cost": round(a.cost, 8),
                "tool_calls": a.tool_calls,
                "errors": a.errors,
                "time_s": round(a.time, 6),
            }
            for name, a in sorted(summary.agents.items())
        },
    }
