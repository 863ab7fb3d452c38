"""Worker threads for sync tools, holding each call's slot until its thread is done.

Python cannot stop a thread: a sync call abandoned at its time limit (or by its caller)
runs on. anyio's ``abandon_on_cancel`` gives the call's slot back at once, so a tool of
concurrency 1 could run many times at once. Here the slot is released from the thread's
own completion (or when the call is dropped before it started), and the threads still
running past their call are counted.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

import anyio


class ToolBusy(Exception):
    """Every slot of the tool is held by calls still running past their time limit."""


class ToolTimedOut(Exception):
    """The call did not finish within its time limit (it runs on in its thread)."""


class ToolThreads:
    """The thread pool of one executor, started and stopped with it."""

    def __init__(self, max_threads: int) -> None:
        self.max_threads = max_threads
        self.running = 0  # threads busy, including calls already abandoned
        self._pool: ThreadPoolExecutor | None = None

    def start(self) -> None:
        if self._pool is None:
            self._pool = ThreadPoolExecutor(self.max_threads, thread_name_prefix="hivebus-tool")

    def stop(self) -> None:
        """Drop calls not yet started; running ones finish in their threads."""
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._pool = None

    async def run(
        self, call: Callable[[], Any], limiter: anyio.CapacityLimiter | None, timeout: float
    ) -> Any:
        """Run ``call`` in a thread within ``timeout`` seconds, waiting for a slot of
        ``limiter`` included (raises :class:`ToolBusy` if none came free,
        :class:`ToolTimedOut` if the call did not finish)."""
        self.start()
        assert self._pool is not None
        loop = asyncio.get_running_loop()
        token = object()
        deadline = anyio.current_time() + timeout
        with anyio.CancelScope(deadline=deadline) as waiting:
            if limiter is not None:
                await limiter.acquire_on_behalf_of(token)
        if waiting.cancelled_caught:
            raise ToolBusy
        self.running += 1

        def finished() -> None:  # on the event loop, once the thread is done with it
            self.running -= 1
            if limiter is not None:
                limiter.release_on_behalf_of(token)

        def done(_: Future[Any]) -> None:  # in the thread, or where it was cancelled
            with contextlib.suppress(RuntimeError):  # a closed loop: nothing to release
                loop.call_soon_threadsafe(finished)

        try:
            future = self._pool.submit(contextvars.copy_context().run, call)
        except BaseException:
            finished()
            raise
        future.add_done_callback(done)
        with anyio.CancelScope(deadline=deadline):
            return await asyncio.wrap_future(future)
        raise ToolTimedOut
