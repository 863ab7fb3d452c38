"""Publish/subscribe: fan-out, wildcards, types, handler shapes, contexts, streams."""

from __future__ import annotations

import anyio
import anyio.lowlevel
import pytest

from bus import DEAD_LETTERS, Bus, BusClosed, Context, InvalidSubject, Topic

from .conftest import local
from .messages import PING, Other, Ping

pytestmark = pytest.mark.anyio


async def test_every_plain_subscriber_gets_every_message(bus: Bus) -> None:
    got: dict[str, list[int]] = {"a": [], "b": [], "c": []}
    for key, seen in got.items():
        bus.subscribe(PING, lambda m, seen=seen: seen.append(m.n), name=key)
    for n in range(5):
        await bus.publish(PING, Ping(n=n))
    await bus.drain()
    assert got == {"a": [0, 1, 2, 3, 4], "b": [0, 1, 2, 3, 4], "c": [0, 1, 2, 3, 4]}


async def test_wildcard_subscriptions_see_matching_subjects_only(bus: Bus) -> None:
    star: list[str] = []
    rest: list[str] = []

    async def on_star(msg: Ping, ctx: Context) -> None:
        star.append(ctx.subject)

    async def on_rest(msg: Ping, ctx: Context) -> None:
        rest.append(ctx.subject)

    bus.subscribe(Topic("agent.*.inbox", Ping), on_star)
    bus.subscribe(Topic("agent.>", Ping), on_rest)
    for subject in ("agent.a.inbox", "agent.b.inbox", "agent.a.events", "agent.a.inbox.x"):
        await bus.publish(Topic(subject, Ping), Ping(n=0))
    await bus.drain()
    assert star == ["agent.a.inbox", "agent.b.inbox"]
    assert rest == ["agent.a.inbox", "agent.b.inbox", "agent.a.events", "agent.a.inbox.x"]


async def test_a_subscription_made_after_publishes_sees_only_later_ones(bus: Bus) -> None:
    await bus.publish(PING, Ping(n=1))
    seen: list[int] = []
    bus.subscribe(PING, lambda m: seen.append(m.n))
    await bus.publish(PING, Ping(n=2))
    await bus.drain()
    assert seen == [2]
    assert bus.stats().subjects["test.ping"].unrouted == (
        1 if local(bus) else 0
    )  # (over NATS only the server knows)


async def test_publishing_the_wrong_type_names_both_types(bus: Bus) -> None:
    with pytest.raises(TypeError, match=r"Topic\('test.ping', Ping\) carries Ping, got Other"):
        await bus.publish(PING, Other(text="x"))  # type: ignore[arg-type]
    assert bus.stats().published == 0


async def test_publishing_to_a_pattern_is_refused(bus: Bus) -> None:
    with pytest.raises(InvalidSubject, match="cannot publish to a wildcard"):
        await bus.publish(Topic("a.*", Ping), Ping(n=1))


async def test_handlers_may_take_the_message_alone_be_sync_or_callable_objects(bus: Bus) -> None:
    seen: list[str] = []

    async def message_only(msg: Ping) -> None:
        seen.append("async-1")

    def sync_with_context(msg: Ping, ctx: Context) -> None:
        seen.append(f"sync-2:{ctx.subject}")

    class Callable:
        async def __call__(self, msg: Ping, ctx: Context) -> None:
            seen.append("object")

    bus.subscribe(PING, message_only)
    bus.subscribe(PING, sync_with_context)
    bus.subscribe(PING, Callable())
    await bus.publish(PING, Ping(n=1))
    await bus.drain()
    assert sorted(seen) == ["async-1", "object", "sync-2:test.ping"]


def test_a_handler_of_the_wrong_shape_is_refused_at_subscribe() -> None:
    bus = Bus()
    with pytest.raises(TypeError, match=r"must take \(message\) or \(message, ctx\)"):
        bus.subscribe(PING, lambda a, b, c: None)
    with pytest.raises(TypeError, match="must be callable"):
        bus.subscribe(PING, "nope")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="unknown policy"):
        bus.subscribe(PING, lambda m: None, policy="drop_all")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="buffer must be >= 1, got 0"):
        bus.subscribe(PING, lambda m: None, buffer=0)
    with pytest.raises(ValueError, match="concurrency must be >= 1, got -2"):
        bus.subscribe(PING, lambda m: None, concurrency=-2)


async def test_context_exposes_the_envelope_and_chains_causation(bus: Bus) -> None:
    second = Topic("test.second", Other)
    contexts: list[Context] = []

    async def first(msg: Ping, ctx: Context) -> None:
        contexts.append(ctx)
        await ctx.publish(second, Other(text="caused"), headers={"k": "v"})

    async def then(msg: Other, ctx: Context) -> None:
        contexts.append(ctx)

    bus.subscribe(PING, first, name="first")
    bus.subscribe(second, then, name="then")
    await bus.publish(PING, Ping(n=1), sender="me", headers={"trace": "t1"})
    await bus.drain()
    root, child = contexts
    assert (root.subject, root.sender, root.causation_id) == ("test.ping", "me", None)
    assert root.headers == {"trace": "t1"}
    assert root.reply_to is None and root.correlation_id is None
    assert (child.subject, child.sender, child.causation_id) == ("test.second", "first", root.id)
    assert child.headers == {"k": "v"}
    assert child.timestamp >= root.timestamp > 0
    assert root.id != child.id
    assert root.bus is bus


async def test_per_publisher_order_is_kept_for_a_sequential_subscriber(bus: Bus) -> None:
    seen: list[int] = []

    async def slow(msg: Ping) -> None:
        if msg.n % 7 == 0:
            await anyio.lowlevel.checkpoint()
        seen.append(msg.n)

    bus.subscribe(PING, slow, buffer=4)
    for n in range(200):
        await bus.publish(PING, Ping(n=n))
    await bus.drain()
    assert seen == list(range(200))


async def test_concurrency_runs_that_many_handlers_at_once(bus: Bus) -> None:
    running = 0
    peak = 0

    async def work(msg: Ping) -> None:
        nonlocal running, peak
        running += 1
        peak = max(peak, running)
        await anyio.sleep(0.01)
        running -= 1

    bus.subscribe(PING, work, concurrency=4)
    for n in range(12):
        await bus.publish(PING, Ping(n=n))
    await bus.drain()
    assert peak == 4


async def test_stream_yields_messages_and_unsubscribes_on_exit(bus: Bus) -> None:
    async with bus.stream(PING) as messages:
        for n in range(3):
            await bus.publish(PING, Ping(n=n))
        got = []
        async for msg in messages:
            got.append(msg.n)
            assert messages.context is not None and messages.context.subject == "test.ping"
            if len(got) == 3:
                break
    assert got == [0, 1, 2]
    await bus.publish(PING, Ping(n=9))
    await bus.drain()
    stats = bus.stats()
    assert stats.subjects["test.ping"].unrouted == (
        1 if local(bus) else 0
    )  # (over NATS only the server knows)
    assert stats.delivered == 3 and stats.balanced


async def test_stream_ends_when_the_bus_closes() -> None:
    got: list[int] = []
    async with Bus() as bus, anyio.create_task_group() as tg:
        ready = anyio.Event()

        async def read() -> None:
            async with bus.stream(PING) as messages:
                ready.set()
                async for msg in messages:
                    got.append(msg.n)  # noqa: PERF401 - collects as the stream yields

        tg.start_soon(read)
        await ready.wait()
        await bus.publish(PING, Ping(n=1))
        await bus.drain()
        await bus.close()
    assert got == [1]


async def test_unsubscribe_stops_delivery_and_dead_letters_what_was_buffered(bus: Bus) -> None:
    gate = anyio.Event()
    seen: list[int] = []
    dead: list[str] = []

    entered = anyio.Event()

    async def blocked(msg: Ping) -> None:
        entered.set()
        await gate.wait()
        seen.append(msg.n)

    bus.subscribe(DEAD_LETTERS, lambda d: dead.append(d.reason))
    sub = bus.subscribe(PING, blocked)
    for n in range(3):
        await bus.publish(PING, Ping(n=n))
    with anyio.fail_after(5):
        await entered.wait()  # the worker took message 0 and waits on the gate
    sub.unsubscribe()
    gate.set()
    await bus.publish(PING, Ping(n=3))
    await bus.drain()
    assert seen == [0]
    assert dead == ["unsubscribed", "unsubscribed"]
    stats = bus.stats()
    assert (stats.delivered, stats.dropped) == (1 + 2, 2)  # 1 handled + 2 dead letters
    assert stats.balanced


async def test_publish_before_start_and_after_close_are_refused() -> None:
    bus = Bus()
    with pytest.raises(BusClosed, match="not started"):
        await bus.publish(PING, Ping(n=1))
    async with bus:
        pass
    with pytest.raises(BusClosed, match="closed"):
        await bus.publish(PING, Ping(n=1))
    with pytest.raises(BusClosed):
        bus.subscribe(PING, lambda m: None)


async def test_subscriptions_made_before_start_begin_with_the_bus() -> None:
    bus = Bus()
    seen: list[int] = []
    bus.subscribe(PING, lambda m: seen.append(m.n))
    async with bus:
        await bus.publish(PING, Ping(n=5))
        await bus.drain()
    assert seen == [5]


async def test_publish_nowait_delivers_from_sync_code(bus: Bus) -> None:
    seen: list[int] = []
    bus.subscribe(PING, lambda m: seen.append(m.n))
    bus.publish_nowait(PING, Ping(n=1))
    await bus.drain()
    assert seen == [1]


async def test_a_plain_function_returning_a_coroutine_is_awaited(bus: Bus) -> None:
    seen: list[int] = []

    async def work(msg: Ping) -> None:
        await anyio.lowlevel.checkpoint()
        seen.append(msg.n)

    bus.subscribe(PING, lambda m: work(m))
    await bus.publish(PING, Ping(n=3))
    await bus.drain()
    assert seen == [3]


async def test_publish_nowait_from_a_handler_into_its_own_full_buffer_is_let_in(
    bus: Bus,
) -> None:
    seen: list[int] = []

    def fan(msg: Ping, ctx: Context) -> None:
        seen.append(msg.n)
        if msg.n == 0:
            for n in range(1, 4):
                ctx.bus.publish_nowait(PING, Ping(n=n))

    bus.subscribe(PING, fan, buffer=1)
    await bus.publish(PING, Ping(n=0))
    await bus.drain()
    assert seen == [0, 1, 2, 3]


async def test_a_subscriber_never_receives_another_topics_type(bus: Bus) -> None:
    from bus import DeadLetter

    mine: list[object] = []
    dead: list[DeadLetter] = []
    bus.subscribe(DEAD_LETTERS, dead.append)
    bus.subscribe(Topic("shared.subject", Ping), mine.append, name="typed")
    await bus.publish(Topic("shared.subject", Other), Other(text="sneaky"))
    await bus.publish(Topic("shared.subject", Ping), Ping(n=1))
    await bus.drain()
    assert mine == [Ping(n=1)]
    assert [(d.reason, d.subscription) for d in dead] == [("wrong_type", "typed")]
    assert bus.stats().balanced


async def test_a_request_of_the_wrong_type_is_answered_with_a_type_error(bus: Bus) -> None:
    from bus import RemoteError

    from .messages import Pong

    async def serve(msg: Ping) -> Pong:
        return Pong(n=msg.n)

    bus.subscribe(Topic("shared.rpc", Ping), serve, name="server")
    with pytest.raises(RemoteError, match="takes Ping, got Other"):
        await bus.request(Topic("shared.rpc", Other), Other(text="?"))


async def test_iterating_a_stream_outside_async_with_is_an_error(bus: Bus) -> None:
    with pytest.raises(RuntimeError, match=r"use 'async with bus\.stream"):
        async for _ in bus.stream(PING):
            pass  # pragma: no cover


async def test_listening_says_whether_a_publish_would_reach_anyone(bus: Bus) -> None:
    if not local(bus):  # over NATS another process may listen: only the server knows
        assert bus.listening(PING) and not bus.listening(Topic("_bus.x", Ping))
        return
    assert not bus.listening(PING)
    sub = bus.subscribe(PING, lambda m: None)
    assert bus.listening(PING)
    sub.unsubscribe()
    assert not bus.listening(PING)
    tap = bus.tap("test.>", lambda env: None)
    assert bus.listening(PING)  # a tap hears it too
    tap.close()
    assert not bus.listening(PING)
    with pytest.raises(InvalidSubject):
        bus.listening(Topic("test.*", Ping))
