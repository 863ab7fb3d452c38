"""Recording a run as JSONL, and reading it back as a causation tree with timings.

Each line is one envelope seen by a tap: publishes, requests, replies and dead letters.
Header values and payload fields whose names look secret (``api_key``, ``authorization``,
``db_password``, ``GITHUB_TOKEN``, ...) and values that look like credentials (``sk-...``,
``Bearer ...``) are written as ``"***"``.
"""

from __future__ import annotations

import logging
import re
from pathlib import Path
from types import TracebackType
from typing import IO, TYPE_CHECKING, Any, Literal

import msgspec
import orjson

from ._message import Envelope
from ._trace_diff import MISSING, Divergence, causation_order, diff_traces
from ._trace_tree import (
    Describe,
    TraceNode,
    build_tree,
    format_tree,
    payload_summary,
    prune,
    select,
    visible,
)
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

__all__ = [
    "MISSING",
    "REDACTED",
    "Describe",
    "Divergence",
    "TraceFormatError",
    "TraceNode",
    "TraceRecord",
    "TraceRecorder",
    "TraceWriter",
    "build_tree",
    "causation_order",
    "diff_traces",
    "format_tree",
    "is_secret_name",
    "payload_summary",
    "prune",
    "read_trace",
    "redact",
    "select",
    "to_record",
    "visible",
]


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


class TraceWriter:
    """Appends trace records to ``path`` as JSON lines, buffered: written every
    ``flush_every`` records and on :meth:`close`. :meth:`open` truncates the file.

    It is what a :class:`TraceRecorder` writes with; use it directly to put the envelopes
    of several buses, or records you made, in one trace.
    """

    def __init__(self, path: str | Path, *, flush_every: int = 256) -> None:
        self.path = Path(path)
        self.flush_every = flush_every
        self.count = 0
        self._lines: list[bytes] = []
        self._file: IO[bytes] | None = None

    def open(self) -> TraceWriter:
        """Create the file (and its folders), truncating an old one."""
        if self._file is not None:
            raise RuntimeError(f"trace writer for {self.path} already open")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._file = self.path.open("wb")
        return self

    def write(self, record: TraceRecord) -> None:
        """Add one record (see :func:`to_record`)."""
        self._lines.append(orjson.dumps(record, default=msgspec.to_builtins))
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
        """Write what is buffered and close the file (idempotent)."""
        if self._file is not None:
            self.flush()
            self._file.close()
            self._file = None


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
        self.pattern = pattern
        self.writer = TraceWriter(path, flush_every=flush_every)
        self._tap: Tap | None = None

    @property
    def path(self) -> Path:
        return self.writer.path

    @property
    def count(self) -> int:
        """Envelopes recorded so far."""
        return self.writer.count

    def start(self) -> TraceRecorder:
        """Open the file (truncating it) and start recording."""
        if self._tap is not None:
            raise RuntimeError("recorder already started")
        self.writer.open()
        self._tap = self.bus.tap(self.pattern, self._record)
        return self

    def _record(self, env: Envelope) -> None:
        self.writer.write(to_record(env))

    def flush(self) -> None:
        """Write the buffered lines now."""
        self.writer.flush()

    def close(self) -> None:
        """Stop recording, write what is buffered and close the file."""
        if self._tap is not None:
            self._tap.close()
            self._tap = None
        self.writer.close()

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
