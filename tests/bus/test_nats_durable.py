"""Durable topics over a real nats-server (JetStream): kept until a handler is done."""

from __future__ import annotations

import functools
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import anyio
import pytest

from bus import (
    DEAD_LETTERS,
    Bus,
    DeadLetter,
    Durability,
    DurableConflict,
    Message,
    RemoteError,
    RequestTimeout,
    Topic,
)
from bus.transport._durable import covers, permanent, stream_name

from ..nats_server import NatsServer

pytestmark = pytest.mark.anyio


class Job(Message, frozen=True, kw_only=True):
    n: int


class Done(Message, frozen=True, kw_only=True):
    n: int
    by: str


@asynccontextmanager
async def two(url: str, first: str, second: str) -> AsyncIterator[tuple[Bus, Bus]]:
    """Two buses on one server, standing for two processes."""
    async with Bus(first, transport=url) as a, Bus(second, transport=url) as b:
        yield a, b


JOBS = Topic("jobs.work", Job, reply=Done, durable=Durability(ack_wait=1.0, max_age=60))
EVENTS = Topic("jobs.events", Job, durable=True)


async def test_a_request_sent_while_no_worker_is_up_is_answered_once_one_is(
    nats_server: NatsServer,
) -> None:
    async with two(nats_server.url, "caller", "worker") as (caller, worker):
        async with anyio.create_task_group() as group:
            replies: list[Done] = []

            async def ask(n: int) -> None:
                replies.append(await caller.request(JOBS, Job(n=n), timeout=10))

            for n in range(5):
                group.start_soon(ask, n)
            await caller.drain(5)  # sent, and kept by the server: nobody takes them yet
            await anyio.sleep(0.2)
            assert replies == []
            worker.subscribe(JOBS, lambda job: Done(n=job.n, by="worker"), queue="w")
        assert sorted(r.n for r in replies) == list(range(5))
        assert caller.stats().late_replies == 0


async def test_every_durable_subscriber_gets_every_message_and_a_group_shares(
    nats_server: NatsServer,
) -> None:
    async with two(nats_server.url, "pub", "sub") as (pub, sub):
        seen: dict[str, list[int]] = {"a": [], "b": [], "g1": [], "g2": []}
        sub.subscribe(EVENTS, lambda m: seen["a"].append(m.n), name="a")
        sub.subscribe(EVENTS, lambda m: seen["b"].append(m.n), name="b")
        sub.subscribe(EVENTS, lambda m: seen["g1"].append(m.n), queue="g")
        sub.subscribe(EVENTS, lambda m: seen["g2"].append(m.n), queue="g")
        await sub.drain(5)
        for n in range(20):
            await pub.publish(EVENTS, Job(n=n))
        with anyio.fail_after(10):
            # each named subscriber is a consumer of its own, served at its own pace:
            # wait for every one of them, not for one standing for the others
            while (  # noqa: ASYNC110
                len(seen["g1"]) + len(seen["g2"]) < 20 or min(len(seen["a"]), len(seen["b"])) < 20
            ):
                await anyio.sleep(0.02)
        await sub.drain(5)
        assert sorted(seen["a"]) == sorted(seen["b"]) == list(range(20))
        assert sorted(seen["g1"] + seen["g2"]) == list(range(20))  # once each in the group


async def test_a_handler_that_raises_is_answered_and_not_delivered_again(
    nats_server: NatsServer,
) -> None:
    async with two(nats_server.url, "caller", "worker") as (caller, worker):
        calls: list[int] = []
        dead: list[DeadLetter] = []
        worker.subscribe(DEAD_LETTERS, dead.append)

        def fail(job: Job) -> Done:
            calls.append(job.n)
            raise ValueError("no such job")

        worker.subscribe(JOBS, fail, queue="w")
        await worker.drain(5)
        with pytest.raises(RemoteError, match="no such job"):
            await caller.request(JOBS, Job(n=1), timeout=10)
        await anyio.sleep(1.5)  # past ack_wait: it was acknowledged, so not redelivered
        assert calls == [1] and [d.reason for d in dead] == ["handler_error"]


async def test_the_same_message_id_sent_twice_is_stored_once(nats_server: NatsServer) -> None:
    from bus import Envelope

    async with Bus("dup", transport=nats_server.url) as bus:
        seen: list[int] = []
        bus.subscribe(EVENTS, lambda m: seen.append(m.n), name="once")
        await bus.drain(5)
        env = Envelope(
            id="fixed-1", subject=EVENTS.subject, payload=Job(n=7), sender="t", timestamp=0.0
        )
        assert bus._bridge is not None
        for _ in range(2):  # a publish retried after its acknowledgement was lost
            bus._bridge.send(env, durable=EVENTS.durable)
        await bus.drain(5)
        await anyio.sleep(0.3)
        await bus.drain(5)
        assert seen == [7]


async def test_a_handler_longer_than_ack_wait_is_not_delivered_twice(
    nats_server: NatsServer,
) -> None:
    async with two(nats_server.url, "caller", "worker") as (caller, worker):
        calls: list[int] = []

        async def slow(job: Job) -> Done:  # 2.5x the topic's ack_wait of 1 s
            calls.append(job.n)
            await anyio.sleep(2.5)
            return Done(n=job.n, by="slow")

        worker.subscribe(JOBS, slow, queue="w")
        await worker.drain(5)
        assert await caller.request(JOBS, Job(n=3), timeout=10) == Done(n=3, by="slow")
        assert calls == [3]  # the in-progress beats kept it ours
        stats = worker.transport_stats()
        assert stats is not None and stats.redelivered == 0


async def test_a_server_restart_mid_run_loses_nothing_durable(nats_server: NatsServer) -> None:
    # (messages the server had sent when it stopped, and we never got, come back after
    # ack_wait: a short one keeps the test short)
    events = Topic("jobs.restarted", Job, durable=Durability(ack_wait=1.0))
    async with two(nats_server.url, "pub", "sub") as (pub, sub):
        seen: set[int] = set()
        sub.subscribe(events, lambda m: seen.add(m.n), queue="keepers")
        await sub.drain(5)
        for n in range(50):
            await pub.publish(events, Job(n=n))
        nats_server.stop()
        with anyio.fail_after(5):
            while pub.transport_stats().connected:  # type: ignore[union-attr]  # noqa: ASYNC110
                await anyio.sleep(0.01)
        for n in range(50, 100):  # during the outage: they wait in the outbox
            await pub.publish(events, Job(n=n))
        nats_server.restart()
        with anyio.fail_after(20):
            while len(seen) < 100:  # noqa: ASYNC110
                await anyio.sleep(0.05)
        assert seen == set(range(100))
        for bus in (pub, sub):
            stats = bus.transport_stats()
            assert stats is not None and stats.connected
            assert stats.disconnects == 1 and stats.reconnects == 1  # the outage, counted


async def test_a_message_past_max_deliver_is_dead_lettered(nats_server: NatsServer) -> None:
    poison = Topic("jobs.poison", Job, durable=Durability(max_deliver=2, ack_wait=0.5))
    async with Bus("pub", transport=nats_server.url) as pub:
        await pub.publish(poison, Job(n=13))
        await pub.drain(5)
    for attempt in range(2):  # two workers take it and are closed mid-way (nak)
        entered = anyio.Event()

        async def hang(job: Job, entered: anyio.Event = entered) -> None:
            entered.set()
            await anyio.sleep(60)

        async with Bus(f"w{attempt}", transport=nats_server.url, close_timeout=0.1) as worker:
            worker.subscribe(poison, hang, queue="poisoned")
            with anyio.fail_after(10):
                await entered.wait()
    async with Bus("last", transport=nats_server.url) as last:
        dead: list[DeadLetter] = []
        last.subscribe(DEAD_LETTERS, dead.append)
        never: list[Job] = []
        last.subscribe(poison, never.append, queue="poisoned")
        with anyio.fail_after(10):
            while not dead:  # noqa: ASYNC110
                await anyio.sleep(0.05)
        (letter,) = dead
        assert letter.reason == "max_deliveries" and letter.envelope.payload == {"n": 13}
        assert never == [] and last.transport_stats().given_up == 1  # type: ignore[union-attr]


async def test_the_shortest_ack_wait_sets_the_beat(nats_server: NatsServer) -> None:
    slow_topic = Topic("jobs.slowbeat", Job, reply=Done, durable=Durability(ack_wait=30))
    quick_topic = Topic("jobs.quickbeat", Job, reply=Done, durable=Durability(ack_wait=0.6))
    async with two(nats_server.url, "caller", "worker") as (caller, worker):
        calls: list[int] = []

        async def slow(job: Job) -> Done:  # 3x the quick topic's ack_wait
            calls.append(job.n)
            await anyio.sleep(1.8)
            return Done(n=job.n, by="w")

        worker.subscribe(slow_topic, slow, queue="s")  # (its 10 s beat comes first)
        worker.subscribe(quick_topic, slow, queue="q")
        await worker.drain(5)
        assert (await caller.request(quick_topic, Job(n=1), timeout=10)).n == 1
        assert calls == [1]
        assert worker.transport_stats().redelivered == 0  # type: ignore[union-attr]


async def test_a_durable_copy_whose_requester_gave_up_is_acknowledged_not_held(
    nats_server: NatsServer,
) -> None:
    async with Bus("both", transport=nats_server.url) as bus:
        gate = anyio.Event()

        async def busy(job: Job) -> Done:
            await gate.wait()
            return Done(n=job.n, by="busy")

        bus.subscribe(JOBS, busy, queue="w")  # one at a time: the second waits its turn
        await bus.drain(5)
        async with anyio.create_task_group() as group:
            group.start_soon(functools.partial(bus.request, JOBS, Job(n=1), timeout=10))
            await anyio.sleep(0.3)
            with pytest.raises(RequestTimeout):
                await bus.request(JOBS, Job(n=2), timeout=0.5)  # given up while queued
            gate.set()
        await bus.drain(5)
        assert bus._bridge is not None and bus._bridge._durable.held == {}
        assert bus.stats().cancelled == 1  # the skipped copy


WIDE = Topic("kept.*", Job, durable=True)
NARROW = Topic("kept.a", Job, durable=True)
OTHER = Topic("kept.b", Job, durable=True)
PLAIN = Topic("plain.after", Job)


async def test_a_durable_topic_inside_a_wider_ones_stream_is_kept_there(
    nats_server: NatsServer,
) -> None:
    """JetStream keeps a subject in one stream only: a durable publish to ``kept.a`` once
    ``kept.*`` has its stream goes into that one (it was retried for 30 s, holding up
    everything behind it, and then dropped with a log line)."""
    async with Bus("kept", transport=nats_server.url) as bus:
        wide: list[int] = []
        plain: list[int] = []
        bus.subscribe(WIDE, lambda m: wide.append(m.n), queue="w")
        bus.subscribe(PLAIN, lambda m: plain.append(m.n))
        await bus.drain(5)
        await bus.publish(NARROW, Job(n=1))
        await bus.publish(PLAIN, Job(n=2))
        with anyio.fail_after(5):
            while not (wide and plain):  # noqa: ASYNC110
                await anyio.sleep(0.01)
        narrow: list[int] = []
        # on kept.*'s stream, and in a group of the same name as kept.*'s: consumers of
        # their own all the same (a shared one took kept.* messages for kept.a)
        bus.subscribe(NARROW, lambda m: narrow.append(m.n), queue="w")
        await bus.drain(5)
        for n in range(3, 9):
            await bus.publish(NARROW if n % 2 else OTHER, Job(n=n))
        with anyio.fail_after(5):
            while len(wide) < 7 or len(narrow) < 4:  # noqa: ASYNC110
                await anyio.sleep(0.01)
        await bus.drain(5)
        assert bus.transport_stats().errors == 0  # type: ignore[union-attr]
    assert sorted(wide) == [1, 3, 4, 5, 6, 7, 8] and plain == [2]
    # only its own subject's, the one kept before it subscribed included (as a new
    # consumer of a topic's own stream gets what the stream keeps)
    assert sorted(narrow) == [1, 3, 5, 7]


async def test_a_wider_durable_topic_after_a_narrower_one_is_refused_and_named(
    nats_server: NatsServer, caplog: pytest.LogCaptureFixture
) -> None:
    async with Bus("narrow-first", transport=nats_server.url) as bus:
        await bus.publish(NARROW, Job(n=1))  # kept.a gets its own stream
        await bus.drain(5)
        bus.subscribe(WIDE, lambda m: None, queue="w")  # kept.* cannot have one now
        plain: list[int] = []
        bus.subscribe(PLAIN, lambda m: plain.append(m.n))
        await bus.drain(5)
        await bus.publish(PLAIN, Job(n=2))
        with anyio.fail_after(5):  # the writer went on
            while not plain:  # noqa: ASYNC110
                await anyio.sleep(0.01)
        assert bus.transport_stats().errors == 1  # type: ignore[union-attr]
    assert any(
        "DurableConflict" in r.getMessage() and "'kept.*' overlaps stream" in r.getMessage()
        for r in caplog.records
    ), [r.getMessage() for r in caplog.records]


@pytest.mark.parametrize(
    ("pattern", "subject", "covered"),
    [
        ("ov.*", "ov.a", True),
        ("ov.*", "ov.*", True),
        ("ov.*", "ov.>", False),
        ("ov.*", "ov.a.b", False),
        ("ov.>", "ov.a.b", True),
        ("ov.>", "ov", False),
        ("ov.a", "ov.*", False),
        ("ov.a", "ov.a", True),
        (">", "anything.at.all", True),
    ],
)
def test_which_stream_patterns_cover_a_subject(pattern: str, subject: str, covered: bool) -> None:
    assert covers(pattern, subject) is covered


async def test_a_durable_stream_removed_under_the_bus_is_made_again(
    nats_server: NatsServer,
) -> None:
    topic = Topic("kept.alone", Job, durable=True)
    async with Bus("again", transport=nats_server.url) as bus:
        assert bus._bridge is not None
        bus._bridge.outage_timeout = 5.0
        await bus.publish(topic, Job(n=1))
        await bus.drain(5)
        durable = bus._bridge._durable
        await durable.js.delete_stream(stream_name("kept.alone"))  # an operator's `rm`
        await bus.publish(topic, Job(n=2))
        with anyio.fail_after(4):  # one retry, not the whole outage_timeout
            await bus.drain(5)
        info = await durable.js.stream_info(stream_name("kept.alone"))
        assert info.state.messages == 1  # the second one, in the stream made again
        assert bus.transport_stats().errors == 0  # type: ignore[union-attr]


def test_a_durability_that_no_stream_could_have_is_refused_when_declared() -> None:
    for field in ("ack_wait", "max_deliver", "max_age", "max_bytes", "duplicate_window"):
        with pytest.raises(ValueError, match=f"{field} must be > 0"):
            Durability(**{field: 0})


def test_only_refusals_of_the_streams_settings_are_not_retried() -> None:
    import nats.errors
    import nats.js.errors

    assert permanent(DurableConflict("kept.*", "HIVE_kept_a", ["kept.a"]))
    assert permanent(nats.js.errors.BadRequestError(code=400, err_code=10058))
    assert permanent(nats.js.errors.ServerError(code=500, err_code=10052))
    assert not permanent(nats.js.errors.ServiceUnavailableError(code=503))
    assert not permanent(nats.js.errors.NoStreamResponseError())
    assert not permanent(nats.errors.TimeoutError())
