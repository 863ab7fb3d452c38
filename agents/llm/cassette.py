"""Record and replay LLM calls, so that an agent program re-runs deterministically with no LLM.

A cassette is a JSON-lines file. Each line is one :class:`CassetteEntry`: the request's
key, the canonical request and the completion that answered it. A cassette holds
requests and completions only — no headers, no API keys, no endpoint addresses — but a
request's messages are stored as they were sent, so record only prompts you would commit.

A request's key (:func:`request_key`) is the SHA-256 of its canonical form: the request
without the fields that do not change the answer (:data:`IGNORED_FIELDS`), encoded as
JSON with sorted keys. A streamed call and a plain call of the same request therefore
share an entry.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any, Literal

import msgspec

from .errors import CassetteMiss, LLMError
from .wire import ChatCompletion, ChatCompletionRequest, request_decoder, request_encoder

IGNORED_FIELDS = ("stream", "stream_options", "user", "metadata")
"""Left out of the key and of the stored request: how the answer is delivered (``stream``,
``stream_options``) and the caller's labels for the provider's logs (``user``,
``metadata``), none of which changes what the model answers."""

VALUE_WIDTH = 60  # characters of a value a CassetteMiss shows

_key_encoder = msgspec.json.Encoder(order="sorted")
_line_encoder = msgspec.json.Encoder()


class CassetteError(LLMError):
    """A cassette file cannot be used: missing, unreadable, or holding a line that is not
    an entry. ``path`` is the file and ``line`` the 1-based line (None for the whole file)."""

    def __init__(self, path: Path, reason: str, *, line: int | None = None) -> None:
        where = str(path) if line is None else f"{path}:{line}"
        super().__init__(f"cassette {where}: {reason}")
        self.path = path
        self.line = line


class CassetteEntry(msgspec.Struct, frozen=True, kw_only=True):
    """One line of a cassette: a recorded call."""

    key: str
    request: ChatCompletionRequest
    completion: ChatCompletion


_entry_decoder = msgspec.json.Decoder(CassetteEntry)


def canonical_request(request: ChatCompletionRequest) -> ChatCompletionRequest:
    """``request`` as a cassette stores it: without :data:`IGNORED_FIELDS`, and passed
    through JSON so that equal requests are equal data (``temperature=1`` is ``1.0``)."""
    stripped = msgspec.structs.replace(
        request, stream=None, stream_options=None, user=None, metadata=None
    )
    return request_decoder.decode(request_encoder.encode(stripped))


def request_key(request: ChatCompletionRequest) -> str:
    """The key of ``request`` in a cassette (hex SHA-256); requests that differ only in
    :data:`IGNORED_FIELDS` have the same key."""
    return _key_of(canonical_request(request))


def _key_of(canonical: ChatCompletionRequest) -> str:
    return hashlib.sha256(_key_encoder.encode(canonical)).hexdigest()


class Cassette:
    """One cassette file, opened to ``"record"`` or to ``"replay"``.

    Recording appends a line per call (creating the file and its folders), opening the
    file for each line, so that the line has reached the operating system when
    :meth:`record` returns: there is nothing to close, and a process that dies right
    after loses no recorded call. Recording into an existing cassette keeps its lines;
    delete the file to record afresh.

    Replaying reads the whole file when the cassette is opened (a missing file or a
    broken line is a :class:`CassetteError` then) and answers :meth:`lookup` from
    memory. A request recorded several times is answered in the recorded order, then
    with its last answer again, so that a run asking once more than the recording did
    (an extra turn of a loop) goes on rather than failing. The key written on each line
    is for people and tools; replay recomputes it from the request, so a request edited
    by hand in the file still matches.
    """

    def __init__(self, path: str | Path, mode: Literal["record", "replay"]) -> None:
        self.path = Path(path)
        self.mode = mode
        self._answers: dict[str, list[ChatCompletion]] = {}
        self._served: dict[str, int] = {}
        self._first_lines: dict[str, tuple[int, ChatCompletionRequest]] = {}
        if mode == "record":
            self.path.parent.mkdir(parents=True, exist_ok=True)
        elif mode == "replay":
            self._load()
        else:
            raise ValueError(f"cassette mode must be 'record' or 'replay', not {mode!r}")

    def record(self, request: ChatCompletionRequest, completion: ChatCompletion) -> None:
        """Append the call ``request`` → ``completion`` to the file."""
        self._require("record")
        canonical = canonical_request(request)
        entry = CassetteEntry(key=_key_of(canonical), request=canonical, completion=completion)
        try:
            with self.path.open("ab") as file:
                file.write(_line_encoder.encode(entry) + b"\n")
        except OSError as error:
            raise CassetteError(self.path, f"cannot write: {error.strerror or error}") from None

    def lookup(self, request: ChatCompletionRequest) -> ChatCompletion:
        """The recorded answer to ``request``, or :class:`CassetteMiss` saying which
        recorded request is closest and where it differs."""
        self._require("replay")
        canonical = canonical_request(request)
        key = _key_of(canonical)
        answers = self._answers.get(key)
        if answers is None:
            raise self._miss(canonical)
        served = self._served.get(key, 0)
        self._served[key] = served + 1
        return answers[min(served, len(answers) - 1)]

    def _require(self, mode: str) -> None:
        if self.mode != mode:
            raise CassetteError(self.path, f"opened to {self.mode}, not to {mode}")

    def _load(self) -> None:
        try:
            data = self.path.read_bytes()
        except FileNotFoundError:
            raise CassetteError(self.path, "no such file (record it with mode 'record')") from None
        except OSError as error:
            raise CassetteError(self.path, f"cannot read: {error.strerror or error}") from None
        for number, line in enumerate(data.splitlines(), 1):
            if not line.strip():
                continue
            try:
                entry = _entry_decoder.decode(line)
            except msgspec.DecodeError as error:  # malformed JSON, or not an entry's shape
                raise CassetteError(
                    self.path, f"not a cassette entry: {error}", line=number
                ) from None
            canonical = canonical_request(entry.request)
            key = _key_of(canonical)
            self._answers.setdefault(key, []).append(entry.completion)
            self._first_lines.setdefault(key, (number, canonical))

    def _miss(self, canonical: ChatCompletionRequest) -> CassetteMiss:
        if not self._first_lines:
            return CassetteMiss(
                f"cassette {self.path} is empty: no call was recorded", model=canonical.model
            )
        got = msgspec.to_builtins(canonical)
        recorded = [(line, msgspec.to_builtins(r)) for line, r in self._first_lines.values()]
        line, closest = max(recorded, key=lambda candidate: _likeness(candidate[1], got))
        difference = _first_difference(closest, got, "")
        assert difference is not None  # different keys come from different requests
        return CassetteMiss(
            f"cassette {self.path} has no answer for this request; the closest recorded one "
            f"(line {line}, of {len(recorded)}) differs at {difference}",
            model=canonical.model,
        )


class _Unset:
    def __repr__(self) -> str:
        return "(unset)"


_UNSET: Any = _Unset()


def _likeness(recorded: dict[str, Any], got: dict[str, Any]) -> tuple[bool, int, int]:
    """Same model first, then how many top-level fields and messages are equal, then how
    long a start their JSON shares (which tells apart two texts that differ late)."""
    fields = sum(recorded.get(name, _UNSET) == got.get(name, _UNSET) for name in {*recorded, *got})
    messages = sum(a == b for a, b in zip(recorded["messages"], got["messages"], strict=False))
    shared = _parting(_line_encoder.encode(recorded).decode(), _line_encoder.encode(got).decode())
    return recorded["model"] == got["model"], fields + messages, shared


def _first_difference(recorded: Any, got: Any, path: str) -> str | None:
    """``path: recorded X, got Y`` for the first place (in field order) two plain values differ."""
    if recorded == got:
        return None
    if isinstance(recorded, dict) and isinstance(got, dict):
        for name in [*recorded, *(name for name in got if name not in recorded)]:
            found = _first_difference(
                recorded.get(name, _UNSET), got.get(name, _UNSET), f"{path}.{name}".lstrip(".")
            )
            if found is not None:
                return found
    if isinstance(recorded, list) and isinstance(got, list):
        for index, (a, b) in enumerate(zip(recorded, got, strict=False)):
            found = _first_difference(a, b, f"{path}[{index}]")
            if found is not None:
                return found
        return f"{path}: recorded {len(recorded)} items, got {len(got)}"
    if isinstance(recorded, str) and isinstance(got, str):
        # Show both strings from a little before where they part, so the difference is visible.
        start = max(0, _parting(recorded, got) - VALUE_WIDTH // 3)
        return f"{path}: recorded {_show(recorded, start)}, got {_show(got, start)}"
    return f"{path}: recorded {_show(recorded)}, got {_show(got)}"


def _parting(a: str, b: str) -> int:
    """The index of the first character where ``a`` and ``b`` differ."""
    pairs = enumerate(zip(a, b, strict=False))
    return next((index for index, (x, y) in pairs if x != y), min(len(a), len(b)))


def _show(value: Any, start: int = 0) -> str:
    """``repr(value)``, cut to :data:`VALUE_WIDTH` characters (a string from ``start``)."""
    if isinstance(value, str):
        end = start + VALUE_WIDTH
        cut = ("…" if start > 0 else "") + value[start:end] + ("…" if end < len(value) else "")
        return repr(cut)
    text = repr(value)
    return text if len(text) <= VALUE_WIDTH else text[:VALUE_WIDTH] + "…"


__all__ = [
    "IGNORED_FIELDS",
    "Cassette",
    "CassetteEntry",
    "CassetteError",
    "canonical_request",
    "request_key",
]
