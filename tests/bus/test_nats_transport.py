"""The bus over a real nats-server: two buses stand for two processes sharing one server."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import anyio
import pytest

from bus import (
    Actor,
    Bus,
    Context,
    Envelope,
    Message,
    NoResponders,
    RemoteError,
    Topic,
    handler,
)
from bus.transport import PayloadTooLarge, TransportUnavailable

from ..nats_server import NatsServer
from .messages import PING, Other, Ping


class Doubled(Message, frozen=True, kw_only=True):
    n: int
    by: str


RPC = Topic("test.double", Ping, reply=Doubled)

pytestmark = pytest.mark.anyio


@asynccontextmanager
async def pair(url: str) -> AsyncIterator[tuple[Bus, Bus]]:
    async with (
        Bus("left", transport=url, request_timeout=5) as left,
        Bus("right", transport=url, request_timeout=5) as right,
    ):
        yield left, right


async def settle(*buses: Bus) -> None:
    """Every bus has sent what it had, and handled what came back."""
    for _ in range(2):  # (a handler's publish, handled by another bus)
        for bus in buses:
            await bus.drain(5)


async def test_a_publish_reaches_subscribers_in_every_process_typed(
    nats_server: NatsServer,
) -> None:
    async with pair(nats_server.url) as (left, right):
        here: list[Ping] = []
        there: list[Envelope] = []
        left.subscribe(PING, here.append)
        right.subscribe(Topic("test.*", Ping), lambda m, ctx: there.append(ctx.envelope))
        await settle(left, right)  # the subscriptions are on the server
        await left.publish(PING, Ping(n=7), headers={"trace": "t-1"})
        await settle(left, right)
        assert here == [Ping(n=7)]
        (env,) = there
        assert env.payload == Ping(n=7) and type(env.payload) is Ping  # decoded into the type
        assert env.sender == "left" and env.subject == "test.ping"
        assert env.headers == {"trace": "t-1"}
        stats = left.transport_stats()
        assert stats is not None and stats.sent >= 1 and stats.connected


async def test_a_queue_group_shares_messages_across_processes_once_each(
    nats_server: NatsServer,
) -> None:
    async with pair(nats_server.url) as (left, right):
        got: dict[str, list[int]] = {"left": [], "right": []}
        left.subscribe(PING, lambda m: got["left"].append(m.n), queue="workers")
        right.subscribe(PING, lambda m: got["right"].append(m.n), queue="workers")
        await settle(left, right)
        for n in range(200):
            await left.publish(PING, Ping(n=n))
        await settle(left, right)
        assert sorted(got["left"] + got["right"]) == list(range(200))  # each exactly once
        assert got["left"] and got["right"]  # both took a share


class Doubler(Actor):
    @handler(RPC)
    async def double(self, ping: Ping, ctx: Context) -> Doubled:
        if ping.n < 0:
            raise ValueError(f"negative: {ping.n}")
        return Doubled(n=ping.n * 2, by=ctx.envelope.sender)


async def test_request_reply_across_processes_with_remote_errors(
    nats_server: NatsServer,
) -> None:
    async with pair(nats_server.url) as (left, right):
        await right.add(Doubler("doubler"))
        await settle(left, right)
        replies = [await left.request(RPC, Ping(n=n)) for n in range(5)]
        assert [r.n for r in replies] == [0, 2, 4, 6, 8]
        assert {r.by for r in replies} == {"left"}  # the requester, as the handler saw it
        with pytest.raises(RemoteError, match="negative: -1") as caught:
            await left.request(RPC, Ping(n=-1))
        assert caught.value.remote_type == "ValueError"


async def test_a_request_nobody_serves_fails_at_once_with_no_responders(
    nats_server: NatsServer,
) -> None:
    async with Bus("alone", transport=nats_server.url, request_timeout=30) as bus:
        with anyio.fail_after(2):  # the server's 503, not the 30 s timeout
            with pytest.raises(NoResponders):
                await bus.request(RPC, Ping(n=1))


async def test_a_request_served_in_the_same_process_goes_through_the_server(
    nats_server: NatsServer,
) -> None:
    async with Bus("solo", transport=nats_server.url) as bus:
        await bus.add(Doubler("doubler"))
        await bus.drain(5)
        reply = await bus.request(RPC, Ping(n=21))
        assert reply == Doubled(n=42, by="solo")
        stats = bus.transport_stats()
        # the request went through the server; the reply to a request of this process did not
        assert stats is not None and (stats.sent, stats.received) == (1, 1)
        assert bus.stats().balanced


async def test_causation_spans_processes(nats_server: NatsServer) -> None:
    relayed = Topic("test.relayed", Other)
    async with pair(nats_server.url) as (left, right):
        seen: list[Envelope] = []

        async def relay(ping: Ping, ctx: Context) -> None:
            await ctx.publish(relayed, Other(text=f"saw {ping.n}"))

        right.subscribe(PING, relay, name="relay")
        left.subscribe(relayed, lambda m, ctx: seen.append(ctx.envelope))
        first: list[Envelope] = []
        left.tap("test.ping", first.append)
        await settle(left, right)
        await left.publish(PING, Ping(n=3))
        await settle(left, right)
        await settle(left, right)
        (env,) = seen
        assert env.payload == Other(text="saw 3") and env.sender == "relay"
        assert env.causation_id == first[0].id  # the ping published by the other process


async def test_a_payload_over_the_servers_limit_is_refused_before_sending(
    nats_server: NatsServer,
) -> None:
    async with Bus("big", transport=nats_server.url) as bus:
        with pytest.raises(PayloadTooLarge, match=r"test\.other.*max_payload"):
            await bus.publish(Topic("test.other", Other), Other(text="x" * 2_000_000))
        stats = bus.transport_stats()
        assert stats is not None and stats.refused_too_large == 1 and stats.sent == 0


async def test_a_server_that_is_down_fails_the_start_fast(nats_server: NatsServer) -> None:
    url = nats_server.url
    nats_server.stop()
    with anyio.fail_after(5):
        with pytest.raises(TransportUnavailable, match="cannot connect to NATS"):
            async with Bus("late", transport=url.replace("nats://", "nats://user:secret@")):
                pass  # pragma: no cover


async def test_credentials_never_show_in_reprs_or_stats(nats_server: NatsServer) -> None:
    url = nats_server.url.replace("nats://", "nats://user:hunter2@")
    bus = Bus("secretive", transport=url)
    assert bus._bridge is not None
    assert "hunter2" not in repr(bus._bridge)
    assert "hunter2" not in bus._bridge.stats().url


async def test_bus_subjects_stay_in_the_process(nats_server: NatsServer) -> None:
    from bus import DEAD_LETTERS, DeadLetter

    async with pair(nats_server.url) as (left, right):
        dead_left: list[DeadLetter] = []
        dead_right: list[DeadLetter] = []
        left.subscribe(DEAD_LETTERS, dead_left.append)
        right.subscribe(DEAD_LETTERS, dead_right.append)

        def fail(ping: Ping) -> None:
            raise RuntimeError("boom")

        left.subscribe(PING, fail)
        await settle(left, right)
        await right.publish(PING, Ping(n=1))
        await settle(left, right)
        assert [d.reason for d in dead_left] == ["handler_error"] and dead_right == []


async def test_a_full_error_policy_buffer_refuses_where_it_receives(
    nats_server: NatsServer,
) -> None:
    from bus import DEAD_LETTERS, DeadLetter

    async with pair(nats_server.url) as (left, right):
        gate = anyio.Event()
        seen: list[int] = []

        entered = anyio.Event()

        async def gated(ping: Ping) -> None:
            entered.set()
            await gate.wait()
            seen.append(ping.n)

        dead: list[DeadLetter] = []
        right.subscribe(DEAD_LETTERS, dead.append)
        right.subscribe(PING, gated, buffer=1, policy="error", name="narrow")
        await settle(left, right)
        await left.publish(PING, Ping(n=0))
        with anyio.fail_after(5):
            await entered.wait()  # 0 is being handled
        for n in range(1, 4):  # the publisher never sees the receiver's buffer: no error
            await left.publish(PING, Ping(n=n))
        with anyio.fail_after(5):
            while len(dead) < 2:  # noqa: ASYNC110 - 1 running, 1 buffered, 2 refused
                await anyio.sleep(0.005)
        gate.set()
        await settle(left, right)
        assert seen == [0, 1]
        assert [(d.reason, d.subscription, d.envelope.payload) for d in dead] == [
            ("buffer_full", "narrow", Ping(n=2)),
            ("buffer_full", "narrow", Ping(n=3)),
        ]
        assert right.stats().balanced


async def test_a_cancelled_drain_leaves_the_connection_working(nats_server: NatsServer) -> None:
    async with Bus("patient", transport=nats_server.url) as bus:
        seen: list[int] = []
        bus.subscribe(PING, lambda m: seen.append(m.n))
        for cut in (0.0, 0.0005, 0.002):  # cancelled before, while, just after waiting
            await bus.publish(PING, Ping(n=0))
            with anyio.move_on_after(cut):
                await bus.drain(5)
        await bus.drain(5)
        seen.clear()
        await bus.publish(PING, Ping(n=1))
        await bus.drain(5)
        assert seen == [1]  # still receiving
        stats = bus.transport_stats()
        assert stats is not None and stats.connected and stats.errors == 0


async def test_a_burst_waits_for_the_outbox_and_loses_nothing(
    nats_server: NatsServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Through the writer task alone (no PUB handed to nats-py directly): the outbox's own
    bound makes publishers wait."""
    from bus.transport import _direct
    from bus.transport.nats import OUTBOX_HIGH

    monkeypatch.setattr(_direct, "ENABLED", False)
    async with pair(nats_server.url) as (left, right):
        assert left._bridge is not None and left._bridge._direct is None
        got: list[int] = []
        right.subscribe(PING, lambda m: got.append(m.n), buffer=100_000)
        await settle(left, right)
        count = 3 * OUTBOX_HIGH
        for n in range(count):
            await left.publish(PING, Ping(n=n))
            assert left._bridge is not None and len(left._bridge._outbox) <= OUTBOX_HIGH
        await settle(left, right)
        assert got == list(range(count))  # all, in order
        stats, theirs = left.transport_stats(), right.transport_stats()
        assert stats is not None and stats.waited_for_room > 0
        assert theirs is not None and theirs.slow_consumer_drops == 0


class Page(Message, frozen=True, kw_only=True):
    n: int
    text: str


PAGES = Topic("test.pages", Page)


async def test_a_burst_past_nats_pys_buffer_goes_through_the_outbox_in_order(
    nats_server: NatsServer,
) -> None:
    """PUBs are handed to nats-py directly while nothing is queued; past nats-py's own
    pending limit they queue in the outbox (bounded: publishers wait) and still arrive
    all, in order."""
    from bus.transport.nats import OUTBOX_HIGH

    text = "x" * 1000
    async with pair(nats_server.url) as (left, right):
        bridge = left._bridge
        assert bridge is not None and bridge._direct is not None
        got: list[int] = []
        right.subscribe(PAGES, lambda m: got.append(m.n), buffer=100_000)
        await settle(left, right)
        count = 3 * OUTBOX_HIGH  # ~25 MB: far past nats-py's 2 MiB of pending data
        for n in range(count):
            await left.publish(PAGES, Page(n=n, text=text))
            assert len(bridge._outbox) <= OUTBOX_HIGH
        await settle(left, right)
        assert got == list(range(count))
        stats = left.transport_stats()
        assert stats is not None and stats.sent == count and stats.waited_for_room > 0


class Answer(Message, frozen=True, kw_only=True):
    n: int


ASK = Topic("test.ask", Ping, reply=Answer)


@pytest.mark.parametrize("reply_to", ["", "a b", "x\r\nPUB y 1"])
async def test_a_foreign_request_with_no_usable_reply_subject_is_not_answered(
    nats_server: NatsServer, reply_to: str
) -> None:
    """A reply subject that is empty or would break the PUB line (a foreign or broken
    peer's) is counted, never sent: the server would drop this bus's connection."""
    import time

    import nats

    from bus.transport._wire import _ENCODER, Frame

    async with Bus("answering", transport=nats_server.url) as bus:
        got: list[int] = []
        bus.subscribe(ASK, lambda m: Answer(n=m.n))
        bus.subscribe(PING, lambda m: got.append(m.n))
        await bus.drain(5)
        raw = await nats.connect(nats_server.url)
        try:
            frame = Frame(
                "x-1", "foreign", time.time(), None, "x-1", "Ping", False, None, Ping(n=1),
                reply_to=reply_to,
            )  # fmt: skip
            await raw.publish("test.ask", _ENCODER.encode(frame))
            await raw.flush()
            await bus.publish(PING, Ping(n=2))
            await bus.drain(5)
        finally:
            await raw.close()
        stats = bus.transport_stats()
        assert got == [2]
        assert stats is not None and stats.connected and stats.disconnects == 0
        assert stats.errors == 1


def test_the_direct_path_leaves_to_nats_py_what_it_would_refuse() -> None:
    """No PUB with an empty subject or over the server's max_payload goes straight into
    nats-py's buffer (the server would drop the connection; nats-py raises instead)."""
    import asyncio

    from bus.transport._direct import DirectPublisher

    class Client:  # nats-py's private state, as the direct path reads it
        is_connected = property(lambda self: True)

        def __init__(self, flusher: asyncio.Task[None]) -> None:
            self._pending: list[bytes] = []
            self._pending_data_size = 0
            self._max_pending_size = 1 << 20
            self._max_payload = 100
            self._flush_queue: asyncio.Queue[object] = asyncio.Queue()
            self._flusher_task = flusher
            self.stats = {"out_msgs": 0, "out_bytes": 0}

    async def scenario() -> None:
        loop = asyncio.get_running_loop()
        client = Client(loop.create_task(asyncio.sleep(1)))
        assert DirectPublisher.fits(client)
        publish = DirectPublisher(client, loop)
        assert publish("", "", b"x") is False
        assert publish("a.b", "", b"x" * 101) is False
        assert publish("a.b", "_INBOX.r", b"hello") is True
        assert client._pending == [b"PUB a.b _INBOX.r 5\r\nhello\r\n"]
        assert client._flush_queue.qsize() == 1 and client.stats["out_msgs"] == 1
        client._flusher_task.cancel()

    asyncio.run(scenario())


async def test_a_server_restart_is_waited_out_and_counted(nats_server: NatsServer) -> None:
    async with Bus("steady", transport=nats_server.url) as bus:
        got: list[int] = []
        bus.subscribe(PING, lambda m: got.append(m.n))
        await bus.drain(5)
        nats_server.stop()
        with anyio.fail_after(5):
            while bus.transport_stats().connected:  # type: ignore[union-attr]  # noqa: ASYNC110
                await anyio.sleep(0.01)
        for n in range(100):  # during the outage: queued, not lost
            await bus.publish(PING, Ping(n=n))
        nats_server.restart()
        await bus.drain(10)
        assert got == list(range(100))
        stats = bus.transport_stats()
        assert stats is not None and stats.connected
        assert (stats.disconnects, stats.reconnects) == (1, 1)


async def test_an_outage_longer_than_the_timeout_fails_publishers_with_a_typed_error(
    nats_server: NatsServer,
) -> None:
    from bus.transport.nats import OUTBOX_HIGH

    async with Bus("hasty", transport=nats_server.url, close_timeout=0.5) as bus:
        assert bus._bridge is not None
        bus._bridge.outage_timeout = 0.2
        nats_server.stop()
        with anyio.fail_after(5):
            while bus.transport_stats().connected:  # type: ignore[union-attr]  # noqa: ASYNC110
                await anyio.sleep(0.01)
        with pytest.raises(TransportUnavailable, match=r"waited 0\.2s to be sent \(disc"):
            for n in range(OUTBOX_HIGH + 1):
                await bus.publish(PING, Ping(n=n))
        nats_server.restart()  # (then the bus closes cleanly)


async def test_a_slow_consumer_past_its_pending_limit_is_counted_not_silent(
    nats_server: NatsServer,
) -> None:
    async with pair(nats_server.url) as (left, right):
        assert right._bridge is not None
        right._bridge.pending_msgs_limit = 20  # (the client's queue for one subscription)
        gate = anyio.Event()

        async def stuck(ping: Ping) -> None:
            await gate.wait()

        right.subscribe(PING, stuck, buffer=1)  # block policy: the NATS queue backs up
        await settle(left, right)
        for n in range(200):
            await left.publish(PING, Ping(n=n))
        await left.drain(5)
        with anyio.fail_after(5):
            while not right.transport_stats().slow_consumer_drops:  # type: ignore[union-attr]  # noqa: ASYNC110
                await anyio.sleep(0.01)
        gate.set()
        stats = right.transport_stats()
        assert stats is not None and stats.slow_consumer_drops > 0  # core NATS drops; we say so


async def test_a_list_of_servers_connects_to_one_that_answers(nats_server: NatsServer) -> None:
    dead = "nats://user:pw@127.0.0.1:1"  # nothing listens on port 1
    async with Bus("listed", transport=f"{dead},{nats_server.url}") as bus:
        bus.subscribe(PING, lambda m: None)
        await bus.publish(PING, Ping(n=1))
        await bus.drain(5)
        stats = bus.transport_stats()
        assert stats is not None and stats.connected and stats.received == 1
        assert stats.url == f"nats://***@127.0.0.1:1,{nats_server.url}"


async def test_a_draining_member_keeps_what_the_server_already_sent_it(
    nats_server: NatsServer,
) -> None:
    async with pair(nats_server.url) as (left, right):
        got: list[int] = []

        async def slow(ping: Ping) -> None:
            await anyio.sleep(0.001)
            got.append(ping.n)

        left.subscribe(PING, slow, queue="w", buffer=1)
        right.subscribe(PING, slow, queue="w", buffer=1)
        await settle(left, right)
        for n in range(200):
            await right.publish(PING, Ping(n=n))
        left.stop_receiving()  # as a worker does on SIGTERM
        await settle(left, right)
        await settle(left, right)
        assert sorted(got) == list(range(200))  # none lost in the hand-over


def test_credentials_with_an_at_sign_are_still_hidden() -> None:
    from bus.transport._wire import _redact

    shown = _redact("nats://alice:s3cr@t@127.0.0.1:4222,nats://bob:pw@h:1")
    assert shown == "nats://***@127.0.0.1:4222,nats://***@h:1"


async def test_a_request_on_a_topic_with_no_reply_type_is_answered_across_processes(
    nats_server: NatsServer,
) -> None:
    untyped = Topic("test.untyped", Ping)  # no reply type: the handler's value answers
    async with pair(nats_server.url) as (left, right):
        right.subscribe(untyped, lambda m: Ping(n=m.n + 1))
        await settle(left, right)
        assert await left.request(untyped, Ping(n=4), timeout=5) == {"n": 5}  # (untyped)
        watched: list[Ping] = []
        right.subscribe(Topic(">", Message), watched.append)  # a watcher of everything
        await right.add(Doubler("doubler"))
        await settle(left, right)
        assert (await left.request(RPC, Ping(n=3), timeout=5)).n == 6  # not the watcher's
        assert left.stats().late_replies == 0
