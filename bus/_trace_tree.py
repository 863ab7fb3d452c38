"""A recorded run as a causation tree: each message under the one whose handler caused it."""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable, Iterable, Iterator
from typing import TYPE_CHECKING, Any

import orjson

from ._subjects import matches

if TYPE_CHECKING:
    from .trace import TraceRecord

Describe = Callable[["TraceNode"], str]
"""Renders a node's payload (and its reply's) as the short text at the end of its line."""


class TraceNode:
    """A message in the causation tree: its record, its reply if it was a request, and the
    messages its handling caused."""

    __slots__ = ("children", "record", "reply")

    def __init__(self, record: TraceRecord) -> None:
        self.record = record
        self.reply: TraceRecord | None = None
        self.children: list[TraceNode] = []

    @property
    def duration(self) -> float | None:
        """Seconds from a request to its reply (None for events and unanswered requests)."""
        return None if self.reply is None else self.reply.timestamp - self.record.timestamp

    def walk(self, depth: int = 0) -> Iterator[tuple[int, TraceNode]]:
        yield depth, self
        for child in self.children:
            yield from child.walk(depth + 1)

    def __repr__(self) -> str:
        return f"TraceNode({self.record.subject!r}, children={len(self.children)})"


def build_tree(records: Iterable[TraceRecord]) -> list[TraceNode]:
    """Link records by ``causation_id`` (replies attach to their request); return the roots.

    Siblings (the messages one handler sent, or the roots) are in the order they were
    sent (by their bus's sequence numbers, else by timestamp), except that the messages
    of one call stay together: a message carrying a ``call_id`` (a tool call, and the
    events that report it) comes right after the first one of its call, and an event
    carrying a request's ``correlation_id`` right after that request. So concurrent calls
    made by one handler (the parallel tool calls of one step) read the same however they
    happened to finish.
    """
    nodes: dict[str, TraceNode] = {}
    replies: list[TraceRecord] = []
    for record in sorted(records, key=lambda r: r.timestamp):
        if record.kind == "reply":
            replies.append(record)
        else:
            nodes[record.id] = TraceNode(record)
    roots = []
    for node in nodes.values():
        parent = nodes.get(node.record.causation_id or "")
        if parent is None or parent is node:
            roots.append(node)
        else:
            parent.children.append(node)
    for reply in replies:
        request = nodes.get(reply.correlation_id or "")
        if request is not None and request.reply is None:
            request.reply = reply
    for node in nodes.values():
        if len(node.children) > 1:
            node.children = _calls_together(_in_send_order(node.children))
    return _calls_together(_in_send_order(roots))


_ENVELOPE_ID = re.compile(r"^(?P<bus>[0-9a-f]{6,})-(?P<number>\d+)$")


def _in_send_order(nodes: list[TraceNode]) -> list[TraceNode]:
    """``nodes`` in the order their messages were sent: by the bus's sequence number in
    their ids when they all come from one bus, else by timestamp."""
    found = [_ENVELOPE_ID.match(node.record.id) for node in nodes]
    if not all(found) or len({m["bus"] for m in found if m}) > 1:
        return sorted(nodes, key=lambda node: node.record.timestamp)
    number = {id(node): int(m["number"]) for node, m in zip(nodes, found, strict=True) if m}
    return sorted(nodes, key=lambda node: number[id(node)])


def _call_keys(record: TraceRecord) -> list[str]:
    """What ties ``record`` to the call it belongs to: its payload's ``call_id``, and for
    an event its ``correlation_id`` (for a request, its own id)."""
    keys = []
    payload = record.payload
    call_id = payload.get("call_id") if isinstance(payload, dict) else None
    if isinstance(call_id, str) and call_id:
        keys.append(f"call {call_id}")
    if record.kind == "request":
        keys.append(f"request {record.correlation_id or record.id}")
    elif record.correlation_id:
        keys.append(f"request {record.correlation_id}")
    return keys


def _calls_together(siblings: list[TraceNode]) -> list[TraceNode]:
    """``siblings`` (in send order) with the messages of each call moved up to the call's
    first message. A message of no call ends the calls before it: a call id used again
    after it (a replayed answer) starts a call of its own."""
    groups: list[list[TraceNode]] = []
    open_calls: dict[str, list[TraceNode]] = {}
    for node in siblings:
        keys = _call_keys(node.record)
        group = next((open_calls[key] for key in keys if key in open_calls), None)
        if group is None:
            if not any(key.startswith("call ") for key in keys):
                open_calls.clear()
            group = []
            groups.append(group)
        group.append(node)
        for key in keys:
            open_calls.setdefault(key, group)
    return [node for group in groups for node in group]


def select(roots: list[TraceNode], subject: str) -> list[TraceNode]:
    """The trees that hold at least one message on a subject matching the pattern."""
    return [
        root for root in roots if any(matches(subject, n.record.subject) for _, n in root.walk())
    ]


def prune(roots: list[TraceNode], keep: Callable[[TraceRecord], bool]) -> list[TraceNode]:
    """A new forest of only the nodes whose record ``keep`` accepts (with their replies).

    A kept node hangs under its nearest kept ancestor, or becomes a root when it has none,
    so the causation order survives the cut.
    """
    kept: list[TraceNode] = []

    def visit(node: TraceNode, parent: TraceNode | None) -> None:
        copy = None
        if keep(node.record):
            copy = TraceNode(node.record)
            copy.reply = node.reply
            (parent.children if parent is not None else kept).append(copy)
        for child in node.children:
            visit(child, copy or parent)

    for root in roots:
        visit(root, None)
    return kept


def _ms(seconds: float) -> str:
    return f"{seconds * 1000:.1f}ms" if seconds < 10 else f"{seconds:.2f}s"


_SHORT_ESCAPES = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def _escape(char: str, json: bool) -> str:
    code = ord(char)
    if json:
        if code > 0xFFFF:  # JSON spells a character beyond the BMP as a surrogate pair
            code -= 0x10000
            return f"\\u{0xD800 + (code >> 10):04x}\\u{0xDC00 + (code & 0x3FF):04x}"
        return f"\\u{code:04x}"
    if char in _SHORT_ESCAPES:
        return _SHORT_ESCAPES[char]
    if code <= 0xFF:
        return f"\\x{code:02x}"
    return f"\\u{code:04x}" if code <= 0xFFFF else f"\\U{code:08x}"


def visible(text: str, *, json: bool = False) -> str:
    """``text`` with its control and format characters (Unicode categories Cc and Cf: the
    ESC of terminal escape sequences, carriage returns, bidi overrides, zero-width marks)
    written as escapes (``\\x1b``, ``\\u202e``), so that what a model or a program said
    cannot move the cursor, recolour or rewrite the terminal it is shown on. With
    ``json``, as JSON escapes (``\\u001b``): JSON text stays JSON of the same value."""
    if text.isprintable():  # no Cc or Cf character: the common case
        return text
    return "".join(
        _escape(char, json) if unicodedata.category(char) in ("Cc", "Cf") else char for char in text
    )


def payload_summary(payload: Any, width: int = 60) -> str:
    """``payload`` as compact JSON, clipped to ``width`` characters (control and format
    characters as JSON escapes: see :func:`visible`)."""
    text = visible(orjson.dumps(payload).decode(), json=True) if payload is not None else ""
    return text if len(text) <= width else text[: width - 1] + "…"


def format_tree(roots: list[TraceNode], describe: Describe | None = None) -> list[str]:
    """The trees as indented text lines: offset from the first message, sender → subject,
    type, the reply time of requests, and a payload summary (``describe(node)``, or
    clipped JSON of the payload without it); control characters made :func:`visible`."""
    if not roots:
        return []
    start = min(r.record.timestamp for r in roots)
    lines = []
    for root in roots:
        for depth, node in root.walk():
            rec = node.record
            took = ""
            if rec.kind == "request":
                if node.reply is None:
                    took = " (no reply)"
                else:
                    error = " ERROR" if node.reply.type == "ErrorReply" else ""
                    took = f" ⏱ {_ms(node.duration or 0.0)}{error}"
            text = describe(node) if describe is not None else payload_summary(rec.payload)
            lines.append(
                visible(
                    f"{'+' + _ms(rec.timestamp - start):>10}  {'  ' * depth}{rec.sender} → "
                    f"{rec.subject} [{rec.type}]{took} {text}"
                )
            )
    return lines
