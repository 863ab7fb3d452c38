"""Request/reply: replies, remote errors, no responders, timeouts, cancellation."""

from __future__ import annotations

import contextlib

import anyio
import anyio.lowlevel
import pytest

from bus import (
    DEAD_LETTERS,
    Bus,
    Context,
    DeadLetter,
    Message,
    NoResponders,
    RemoteError,
    RequestTimeout,
    Topic,
)

from .conftest import local
from .messages import RPC, Other, Ping, Pong

pytestmark = pytest.mark.anyio


async def test_the_handler_return_value_is_the_reply(bus: Bus) -> None:
    async def double(msg: Ping) -> Pong:
        return Pong(n=msg.n * 2)

    bus.subscribe(RPC, double)
    assert await bus.request(RPC, Ping(n=21)) == Pong(n=42)
    stats = bus.stats()
    assert (stats.requests, stats.replies) == (1, 1)


async def test_a_raising_handler_reaches_the_caller_as_remote_error(bus: Bus) -> None:
    async def broken(msg: Ping) -> Pong:
        raise KeyError("missing-thing")

    bus.subscribe(RPC, broken)
    with pytest.raises(RemoteError) as info:
        await bus.request(RPC, Ping(n=1))
    error = info.value
    assert error.remote_type == "KeyError"
    assert error.remote_message == "'missing-thing'"
    assert error.subject == "test.rpc"
    assert "in broken" in error.remote_traceback
    assert "KeyError" in str(error)


async def test_a_raising_handler_keeps_the_bus_running_and_is_dead_lettered(bus: Bus) -> None:
    dead: list[DeadLetter] = []
    bus.subscribe(DEAD_LETTERS, dead.append)
    calls = 0

    async def flaky(msg: Ping) -> Pong:
        nonlocal calls
        calls += 1
        if msg.n == 0:
            raise ValueError("bad n")
        return Pong(n=msg.n)

    bus.subscribe(RPC, flaky, name="flaky")
    with pytest.raises(RemoteError):
        await bus.request(RPC, Ping(n=0))
    assert await bus.request(RPC, Ping(n=1)) == Pong(n=1)
    await bus.drain()
    (letter,) = dead
    assert (letter.reason, letter.subscription, letter.error_type) == (
        "handler_error",
        "flaky",
        "ValueError",
    )
    assert letter.error_message == "bad n"
    assert letter.envelope.payload == Ping(n=0)
    assert bus.stats().failed == 1


async def test_no_subscriber_is_no_responders_at_once(bus: Bus) -> None:
    with anyio.fail_after(0.5):
        with pytest.raises(NoResponders, match=r"test\.rpc"):
            await bus.request(RPC, Ping(n=1), timeout=30)
    assert bus.stats().no_responders == 1


async def test_no_reply_in_time_is_request_timeout_and_cancels_the_handler(bus: Bus) -> None:
    started = anyio.Event()
    outcome: list[str] = []

    async def slow(msg: Ping) -> Pong:
        started.set()
        try:
            await anyio.sleep(10)
        except BaseException:
            outcome.append("cancelled")
            raise
        outcome.append("finished")
        return Pong(n=0)

    bus.subscribe(RPC, slow)
    timeout = 0.05 if local(bus) else 2.0  # (over NATS: time for the handler to start)
    with pytest.raises(RequestTimeout) as info:
        await bus.request(RPC, Ping(n=1), timeout=timeout)
    assert info.value.timeout == timeout
    await bus.drain()
    assert started.is_set()
    assert outcome == ["cancelled"]
    stats = bus.stats()
    assert (stats.timeouts, stats.cancelled, stats.failed, stats.delivered) == (1, 1, 0, 0)
    assert stats.balanced


async def test_cancelling_the_caller_cancels_the_handler(bus: Bus) -> None:
    started = anyio.Event()
    outcome: list[str] = []

    async def slow(msg: Ping) -> Pong:
        started.set()
        try:
            await anyio.sleep(10)
        except BaseException:
            outcome.append("cancelled")
            raise
        return Pong(n=0)

    bus.subscribe(RPC, slow)
    async with anyio.create_task_group() as tg:
        tg.start_soon(bus.request, RPC, Ping(n=1))
        await started.wait()
        tg.cancel_scope.cancel()
    await bus.drain()
    assert outcome == ["cancelled"]


async def test_cancellation_cascades_through_nested_requests(bus: Bus) -> None:
    inner_topic = Topic("test.inner", Other, reply=Pong)
    inner_started = anyio.Event()
    outcome: list[str] = []

    async def outer(msg: Ping, ctx: Context) -> Pong:
        try:
            return await ctx.request(inner_topic, Other(text="deeper"))
        except BaseException:
            outcome.append("outer cancelled")
            raise

    async def inner(msg: Other) -> Pong:
        inner_started.set()
        try:
            await anyio.sleep(10)
        except BaseException:
            outcome.append("inner cancelled")
            raise
        return Pong(n=0)

    bus.subscribe(RPC, outer)
    bus.subscribe(inner_topic, inner)
    with pytest.raises(RequestTimeout):  # (over NATS: time for two hops to start)
        await bus.request(RPC, Ping(n=1), timeout=0.1 if local(bus) else 2.0)
    await bus.drain()
    assert inner_started.is_set()
    assert sorted(outcome) == ["inner cancelled", "outer cancelled"]


async def test_a_handler_that_swallows_cancellation_does_not_poison_its_worker(bus: Bus) -> None:
    async def stubborn(msg: Ping) -> Pong:
        if msg.n == 0:
            # bad manners: swallows the cancellation and replies anyway
            with contextlib.suppress(BaseException):
                await anyio.sleep(10)
        return Pong(n=msg.n)

    bus.subscribe(RPC, stubborn)
    with pytest.raises(RequestTimeout):
        await bus.request(RPC, Ping(n=0), timeout=0.05)
    # The same worker goes on serving, and is not cancelled at its next await.
    assert await bus.request(RPC, Ping(n=1), timeout=1) == Pong(n=1)
    assert bus.stats().cancelled == 1


async def test_a_request_abandoned_while_queued_is_skipped(bus: Bus) -> None:
    gate = anyio.Event()
    handled: list[int] = []

    async def gated(msg: Ping) -> Pong:
        await gate.wait()
        handled.append(msg.n)
        return Pong(n=msg.n)

    bus.subscribe(RPC, gated)
    async with anyio.create_task_group() as tg:
        tg.start_soon(bus.request, RPC, Ping(n=0))  # occupies the only worker
        await anyio.sleep(0.01)
        with pytest.raises(RequestTimeout):
            await bus.request(RPC, Ping(n=1), timeout=0.05)  # waits in the buffer, gives up
        gate.set()
    await bus.drain()
    assert handled == [0]
    assert bus.stats().cancelled == 1


async def test_a_reply_of_the_wrong_type_is_a_remote_type_error(bus: Bus) -> None:
    async def wrong(msg: Ping) -> Other:
        return Other(text="not a pong")

    bus.subscribe(RPC, wrong)  # type: ignore[arg-type]
    with pytest.raises(RemoteError) as info:
        await bus.request(RPC, Ping(n=1))
    assert info.value.remote_type == "TypeError"
    assert "replies with Pong, handler returned Other" in info.value.remote_message


async def test_with_several_responders_the_first_reply_wins(bus: Bus) -> None:
    async def fast(msg: Ping) -> Pong:
        return Pong(n=1)

    async def slow(msg: Ping) -> Pong:
        await anyio.sleep(0.01)
        return Pong(n=2)

    bus.subscribe(RPC, fast)
    bus.subscribe(RPC, slow)
    assert await bus.request(RPC, Ping(n=0)) == Pong(n=1)
    await bus.drain()
    assert bus.stats().late_replies == 1


async def test_a_queue_group_answers_each_request_once(bus: Bus) -> None:
    served: list[str] = []

    for name in ("a", "b", "c"):

        async def serve(msg: Ping, name: str = name) -> Pong:
            served.append(name)
            return Pong(n=msg.n)

        bus.subscribe(RPC, serve, queue="servers", name=name)
    replies = [await bus.request(RPC, Ping(n=n)) for n in range(6)]
    assert replies == [Pong(n=n) for n in range(6)]
    if local(bus):  # round robin
        assert sorted(served) == ["a", "a", "b", "b", "c", "c"]
    else:  # the server picks a member at random: each request served once
        assert len(served) == 6 and set(served) <= {"a", "b", "c"}
    assert bus.stats().late_replies == 0


async def test_requests_during_close_fail_with_bus_closed() -> None:
    from bus import BusClosed

    async with Bus(close_timeout=0.05) as bus:
        started = anyio.Event()

        async def never(msg: Ping) -> Pong:
            started.set()
            await anyio.sleep(10)
            return Pong(n=0)

        bus.subscribe(RPC, never)
        outcome: list[BaseException] = []

        async def ask() -> None:
            try:
                await bus.request(RPC, Ping(n=1), timeout=30)
            except BaseException as exc:  # noqa: BLE001 - the test records what arrived
                outcome.append(exc)

        async with anyio.create_task_group() as tg:
            tg.start_soon(ask)
            await started.wait()
            report = await bus.close()
    assert report.failed_requests == 1
    assert report.interrupted == 1
    assert not report.drained
    assert [type(e) for e in outcome] == [BusClosed]


async def test_an_observer_of_a_request_subject_sees_every_request(bus: Bus) -> None:
    seen: list[int] = []

    async def responder(msg: Ping) -> Pong:
        return Pong(n=msg.n)

    async def audit(msg: Ping) -> Pong:
        seen.append(msg.n)
        await anyio.sleep(0.001)
        return Pong(n=-1)

    bus.subscribe(RPC, responder)
    bus.subscribe(RPC, audit)
    replies = [await bus.request(RPC, Ping(n=n)) for n in range(5)]
    await bus.drain()
    assert replies == [Pong(n=n) for n in range(5)]
    assert seen == [0, 1, 2, 3, 4]  # answered requests still reach every plain subscriber


async def test_a_reply_is_not_lost_while_the_caller_waits_for_room_elsewhere(bus: Bus) -> None:
    gate = anyio.Event()

    async def responder(msg: Ping) -> Pong:
        return Pong(n=msg.n)

    async def stuck_observer(msg: Ping) -> None:
        await gate.wait()

    bus.subscribe(RPC, responder)
    bus.subscribe(RPC, stuck_observer, buffer=1, name="observer")
    async with anyio.create_task_group() as tg:
        tg.start_soon(bus.publish, RPC, Ping(n=0))  # the observer's handler takes it
        await anyio.sleep(0.01)
        await bus.publish(RPC, Ping(n=1))  # fills the observer's buffer
        with anyio.fail_after(1):
            assert await bus.request(RPC, Ping(n=7), timeout=0.5) == Pong(n=7)
        gate.set()
    await bus.drain()
    stats = bus.stats()
    assert stats.balanced
    assert stats.subjects["test.rpc"].fanout == sum(s.received for s in stats.subscriptions)


async def test_timeouts_leave_no_unretrieved_future_behind() -> None:
    import asyncio
    import gc

    problems: list[str] = []
    loop = asyncio.get_running_loop()
    loop.set_exception_handler(lambda _loop, context: problems.append(context["message"]))
    try:
        async with Bus(close_timeout=0) as bus:

            async def slow(msg: Ping) -> Pong:
                await anyio.sleep(1)
                return Pong(n=0)

            bus.subscribe(RPC, slow, buffer=1)
            async with anyio.create_task_group() as tg:
                tg.start_soon(bus.request, RPC, Ping(n=1))
                await anyio.sleep(0.01)
                bus.publish_nowait(RPC, Ping(n=2))
                with pytest.raises(RequestTimeout):
                    await bus.request(RPC, Ping(n=3), timeout=0.05)  # waits for room
                tg.cancel_scope.cancel()
        gc.collect()
        await anyio.lowlevel.checkpoint()
    finally:
        loop.set_exception_handler(None)
    assert problems == []


async def test_a_request_timeout_must_be_positive(bus: Bus) -> None:
    async def serve(msg: Ping) -> Pong:
        return Pong(n=msg.n)

    bus.subscribe(RPC, serve)
    for bad in (0, -1, float("nan")):
        with pytest.raises(ValueError, match="request timeout must be > 0 seconds"):
            await bus.request(RPC, Ping(n=1), timeout=bad)
    assert bus.stats().requests == 0


@pytest.mark.local_only(
    "the server cannot tell a watcher from a responder: over NATS a lone catch-all "
    "watcher makes a request time out rather than fail with NoResponders"
)
async def test_a_catch_all_watcher_is_no_responder(bus: Bus) -> None:
    watched: list[object] = []
    bus.subscribe(Topic(">", Message), watched.append)
    with pytest.raises(NoResponders):  # the watcher alone does not answer a typed request
        await bus.request(RPC, Ping(n=1), timeout=1)

    async def slow_double(msg: Ping) -> Pong:
        await anyio.sleep(0.01)
        return Pong(n=msg.n * 2)

    bus.subscribe(RPC, slow_double)
    assert await bus.request(RPC, Ping(n=2), timeout=5) == Pong(n=4)  # not the watcher's None
    await bus.drain()
    assert Ping(n=2) in watched  # it saw the request all the same
    assert bus.stats().late_replies == 0
