"""When to retry an LLM call and how long to wait: backoff with full jitter, Retry-After."""

from __future__ import annotations

import email.utils
import random
import time
from collections.abc import Mapping

import msgspec


class Backoff(msgspec.Struct, frozen=True, kw_only=True):
    """``max_attempts`` per endpoint per call; waits grow as ``base * 2**n`` up to ``cap``
    seconds, and each wait is drawn uniformly below that ("full jitter"), so that clients
    failing together do not retry together."""

    max_attempts: int = 4
    base: float = 0.5
    cap: float = 30.0

    def backoff(self, failures: int, rng: random.Random) -> float:
        """The wait before the next attempt, after ``failures`` failed attempts (>= 1)."""
        return rng.uniform(0.0, min(self.cap, self.base * 2 ** (failures - 1)))


def retry_after(headers: Mapping[str, str], now: float | None = None) -> float | None:
    """The wait a provider asked for, in seconds: ``retry-after-ms``, else ``Retry-After``
    as seconds or as an HTTP date. None if absent or unreadable."""
    raw_ms = headers.get("retry-after-ms")
    if raw_ms is not None:
        try:
            return max(0.0, float(raw_ms) / 1000.0)
        except ValueError:
            pass
    raw = headers.get("retry-after")
    if raw is None:
        return None
    try:
        return max(0.0, float(raw))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(raw)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


def reset_after(value: str) -> float | None:
    """OpenAI's ``x-ratelimit-reset-*`` durations (``"1s"``, ``"6m0s"``, ``"20ms"``,
    ``"1h2m3.5s"``) in seconds; None if unreadable."""
    total = 0.0
    number = ""
    i = 0
    units = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 0.001}
    seen = False
    while i < len(value):
        char = value[i]
        if char.isdigit() or char == ".":
            number += char
            i += 1
            continue
        unit = "ms" if value.startswith("ms", i) else char
        if unit not in units or not number:
            return None
        try:
            total += float(number) * units[unit]
        except ValueError:
            return None
        number = ""
        seen = True
        i += len(unit)
    if number:  # a bare number: seconds
        try:
            return total + float(number)
        except ValueError:
            return None
    return total if seen else None
