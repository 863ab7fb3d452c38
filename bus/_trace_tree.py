"""A recorded run as a causation tree: each message under the one whose handler caused it."""

from __future__ import annotations

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
    """Link records by ``causation_id`` (replies attach to their request); return the roots
    in time order."""
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
    return roots


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


def payload_summary(payload: Any, width: int = 60) -> str:
    """``payload`` as compact JSON, clipped to ``width`` characters."""
    text = orjson.dumps(payload).decode() if payload is not None else ""
    return text if len(text) <= width else text[: width - 1] + "…"


def format_tree(roots: list[TraceNode], describe: Describe | None = None) -> list[str]:
    """The trees as indented text lines: offset from the first message, sender → subject,
    type, the reply time of requests, and a payload summary (``describe(node)``, or
    clipped JSON of the payload without it)."""
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
                f"{'+' + _ms(rec.timestamp - start):>10}  {'  ' * depth}{rec.sender} → "
                f"{rec.subject} [{rec.type}]{took} {text}"
            )
    return lines
