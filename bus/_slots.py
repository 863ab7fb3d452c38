"""The concurrency limit an actor's handlers share: a counting semaphore whose free slot
can be taken without a coroutine (a request handled inline takes one on every call)."""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque


class Slots:
    """``n`` slots, handed over in arrival order: ``release()`` gives a freed slot straight to
    the longest waiter, so a newcomer cannot take it in between (asyncio.Semaphore's
    fairness, without its coroutine for a slot that is free)."""

    __slots__ = ("_free", "_waiters")

    def __init__(self, n: int) -> None:
        if n < 1:
            raise ValueError(f"slots must be >= 1, got {n}")
        self._free = n
        self._waiters: deque[asyncio.Future[None]] = deque()

    @property
    def free(self) -> int:
        return self._free

    def locked(self) -> bool:
        """True if :meth:`acquire` would wait (no free slot, or others wait already)."""
        return self._free <= 0 or bool(self._waiters)

    def take(self) -> None:
        """Take a free slot now; the caller has checked :meth:`locked` is false."""
        assert self._free > 0 and not self._waiters, "take() needs a free slot"
        self._free -= 1

    async def acquire(self) -> None:
        if self._free > 0 and not self._waiters:
            self._free -= 1
            return
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        try:
            await waiter  # release() hands its slot over by settling this
        except BaseException:
            if waiter.done() and not waiter.cancelled():
                self.release()  # handed a slot while being cancelled: pass it on
            else:
                with contextlib.suppress(ValueError):  # (release() may have dropped it)
                    self._waiters.remove(waiter)
            raise

    def release(self) -> None:
        waiters = self._waiters
        while waiters:
            waiter = waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)  # the slot goes to it, never back to the pool
                return
        self._free += 1

    def __repr__(self) -> str:
        return f"Slots(free={self._free}, waiting={len(self._waiters)})"
