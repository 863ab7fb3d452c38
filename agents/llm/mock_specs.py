"""The mock LLM's specs: :class:`Latency`, :class:`Faults` and :class:`RateLimit`, frozen
Structs that check themselves; ``parse`` reads the CLI's strings (``"50ms,lognormal"``)."""

from __future__ import annotations

import math
import random
import re
from collections.abc import Mapping
from typing import Literal, get_args

import msgspec

from bus import HivebusError

from .policy import FaultKind

FAULT_KINDS: tuple[FaultKind, ...] = get_args(FaultKind)
_DURATION = re.compile(r"([0-9]*\.?[0-9]+(?:[eE][-+]?[0-9]+)?)\s*(ms|s)?")


class MockConfigError(HivebusError, ValueError):
    """A latency, fault or rate-limit spec for the mock is malformed; names the spec."""


def _number(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise MockConfigError(f"{text!r} is not a number") from None


def parse_duration(text: str) -> float:
    """Seconds from ``"0.05"``, ``"50ms"`` or ``"2s"``."""
    match = _DURATION.fullmatch(text.strip())
    if match is None:
        raise MockConfigError(f"{text!r} is not a duration (like 0.05, 50ms or 2s)")
    value = float(match[1])
    return value / 1000 if match[2] == "ms" else value


class Latency(msgspec.Struct, frozen=True, kw_only=True):
    """The delay before each response, plus ``per_token`` between stream chunks.

    ``fixed``: ``seconds``; ``uniform``: between ``seconds`` and ``high``; ``lognormal``:
    median ``seconds``, shape ``sigma``. :meth:`parse` reads ``"50ms"``, ``"0.05"``,
    ``"uniform:10ms,50ms"``, ``"lognormal:50ms,0.5"`` and ``"50ms,lognormal"`` (sigma
    0.5), each optionally followed by ``";per_token=2ms"``.
    """

    distribution: Literal["fixed", "uniform", "lognormal"] = "fixed"
    seconds: float = 0.0
    high: float = 0.0
    sigma: float = 0.5
    per_token: float = 0.0

    def __post_init__(self) -> None:
        if min(self.seconds, self.high, self.sigma, self.per_token) < 0:
            raise MockConfigError(f"latency: durations cannot be negative: {self}")
        if self.distribution == "uniform" and self.high < self.seconds:
            raise MockConfigError(f"latency: uniform high {self.high} < low {self.seconds}")

    @property
    def is_zero(self) -> bool:
        """Whether responses go out at once (no sleep at all on the hot path)."""
        return self.seconds == 0 and (self.distribution != "uniform" or self.high == 0)

    def sample(self, rng: random.Random) -> float:
        """One delay in seconds."""
        if self.distribution == "uniform":
            return rng.uniform(self.seconds, self.high)
        if self.distribution == "lognormal" and self.seconds > 0:
            return rng.lognormvariate(math.log(self.seconds), self.sigma)
        return self.seconds

    @classmethod
    def parse(cls, spec: Latency | str | float | None) -> Latency:
        """A Latency from a spec string, a number of seconds, or None (no delay)."""
        if spec is None:
            return cls()
        if isinstance(spec, Latency):
            return spec
        if isinstance(spec, int | float):
            return cls(seconds=float(spec))
        try:
            return cls._parse(spec)
        except MockConfigError as error:
            raise MockConfigError(f"latency {spec!r}: {error}") from None

    @classmethod
    def _parse(cls, spec: str) -> Latency:
        main, *options = spec.split(";")
        per_token = 0.0
        for option in options:
            key, _, value = option.partition("=")
            if key.strip() not in ("per_token", "token") or not value:
                raise MockConfigError(f"unknown option {option.strip()!r} (want per_token=2ms)")
            per_token = parse_duration(value)
        kind, colon, rest = main.partition(":")
        if colon:
            kind, values = kind.strip(), [v.strip() for v in rest.split(",")]
            if kind == "uniform" and len(values) == 2:
                low, high = map(parse_duration, values)
                return cls(distribution="uniform", seconds=low, high=high, per_token=per_token)
            if kind == "lognormal" and len(values) in (1, 2):
                sigma = _number(values[1]) if len(values) == 2 else 0.5
                median = parse_duration(values[0])
                return cls(
                    distribution="lognormal", seconds=median, sigma=sigma, per_token=per_token
                )
            raise MockConfigError("want uniform:LOW,HIGH or lognormal:MEDIAN[,SIGMA]")
        first, *shape = (part.strip() for part in main.split(","))
        seconds = parse_duration(first) if first else 0.0
        if shape not in ([], ["lognormal"]):
            raise MockConfigError(f"unknown distribution {','.join(shape)!r} (want lognormal)")
        return cls(
            distribution="lognormal" if shape else "fixed", seconds=seconds, per_token=per_token
        )


class Faults(msgspec.Struct, frozen=True, kw_only=True):
    """The chance of each fault per chat request (the rates add up to at most 1).

    ``429`` (with ``Retry-After`` = ``retry_after`` and ``retry-after-ms``), ``500``,
    ``503``, ``reset`` (the connection is dropped with a TCP RST, no response),
    ``timeout`` (no answer for ``hang_seconds``, cut short when the server stops),
    ``badjson`` (200 with a malformed body, or a malformed chunk mid-stream),
    ``truncated`` (a stream that stops halfway without ``[DONE]``; a JSON body cut in
    half) and ``badargs`` (tool calls whose ``arguments`` are not valid JSON).
    :meth:`parse` reads ``"429:0.05,500:0.02,reset:0.01,retry_after=0.5,hang=2s"``.
    """

    rates: dict[FaultKind, float] = {}
    retry_after: float = 1.0
    hang_seconds: float = 30.0

    def __post_init__(self) -> None:
        for kind, rate in self.rates.items():
            if kind not in FAULT_KINDS:
                raise MockConfigError(
                    f"faults: unknown kind {kind!r} (one of {', '.join(FAULT_KINDS)})"
                )
            if not 0 <= rate <= 1:
                raise MockConfigError(f"faults: {kind}: rate {rate} is not between 0 and 1")
        if sum(self.rates.values()) > 1 + 1e-9:
            raise MockConfigError(f"faults: the rates add up to {sum(self.rates.values()):g} > 1")

    def sample(self, rng: random.Random) -> FaultKind | None:
        """The fault for one request, or None."""
        if not self.rates:
            return None
        draw = rng.random()
        for kind, rate in self.rates.items():
            if draw < rate:
                return kind
            draw -= rate
        return None

    @classmethod
    def parse(cls, spec: Faults | str | Mapping[str, float] | None) -> Faults:
        """Faults from a spec string, a mapping of kind to rate, or None (no faults)."""
        if spec is None:
            return cls()
        if isinstance(spec, Faults):
            return spec
        if isinstance(spec, Mapping):
            return cls(rates=dict(spec))  # type: ignore[arg-type]
        rates: dict[str, float] = {}
        options: dict[str, float] = {}
        for item in filter(None, (part.strip() for part in spec.split(","))):
            key, sep, value = item.partition("=")
            try:
                if sep and key.strip() in ("retry_after", "hang", "hang_seconds"):
                    options[key.strip()] = parse_duration(value)
                    continue
                kind, colon, rate = item.partition(":")
                if not colon:
                    raise MockConfigError(f"{item!r}: want KIND:RATE, retry_after=S or hang=S")
                rates[kind.strip()] = float(rate)
            except ValueError as error:
                raise MockConfigError(f"faults {spec!r}: {error}") from None
        return cls(
            rates=rates,  # type: ignore[arg-type]
            retry_after=options.get("retry_after", 1.0),
            hang_seconds=options.get("hang", options.get("hang_seconds", 30.0)),
        )


class RateLimit(msgspec.Struct, frozen=True, kw_only=True):
    """Send OpenAI's ``x-ratelimit-*`` headers from counters over a fixed ``window`` of
    seconds; when ``is_enforced``, a request past a limit gets 429 until the window ends."""

    requests: int = 10_000
    tokens: int = 2_000_000
    window: float = 60.0
    is_enforced: bool = False
