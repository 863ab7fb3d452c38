"""Requests handled in the requester's task when the only responder is idle.

The fast path must be invisible: the same replies, errors, counts, taps, deadlines,
cancellation, concurrency limits and supervision as a hand-over to a worker.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import time

import anyio
import pytest

from bus import Actor, Bus, BusClosed, Context, Envelope, RemoteError, RequestTimeout, handler

from .messages import PING, RPC, Ping, Pong

pytestmark = pytest.mark.anyio


@pytest.mark.local_only(
    "inline handling is the local transport's shortcut; over NATS every request goes "
    "through the server"
)
async def test_an_idle_sole_responder_runs_in_the_requesters_task(bus: Bus) -> None:
    seen: list[asyncio.Task[object] | None] = []

    async def echo(msg: Ping) -> Pong:
        seen.append(asyncio.current_task())
        return Pong(n=msg.n)

    bus.subscribe(RPC, echo)
    assert await bus.request(RPC, Ping(n=1)) == Pong(n=1)
    assert seen == [asyncio.current_task()]
    stats = bus.stats()
    assert (stats.published, stats.fanout, stats.delivered, stats.in_flight) == (1, 1, 1, 0)
    assert (stats.requests, stats.replies) == (1, 1)
    assert stats.balanced


async def test_a_busy_responder_gets_the_request_through_its_buffer(bus: Bus) -> None:
    release = anyio.Event()
    tasks: list[asyncio.Task[object] | None] = []

    async def slow(msg: Ping) -> Pong:
        tasks.append(asyncio.current_task())
        if msg.n == 0:
            await release.wait()
        return Pong(n=msg.n)

    bus.subscribe(RPC, slow)  # concurrency 1
    async with anyio.create_task_group() as tg:
        tg.start_soon(bus.request, RPC, Ping(n=0))
        await anyio.wait_all_tasks_blocked()
        waiting = asyncio.ensure_future(bus.request(RPC, Ping(n=1)))
        await anyio.wait_all_tasks_blocked()
        assert bus.stats().subscriptions[0].pending == 1  # queued: the one slot is taken
        release.set()
        assert await waiting == Pong(n=1)
    assert tasks[1] is not waiting  # a worker handled the queued one
    assert bus.stats().balanced


async def test_the_concurrency_limit_holds_across_inline_and_worker_handling(bus: Bus) -> None:
    running = peak = 0

    async def work(msg: Ping) -> Pong:
        nonlocal running, peak
        running += 1
        peak = max(peak, running)
        await anyio.sleep(0.001 * (msg.n % 3))
        running -= 1
        return Pong(n=msg.n)

    bus.subscribe(RPC, work, concurrency=3)
    answers: dict[int, Pong] = {}

    async def ask(n: int) -> None:
        answers[n] = await bus.request(RPC, Ping(n=n))

    async with anyio.create_task_group() as tg:
        for n in range(60):
            tg.start_soon(ask, n)
    assert answers == {n: Pong(n=n) for n in range(60)}
    assert peak == 3
    stats = bus.stats()
    assert stats.delivered == 60 and stats.balanced


@pytest.mark.local_only("inline handling: local only")
async def test_a_deadline_cancels_the_inline_handler_and_leaves_the_caller_usable(
    bus: Bus,
) -> None:
    outcome: list[str] = []

    async def hang(msg: Ping) -> Pong:
        try:
            await anyio.sleep(10)
        except BaseException:
            outcome.append("cancelled")
            raise
        return Pong(n=msg.n)

    bus.subscribe(RPC, hang)
    started = time.monotonic()
    with pytest.raises(RequestTimeout):
        await bus.request(RPC, Ping(n=1), timeout=0.05)
    assert time.monotonic() - started >= 0.05  # a deadline never fires early
    assert outcome == ["cancelled"]
    task = asyncio.current_task()
    assert task is not None and task.cancelling() == 0
    await anyio.sleep(0.01)  # no stray cancellation left for this task
    stats = bus.stats()
    assert (stats.timeouts, stats.cancelled, stats.in_flight) == (1, 1, 0)


async def test_cancelling_the_requester_cancels_the_inline_handler(bus: Bus) -> None:
    outcome: list[str] = []
    entered = anyio.Event()

    async def hang(msg: Ping) -> Pong:
        entered.set()
        try:
            await anyio.sleep(10)
        except BaseException:
            outcome.append("cancelled")
            raise
        return Pong(n=msg.n)

    bus.subscribe(RPC, hang)
    with anyio.move_on_after(5) as scope:
        async with anyio.create_task_group() as tg:
            tg.start_soon(bus.request, RPC, Ping(n=1))
            await entered.wait()
            tg.cancel_scope.cancel()
    assert not scope.cancelled_caught
    assert outcome == ["cancelled"]
    stats = bus.stats()
    assert (stats.cancelled, stats.in_flight, stats.timeouts) == (1, 0, 0)


async def test_closing_the_bus_interrupts_an_inline_handler() -> None:
    entered = anyio.Event()
    outcome: list[str] = []

    async def hang(msg: Ping) -> Pong:
        entered.set()
        try:
            await anyio.sleep(10)
        except BaseException:
            outcome.append("cancelled")
            raise
        return Pong(n=msg.n)

    async with Bus("inline-close", close_timeout=0.05) as bus:
        bus.subscribe(RPC, hang)
        errors: list[BaseException] = []

        async def ask() -> None:
            try:
                await bus.request(RPC, Ping(n=1), timeout=30)
            except BusClosed as exc:
                errors.append(exc)

        async with anyio.create_task_group() as tg:
            tg.start_soon(ask)
            await entered.wait()
            report = await bus.close()
    assert len(errors) == 1
    assert outcome == ["cancelled"]
    assert report.failed_requests == 1 and report.interrupted == 1


async def test_an_inline_failure_is_replied_dead_lettered_and_supervised(bus: Bus) -> None:
    class Flaky(Actor):
        supervision = "restart"

        def __init__(self) -> None:
            super().__init__("flaky")
            self.starts = 0

        async def on_start(self) -> None:
            self.starts += 1

        @handler(RPC)
        async def answer(self, msg: Ping) -> Pong:
            if msg.n < 0:
                raise ValueError("negative")
            return Pong(n=msg.n)

    actor = await bus.add(Flaky())
    with pytest.raises(RemoteError, match="negative"):
        await bus.request(RPC, Ping(n=-1))
    assert await bus.request(RPC, Ping(n=2)) == Pong(n=2)
    assert actor.starts == 2 and actor.restarts == 1
    stats = bus.stats()
    assert (stats.failed, stats.delivered, stats.dead_lettered) == (1, 1, 1)


async def test_an_inline_handler_may_publish_into_its_own_full_buffer(bus: Bus) -> None:
    seen: list[int] = []

    async def both(msg: Ping, ctx: Context) -> Pong:
        for n in range(3):  # buffer of 1 and no free worker: let in past the bound
            await ctx.publish(PING, Ping(n=n))
        return Pong(n=msg.n)

    class Both(Actor):
        concurrency = 1

        @handler(RPC, buffer=1)
        async def ask(self, msg: Ping, ctx: Context) -> Pong:
            return await both(msg, ctx)

        @handler(PING, buffer=1)
        async def note(self, msg: Ping) -> None:
            seen.append(msg.n)

    await bus.add(Both())
    with anyio.fail_after(5):
        assert await bus.request(RPC, Ping(n=7)) == Pong(n=7)
        await bus.drain()
    assert seen == [0, 1, 2]


async def test_taps_see_an_inline_request_and_its_reply(bus: Bus) -> None:
    seen: list[Envelope] = []
    bus.tap(">", seen.append)

    async def echo(msg: Ping) -> Pong:
        return Pong(n=msg.n)

    bus.subscribe(RPC, echo)
    await bus.request(RPC, Ping(n=3))
    request, reply = seen
    assert request.subject == "test.rpc" and request.reply_to is not None
    assert reply.subject == request.reply_to and reply.payload == Pong(n=3)
    assert reply.causation_id == request.id


@pytest.mark.local_only("round robin is the local transport's; the server picks members at random")
async def test_a_queue_group_of_several_still_round_robins_through_workers(bus: Bus) -> None:
    served: list[str] = []

    def member(name: str):  # type: ignore[no-untyped-def]
        async def serve(msg: Ping) -> Pong:
            served.append(name)
            return Pong(n=msg.n)

        return serve

    bus.subscribe(RPC, member("a"), queue="q")
    bus.subscribe(RPC, member("b"), queue="q")
    for n in range(4):
        await bus.request(RPC, Ping(n=n))
    assert served == ["a", "b", "a", "b"]


async def test_workers_are_started_as_messages_wait_up_to_the_concurrency(bus: Bus) -> None:
    release = anyio.Event()
    running = peak = 0

    async def blocked(msg: Ping) -> None:
        nonlocal running, peak
        running += 1
        peak = max(peak, running)
        await release.wait()
        running -= 1

    sub = bus.subscribe(PING, blocked, concurrency=5)
    assert sub.workers == 1  # not one task per slot up front
    for n in range(12):
        await bus.publish(PING, Ping(n=n))
    await anyio.wait_all_tasks_blocked()
    assert (peak, sub.workers, sub.pending) == (5, 5, 7)
    release.set()
    with anyio.fail_after(5):
        await bus.drain()
    assert sub.workers == 5 and bus.stats().delivered == 12


@pytest.mark.local_only("inline handling: local only")
async def test_requests_to_an_idle_actor_need_no_worker_beyond_the_first(bus: Bus) -> None:
    class Echo(Actor):
        concurrency = 100

        @handler(RPC)
        async def echo(self, msg: Ping) -> Pong:
            await anyio.sleep(0.001)
            return Pong(n=msg.n)

    actor = await bus.add(Echo())
    async with anyio.create_task_group() as tg:
        for n in range(50):
            tg.start_soon(bus.request, RPC, Ping(n=n))
    assert actor.subscriptions[0].workers == 1  # all 50 ran in their requesters' tasks
    assert bus.stats().delivered == 50


async def test_a_request_buffered_behind_an_inline_one_is_served_when_it_times_out(
    bus: Bus,
) -> None:
    async def serve(msg: Ping) -> Pong:
        if msg.n == 0:
            await anyio.sleep(10)
        return Pong(n=msg.n)

    bus.subscribe(RPC, serve)  # concurrency 1: the second waits in the buffer
    first = asyncio.ensure_future(bus.request(RPC, Ping(n=0), timeout=1))  # > any stall
    await anyio.wait_all_tasks_blocked()
    second = asyncio.ensure_future(bus.request(RPC, Ping(n=1), timeout=5))
    await anyio.wait_all_tasks_blocked()
    assert bus.stats().subscriptions[0].pending == 1
    with pytest.raises(RequestTimeout):
        await first
    assert await second == Pong(n=1)  # the worker was woken when the slot came free


async def test_a_request_buffered_behind_an_inline_one_is_served_when_it_is_cancelled(
    bus: Bus,
) -> None:
    async def serve(msg: Ping) -> Pong:
        if msg.n == 0:
            await anyio.sleep(10)
        return Pong(n=msg.n)

    bus.subscribe(RPC, serve)
    first = asyncio.ensure_future(bus.request(RPC, Ping(n=0)))
    await anyio.wait_all_tasks_blocked()
    second = asyncio.ensure_future(bus.request(RPC, Ping(n=1), timeout=5))
    await anyio.wait_all_tasks_blocked()
    first.cancel()
    with pytest.raises(asyncio.CancelledError):
        await first
    assert await second == Pong(n=1)


async def test_an_infinite_timeout_means_no_deadline(bus: Bus) -> None:
    async def echo(msg: Ping) -> Pong:
        await anyio.sleep(0.01)
        return Pong(n=msg.n)

    bus.subscribe(RPC, echo)
    assert await bus.request(RPC, Ping(n=1), timeout=math.inf) == Pong(n=1)
    assert bus.stats().in_flight == 0 and not bus._requests


class Restarting(Actor):
    supervision = "restart"

    def __init__(self) -> None:
        super().__init__("restarting")
        self.ready = True
        self.starts = 0
        self.ran_while_restarting: list[int] = []
        self.resume = asyncio.Event()  # a restart's on_start waits for it
        self.resume.set()

    async def on_start(self) -> None:
        if self.starts:
            await self.resume.wait()
        self.starts += 1
        self.ready = True

    async def on_stop(self) -> None:
        self.ready = False
        await anyio.sleep(0.05)

    @handler(RPC)
    async def serve(self, msg: Ping) -> Pong:
        if not self.ready:
            self.ran_while_restarting.append(msg.n)
        if msg.n == 0:
            raise RuntimeError("boom")
        return Pong(n=msg.n)


async def test_no_request_is_handled_while_its_actor_restarts(bus: Bus) -> None:
    actor = await bus.add(Restarting())
    actor.resume.clear()
    with pytest.raises(RemoteError, match="boom"):
        await bus.request(RPC, Ping(n=0))
    assert not actor.ready  # the error came back at once; the restart is still going on
    asking = asyncio.ensure_future(bus.request(RPC, Ping(n=1)))
    await anyio.wait_all_tasks_blocked()
    assert not asking.done()  # waits for the restart
    actor.resume.set()
    assert await asking == Pong(n=1)
    assert actor.ran_while_restarting == [] and actor.starts == 2


async def test_a_caller_giving_up_does_not_cut_its_actors_restart_short(bus: Bus) -> None:
    actor = await bus.add(Restarting())
    with anyio.move_on_after(0.02), contextlib.suppress(RemoteError):
        await bus.request(RPC, Ping(n=0))
        await anyio.sleep(1)  # given up here, during on_stop
    with anyio.fail_after(5):
        assert await bus.request(RPC, Ping(n=1)) == Pong(n=1)
    assert actor.ready and actor.starts == 2


async def test_close_stops_an_actor_only_after_its_inline_handler_has_finished() -> None:
    log: list[str] = []

    class Cleaner(Actor):
        async def on_stop(self) -> None:
            log.append("on_stop")

        @handler(RPC)
        async def serve(self, msg: Ping) -> Pong:
            try:
                await anyio.sleep(10)
            finally:
                with anyio.CancelScope(shield=True):
                    await anyio.sleep(0.05)  # flushing something
                log.append("handler finished")
            return Pong(n=msg.n)

    async with Bus("cleaner", close_timeout=0.05) as bus:
        await bus.add(Cleaner())
        caller = asyncio.ensure_future(bus.request(RPC, Ping(n=1), timeout=5))
        await anyio.wait_all_tasks_blocked()
        await bus.close()
        with pytest.raises(BusClosed):
            await caller
    assert log == ["handler finished", "on_stop"]


async def test_long_deadlines_share_a_coarse_grid_and_short_ones_fire_on_time(bus: Bus) -> None:
    release = asyncio.Event()

    async def held(msg: Ping) -> Pong:
        await release.wait()
        return Pong(n=msg.n)

    bus.subscribe(RPC, held, concurrency=200)
    asking = [asyncio.ensure_future(bus.request(RPC, Ping(n=n), timeout=300)) for n in range(200)]
    await anyio.wait_all_tasks_blocked()
    # five-minute deadlines sit on a 1 s grid: one or two timers, not one per 10 ms
    assert len(bus._deadlines.buckets) <= 2
    release.set()
    assert [p.n for p in await asyncio.gather(*asking)] == list(range(200))


async def test_a_deadline_bucket_goes_when_its_time_comes(bus: Bus) -> None:
    async def slow(msg: Ping) -> Pong:
        await anyio.sleep(10)
        return Pong(n=msg.n)

    bus.subscribe(RPC, slow)
    with pytest.raises(RequestTimeout):
        await bus.request(RPC, Ping(n=1), timeout=0.05)
    await anyio.sleep(0.05)  # past the 10 ms grid's last tick
    assert not bus._deadlines.buckets
