"""Starting, draining and closing the bus."""

from __future__ import annotations

import anyio
import anyio.lowlevel
import pytest

from bus import Actor, Bus, BusClosed, Context, DrainTimeout, Topic, handler

from .messages import PING, Other, Ping

pytestmark = pytest.mark.anyio


async def test_leaving_the_block_drains_in_flight_work() -> None:
    seen: list[int] = []

    async def slow(msg: Ping) -> None:
        await anyio.sleep(0.01)
        seen.append(msg.n)

    async with Bus() as bus:
        bus.subscribe(PING, slow)
        for n in range(5):
            await bus.publish(PING, Ping(n=n))
    assert seen == [0, 1, 2, 3, 4]
    assert bus.stats().balanced and bus.stats().in_flight == 0


async def test_handlers_may_still_publish_while_the_bus_drains() -> None:
    follow = Topic("test.follow", Other)
    seen: list[str] = []

    async def first(msg: Ping, ctx: Context) -> None:
        await anyio.sleep(0.01)
        await ctx.publish(follow, Other(text="after close began"))

    async with Bus() as bus:
        bus.subscribe(PING, first)
        bus.subscribe(follow, lambda m: seen.append(m.text))
        await bus.publish(PING, Ping(n=1))
        async with anyio.create_task_group() as tg:
            tg.start_soon(bus.close)
            await anyio.lowlevel.checkpoint()  # close has begun and is draining
            with pytest.raises(BusClosed):
                await bus.publish(PING, Ping(n=2))  # from outside: refused at once
        report = await bus.close()  # idempotent: the same report
    assert seen == ["after close began"]
    assert report.drained and report.unprocessed == 0


async def test_close_with_a_deadline_cancels_and_reports_what_was_left() -> None:
    outcome: list[str] = []

    async def stuck(msg: Ping) -> None:
        try:
            await anyio.sleep(10)
        except BaseException:
            outcome.append(f"interrupted {msg.n}")
            raise

    async with Bus() as bus:
        bus.subscribe(PING, stuck, name="stuck")
        for n in range(4):
            await bus.publish(PING, Ping(n=n))
        with anyio.fail_after(2):
            report = await bus.close(timeout=0.05)
        again = await bus.close()
    assert again is report
    assert not report.drained
    assert (report.unprocessed, report.interrupted) == (3, 1)
    assert report.by_subscription == {"stuck": 4}
    assert outcome == ["interrupted 0"]
    stats = bus.stats()
    assert (stats.unprocessed, stats.cancelled, stats.in_flight) == (3, 1, 0)
    assert stats.balanced


async def test_an_exception_in_the_body_propagates_unwrapped_and_stops_the_workers() -> None:
    cancelled = anyio.Event()

    async def stuck(msg: Ping) -> None:
        try:
            await anyio.sleep(10)
        finally:
            cancelled.set()

    with anyio.fail_after(2), pytest.raises(ZeroDivisionError):
        async with Bus(close_timeout=30) as bus:
            bus.subscribe(PING, stuck)
            await bus.publish(PING, Ping(n=1))
            await anyio.sleep(0.01)
            1 / 0  # noqa: B018
    assert cancelled.is_set()


async def test_closing_inside_the_block_does_not_cancel_the_body() -> None:
    async with Bus() as bus:
        await bus.close()
        await anyio.sleep(0.01)  # would raise CancelledError if close cancelled the body
        reached = True
    assert reached


async def test_drain_with_a_deadline_raises_drain_timeout() -> None:
    async def stuck(msg: Ping) -> None:
        await anyio.sleep(10)

    async with Bus(close_timeout=0) as bus:
        bus.subscribe(PING, stuck)
        await bus.publish(PING, Ping(n=1))
        with pytest.raises(DrainTimeout, match=r"1 delivery pending \(.*stuck#\d+: 1\)") as info:
            await bus.drain(timeout=0.02)
        assert info.value.pending == 1 and list(info.value.busy.values()) == [1]


async def test_a_bus_starts_only_once() -> None:
    bus = Bus()
    async with bus:
        pass
    with pytest.raises(RuntimeError, match="only once"):
        async with bus:
            pass


def test_bad_settings_are_refused() -> None:
    with pytest.raises(ValueError, match=r"unknown transport 'amqp://x'.*nats://host:port"):
        Bus(transport="amqp://x")
    with pytest.raises(ValueError, match="request_timeout"):
        Bus(request_timeout=0)


async def test_closing_a_bus_that_never_started_is_an_error() -> None:
    with pytest.raises(BusClosed, match="never started"):
        await Bus().close()


async def test_close_wakes_a_drain_waiting_on_an_unread_stream() -> None:
    async with Bus() as bus, bus.stream(PING), anyio.create_task_group() as tg:
        await bus.publish(PING, Ping(n=1))  # nobody reads it
        drained = anyio.Event()

        async def wait_for_drain() -> None:
            await bus.drain()
            drained.set()

        tg.start_soon(wait_for_drain)
        await anyio.sleep(0.01)
        report = await bus.close(timeout=0)
        assert report.unprocessed == 1
        with anyio.fail_after(5):
            await drained.wait()


async def test_the_drain_deadline_holds_under_steady_traffic() -> None:
    import time

    async with Bus() as bus, anyio.create_task_group() as tg:

        async def chain(msg: Ping, ctx: Context) -> None:
            await anyio.sleep(0.02)
            # published from a task of its own, so in_flight touches 0 between messages
            tg.start_soon(ctx.publish, PING, Ping(n=msg.n + 1))

        bus.subscribe(PING, chain)
        await bus.publish(PING, Ping(n=0))
        started = time.monotonic()
        with anyio.fail_after(10):
            report = await bus.close(timeout=0.2)
        assert time.monotonic() - started < 5.0  # (traffic never stops: it would hold forever)
        assert not report.drained


class _Stoppy(Actor):
    def __init__(self, name: str, *, fail: bool = False) -> None:
        super().__init__(name)
        self.fail = fail
        self.stops = 0
        self.running_at_stop: int | None = None

    @handler(PING)
    async def on_ping(self, msg: Ping) -> None:
        await anyio.sleep(10)

    async def on_stop(self) -> None:
        self.stops += 1
        self.running_at_stop = self.subscriptions[0].running
        if self.fail:
            raise RuntimeError("cannot stop")


async def test_an_actor_whose_on_stop_raises_is_reported_and_the_others_still_stop() -> None:
    bad, good = _Stoppy("bad", fail=True), _Stoppy("good")
    with anyio.fail_after(2):
        async with Bus() as bus:
            await bus.add(good)
            await bus.add(bad)
            report = await bus.close()
    assert report.actor_errors == {"bad": "RuntimeError: cannot stop"}
    assert (bad.stops, good.stops) == (1, 1)


async def test_concurrent_closes_share_one_shutdown_and_on_stop_runs_after_handlers() -> None:
    actor = _Stoppy("a")
    async with Bus() as bus:
        await bus.add(actor)
        await bus.publish(PING, Ping(n=1))
        await anyio.sleep(0.01)  # the handler is running
        reports = []

        async def close() -> None:
            reports.append(await bus.close(timeout=0.05))

        async with anyio.create_task_group() as tg:
            tg.start_soon(close)
            tg.start_soon(close)
    first, second = reports
    assert first is second and first.interrupted == 1
    assert actor.stops == 1
    assert actor.running_at_stop == 0  # workers were stopped before on_stop ran


async def test_cancelling_the_owner_while_it_drains_does_not_hang() -> None:
    cancelled_in_time = False
    with anyio.move_on_after(0.1) as scope:
        async with Bus(close_timeout=30) as bus:

            async def slow(msg: Ping) -> None:
                await anyio.sleep(3600)

            bus.subscribe(PING, slow)
            await bus.publish(PING, Ping(n=1))
            await anyio.sleep(0.01)
        # leaving the block drains for up to 30 s; the scope's deadline cancels that
    cancelled_in_time = scope.cancelled_caught
    assert cancelled_in_time
    assert bus.stats().cancelled == 1


async def test_the_report_counts_handlers_of_unsubscribed_subscriptions() -> None:
    async with Bus() as bus:

        async def slow(msg: Ping) -> None:
            await anyio.sleep(10)

        sub = bus.subscribe(PING, slow)
        await bus.publish(PING, Ping(n=1))
        await anyio.sleep(0.01)
        sub.unsubscribe()  # its handler is still running
        report = await bus.close(timeout=0)
    assert report.interrupted == 1
    assert bus.stats().cancelled == 1 and bus.stats().balanced


async def test_adding_an_actor_to_a_closed_bus_is_refused() -> None:
    async with Bus() as bus:
        pass
    with pytest.raises(BusClosed, match="cannot add actor 'late'"):
        await bus.add(_Stoppy("late"))
