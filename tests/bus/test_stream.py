"""Streams: the iterator form of a subscription."""

from __future__ import annotations

import anyio
import pytest

from bus import DEAD_LETTERS, Bus, BusClosed, DeadLetter

from .messages import PING, Ping

pytestmark = pytest.mark.anyio


@pytest.mark.local_only(
    "relies on round robin giving the stream exactly two; the server picks at random, and "
    "what a stream left unread leaves with it (dead-lettered)"
)
async def test_a_stream_takes_part_in_queue_groups(bus: Bus) -> None:
    handled: list[int] = []
    bus.subscribe(PING, lambda m: handled.append(m.n), queue="g")
    async with bus.stream(PING, queue="g") as messages:
        for n in range(4):
            await bus.publish(PING, Ping(n=n))
        streamed = [(await messages.__anext__()).n for _ in range(2)]
    await bus.drain()
    assert sorted(handled + streamed) == [0, 1, 2, 3]


@pytest.mark.local_only("publisher-side policy: local only")
async def test_a_stream_applies_its_policy_when_nobody_reads(bus: Bus) -> None:
    dead: list[DeadLetter] = []
    bus.subscribe(DEAD_LETTERS, dead.append)
    async with bus.stream(PING, buffer=2, policy="drop_oldest") as messages:
        for n in range(5):
            await bus.publish(PING, Ping(n=n))
        assert messages.pending() == 2
        assert [(await messages.__anext__()).n for _ in range(2)] == [3, 4]
    await bus.drain()
    assert [d.envelope.payload.n for d in dead] == [0, 1, 2]


async def test_leftovers_of_a_stream_are_dead_lettered_on_exit(bus: Bus) -> None:
    dead: list[DeadLetter] = []
    bus.subscribe(DEAD_LETTERS, dead.append)
    async with bus.stream(PING, name="reader") as messages:
        await bus.publish(PING, Ping(n=1))
        await bus.publish(PING, Ping(n=2))
        assert (await messages.__anext__()).n == 1
        assert messages.subscription.name == "reader"
    await bus.drain()
    assert [(d.reason, d.subscription, d.envelope.payload.n) for d in dead] == [
        ("unsubscribed", "reader", 2)
    ]
    assert bus.stats().balanced


async def test_a_blocked_publisher_resumes_when_the_reader_catches_up(bus: Bus) -> None:
    async with bus.stream(PING, buffer=1) as messages, anyio.create_task_group() as tg:
        done = anyio.Event()

        async def produce() -> None:
            for n in range(5):
                await bus.publish(PING, Ping(n=n))
            done.set()

        tg.start_soon(produce)
        got = [(await messages.__anext__()).n for _ in range(5)]
        await done.wait()
    assert got == [0, 1, 2, 3, 4]


async def test_a_stream_is_entered_once_and_only_on_a_running_bus() -> None:
    bus = Bus()
    with pytest.raises(BusClosed, match="not running"):
        async with bus.stream(PING):
            pass
    async with bus:
        stream = bus.stream(PING)
        async with stream:
            with pytest.raises(RuntimeError, match="only once"):
                await stream.__aenter__()


async def test_a_stream_never_entered_can_be_unsubscribed(bus: Bus) -> None:
    stream = bus.stream(PING)
    stream.subscription.unsubscribe()
    assert stream.subscription.closed
