"""Starting, draining and closing the bus."""

from __future__ import annotations

import anyio
import anyio.lowlevel
import pytest

from bus import Bus, BusClosed, Context, DrainTimeout, Topic

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
        with pytest.raises(DrainTimeout, match="1 deliveries pending") as info:
            await bus.drain(timeout=0.02)
        assert info.value.pending == 1


async def test_a_bus_starts_only_once() -> None:
    bus = Bus()
    async with bus:
        pass
    with pytest.raises(RuntimeError, match="only once"):
        async with bus:
            pass


def test_bad_settings_are_refused() -> None:
    with pytest.raises(ValueError, match="unknown transport 'nats://x'"):
        Bus(transport="nats://x")
    with pytest.raises(ValueError, match="request_timeout"):
        Bus(request_timeout=0)


async def test_closing_a_bus_that_never_started_is_an_error() -> None:
    with pytest.raises(BusClosed, match="never started"):
        await Bus().close()
