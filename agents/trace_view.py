"""``hivebus trace FILE`` and ``hivebus trace diff A B``: a recorded run read back for people.

The tree is :func:`bus.trace.format_tree` with the agent side's messages described in
words (:mod:`agents.describe`); ``--agent`` keeps one agent's loop (:func:`of_agent`);
the summary is :mod:`agents.run_summary`'s.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from typing import Any

import orjson

from bus import validate_subject
from bus.trace import (
    MISSING,
    Divergence,
    TraceNode,
    TraceRecord,
    build_tree,
    diff_traces,
    format_tree,
    prune,
    read_trace,
    select,
    visible,
)

from .describe import actor, describe, describe_node
from .live import make_console
from .run_summary import RunSummary, agent_table, summarize, summary_data

VALUE_CHARS = 200  # how much of a differing value `trace diff` prints


def plural(count: int, word: str) -> str:
    if count == 1:
        return f"1 {word}"
    return f"{count} {word[:-1] + 'ies' if word.endswith('y') else word + 's'}"


def of_agent(name: str) -> Callable[[TraceRecord], bool]:
    """Whether a record belongs to agent ``name``'s loop: its inbox and events, and the
    requests it sent (to memory, the LLM, tools, other agents)."""
    own = {f"agent.{name}.inbox", f"agent.{name}.events"}

    def keep(record: TraceRecord) -> bool:
        if record.subject in own or actor(record.sender) == name:
            return True
        payload = record.payload
        return (
            record.kind == "request" and isinstance(payload, dict) and payload.get("agent") == name
        )

    return keep


def show_trace(
    file: str, *, subject: str | None = None, agent: str | None = None, as_json: bool = False
) -> int:
    """Print the trace's causation tree (or its JSON summary) and a summary; exit status 0."""
    if subject is not None:
        validate_subject(subject, pattern=True)
    records = read_trace(file)
    roots = build_tree(records)
    if subject is not None:
        roots = select(roots, subject)
    if agent is not None:
        roots = prune(roots, of_agent(agent))
    nodes = [node for root in roots for _, node in root.walk()]
    shown = [n.record for n in nodes] + [n.reply for n in nodes if n.reply is not None]
    summary = summarize(shown)
    if as_json:
        print(orjson.dumps(_trace_data(file, subject, agent, roots, nodes, summary)).decode())
        return 0
    for line in format_tree(roots, describe_node):
        print(line)
    print()
    _print_summary(roots, nodes, summary, subject=subject, agent=agent)
    if agent is not None and not nodes:
        known = ", ".join(sorted(summarize(records).agents)) or "none"
        print(f"no messages of agent {agent!r} in {file} (its agents: {known})")
    return 0


def _trace_data(
    file: str,
    subject: str | None,
    agent: str | None,
    roots: list[TraceNode],
    nodes: list[TraceNode],
    summary: RunSummary,
) -> dict[str, Any]:
    replies = sum(1 for n in nodes if n.reply is not None)
    kinds = dict(Counter(n.record.kind for n in nodes))
    if replies:
        kinds["reply"] = replies
    times = [n.record.timestamp for n in nodes]
    return {
        "file": str(file),
        "subject": subject,
        "agent": agent,
        "records": len(nodes) + replies,
        "roots": len(roots),
        "kinds": kinds,
        "subjects": dict(Counter(n.record.subject for n in nodes)),
        "span_s": round(max(times) - min(times), 6) if times else 0.0,
        **summary_data(summary),
    }


def _print_summary(
    roots: list[TraceNode],
    nodes: list[TraceNode],
    summary: RunSummary,
    *,
    subject: str | None,
    agent: str | None,
) -> None:
    replies = sum(1 for n in nodes if n.reply is not None)
    kinds = Counter(n.record.kind for n in nodes)
    times = [n.record.timestamp for n in nodes]
    span = max(times) - min(times) if times else 0.0
    matching = f" matching {subject!r}" if subject is not None else ""
    matching += f" of agent {agent!r}" if agent is not None else ""
    print(
        f"{plural(len(nodes) + replies, 'record')} ({plural(kinds['event'], 'event')}, "
        f"{plural(kinds['request'], 'request')}, {plural(replies, 'reply')}) "
        f"in {plural(len(roots), 'tree')}{matching} over {span * 1000:.1f}ms"
    )
    for name, count in Counter(n.record.subject for n in nodes).most_common(10):
        print(f"  {count:>6}  {name}")
    if summary.llm_calls:
        print(
            f"LLM: {plural(summary.llm_calls, 'call')} ({summary.llm_errors} failed), "
            f"{summary.tokens:,} tokens ({summary.prompt_tokens:,} prompt + "
            f"{summary.completion_tokens:,} completion), ${summary.cost:.4f}"
        )
    if summary.tool_calls:
        print(f"tools: {plural(summary.tool_calls, 'call')} ({summary.tool_errors} failed)")
    if summary.errors or summary.dead_letters:
        print(
            f"errors: {plural(summary.errors, 'error reply')}, "
            f"{plural(summary.dead_letters, 'dead letter')}"
        )
    if summary.agents:
        make_console().print(agent_table(summary))


def show_diff(a: str, b: str, *, as_json: bool = False) -> int:
    """Print where traces ``a`` and ``b`` first diverge; exit status 0 if they match, else 1."""
    divergence = diff_traces(read_trace(a), read_trace(b))
    if as_json:
        print(orjson.dumps(_diff_data(a, b, divergence)).decode())
    elif divergence is None:
        count = len(read_trace(a))
        print(
            f"identical: the {plural(count, 'message')} of {a} and {b} match "
            "(ids, timestamps and durations aside)"
        )
    else:
        for line in _diff_lines(a, b, divergence):
            print(line)
    return 0 if divergence is None else 1


def _diff_lines(a: str, b: str, d: Divergence) -> list[str]:
    lines = [
        f"first divergence at message {d.position} in causation order "
        f"(A: {a}{_at_line(d.line_a)}, {plural(d.count_a, 'message')}; "
        f"B: {b}{_at_line(d.line_b)}, {plural(d.count_b, 'message')})",
    ]
    for label, record in (("A", d.record_a), ("B", d.record_b)):
        if record is None:
            lines.append(f"  {label}: (ends before this message)")
        else:
            lines.append(
                visible(
                    f"  {label}: {record.sender} → {record.subject} [{record.type}] "
                    f"{describe(record)}"
                )
            )
    if d.field:
        lines.append(visible(f"  field {d.field}:"))
        lines.append(f"    A: {_value(d.value_a)}")
        lines.append(f"    B: {_value(d.value_b)}")
    return lines


def _at_line(line: int | None) -> str:
    return f" line {line}" if line is not None else ""


def _value(value: Any) -> str:
    if value is MISSING:
        return "(missing)"
    text = visible(orjson.dumps(value).decode(), json=True)
    return text if len(text) <= VALUE_CHARS else text[: VALUE_CHARS - 1] + "…"


def _diff_data(a: str, b: str, d: Divergence | None) -> dict[str, Any]:
    if d is None:
        return {"identical": True, "a": {"file": a}, "b": {"file": b}}

    def side(file: str, line: int | None, record: TraceRecord | None, value: Any) -> Any:
        return {
            "file": file,
            "line": line,
            "subject": record.subject if record else None,
            "type": record.type if record else None,
            "sender": record.sender if record else None,
            "missing": value is MISSING,
            "value": None if value is MISSING else value,
        }

    return {
        "identical": False,
        "position": d.position,
        "field": d.field,
        "a": {"messages": d.count_a, **side(a, d.line_a, d.record_a, d.value_a)},
        "b": {"messages": d.count_b, **side(b, d.line_b, d.record_b, d.value_b)},
    }
