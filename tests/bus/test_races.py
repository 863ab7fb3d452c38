"""Cancellation, abandonment and shutdown races: each test pins a bug a review found."""

from __future__ import annotations

import asyncio
import contextlib
import random

import anyio
import pytest

from bus import (
    DEAD_LETTERS,
    Actor,
    Bus,
    BusClosed,
    Context,
    DeadLetter,
    Message,
    RemoteError,
    RequestTimeout,
    Topic,
    handler,
)

from .messages import PING, RPC, Ping, Pong

pytestmark = pytest.mark.anyio


@pytest.mark.local_only("counts a publisher-side overflow as it happens: local only")
async def test_one_overflow_of_a_catch_all_drop_oldest_drops_one_message(bus: Bus) -> None:
    gate = anyio.Event()

    async def everything(msg: Message) -> None:
        await gate.wait()

    sub = bus.subscribe(Topic(">", Message), everything, buffer=4, policy="drop_oldest")
    await bus.publish(PING, Ping(n=0))
    await anyio.sleep(0.01)  # the worker holds 0
    for n in range(1, 5):
        await bus.publish(PING, Ping(n=n))  # the buffer holds 1..4
    await bus.publish(PING, Ping(n=5))  # one overflow: 1 goes, its dead letter is not let in
    assert [env.payload.n for env in sub._buffer] == [2, 3, 4, 5]
    assert sub.dropped == 2  # message 1, and the dead letter that found no room
    gate.set()
    await bus.drain()
    assert bus.stats().balanced


async def test_a_handler_raising_cancelled_error_on_its_own_is_a_failure(bus: Bus) -> None:
    calls: list[int] = []

    async def awaits_a_cancelled_future(msg: Ping) -> Pong:
        calls.append(msg.n)
        if msg.n == 1:
            future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            future.cancel()
            await future  # raises CancelledError, yet nobody cancelled this handler
        return Pong(n=msg.n)

    bus.subscribe(RPC, awaits_a_cancelled_future)
    with pytest.raises(RemoteError) as info:
        await bus.request(RPC, Ping(n=1))
    assert info.value.remote_type == "CancelledError"
    assert await bus.request(RPC, Ping(n=2)) == Pong(n=2)  # the worker is still alive
    assert calls == [1, 2]
    assert bus.stats().failed == 1


async def test_cancelled_publishers_and_stream_readers_leave_nothing_behind(bus: Bus) -> None:
    gate = anyio.Event()

    async def stuck(msg: Ping) -> None:
        await gate.wait()

    sub = bus.subscribe(PING, stuck, buffer=1)
    await bus.publish(PING, Ping(n=0))
    await anyio.sleep(0.01)
    await bus.publish(PING, Ping(n=1))  # full
    for _ in range(50):
        with anyio.move_on_after(0.001):
            await bus.publish(PING, Ping(n=2))
    assert len(sub._putters) == 0 and sub.waiting_publishers == 0
    async with bus.stream(PING, queue="other") as stream:
        for _ in range(50):
            with anyio.move_on_after(0.001):
                await stream.__anext__()
        assert len(stream.subscription._waiters) == 0
    gate.set()
    await bus.drain()
    stats = bus.stats()
    assert stats.balanced
    assert stats.subjects["test.ping"].fanout == stats.fanout


async def test_the_books_balance_during_a_restart_and_as_taps_see_them() -> None:
    seen_balanced: list[bool] = []

    class Restarting(Actor):
        supervision = "restart"

        @handler(PING)
        async def boom(self, msg: Ping) -> None:
            raise RuntimeError("boom")

        async def on_stop(self) -> None:
            seen_balanced.append(self.bus.stats().balanced)

    async with Bus() as bus:
        bus.tap(">", lambda env: seen_balanced.append(bus.stats().balanced))
        bus.subscribe(DEAD_LETTERS, lambda d: None)
        await bus.add(Restarting())
        await bus.publish(PING, Ping(n=1))
        await bus.drain()
    assert seen_balanced and all(seen_balanced)


@pytest.mark.local_only("a publisher waiting for room: local only")
async def test_a_publisher_resumed_after_a_stream_closed_is_still_counted(bus: Bus) -> None:
    async with anyio.create_task_group() as tg:
        async with bus.stream(PING, buffer=1):
            await bus.publish(PING, Ping(n=1))  # fills the stream's buffer
            tg.start_soon(bus.publish, PING, Ping(n=2))
            await anyio.sleep(0.01)  # the publisher waits for room
        bus.stats()  # the stream is retired here, with its publisher still waiting
    await bus.drain()
    stats = bus.stats()
    assert stats.subjects["test.ping"].fanout == stats.fanout == 2
    assert stats.dropped == 2 and stats.dead_lettered == 2  # both "unsubscribed"
    assert stats.balanced


@pytest.mark.local_only(
    "over NATS a request still on the wire when its requester gives up is not known to be "
    "abandoned when it arrives: it is handled, and its reply counted as late"
)
async def test_copies_of_abandoned_requests_are_skipped_and_forgotten(bus: Bus) -> None:
    gate = anyio.Event()
    ran: list[int] = []

    async def slow(msg: Ping) -> Pong:
        await gate.wait()
        ran.append(msg.n)
        return Pong(n=msg.n)

    bus.subscribe(RPC, slow, buffer=2_000)
    await bus.publish(RPC, Ping(n=-1))  # a plain publish occupies the worker
    await anyio.sleep(0.01)
    results = await asyncio.gather(
        *(bus.request(RPC, Ping(n=n), timeout=0.05) for n in range(1_500)),
        return_exceptions=True,
    )
    assert all(isinstance(r, RequestTimeout) for r in results)
    assert len(bus._abandoned) == 1_500
    gate.set()
    await bus.drain()
    assert ran == [-1]
    assert bus._abandoned == {}
    assert bus.stats().cancelled == 1_500


async def test_a_remote_error_does_not_cancel_the_other_responders(bus: Bus) -> None:
    finished: list[str] = []

    async def fast(msg: Ping) -> Pong:
        raise ValueError("fast failed")

    async def slow(msg: Ping) -> Pong:
        await anyio.sleep(0.02)
        finished.append("slow")
        return Pong(n=1)

    bus.subscribe(RPC, fast)
    bus.subscribe(RPC, slow)
    with pytest.raises(RemoteError):
        await bus.request(RPC, Ping(n=1))
    await bus.drain()
    assert finished == ["slow"]


async def test_publishers_waiting_for_room_at_close_get_bus_closed() -> None:
    outcomes: list[str] = []
    async with Bus(close_timeout=0.05) as bus:

        async def hang(msg: Ping) -> None:
            await anyio.sleep(100)

        bus.subscribe(PING, hang, buffer=1)
        await bus.publish(PING, Ping(n=0))
        await anyio.sleep(0.01)
        await bus.publish(PING, Ping(n=1))  # full

        async def publish(n: int) -> None:
            try:
                await bus.publish(PING, Ping(n=n))
                outcomes.append("returned")
            except BusClosed:
                outcomes.append("BusClosed")

        async with anyio.create_task_group() as tg:
            for n in range(2, 5):
                tg.start_soon(publish, n)
            await anyio.sleep(0.01)
            report = await bus.close()
    assert outcomes == ["BusClosed"] * 3
    assert report.unprocessed == 1 + 3 and report.interrupted == 1
    stats = bus.stats()
    assert stats.unprocessed == 4 and stats.balanced


async def test_a_handler_feeding_its_own_full_buffer_through_a_child_task_is_let_in(
    bus: Bus,
) -> None:
    out: list[str] = []

    async def relay(msg: Ping, ctx: Context) -> None:
        if msg.n < 2:
            # asyncio.wait_for runs the publish in another task on Python 3.11
            await asyncio.wait_for(ctx.publish(PING, Ping(n=msg.n + 10)), 1)
            out.append("ok")

    bus.subscribe(PING, relay, buffer=1)
    await bus.publish(PING, Ping(n=0))
    await bus.publish(PING, Ping(n=1))
    await bus.drain(timeout=3)
    assert out == ["ok", "ok"]


async def test_dead_letters_are_counted_only_when_published(bus: Bus) -> None:
    dead: list[DeadLetter] = []
    bus.subscribe(DEAD_LETTERS, dead.append)

    async def broken(msg: Ping) -> None:
        raise RuntimeError("x")

    bus.subscribe(PING, broken)
    await bus.publish(PING, Ping(n=1))
    await bus.drain()
    assert bus.stats().dead_lettered == len(dead) == 1


A_TOPIC = Topic("storm.a", Ping, reply=Pong)
B_TOPIC = Topic("storm.b", Ping, reply=Pong)
C_TOPIC = Topic("storm.c", Ping, reply=Pong)


async def test_a_storm_of_nested_inline_requests_timing_out_and_cancelled_balances() -> None:
    """Requests nested three deep (inline and through workers, into an actor whose two
    handlers share its limiter), with random deadlines and callers giving up: every
    request settles, the counts balance, and the bus answers afterwards."""
    rng = random.Random(1)
    calm = [False]  # after the storm: no more random short deadlines

    def deadline(*choices: float) -> float:
        return 5.0 if calm[0] else rng.choice(choices)

    class Two(Actor):
        concurrency = 2

        @handler(B_TOPIC)
        async def b(self, msg: Ping) -> Pong:
            await anyio.sleep(rng.random() * 0.02)
            return Pong(n=msg.n)

        @handler(C_TOPIC)
        async def c(self, msg: Ping, ctx: Context) -> Pong:
            await anyio.sleep(rng.random() * 0.02)
            return await ctx.request(B_TOPIC, msg, timeout=deadline(0.005, 0.5))

    async def a(msg: Ping, ctx: Context) -> Pong:
        await anyio.sleep(rng.random() * 0.01)
        return await ctx.request(C_TOPIC, msg, timeout=deadline(0.01, 0.5))

    async with Bus("storm", close_timeout=5) as bus:
        bus.subscribe(A_TOPIC, a, concurrency=3)
        await bus.add(Two())

        async def one(n: int) -> None:
            with anyio.move_on_after(rng.choice([0.005, 0.02, 5])):
                with contextlib.suppress(RemoteError, RequestTimeout):
                    await bus.request(A_TOPIC, Ping(n=n), timeout=rng.choice([0.01, 0.03, 2]))

        async with anyio.create_task_group() as tg:
            for n in range(600):
                tg.start_soon(one, n)
                if n % 20 == 0:
                    await anyio.sleep(0.001)
        await bus.drain(5)
        stats = bus.stats()
        assert stats.in_flight == 0 and stats.balanced, stats
        for sub in bus._router.subscriptions.values():
            assert sub.running == 0 and not sub._buffer, sub
            assert sub.workers <= sub.max_workers
        calm[0] = True
        assert await bus.request(A_TOPIC, Ping(n=-1), timeout=10) == Pong(n=-1)
