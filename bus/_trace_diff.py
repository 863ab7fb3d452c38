"""Where two recorded runs first diverge: which message, which field, both values.

Two runs of one program never match byte for byte: envelope ids, timestamps and the
durations measured along the way always differ. So both traces are first put in a
canonical form:

- messages in causation order (each message, then what its handling caused, then its
  reply), which does not depend on how concurrent work happened to interleave;
- envelope ids replaced by the position of their message (``#7``), wherever they appear
  (``causation_id``, a ``conversation_id`` that is a task's id, an ``_INBOX`` subject...);
- payload ids (:data:`RENUMBERED_FIELDS`) numbered in order of first appearance;
- fields that measure time (:data:`VOLATILE_FIELDS`) left out.

What is left must be equal, message by message; the first field that is not is the answer.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final

from ._trace_tree import TraceNode, build_tree

if TYPE_CHECKING:
    from .trace import TraceRecord

VOLATILE_FIELDS: Final = frozenset(
    {"timestamp", "latency", "duration", "elapsed", "created", "took", "timeout"}
)
"""Payload fields (at any depth) read from the clock, so different in every run: times,
durations, and ``timeout``, which requests carry as the budget left at sending time."""

RENUMBERED_FIELDS: Final = frozenset({"id", "call_id", "tool_call_id"})
"""Payload fields holding ids minted per run: compared by order of first appearance."""

ENVELOPE_FIELDS: Final = (
    "subject",
    "kind",
    "type",
    "sender",
    "causation_id",
    "correlation_id",
    "reply_to",
    "headers",
    "payload",
)
"""The fields compared, in this order (``id`` and ``timestamp`` never are)."""

_ENVELOPE_ID = re.compile(r"^(?P<prefix>[0-9a-f]{6,})-\d+$")


class _Missing:
    __slots__ = ()

    def __repr__(self) -> str:
        return "<missing>"


MISSING: Final = _Missing()
"""The value of a field, or a message, that one of the two traces does not have."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Divergence:
    """The first difference between trace A and trace B.

    ``position`` is the message's 1-based place in causation order (of ``count_a`` and
    ``count_b`` messages); ``line_a``/``line_b`` its record's line in each file and
    ``record_a``/``record_b`` the records (None where a trace has ended). ``field`` is the
    path of the first differing field (``payload.messages[1].content``), and ``value_a``
    and ``value_b`` its canonical values (:data:`MISSING` where absent).
    """

    position: int
    count_a: int
    count_b: int
    line_a: int | None
    line_b: int | None
    record_a: TraceRecord | None
    record_b: TraceRecord | None
    field: str
    value_a: Any
    value_b: Any


@dataclass(frozen=True, slots=True)
class _Canonical:
    line: int
    record: TraceRecord
    form: dict[str, Any]


def diff_traces(a: Sequence[TraceRecord], b: Sequence[TraceRecord]) -> Divergence | None:
    """The first :class:`Divergence` between two traces of a run, or None if they match."""
    left, right = canonical(a), canonical(b)
    for position, (x, y) in enumerate(zip(left, right, strict=False), 1):
        found = _first_difference(x.form, y.form, "")
        if found is not None:
            field, value_a, value_b = found
            return Divergence(
                position=position,
                count_a=len(left),
                count_b=len(right),
                line_a=x.line,
                line_b=y.line,
                record_a=x.record,
                record_b=y.record,
                field=field,
                value_a=value_a,
                value_b=value_b,
            )
    if len(left) == len(right):
        return None
    position = min(len(left), len(right)) + 1
    extra_a = left[position - 1] if len(left) >= position else None
    extra_b = right[position - 1] if len(right) >= position else None
    return Divergence(
        position=position,
        count_a=len(left),
        count_b=len(right),
        line_a=extra_a.line if extra_a else None,
        line_b=extra_b.line if extra_b else None,
        record_a=extra_a.record if extra_a else None,
        record_b=extra_b.record if extra_b else None,
        field="",
        value_a=extra_a.form["subject"] if extra_a else MISSING,
        value_b=extra_b.form["subject"] if extra_b else MISSING,
    )


def causation_order(records: Sequence[TraceRecord]) -> list[TraceRecord]:
    """Each message, then (recursively) the messages its handling caused, then its reply;
    the trees in time order, and replies to requests the trace lacks at the end."""
    ordered: list[TraceRecord] = []

    def visit(node: TraceNode) -> None:
        ordered.append(node.record)
        for child in node.children:
            visit(child)
        if node.reply is not None:
            ordered.append(node.reply)

    for root in build_tree(records):
        visit(root)
    placed = {id(record) for record in ordered}
    ordered += sorted(
        (r for r in records if id(r) not in placed), key=lambda record: record.timestamp
    )
    return ordered


def canonical(records: Sequence[TraceRecord]) -> list[_Canonical]:
    """The trace in causation order, each record's fields normalised for comparison."""
    lines = {id(record): number for number, record in enumerate(records, 1)}
    ordered = causation_order(records)
    positions = {record.id: f"#{n}" for n, record in enumerate(ordered, 1)}
    prefixes = {m["prefix"] for r in records if (m := _ENVELOPE_ID.match(r.id))}
    normalise = _Normaliser(positions, prefixes)
    result = []
    for record in ordered:
        form = {name: normalise(getattr(record, name), name) for name in ENVELOPE_FIELDS}
        result.append(_Canonical(lines[id(record)], record, form))
    return result


class _Normaliser:
    """Replaces run-specific ids in plain data (see the module's docstring)."""

    def __init__(self, positions: dict[str, str], prefixes: set[str]) -> None:
        self.positions = positions
        self.renumbered: dict[str, str] = {}
        alternatives = "|".join(sorted(map(re.escape, prefixes), key=len, reverse=True))
        self.pattern = re.compile(rf"({alternatives})(?:-(\d+))?") if prefixes else None

    def __call__(self, value: Any, key: str = "") -> Any:
        if isinstance(value, dict):
            return {k: self(v, k) for k, v in value.items() if k not in VOLATILE_FIELDS}
        if isinstance(value, list):
            return [self(v, key) for v in value]
        if isinstance(value, str):
            if key in RENUMBERED_FIELDS:
                return self.renumbered.setdefault(value, f"<id {len(self.renumbered) + 1}>")
            return self.text(value)
        return value

    def text(self, value: str) -> str:
        if value in self.positions:
            return self.positions[value]
        if self.pattern is None:
            return value
        return self.pattern.sub(self._replace, value)

    def _replace(self, match: re.Match[str]) -> str:
        if match[2] is None:
            return "<bus>"
        return self.positions.get(match[0], "<id>")


def _first_difference(x: Any, y: Any, path: str) -> tuple[str, Any, Any] | None:
    if isinstance(x, dict) and isinstance(y, dict):
        for key in [*x, *(k for k in y if k not in x)]:
            where = f"{path}.{key}" if path else str(key)
            if key not in x or key not in y:
                return where, x.get(key, MISSING), y.get(key, MISSING)
            found = _first_difference(x[key], y[key], where)
            if found is not None:
                return found
        return None
    if isinstance(x, list) and isinstance(y, list):
        for index in range(max(len(x), len(y))):
            where = f"{path}[{index}]"
            if index >= len(x) or index >= len(y):
                return where, _at(x, index), _at(y, index)
            found = _first_difference(x[index], y[index], where)
            if found is not None:
                return found
        return None
    if (type(x) is not type(y) and not _both_numbers(x, y)) or x != y:
        return path, x, y
    return None


def _at(items: list[Any], index: int) -> Any:
    return items[index] if index < len(items) else MISSING


def _both_numbers(x: Any, y: Any) -> bool:
    return all(isinstance(v, int | float) and not isinstance(v, bool) for v in (x, y))
