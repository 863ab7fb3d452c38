"""Many deadlines on one coarse grid: registering one is a set insert, not a loop timer.

The bus watches every request's deadline with it, and the LLM gateway every attempt's
(in place of aiohttp's per-request timer, which cost a tenth of a request's CPU).
"""

from __future__ import annotations

import asyncio
import math
import sys
from collections.abc import Callable
from typing import Any, Protocol

# The running task of the loop given: asyncio.current_task(loop), one frame less on 3.11,
# where the bus looks it up for every request.
current_task: Callable[[asyncio.AbstractEventLoop], asyncio.Task[Any] | None]
if sys.version_info >= (3, 12):  # in C since 3.12
    current_task = asyncio.current_task
else:  # 3.11's is a Python function around this look-up
    current_task = asyncio.tasks._current_tasks.get  # type: ignore[attr-defined]

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
    at most are alive for each (not one per 10 ms over five minutes). A grid with a
    ``max_width`` trades buckets for lateness: at most ``timeout / max_width`` of them
    (3,000 for five minutes at 0.1 s, still one timer per bucket, not per deadline).
    """

    __slots__ = ("buckets", "max_width")

    def __init__(self, max_width: float | None = None) -> None:
        """``max_width``: the coarsest grid used, in seconds (how late a deadline may fire
        at most, for a caller whose own margin is smaller than 1 % of its timeouts)."""
        if max_width is not None and max_width < GRID_FLOOR:
            raise ValueError(f"max_width must be >= {GRID_FLOOR}s, got {max_width!r}")
        self.buckets: dict[_Key, tuple[asyncio.TimerHandle, set[Expiring]]] = {}
        self.max_width = max_width

    @staticmethod
    def width(timeout: float) -> float:
        """The grid a deadline ``timeout`` seconds away is watched on: 10 ms under 10 s,
        then a power of ten about 1 % of the timeout."""
        # (comparisons, not a logarithm: the common timeouts cost next to nothing, and
        # callers' timeouts are mostly all different, so a cache would only miss)
        if timeout < 100.0:
            return GRID_FLOOR if timeout < 10.0 else 0.1
        if timeout < 10_000.0:
            return 1.0 if timeout < 1000.0 else 10.0
        return 10.0 ** math.floor(math.log10(timeout / 100))

    def watch(
        self, loop: asyncio.AbstractEventLoop, timeout: float, entry: Expiring
    ) -> _Key | None:
        """Call ``entry.expire()`` ``timeout`` seconds from now (up to a grid width later)
        unless :meth:`forget` comes first. ``math.inf`` watches nothing."""
        if timeout < 10.0:  # (width(), inlined for the common timeouts)
            width = GRID_FLOOR
        elif timeout < 1000.0:
            width = 0.1 if timeout < 100.0 else 1.0
        elif timeout == math.inf:
            return None
        else:
            width = self.width(timeout)
        if self.max_width is not None and width > self.max_width:
            width = self.max_width
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


class TaskDeadline:
    """``asyncio.timeout`` for the current task, on a :class:`DeadlineGrid`: when the
    deadline passes, the task is cancelled (with ``uncancel`` bookkeeping as asyncio does).
    No loop timer per use, so it suits code run thousands of times a second::

        deadline = TaskDeadline(grid, 5.0)
        try:
            return await work()
        except asyncio.CancelledError:
            if deadline.expired():
                raise MyTimeout from None
            raise
        finally:
            deadline.stop()

    ``expired()`` is true when the deadline is what cancelled the task, and consumes that
    cancellation; a cancellation from outside in the same loop turn wins (false).
    """

    __slots__ = ("_cancelling", "_fired", "_grid", "_key", "_task")

    def __init__(self, grid: DeadlineGrid, timeout: float) -> None:
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            raise RuntimeError("TaskDeadline needs a running task") from None
        task = current_task(loop)
        if task is None:
            raise RuntimeError("TaskDeadline needs a running task")
        self._task = task
        self._grid = grid
        self._cancelling = task.cancelling()  # cancellations already asked for, from outside
        self._fired = False
        self._key = grid.watch(loop, timeout, self)

    def expire(self) -> None:
        if not self._task.done():
            self._fired = True
            self._task.cancel()

    def expired(self) -> bool:
        if not self._fired:
            return False
        self._fired = False
        return self._task.uncancel() <= self._cancelling

    def stop(self) -> None:
        """Stop watching; undo a cancellation that fired as the work ended anyway."""
        self._grid.forget(self._key, self)
        if self._fired:
            self._fired = False
            self._task.uncancel()
