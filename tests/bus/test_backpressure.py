"""Bounded buffers and their policies: block, drop_oldest, drop_newest, error."""

from __future__ import annotations

import anyio
import anyio.lowlevel
import pytest

from bus import DEAD_LETTERS, BufferFull, Bus, Context, DeadLetter, Envelope, Topic

from .messages import PING, Other, Ping

OTHER = Topic("test.other", Other)

pytestmark = pytest.mark.anyio


async def _gated_subscriber(
    bus: Bus, policy: str, buffer: int = 2
) -> tuple[anyio.Event, list[int]]:
    gate, taken = anyio.Event(), anyio.Event()
    seen: list[int] = []

    async def slow(msg: Ping) -> None:
        taken.set()
        await gate.wait()
        seen.append(msg.n)

    bus.subscribe(PING, slow, buffer=buffer, policy=policy, name=policy)  # type: ignore[arg-type]
    await bus.publish(PING, Ping(n=0))
    with anyio.fail_after(10):
        await taken.wait()  # the worker took message 0 and waits on the gate
    return gate, seen


async def _received(bus: Bus, name: str, n: int) -> None:
    """Wait until subscription ``name`` has had ``n`` messages (over NATS they come back
    from the server some time after they were published)."""
    with anyio.fail_after(10):
        while next(s for s in bus.stats().subscriptions if s.name == name).received < n:  # noqa: ASYNC110
            await anyio.sleep(0.005)


@pytest.mark.local_only(
    "core NATS has no publisher-side backpressure: a full buffer makes the NATS "
    "subscription wait, and the server drops past its pending limits (counted as "
    "slow_consumer_drops)"
)
async def test_block_makes_the_publisher_wait_for_room(bus: Bus) -> None:
    gate, seen = await _gated_subscriber(bus, "block")
    await bus.publish(PING, Ping(n=1))
    await bus.publish(PING, Ping(n=2))  # the buffer (2) is now full
    published = anyio.Event()

    async def third() -> None:
        await bus.publish(PING, Ping(n=3))
        published.set()

    async with anyio.create_task_group() as tg:
        tg.start_soon(third)
        await anyio.sleep(0.02)
        assert not published.is_set()  # still waiting: nothing was dropped
        gate.set()
    await bus.drain()
    assert seen == [0, 1, 2, 3]
    (sub,) = bus.stats().subscriptions
    assert (sub.blocked_publishes, sub.max_pending, sub.dropped) == (1, 2, 0)


async def test_drop_oldest_keeps_the_newest_and_dead_letters_the_oldest(bus: Bus) -> None:
    dead: list[DeadLetter] = []
    bus.subscribe(DEAD_LETTERS, dead.append)
    gate, seen = await _gated_subscriber(bus, "drop_oldest")
    for n in (1, 2, 3, 4):
        await bus.publish(PING, Ping(n=n))
    await _received(bus, "drop_oldest", 5)
    gate.set()
    await bus.drain()
    assert seen == [0, 3, 4]
    assert [(d.reason, d.envelope.payload.n) for d in dead] == [
        ("dropped_oldest", 1),
        ("dropped_oldest", 2),
    ]
    stats = bus.stats()
    assert stats.dropped == 2 and stats.dead_lettered == 2 and stats.balanced


async def test_drop_newest_keeps_the_oldest_and_dead_letters_the_newest(bus: Bus) -> None:
    dead: list[DeadLetter] = []
    bus.subscribe(DEAD_LETTERS, dead.append)
    gate, seen = await _gated_subscriber(bus, "drop_newest")
    for n in (1, 2, 3, 4):
        await bus.publish(PING, Ping(n=n))
    await _received(bus, "drop_newest", 5)
    gate.set()
    await bus.drain()
    assert seen == [0, 1, 2]
    assert [(d.reason, d.subscription, d.envelope.payload.n) for d in dead] == [
        ("dropped_newest", "drop_newest", 3),
        ("dropped_newest", "drop_newest", 4),
    ]


@pytest.mark.local_only(
    "over NATS the publisher cannot see the receiver's buffer: an error-policy "
    "refusal is counted and dead-lettered where it is received"
)
async def test_error_raises_buffer_full_naming_the_subscription(bus: Bus) -> None:
    dead: list[DeadLetter] = []
    bus.subscribe(DEAD_LETTERS, dead.append)
    gate, seen = await _gated_subscriber(bus, "error")
    await bus.publish(PING, Ping(n=1))
    await bus.publish(PING, Ping(n=2))
    with pytest.raises(BufferFull, match="subscription 'error' is full \\(2 messages\\)") as info:
        await bus.publish(PING, Ping(n=3))
    assert (info.value.subject, info.value.size) == ("test.ping", 2)
    gate.set()
    await bus.drain()
    assert seen == [0, 1, 2]
    assert [d.reason for d in dead] == ["buffer_full"]
    assert bus.stats().balanced


@pytest.mark.local_only("publisher-side BufferFull: local only (see above)")
async def test_a_full_subscriber_does_not_stop_the_others_under_error(bus: Bus) -> None:
    fast: list[int] = []
    bus.subscribe(PING, lambda m: fast.append(m.n), name="fast")
    gate, _ = await _gated_subscriber(bus, "error", buffer=1)
    await bus.publish(PING, Ping(n=1))
    with pytest.raises(BufferFull):
        await bus.publish(PING, Ping(n=2))
    gate.set()
    await bus.drain()
    assert fast == [0, 1, 2]


@pytest.mark.local_only("publisher-side BufferFull: local only")
async def test_publish_nowait_refuses_when_a_block_buffer_is_full(bus: Bus) -> None:
    gate, seen = await _gated_subscriber(bus, "block", buffer=1)
    bus.publish_nowait(PING, Ping(n=1))
    with pytest.raises(BufferFull):
        bus.publish_nowait(PING, Ping(n=2))
    gate.set()
    await bus.drain()
    assert seen == [0, 1]
    assert bus.stats().dropped == 1


@pytest.mark.local_only("publisher-side BufferFull: local only")
async def test_a_handlers_publish_nowait_is_caused_by_its_message_and_refused_when_full(
    bus: Bus,
) -> None:
    gate, seen = await _gated_subscriber(bus, "block", buffer=1)
    dead: list[DeadLetter] = []
    bus.subscribe(DEAD_LETTERS, dead.append)
    outcome: list[str] = []

    def relay(msg: Other, ctx: Context) -> None:
        ctx.publish_nowait(PING, Ping(n=1))  # fills the buffer of 1
        try:
            ctx.publish_nowait(PING, Ping(n=2))
        except BufferFull as exc:
            outcome.append(type(exc).__name__)

    envelopes: list[Envelope] = []
    bus.tap("test.ping", envelopes.append)
    bus.subscribe(OTHER, relay, name="relay")
    bus.tap("test.other", envelopes.append)
    await bus.publish(OTHER, Other(text="go"))
    await anyio.sleep(0.01)
    gate.set()
    await bus.drain()
    assert outcome == ["BufferFull"] and seen == [0, 1]
    assert [(d.reason, d.envelope.payload) for d in dead] == [("buffer_full", Ping(n=2))]
    caused = [e for e in envelopes if e.payload == Ping(n=1)]
    go = next(e for e in envelopes if e.subject == "test.other")
    assert caused[0].causation_id == go.id and caused[0].sender == "relay"


async def test_a_handler_publishing_into_its_own_full_buffer_does_not_deadlock(bus: Bus) -> None:
    seen: list[int] = []

    async def echo(msg: Ping, ctx: object) -> None:
        seen.append(msg.n)
        if msg.n < 20:
            from bus import Context

            assert isinstance(ctx, Context)
            await ctx.publish(PING, Ping(n=msg.n + 1))
            await ctx.publish(PING, Ping(n=100 + msg.n))

    bus.subscribe(PING, echo, buffer=1)
    with anyio.fail_after(2):
        await bus.publish(PING, Ping(n=0))
        await bus.drain()
    assert sorted(seen) == sorted([*range(21), *range(100, 120)])


@pytest.mark.local_only("over NATS the server picks the member of a queue group")
async def test_a_queue_group_prefers_members_with_room(bus: Bus) -> None:
    gate = anyio.Event()
    by: dict[str, list[int]] = {"stuck": [], "free": []}

    async def stuck(msg: Ping) -> None:
        await gate.wait()
        by["stuck"].append(msg.n)

    async def free(msg: Ping) -> None:
        by["free"].append(msg.n)

    bus.subscribe(PING, stuck, queue="g", buffer=1, name="stuck")
    bus.subscribe(PING, free, queue="g", buffer=1, name="free")
    for n in range(10):
        await bus.publish(PING, Ping(n=n))
        await anyio.lowlevel.checkpoint()
    gate.set()
    await bus.drain()
    assert sorted(by["stuck"] + by["free"]) == list(range(10))
    assert len(by["stuck"]) <= 2  # one in its handler, one in its buffer


async def test_drop_oldest_stays_within_its_bound_when_it_also_sees_dead_letters(
    bus: Bus,
) -> None:
    gate = anyio.Event()

    async def everything(msg: object) -> None:
        await gate.wait()

    from bus import Message, Topic

    sub = bus.subscribe(Topic(">", Message), everything, buffer=2, policy="drop_oldest")
    await bus.publish(PING, Ping(n=0))
    await anyio.sleep(0.01)
    for n in range(1, 6):
        await bus.publish(PING, Ping(n=n))
        assert sub.pending <= 2
    gate.set()
    await bus.drain()
    assert sub.stats().max_pending == 2
    assert bus.stats().balanced
