"""Accounting: per-subject and per-subscription counters, and the balance identity."""

from __future__ import annotations

import anyio
import pytest

from bus import DEAD_LETTERS, Bus, DeadLetter, RemoteError, Topic

from .conftest import local
from .messages import PING, RPC, Ping, Pong

pytestmark = pytest.mark.anyio


async def test_counters_per_subject_and_per_subscription(bus: Bus) -> None:
    other = Topic("test.other", Ping)
    bus.subscribe(PING, lambda m: None, name="a")
    bus.subscribe(PING, lambda m: None, name="b")
    for n in range(3):
        await bus.publish(PING, Ping(n=n))
    await bus.publish(other, Ping(n=0))
    await bus.drain()
    stats = bus.stats()
    unrouted = 1 if local(bus) else 0  # (over NATS only the server knows)
    assert stats.subjects["test.ping"].published == 3
    assert stats.subjects["test.ping"].fanout == 6
    assert stats.subjects["test.other"].unrouted == unrouted
    assert (stats.published, stats.fanout, stats.delivered, stats.unrouted) == (4, 6, 6, unrouted)
    a, b = stats.subscriptions
    assert (a.name, a.pattern, a.received, a.delivered, a.pending, a.running) == (
        "a",
        "test.ping",
        3,
        3,
        0,
        0,
    )
    assert (b.policy, b.buffer, b.concurrency, b.queue) == ("block", 1024, 1, None)


async def test_the_identity_holds_mid_flight_not_only_when_quiescent(bus: Bus) -> None:
    gate, taken = anyio.Event(), anyio.Event()

    async def gated(msg: Ping) -> None:
        taken.set()
        await gate.wait()

    bus.subscribe(PING, gated, buffer=4, policy="drop_newest")
    await bus.publish(PING, Ping(n=0))
    with anyio.fail_after(10):
        await taken.wait()  # the worker took it and waits on the gate
    for n in range(1, 8):
        await bus.publish(PING, Ping(n=n))
    with anyio.fail_after(5):
        while bus.stats().fanout < 8:  # noqa: ASYNC110 - over NATS: until all came back
            await anyio.sleep(0.005)
    mid = bus.stats()
    assert mid.in_flight == 5 and mid.dropped == 3  # 1 running + 4 buffered; 3 dropped
    assert mid.balanced
    gate.set()
    await bus.drain()
    end = bus.stats()
    assert (end.in_flight, end.delivered, end.dropped) == (0, 5, 3)
    assert end.balanced


async def test_failures_and_dead_letters_are_counted(bus: Bus) -> None:
    dead: list[DeadLetter] = []
    bus.subscribe(DEAD_LETTERS, dead.append, name="dead")

    async def broken(msg: Ping) -> Pong:
        raise RuntimeError("nope")

    bus.subscribe(RPC, broken, name="broken")
    for _ in range(2):
        with pytest.raises(RemoteError):
            await bus.request(RPC, Ping(n=1))
    await bus.drain()
    stats = bus.stats()
    assert (stats.failed, stats.dead_lettered, len(dead)) == (2, 2, 2)
    assert stats.subjects["_bus.dead"].published == 2
    assert stats.balanced


async def test_a_failing_dead_letter_subscriber_does_not_loop(bus: Bus) -> None:
    def broken_dead_letter_handler(letter: DeadLetter) -> None:
        raise RuntimeError("the dead-letter log is broken too")

    bus.subscribe(DEAD_LETTERS, broken_dead_letter_handler)

    async def broken(msg: Ping) -> None:
        raise RuntimeError("first failure")

    bus.subscribe(PING, broken)
    await bus.publish(PING, Ping(n=1))
    await bus.drain()
    stats = bus.stats()
    assert stats.failed == 2  # the handler, then the dead-letter handler: and no more
    assert stats.subjects["_bus.dead"].published == 1
    assert stats.balanced


async def test_dead_letters_to_a_full_subscriber_are_dropped_not_waited_for(bus: Bus) -> None:
    gate = anyio.Event()

    async def slow_log(letter: DeadLetter) -> None:
        await gate.wait()

    bus.subscribe(DEAD_LETTERS, slow_log, buffer=1, name="slow-log")

    async def broken(msg: Ping) -> None:
        raise RuntimeError("x")

    bus.subscribe(PING, broken)
    with anyio.fail_after(2):
        for n in range(5):
            await bus.publish(PING, Ping(n=n))
        await anyio.sleep(0.01)
        gate.set()
        await bus.drain()
    log = next(s for s in bus.stats().subscriptions if s.name == "slow-log")
    assert log.received == 5 and log.delivered + log.dropped == 5 and log.dropped >= 3


async def test_requests_timeouts_and_no_responders_are_counted(bus: Bus) -> None:
    from bus import NoResponders, RequestTimeout

    async def slow(msg: Ping) -> Pong:
        await anyio.sleep(1)
        return Pong(n=0)

    with pytest.raises(NoResponders):
        await bus.request(RPC, Ping(n=0))
    bus.subscribe(RPC, slow)
    with pytest.raises(RequestTimeout):
        await bus.request(RPC, Ping(n=0), timeout=0.01)
    await bus.drain()
    stats = bus.stats()
    # over NATS the first request is sent, and the server says nobody answers
    sent, unrouted = (1, 1) if local(bus) else (2, 0)
    assert (stats.requests, stats.replies, stats.timeouts, stats.no_responders) == (sent, 0, 1, 1)
    assert stats.subjects["test.rpc"].published == 2
    assert stats.subjects["test.rpc"].unrouted == unrouted


async def test_subject_counters_are_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    from bus import _routing

    monkeypatch.setattr(_routing, "MAX_SUBJECT_COUNTERS", 3)
    async with Bus() as bus:
        for i in range(6):
            await bus.publish(Topic(f"conv.{i}.inbox", Ping), Ping(n=i))
        subjects = bus.stats().subjects
    assert len(subjects) == 4
    assert subjects["(other)"].published == 3
    assert sum(s.published for s in subjects.values()) == 6
