"""Slots: the limit an actor's handlers share — fair hand-over, no slot lost to a
cancellation, and a free slot taken without a coroutine."""

from __future__ import annotations

import asyncio

import pytest

from bus import Actor, Bus, Context, Message, Topic, handler
from bus._slots import Slots

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


async def test_a_freed_slot_goes_to_the_longest_waiter_not_a_newcomer() -> None:
    slots = Slots(1)
    await slots.acquire()
    order: list[str] = []

    async def waiter(name: str) -> None:
        await slots.acquire()
        order.append(name)
        await asyncio.sleep(0)
        slots.release()

    first = asyncio.create_task(waiter("first"))
    second = asyncio.create_task(waiter("second"))
    await asyncio.sleep(0)
    assert slots.locked()
    slots.release()  # handed to "first" ...
    assert slots.locked()  # ... so a newcomer cannot take it in between
    await asyncio.gather(first, second)
    assert order == ["first", "second"]
    assert slots.free == 1 and not slots.locked()


async def test_a_cancelled_waiter_loses_no_slot() -> None:
    slots = Slots(1)
    await slots.acquire()
    waiting = asyncio.create_task(slots.acquire())
    await asyncio.sleep(0)
    waiting.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiting
    slots.release()
    assert slots.free == 1 and not slots.locked()

    # handed a slot and cancelled in the same turn: the slot is passed on, not lost
    await slots.acquire()
    handed = asyncio.create_task(slots.acquire())
    behind = asyncio.create_task(slots.acquire())
    await asyncio.sleep(0)
    slots.release()  # settles handed's future ...
    handed.cancel()  # ... which is cancelled before it runs
    with pytest.raises(asyncio.CancelledError):
        await handed
    await asyncio.wait_for(behind, 1)  # the slot went on to the next waiter
    slots.release()
    assert slots.free == 1


async def test_a_waiter_cancelled_as_a_slot_frees_raises_its_cancellation() -> None:
    slots = Slots(1)
    await slots.acquire()
    waiting = asyncio.create_task(slots.acquire())
    await asyncio.sleep(0)
    waiting.cancel()  # its future is cancelled, its task has not run yet ...
    slots.release()  # ... and the release passes it over, in the same turn
    with pytest.raises(asyncio.CancelledError):
        await waiting
    assert slots.free == 1 and not slots.locked()


def test_take_is_for_a_free_slot_only() -> None:
    slots = Slots(2)
    slots.take()
    slots.take()
    assert slots.locked()
    with pytest.raises(AssertionError):
        slots.take()
    with pytest.raises(ValueError):
        Slots(0)
    assert "free=0" in repr(slots)


class Hit(Message, frozen=True):
    n: int


class Count(Message, frozen=True):
    running: int


A = Topic("slots.a", Hit, reply=Count)
B = Topic("slots.b", Hit, reply=Count)


class Pair(Actor):
    """Two handlers sharing a limit of 2: never more than 2 run, across both topics."""

    concurrency = 2

    def __init__(self) -> None:
        super().__init__("pair")
        self.running = self.peak = 0

    async def _work(self) -> Count:
        self.running += 1
        self.peak = max(self.peak, self.running)
        try:
            await asyncio.sleep(0.001)
            return Count(running=self.running)
        finally:
            self.running -= 1

    @handler(A)
    async def on_a(self, hit: Hit, ctx: Context) -> Count:
        return await self._work()

    @handler(B)
    async def on_b(self, hit: Hit, ctx: Context) -> Count:
        return await self._work()


async def test_an_actors_handlers_share_its_limit_inline_and_in_workers() -> None:
    async with Bus("slots") as bus:
        pair = await bus.add(Pair())
        replies = await asyncio.gather(
            *(bus.request(A if n % 2 else B, Hit(n=n)) for n in range(200))
        )
        assert len(replies) == 200
        assert pair.peak == 2  # both slots used, never a third
        assert all(1 <= r.running <= 2 for r in replies)
        limiter = pair.subscriptions[0]._limiter
        assert limiter is not None and limiter.free == 2  # every slot given back


class Slow(Message, frozen=True):
    n: int


class Quick(Message, frozen=True):
    n: int


SLOW = Topic("slots.slow", Slow)
QUICK = Topic("slots.quick", Quick)


class OneAtATime(Actor):
    concurrency = 1

    def __init__(self) -> None:
        super().__init__("one")

    @handler(SLOW)
    async def slow(self, message: Slow) -> None:
        await asyncio.sleep(10)

    @handler(QUICK)
    async def quick(self, message: Quick) -> None:
        pass


async def test_a_forced_close_with_a_handler_waiting_for_the_actors_slot() -> None:
    bus = Bus("slots-close")
    async with bus:
        await bus.add(OneAtATime())
        await bus.publish(SLOW, Slow(n=1))  # holds the actor's only slot
        await asyncio.sleep(0.01)
        await bus.publish(QUICK, Quick(n=1))  # its worker waits for that slot
        await asyncio.sleep(0.01)
        report = await bus.close(timeout=0.05)
    # both cut short and counted (the one waiting for the slot too); the close raises
    # nothing
    assert report.interrupted == 2 and report.unprocessed == 0
    assert report.by_subscription == {"one.slow": 1, "one.quick": 1}
