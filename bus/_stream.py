"""The iterator form of a subscription: ``async with bus.stream(topic) as messages``."""

from __future__ import annotations

import asyncio
import contextlib
from types import TracebackType
from typing import TYPE_CHECKING, Generic, TypeVar

from ._context import Context
from .errors import BusClosed

if TYPE_CHECKING:
    from ._bus import Bus
    from ._subscription import Subscription

T = TypeVar("T")


class Stream(Generic[T]):
    """Messages of one subscription, pulled by ``async for`` instead of pushed to a handler.

    The subscription exists while the ``async with`` block runs. A message counts as
    delivered when the iterator yields it; messages still buffered when the block exits
    are dead-lettered as ``unsubscribed``. Iteration ends when the bus closes.
    """

    def __init__(self, bus: Bus, sub: Subscription) -> None:
        self._bus = bus
        self._sub = sub
        self._entered = False
        self.context: Context | None = None  # the context of the message last yielded

    @property
    def subscription(self) -> Subscription:
        return self._sub

    async def __aenter__(self) -> Stream[T]:
        bus = self._bus
        if not bus._running:
            raise BusClosed("cannot open a stream: the bus is not running")
        if self._entered:
            raise RuntimeError("a Stream can be entered only once")
        self._entered = True
        bus._router.add_subscription(self._sub)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if not self._sub.closed:
            self._sub.unsubscribe()

    def __aiter__(self) -> Stream[T]:
        if not self._entered:
            raise RuntimeError("use 'async with bus.stream(topic) as messages:' to iterate")
        return self

    async def __anext__(self) -> T:
        sub = self._sub
        buffer = sub._buffer
        while True:
            while not buffer:
                if sub.closed:
                    raise StopAsyncIteration
                waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
                sub._waiters.append(waiter)
                try:
                    await waiter
                finally:
                    if not waiter.done():
                        waiter.cancel()
                    if waiter.cancelled():
                        with contextlib.suppress(ValueError):
                            sub._waiters.remove(waiter)
            env = buffer.popleft()
            if sub._putters:
                sub._wake_putter()
            if isinstance(env.payload, sub.topic.type):
                break
            sub._refuse_type(env)  # another topic's type on a subject we match
        sub.delivered += 1
        self.context = Context(self._bus, env, sub)
        self._bus._settle()
        payload: T = env.payload
        return payload

    def pending(self) -> int:
        """Messages buffered and not yet taken."""
        return len(self._sub._buffer)
