"""Many deadlines on one coarse grid: registering one is a set insert, not a loop timer.

The bus watches every request's deadline with it, and the LLM gateway every attempt's
(in place of aiohttp's per-request timer, which cost a tenth of a request's CPU).
"""

from __future__ import annotations

import asyncio
import math
from typing import Protocol

GRID_FLOOR = 0.01  # seconds: the finest grid a deadline fires on
_Key = tuple[float, int]  # (grid width, tick on that grid)


class Expiring(Protocol):
    def expire(self) -> None:
        """The deadline passed (called once, from the event loop)."""


class DeadlineGrid:
    """Deadlines bucketed on a grid, one loop timer per bucket rather than one per deadline
    (whose heap size and cancelled entries made every caller pay more as more were alive).

    The grid is 10 ms, or about 1 % of a longer timeout (a power of ten): a deadline never
    fires early and at most that late, and however long the timeouts, a few hundred buckets
    at most are alive for each (not one per 10 ms over five minutes).
    """

    __slots__ = ("buckets", "widths")

    def __init__(self) -> None:
        self.buckets: dict[_Key, tuple[asyncio.TimerHandle, set[Expiring]]] = {}
        self.widths: dict[float, float] = {}  # timeout -> grid width (timeouts repeat)

    def width(self, timeout: float) -> float:
        width = self.widths.get(timeout)
        if width is None:
            width = max(GRID_FLOOR, 10.0 ** math.floor(math.log10(timeout / 100)))
            if len(self.widths) > 1024:  # callers with ever-new timeouts: stay bounded
                self.widths.clear()
            self.widths[timeout] = width
        return width

    def watch(
        self, loop: asyncio.AbstractEventLoop, timeout: float, entry: Expiring
    ) -> _Key | None:
        """Call ``entry.expire()`` ``timeout`` seconds from now (up to a grid width later)
        unless :meth:`forget` comes first. ``math.inf`` watches nothing."""
        if timeout == math.inf:
            return None
        width = self.width(timeout)
        key = (width, int((loop.time() + timeout) / width) + 1)
        bucket = self.buckets.get(key)
        if bucket is None:
            handle = loop.call_at(key[1] * width, self._expire, key)
            bucket = self.buckets[key] = (handle, set())
        bucket[1].add(entry)
        return key

    def forget(self, key: _Key | None, entry: Expiring) -> None:
        bucket = self.buckets.get(key) if key is not None else None
        if bucket is not None:
            bucket[1].discard(entry)

    def _expire(self, key: _Key) -> None:
        _, due = self.buckets.pop(key)
        for entry in due:
            entry.expire()

    def clear(self) -> None:
        """Forget every deadline and stop their timers."""
        for handle, _ in self.buckets.values():
            handle.cancel()
        self.buckets.clear()
