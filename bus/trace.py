"""Recording a run as JSONL, and reading it back as a causation tree with timings.

Each line is one envelope seen by a tap: publishes, requests, replies and dead letters.
Header values and payload fields whose names look secret (``api_key``, ``authorization``,
``db_password``, ``GITHUB_TOKEN``, ...) and values that look like credentials (``sk-...``,
``Bearer ...``) are written as ``"***"``.
"""

from __future__ import annotations

import logging
import re
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

log = logging.getLogger("hivebus.trace")

# A field or header is secret if its name ends in one of these words (case-insensitive, any
# separator): "openai_api_key", "db_password", "X-Auth-Token", "GITHUB_TOKEN" all are;
# "max_tokens" and "prompt_tokens" are not. Values that look like credentials are masked
# whatever their field is called.
SECRET_NAME = re.compile(
    r"(?i)(?:^|[-_.])(?:api[-_]?key|apikey|key|secret|passw(?:or)?d|token|authorization|"
    r"auth|credentials?|cookie|session[-_]?id|signature)$"
)
SECRET_VALUE = re.compile(
    r"^(?:sk-|sk_live_|rk_|Bearer\s|Basic\s|ghp_|gho_|github_pat_|xox[abpr]-|AKIA)"
)
REDACTED = "***"


def is_secret_name(name: str) -> bool:
    """True for field and header names that hold credentials."""
    return bool(SECRET_NAME.search(name))


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


def redact(value: Any) -> Any:
    """``value`` (plain data) with secret-named fields and credential-like strings masked."""
    if isinstance(value, dict):
        return {
            k: REDACTED if isinstance(k, str) and is_secret_name(k) else redact(v)
            for k, v in value.items()
        }
    if isinstance(value, list):
        return [redact(v) for v in value]
    if isinstance(value, str) and SECRET_VALUE.match(value):
        return REDACTED
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
        headers = redact(dict(env.headers))
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
        payload=redact(msgspec.to_builtins(env.payload, enc_hook=repr)),
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
        """Open the file (truncating it) and start recording."""
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
        """Write the buffered lines now."""
        if self._file is not None and self._lines:
            self._file.write(b"\n".join(self._lines) + b"\n")
            self._lines.clear()
            self._file.flush()

    def close(self) -> None:
        """Stop recording, write what is buffered and close the file."""
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
    lines = data.splitlines()
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            records.append(msgspec.convert(orjson.loads(line), TraceRecord))
        except (orjson.JSONDecodeError, msgspec.ValidationError) as exc:
            if number == len(lines) and not data.endswith(b"\n"):
                # The writer was cut off mid-line (a crash, a kill): keep what came before.
                log.warning("%s:%d: incomplete last line skipped (run cut off?)", path, number)
                break
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


def select(roots: list[TraceNode], subject: str) -> list[TraceNode]:
    """The trees that hold at least one message on a subject matching the pattern."""
    return [
        root for root in roots if any(matches(subject, n.record.subject) for _, n in root.walk())
    ]


def format_tree(roots: list[TraceNode]) -> list[str]:
    """The trees as indented text lines: offset from the first message, sender → subject,
    type, the reply time of requests, and a payload summary."""
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
            lines.append(
                f"{'+' + _ms(rec.timestamp - start):>10}  {'  ' * depth}{rec.sender} → "
                f"{rec.subject} [{rec.type}]{took} {_summary(rec.payload)}"
            )
    return lines
