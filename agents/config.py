"""The LLM side's configuration: a JSON or TOML file, validated by msgspec, under the environment.

The usual five fields work as they are; everything else has a default::

    [llm]
    provider = "openai"
    model = "gpt-4o"
    api_key = "sk-..."
    temperature = 0.2
    max_tokens = 1024

With neither an API key nor a base URL the configuration asks for the embedded mock LLM
(:attr:`LLMConfig.uses_mock`). Keys are held in a :class:`Secret`, so no repr, str, log
line or :class:`ConfigError` ever shows one.
"""

from __future__ import annotations

import difflib
import hmac
import os
import re
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal, final

import msgspec
from msgspec import inspect as schema

from bus import HivebusError
from bus.transport import is_nats_url

__all__ = [
    "DEFAULT_BASE_URL",
    "DEFAULT_MODEL",
    "Config",
    "ConfigError",
    "EndpointConfig",
    "FallbackConfig",
    "LLMConfig",
    "Mode",
    "ModelPrice",
    "RetryPolicy",
    "Secret",
    "load_config",
]

DEFAULT_BASE_URL = "https://api.openai.com/v1"
DEFAULT_MODEL = "gpt-4o-mini"

Mode = Literal["live", "record", "replay"]

_URL_PATTERN = r"^https?://\S+$"
_Text = Annotated[str, msgspec.Meta(min_length=1)]
_URL = Annotated[str, msgspec.Meta(pattern=_URL_PATTERN)]
_Count = Annotated[int, msgspec.Meta(ge=1)]
_Seconds = Annotated[float, msgspec.Meta(gt=0)]
_Amount = Annotated[float, msgspec.Meta(ge=0)]
_Temperature = Annotated[float, msgspec.Meta(ge=0, le=2)]


class ConfigError(HivebusError, ValueError):
    """The configuration file or an environment variable is missing, malformed or out of range.

    The message is one line: where (``source``: the file or the variable), which field
    (``field``, dotted: ``llm.max_tokens``) and what was expected (``reason``). It never
    contains an API key.
    """

    def __init__(self, source: str, reason: str, *, field: str | None = None) -> None:
        super().__init__(": ".join(part for part in (source, field, reason) if part))
        self.source = source
        self.field = field
        self.reason = reason


@final
class Secret:
    """A string that never shows itself: its repr and str are masked; :meth:`reveal` gives it."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        """The secret itself, for the one place that must send it (an HTTP header)."""
        return self._value

    def __repr__(self) -> str:
        return "Secret('***')"

    def __str__(self) -> str:
        return "***"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Secret):
            return NotImplemented
        return hmac.compare_digest(self._value.encode(), other._value.encode())

    def __hash__(self) -> int:
        return hash(self._value)


class _Section(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Base of the configuration Structs: frozen, keyword-only, and strict about field names."""

    def redacted(self) -> dict[str, Any]:
        """These settings as plain data, safe to print or log: every key reads ``'***'``."""
        data: dict[str, Any] = msgspec.to_builtins(self, enc_hook=_mask)
        return data


class RetryPolicy(_Section, frozen=True, kw_only=True):
    """How a failing call is retried, and when an endpoint that keeps failing is rested.

    ``max_attempts`` counts the first attempt. The wait before attempt n is drawn up to
    ``min(backoff_max, backoff_base * 2**n)`` seconds unless the server sent Retry-After.
    After ``cooldown_after`` consecutive failures an endpoint is skipped for ``cooldown``
    seconds.
    """

    max_attempts: _Count = 4
    backoff_base: _Amount = 0.5
    backoff_max: _Amount = 30.0
    cooldown: _Amount = 30.0
    cooldown_after: _Count = 5

    def __post_init__(self) -> None:
        if self.backoff_base > self.backoff_max:
            raise ValueError(
                f"backoff_base ({self.backoff_base:g}) exceeds backoff_max ({self.backoff_max:g})"
            )


class ModelPrice(_Section, frozen=True, kw_only=True):
    """A model's price in USD per million tokens, ``input`` (prompt) and ``output``."""

    input: _Amount
    output: _Amount

    def cost(self, prompt_tokens: int, completion_tokens: int) -> float:
        """The price in USD of a call that used these many tokens."""
        return (prompt_tokens * self.input + completion_tokens * self.output) / 1_000_000


class EndpointConfig(_Section, frozen=True, kw_only=True):
    """One OpenAI-compatible endpoint and model, and how hard to push it.

    ``base_url`` None is OpenAI's (or, with no ``api_key`` either, the mock LLM's);
    ``temperature`` and ``max_tokens`` None leave them to the server; ``rpm`` (requests per
    minute) and ``tpm`` (tokens per minute) None mean unlimited. ``max_concurrency``
    caps the calls in flight; ``request_timeout`` bounds one attempt.
    """

    name: _Text = "primary"
    provider: _Text = "openai"
    model: _Text = DEFAULT_MODEL
    base_url: _URL | None = None
    api_key: Secret | None = None
    organization: _Text | None = None
    temperature: _Temperature | None = None
    max_tokens: _Count | None = None
    max_concurrency: _Count = 64
    rpm: _Count | None = None
    tpm: _Count | None = None
    request_timeout: _Seconds = 60.0
    connect_timeout: _Seconds = 10.0


class FallbackConfig(_Section, frozen=True, kw_only=True):
    """An entry of ``llm.fallbacks``: ``model`` is required; what it leaves out is the primary's.

    ``api_key`` and ``organization`` are inherited only by a fallback at the primary's
    ``base_url``, so that a key is never sent to a host it was not written for.
    """

    model: _Text
    name: _Text | None = None
    provider: _Text | None = None
    base_url: _URL | None = None
    api_key: Secret | None = None
    organization: _Text | None = None
    temperature: _Temperature | None = None
    max_tokens: _Count | None = None
    max_concurrency: _Count | None = None
    rpm: _Count | None = None
    tpm: _Count | None = None
    request_timeout: _Seconds | None = None
    connect_timeout: _Seconds | None = None


class LLMConfig(EndpointConfig, frozen=True, kw_only=True):
    """The ``llm`` table: the primary endpoint's fields, then what applies to every call.

    ``deadline`` bounds a whole call, retries and fallbacks included. ``mode`` "record"
    writes every exchange to ``cassette`` and "replay" answers from it with no LLM; a
    relative ``cassette`` in a file is relative to that file. ``prices`` maps a model to
    its :class:`ModelPrice`.
    """

    deadline: _Seconds = 300.0
    retry: RetryPolicy = msgspec.field(default_factory=RetryPolicy)
    fallbacks: tuple[FallbackConfig, ...] = ()
    prices: dict[str, ModelPrice] = msgspec.field(default_factory=dict)
    mode: Mode = "live"
    cassette: _Text | None = None

    def __post_init__(self) -> None:
        if self.mode != "live" and self.cassette is None:
            raise ValueError(f"mode {self.mode!r} needs a cassette path")
        names = [endpoint.name for endpoint in self.endpoints()]
        for name in names:
            if names.count(name) > 1:
                raise ValueError(f"endpoint name {name!r} is used more than once")

    @property
    def uses_mock(self) -> bool:
        """True when neither ``api_key`` nor ``base_url`` is set: run the embedded mock LLM."""
        return self.api_key is None and self.base_url is None

    def with_base_url(self, url: str) -> LLMConfig:
        """A copy whose primary endpoint is at ``url``: how the mock LLM's address is filled in."""
        return msgspec.structs.replace(self, base_url=url)

    def endpoints(self) -> tuple[EndpointConfig, ...]:
        """The endpoints to try, in order: the primary, then each fallback, fully resolved.

        A fallback's missing fields are the primary's (see :class:`FallbackConfig`); an
        unnamed one is ``fallback-1``, ``fallback-2``... A missing ``base_url`` is
        :data:`DEFAULT_BASE_URL`, except in mock mode, where it stays None until
        :meth:`with_base_url`.
        """
        fields = {name: getattr(self, name) for name in EndpointConfig.__struct_fields__}
        primary = EndpointConfig(**fields)
        if primary.base_url is None and not self.uses_mock:
            primary = msgspec.structs.replace(primary, base_url=DEFAULT_BASE_URL)
        resolved = [primary]
        for number, fallback in enumerate(self.fallbacks, 1):
            changes = {
                name: value
                for name in FallbackConfig.__struct_fields__
                if (value := getattr(fallback, name)) is not None
            }
            changes.setdefault("name", f"fallback-{number}")
            if changes.get("base_url", primary.base_url) != primary.base_url:
                changes.setdefault("api_key", None)
                changes.setdefault("organization", None)
            resolved.append(msgspec.structs.replace(primary, **changes))
        return tuple(resolved)

    def price_of(self, model: str) -> ModelPrice | None:
        """The price of ``model``, or of its undated name (``gpt-4o-2024-08-06`` → ``gpt-4o``)."""
        price = self.prices.get(model)
        return price if price is not None else self.prices.get(_DATE_SUFFIX.sub("", model))

    def cost(self, model: str, *, prompt_tokens: int, completion_tokens: int) -> float | None:
        """The price in USD of a call to ``model``, or None when ``prices`` does not list it."""
        price = self.price_of(model)
        return None if price is None else price.cost(prompt_tokens, completion_tokens)


Role = Literal["gateway", "tools", "memory"]


class BusConfig(_Section, frozen=True, kw_only=True):
    """Where the bus runs: ``transport`` is ``"local"`` (one process) or a NATS server's
    URL (``nats://127.0.0.1:4222``; ``$HIVEBUS_TRANSPORT``). ``remote`` names the roles
    that ``hivebus worker`` processes serve, so a runtime does not start its own."""

    transport: str = "local"
    remote: tuple[Role, ...] = ()

    def __post_init__(self) -> None:
        if self.transport != "local" and not is_nats_url(self.transport):
            raise ValueError(
                f"transport must be 'local' or a NATS URL (nats://host:port), "
                f"got {self.transport!r}"
            )


class Config(_Section, frozen=True, kw_only=True):
    """Everything hivebus reads from its configuration file."""

    llm: LLMConfig = msgspec.field(default_factory=LLMConfig)
    bus: BusConfig = msgspec.field(default_factory=BusConfig)


_DATE_SUFFIX = re.compile(r"-(\d{4}-\d{2}-\d{2}|\d{4})$")

# Each field the environment may set, by the variables that set it, the first set one winning.
_VARIABLES: dict[str, tuple[str, ...]] = {
    field: (f"HIVEBUS_{field.upper()}", *aliases)
    for field, aliases in {
        "provider": (),
        "model": (),
        "base_url": ("OPENAI_BASE_URL", "OPENAI_API_BASE"),
        "api_key": ("OPENAI_API_KEY",),
        "organization": ("OPENAI_ORG_ID",),
        "temperature": (),
        "max_tokens": (),
        "max_concurrency": (),
        "rpm": (),
        "tpm": (),
        "request_timeout": (),
        "connect_timeout": (),
        "deadline": (),
        "mode": (),
        "cassette": (),
    }.items()
}


def load_config(path: str | Path | None = None, *, env: Mapping[str, str] = os.environ) -> Config:
    """Read the configuration file, then let the environment override it.

    The file is ``path``, else ``$HIVEBUS_CONFIG``, else none (the defaults); its format
    is given by its extension, ``.json`` or ``.toml``. Variables (``HIVEBUS_MODEL``,
    ``OPENAI_API_KEY``...) set the ``llm`` fields; an empty one counts as unset and
    ``null`` lifts an optional limit (``HIVEBUS_RPM=null``). Anything wrong raises one
    :class:`ConfigError`.
    """
    if path is None:
        path = env.get("HIVEBUS_CONFIG", "").strip() or None
    source = "config" if path is None else str(path)
    raw: Any = {} if path is None else _read(Path(path))
    match raw:
        case {"llm": {"cassette": str(cassette)} as llm} if path is not None and cassette:
            llm["cassette"] = str(Path(path).parent / cassette)
    overrides = _from_environment(env)
    bus_overrides: dict[str, Any] = {}
    if transport := env.get("HIVEBUS_TRANSPORT", "").strip():
        bus_overrides["transport"] = transport
    if remote := env.get("HIVEBUS_REMOTE", "").strip():  # roles, comma-separated
        bus_overrides["remote"] = [role.strip() for role in remote.split(",") if role.strip()]
    if bus_overrides and isinstance(raw, dict) and isinstance(raw.setdefault("bus", {}), dict):
        raw["bus"].update(bus_overrides)
    match raw:
        case {"llm": dict() as llm}:
            llm.update(overrides)
        case dict() if "llm" not in raw and overrides:
            raw["llm"] = overrides
    try:
        return msgspec.convert(raw, Config, dec_hook=_decode_secret)
    except msgspec.ValidationError as error:
        message = str(error)
        what, location = _split(message)
        shown = _name_keys(raw, location, message) if "[...]" in location else location
        field, reason = _explain(what, location, shown)
        raise ConfigError(source, reason, field=field) from None


def _read(path: Path) -> Any:
    source = str(path)
    suffix = path.suffix.lower()
    if suffix not in (".json", ".toml"):
        raise ConfigError(source, f"unknown format {suffix or '(none)'!r}: expected .json or .toml")
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise ConfigError(source, "no such file") from None
    except OSError as error:
        raise ConfigError(source, f"cannot read: {error.strerror or error}") from None
    if suffix == ".json":
        try:
            return msgspec.json.decode(data)
        except msgspec.DecodeError as error:
            raise ConfigError(source, _json_syntax(str(error), data)) from None
    try:
        return tomllib.loads(data.decode())
    except UnicodeDecodeError as error:
        raise ConfigError(source, f"not UTF-8 text (byte {error.start})") from None
    except tomllib.TOMLDecodeError as error:
        raise ConfigError(source, _toml_syntax(str(error))) from None


def _json_syntax(message: str, data: bytes) -> str:
    """msgspec's "JSON is malformed: why (byte N)" as "line L, column C: invalid JSON: why"."""
    match = re.fullmatch(r"(?:JSON is malformed: )?(.*?)(?: \(byte (\d+)\))?", message)
    assert match is not None  # the pattern matches any text
    why = match[1][:1].lower() + match[1][1:]
    if match[2] is None:
        return f"invalid JSON: {why}"
    offset = int(match[2])
    line = data.count(b"\n", 0, offset) + 1
    column = offset - (data.rfind(b"\n", 0, offset) + 1) + 1
    return f"line {line}, column {column}: invalid JSON: {why}"


def _toml_syntax(message: str) -> str:
    """tomllib's "Why (at line L, column C)" as "line L, column C: invalid TOML: why"."""
    match = re.fullmatch(r"(.*?)(?: \(at (line \d+, column \d+|end of document)\))?", message)
    assert match is not None  # the pattern matches any text
    why = match[1][:1].lower() + match[1][1:]
    return f"{match[2]}: invalid TOML: {why}" if match[2] else f"invalid TOML: {why}"


def _from_environment(env: Mapping[str, str]) -> dict[str, Any]:
    """The ``llm`` fields the environment sets, converted and validated one variable at a time."""
    types = {field.name: field.type for field in msgspec.structs.fields(LLMConfig)}
    overrides: dict[str, Any] = {}
    for field, variables in _VARIABLES.items():
        for variable in variables:
            text = env.get(variable, "").strip()
            if not text:
                continue
            try:
                overrides[field] = msgspec.convert(
                    text, types[field], strict=False, dec_hook=_decode_secret
                )
            except msgspec.ValidationError as error:
                got = "***" if field == "api_key" else repr(text)
                _, reason = _explain(str(error), f"llm.{field}", f"llm.{field}", got=got)
                raise ConfigError(variable, reason, field=f"llm.{field}") from None
            break
    return overrides


def _split(message: str) -> tuple[str, str]:
    """msgspec's "what - at `$.llm.max_tokens`" as ("what", "llm.max_tokens")."""
    what, _, location = message.partition(" - at `$")
    return what, location.rstrip("`").lstrip(".")


def _explain(what: str, location: str, shown: str, *, got: str | None = None) -> tuple[str, str]:
    """The field a msgspec error is about and a lowercase reason, as ConfigError shows them."""
    node = _type_at(location)
    if match := re.fullmatch(r"Object contains unknown field `(.*)`", what):
        return _join(shown, match[1]), "unknown field" + _did_you_mean(match[1], node)
    if match := re.fullmatch(r"Object missing required field `(.*)`", what):
        return _join(shown, match[1]), "required field is missing"
    if match := re.fullmatch(r"Expected `(.*?)`, got `(.*)`", what):
        expected = " or ".join(t for t in match[1].split(" | ") if t != "null")
        return shown, f"expected {expected}, got {got or match[2]}"
    if isinstance(node, schema.LiteralType):
        got = got or what.removeprefix("Invalid enum value ")
        return shown, f"expected one of {', '.join(map(repr, node.values))}, got {got}"
    reason = what[:1].lower() + what[1:].replace("`", "")
    reason = reason.replace(f"str matching regex {_URL_PATTERN!r}", "an http:// or https:// URL")
    return shown, reason + (f", got {got}" if got else "")


def _join(location: str, name: str) -> str:
    return f"{location}.{name}" if location else name


def _type_at(location: str) -> schema.Type | None:
    """The type msgspec expected at a location such as ``llm.fallbacks[0]``, Optional removed."""
    node: schema.Type | None = schema.type_info(Config)
    for name, _ in re.findall(r"([A-Za-z_]\w*)|\[([^\]]*)\]", location):
        if isinstance(node, schema.StructType) and name:
            node = next((f.type for f in node.fields if f.encode_name == name), None)
        elif isinstance(node, schema.VarTupleType | schema.ListType) and not name:
            node = node.item_type
        elif isinstance(node, schema.DictType) and not name:
            node = node.value_type
        else:
            return None
        if isinstance(node, schema.UnionType):
            others = [t for t in node.types if not isinstance(t, schema.NoneType)]
            node = others[0] if len(others) == 1 else node
    return node


def _did_you_mean(name: str, node: schema.Type | None) -> str:
    if not isinstance(node, schema.StructType):
        return ""
    known = []
    for field in node.fields:
        known.append(field.encode_name)
        if isinstance(field.type, schema.StructType):
            known += [f"{field.encode_name}.{sub.encode_name}" for sub in field.type.fields]
    close = difflib.get_close_matches(name, known, n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


def _name_keys(raw: Any, location: str, message: str) -> str:
    """Put the key msgspec shows as ``[...]`` back: ``llm.prices["gpt-4o"].input``.

    It tries each entry of that table alone and keeps the one that fails the same way.
    """
    head = location.partition("[...]")[0]
    table = raw
    for name, index in re.findall(r"([A-Za-z_]\w*)|\[(\d+)\]", head):
        table = table[name] if name else table[int(index)]
    entries = dict(table)
    try:
        for key, value in entries.items():
            table.clear()
            table[key] = value
            try:
                msgspec.convert(raw, Config, dec_hook=_decode_secret)
            except msgspec.ValidationError as error:
                if str(error) == message:
                    return location.replace("[...]", f"[{msgspec.json.encode(key).decode()}]", 1)
    finally:
        table.clear()
        table.update(entries)
    return location


def _decode_secret(kind: type, value: Any) -> Any:
    if kind is not Secret:
        raise NotImplementedError(kind)
    if isinstance(value, Secret):
        return value
    if isinstance(value, str):
        return Secret(value)
    raise TypeError(f"Expected `str`, got `{_json_type(value)}`")


def _json_type(value: object) -> str:
    names = {dict: "object", list: "array", bool: "bool", int: "int", float: "float"}
    return names.get(type(value), type(value).__name__)


def _mask(value: object) -> str:
    if isinstance(value, Secret):
        return "***"
    raise NotImplementedError(f"cannot encode {type(value).__name__}")
