"""Recording a run as JSONL, and reading it back as a causation tree with timings.

Each line is one envelope seen by a tap: publishes, requests, replies and dead letters.
Header values and payload fields whose names look secret (``api_key``, ``authorization``,
``password``, ...) are written as ``"***"``.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from pathlib import Path
from types import TracebackType
from typing import IO, TYPE_CHECKING, Any, Literal

import msgspec
import orjson

from ._message import Envelope
from ._subjects import matches
from .errors import HivebusError

if TYPE_CHECKING:
    from ._bus import Bus
    from ._routing import Tap

Kind = Literal["event", "request", "reply"]

SECRET_NAMES = frozenset(
    {
        "api_key",
        "apikey",
        "api-key",
        "x-api-key",
        "authorization",
        "proxy-authorization",
        "password",
        "secret",
        "client_secret",
        "access_token",
        "refresh_token",
        "token",
    }
)
REDACTED = "***"


class TraceFormatError(HivebusError, ValueError):
    """A trace file could not be read; names the file and line."""


class TraceRecord(msgspec.Struct, frozen=True, kw_only=True):
    """One envelope as written to a trace file."""

    id: str
    subject: str
    kind: Kind
    type: str
    sender: str
    timestamp: float
    correlation_id: str | None = None
    causation_id: str | None = None
    reply_to: str | None = None
    headers: dict[str, str] | None = None
    payload: Any = None


def _redact(value: Any) -> Any:
    if isinstance(value, dict):
        return {
            k: REDACTED if isinstance(k, str) and k.lower() in SECRET_NAMES else _redact(v)
            for k, v in value.items()
        }
    if isinstance(value, list):
        return [_redact(v) for v in value]
    return value


def to_record(env: Envelope) -> TraceRecord:
    """The trace form of an envelope: payload as plain data, secrets redacted."""
    if env.reply_to is not None:
        kind: Kind = "request"
    elif env.subject.startswith("_INBOX."):
        kind = "reply"
    else:
        kind = "event"
    headers = None
    if env.headers:
        headers = {k: REDACTED if k.lower() in SECRET_NAMES else v for k, v in env.headers.items()}
    return TraceRecord(
        id=env.id,
        subject=env.subject,
        kind=kind,
        type=type(env.payload).__qualname__,
        sender=env.sender,
        timestamp=env.timestamp,
        correlation_id=env.correlation_id,
        causation_id=env.causation_id,
        reply_to=env.reply_to,
        headers=headers,
        payload=_redact(msgspec.to_builtins(env.payload, enc_hook=repr)),
    )


class TraceRecorder:
    """Writes every envelope matching ``pattern`` to ``path`` as JSON lines.

    ``with TraceRecorder(bus, "run.jsonl"):`` — lines are buffered and written every
    ``flush_every`` envelopes and on exit, so recording costs little on the hot path.
    """

    def __init__(
        self,
        bus: Bus,
        path: str | Path,
        *,
        pattern: str = ">",
        flush_every: int = 256,
    ) -> None:
        self.bus = bus
        self.path = Path(path)
        self.pattern = pattern
        self.flush_every = flush_every
        self.count = 0
        self._lines: list[bytes] = []
        self._file: IO[bytes] | None = None
        self._tap: Tap | None = None

    def start(self) -> TraceRecorder:
        if self._file is not None:
            raise RuntimeError("recorder already started")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._file = self.path.open("wb")
        self._tap = self.bus.tap(self.pattern, self._record)
        return self

    def _record(self, env: Envelope) -> None:
        self._lines.append(orjson.dumps(to_record(env), default=msgspec.to_builtins))
        self.count += 1
        if len(self._lines) >= self.flush_every:
            self.flush()

    def flush(self) -> None:
        if self._file is not None and self._lines:
            self._file.write(b"\n".join(self._lines) + b"\n")
            self._lines.clear()
            self._file.flush()

    def close(self) -> None:
        if self._tap is not None:
            self._tap.close()
            self._tap = None
        if self._file is not None:
            self.flush()
            self._file.close()
            self._file = None

    def __enter__(self) -> TraceRecorder:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def read_trace(path: str | Path) -> list[TraceRecord]:
    """Read a trace file; raise :class:`TraceFormatError` naming the first bad line."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise TraceFormatError(f"{path}: cannot read: {exc.strerror or exc}") from None
    records = []
    for number, line in enumerate(data.splitlines(), 1):
        if not line.strip():
            continue
        try:
            records.append(msgspec.convert(orjson.loads(line), TraceRecord))
        except (orjson.JSONDecodeError, msgspec.ValidationError) as exc:
            raise TraceFormatError(f"{path}:{number}: not a trace record: {exc}") from None
    return records


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


def _ms(seconds: float) -> str:
    return f"{seconds * 1000:.1f}ms" if seconds < 10 else f"{seconds:.2f}s"


def _summary(payload: Any, width: int = 60) -> str:
    text = orjson.dumps(payload).decode() if payload is not None else ""
    return text if len(text) <= width else text[: width - 1] + "…"


def format_tree(roots: list[TraceNode], *, subject: str | None = None) -> list[str]:
    """The tree as indented text lines: offset from the first message, sender → subject,
    type, payload summary, and the reply time of requests. ``subject`` (a pattern) keeps
    only the subtrees whose root matches it."""
    if subject is not None:
        roots = [r for r in roots if matches(subject, r.record.subject)]
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
                    took = "  (no reply)"
                else:
                    error = " ERROR" if node.reply.type == "ErrorReply" else ""
                    took = f"  ⏱ {_ms(node.duration or 0.0)}{error}"
            lines.append(
                f"{'+' + _ms(rec.timestamp - start):>10}  {'  ' * depth}{rec.sender} → "
                f"{rec.subject} [{rec.type}] {_summary(rec.payload)}{took}"
            )
    return lines
