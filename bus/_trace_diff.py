"""Where two recorded runs first diverge: which message, which field, both values.

Two runs of one program never match byte for byte: envelope ids, timestamps and the
durations measured along the way always differ. So both traces are first put in a
canonical form:

- messages in causation order (each message, then what its handling caused, then its
  reply). It does not depend on how concurrent work happened to interleave: the work
  caused by different messages is apart in their subtrees, and the messages one handler
  sent are in the order it sent them, each call's together (a tool call with the events
  that report it, see :func:`build_tree`), so the parallel tool calls of one step
  compare equal whichever finished first;
- envelope ids replaced by the position of their message (``#7``), wherever they appear
  (``causation_id``, a ``conversation_id`` that is a task's id, an ``_INBOX`` subject...);
- ids an LLM mints per run (tool call ids: :data:`RENUMBERED_FIELDS`) numbered in order
  of first appearance;
- the clock readings of hivebus's own messages (:data:`VOLATILE_FIELDS`: latencies,
  durations, the ``timeout`` budget of a request) left out.

Only those: a field of a user's message is compared as it is, whatever its name (an
``Order.id``, a ``duration``).

What is left must be equal, message by message; the first field that is not is the answer.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final

from ._trace_tree import TraceNode, build_tree

if TYPE_CHECKING:
    from .trace import TraceRecord

VOLATILE_FIELDS: Final[Mapping[str, frozenset[str]]] = {
    "ChatRequest": frozenset({"timeout"}),
    "Task": frozenset({"timeout"}),
    "GroupChatTask": frozenset({"timeout"}),
    "ChatResult": frozenset({"latency"}),
    "AgentResult": frozenset({"duration"}),
    "GroupChatResult": frozenset({"duration"}),
    "ChatCompletion": frozenset({"created"}),
    "ChatCompletionChunk": frozenset({"created"}),
}
"""Payload fields read from the clock, so different in every run, by message type: the
latency and duration hivebus measures, and the ``timeout`` its requests carry (the budget
left at sending time). Left out, and so is the ``timestamp`` of a dead letter's envelope
(whose payload is taken as its message's type). A field of the same name in any other
message (a user's ``duration``, ``timeout``) is compared as it is."""

RENUMBERED_FIELDS: Final[Mapping[str, frozenset[str]]] = {
    "ToolCallRequest": frozenset({"call_id"}),
    "ToolResult": frozenset({"call_id"}),
    "AgentEvent": frozenset({"call_id"}),
    "ChatCompletion": frozenset({"id"}),
    "ChatCompletionChunk": frozenset({"id"}),
}
"""Payload fields holding ids an LLM mints per run (tool call ids, completion ids), by
message type: compared by order of first appearance. So are, in any payload, the ids of
tool calls and the ``tool_call_id`` of tool messages in the OpenAI wire format (a
``{"type": "function", "id", "function": {...}}`` object, a ``{"role": "tool",
"tool_call_id"}`` message). Any other ``id`` (a user's ``Order.id``) is compared as it is."""

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
    siblings in the order :func:`build_tree` gives them, and replies to requests the trace
    lacks at the end."""
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
    normalise = _Normaliser(positions, prefixes, {record.id: record.type for record in records})
    result = []
    for record in ordered:
        form = {
            name: normalise.payload(record.payload, record.type)
            if name == "payload"
            else normalise(getattr(record, name))
            for name in ENVELOPE_FIELDS
        }
        result.append(_Canonical(lines[id(record)], record, form))
    return result


class _Normaliser:
    """Replaces run-specific ids in plain data (see the module's docstring)."""

    def __init__(
        self, positions: dict[str, str], prefixes: set[str], types: dict[str, str]
    ) -> None:
        self.positions = positions
        self.types = types  # the type of each message by its envelope id
        self.renumbered: dict[str, str] = {}
        alternatives = "|".join(sorted(map(re.escape, prefixes), key=len, reverse=True))
        self.pattern = re.compile(rf"({alternatives})(?:-(\d+))?") if prefixes else None

    def payload(self, value: Any, type_name: str) -> Any:
        """A payload of message type ``type_name``: its clock readings left out and the
        ids minted per run renumbered (:data:`VOLATILE_FIELDS`, :data:`RENUMBERED_FIELDS`)."""
        if not isinstance(value, dict):
            return self(value)
        volatile = VOLATILE_FIELDS.get(type_name, frozenset())
        renumbered = RENUMBERED_FIELDS.get(type_name, frozenset())
        form: dict[str, Any] = {}
        for key, item in value.items():
            if key in volatile:
                continue
            if key in renumbered and isinstance(item, str):
                form[key] = self.renumber(item)
            elif key == "envelope" and type_name == "DeadLetter" and isinstance(item, dict):
                form[key] = self.envelope(item)
            else:
                form[key] = self(item)
        return form

    def envelope(self, value: dict[str, Any]) -> dict[str, Any]:
        """A dead letter's envelope: its payload as that of its message (by its id)."""
        type_name = self.types.get(str(value.get("id")), "")
        return {
            key: self.payload(item, type_name) if key == "payload" else self(item)
            for key, item in value.items()
            if key != "timestamp"
        }

    def renumber(self, value: str) -> str:
        return self.renumbered.setdefault(value, f"<id {len(self.renumbered) + 1}>")

    def __call__(self, value: Any) -> Any:
        if isinstance(value, dict):
            minted = _minted_key(value)
            return {k: self.renumber(v) if k == minted else self(v) for k, v in value.items()}
        if isinstance(value, list):
            return [self(v) for v in value]
        if isinstance(value, str):
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


_TOOL_CALL_KEYS: Final = frozenset({"id", "type", "function", "custom", "index"})


def _minted_key(value: dict[str, Any]) -> str | None:
    """The key of the id an LLM minted in ``value``, if it is a tool call (``id``) or a
    tool message (``tool_call_id``) of the OpenAI wire format."""
    if value.get("role") == "tool" and isinstance(value.get("tool_call_id"), str):
        return "tool_call_id"
    if (
        isinstance(value.get("id"), str)
        and value.get("type", "function") in ("function", "custom")
        and (isinstance(value.get("function"), dict) or isinstance(value.get("custom"), dict))
        and _TOOL_CALL_KEYS.issuperset(value)
    ):
        return "id"
    return None


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
