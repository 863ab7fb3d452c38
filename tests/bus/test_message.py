"""Messages, topics and contexts as values."""

from __future__ import annotations

import gc

import msgspec
import pytest

from bus import Bus, Context, Envelope, Message, Topic

from .messages import PING, RPC, Other, Ping, Pong

pytestmark = pytest.mark.anyio


def test_messages_are_frozen_keyword_only_structs() -> None:
    msg = Ping(n=1)
    with pytest.raises(AttributeError):
        msg.n = 2  # type: ignore[misc]
    with pytest.raises(TypeError):
        Ping(1)  # type: ignore[misc]
    assert msgspec.json.decode(msgspec.json.encode(msg), type=Ping) == msg
    assert isinstance(msg, Message) and isinstance(msg, msgspec.Struct)


def test_topics_compare_by_subject_and_types_and_show_them() -> None:
    assert Topic("test.ping", Ping) == PING and hash(Topic("test.ping", Ping)) == hash(PING)
    assert Topic("test.ping", Other) != PING
    assert PING != "test.ping"
    assert repr(RPC) == "Topic('test.rpc', Ping, reply=Pong)"
    assert RPC.reply is Pong and PING.reply is None
    assert Topic("a.*", Ping).is_pattern and not PING.is_pattern
    assert PING.tokens == ("test", "ping")


def test_the_envelope_round_trips_through_msgpack() -> None:
    env = Envelope(
        id="x-1",
        subject="test.ping",
        payload={"n": 1},
        sender="me",
        timestamp=1.5,
        correlation_id="x-1",
        reply_to="_INBOX.x",
        headers={"k": "v"},
    )
    assert msgspec.msgpack.decode(msgspec.msgpack.encode(env), type=Envelope) == env


async def test_the_default_sender_is_the_bus_name_and_contexts_show_themselves() -> None:
    contexts: list[Context] = []
    async with Bus("station") as bus:
        bus.subscribe(PING, lambda m, ctx: contexts.append(ctx))
        await bus.publish(PING, Ping(n=1))
        await bus.drain()
        assert repr(bus) == "Bus('station', running, in_flight=0)"
    (ctx,) = contexts
    assert ctx.sender == "station"
    assert ctx.headers == {}
    assert repr(ctx).startswith("Context(id=") and "'test.ping'" in repr(ctx)
    assert repr(bus) == "Bus('station', closed, in_flight=0)"


async def test_a_request_blocked_on_a_full_buffer_times_out_with_its_own_timeout(
    bus: Bus,
) -> None:
    import anyio

    from bus import RequestTimeout

    gate = anyio.Event()

    async def gated(msg: Ping) -> Pong:
        await gate.wait()
        return Pong(n=msg.n)

    bus.subscribe(RPC, gated, buffer=1)
    async with anyio.create_task_group() as tg:
        tg.start_soon(bus.request, RPC, Ping(n=0))
        tg.start_soon(bus.request, RPC, Ping(n=1))
        await anyio.sleep(0.01)  # one in the handler, one in the buffer
        with pytest.raises(RequestTimeout) as info:
            await bus.request(RPC, Ping(n=2), timeout=0.05)
        assert info.value.timeout == 0.05
        gate.set()
    await bus.drain()
    assert bus.stats().balanced


class Batch(Message, frozen=True, kw_only=True):
    items: list[int]


def test_messages_are_values_the_garbage_collector_does_not_walk() -> None:
    assert not gc.is_tracked(Batch(items=[1, 2]))
    assert not gc.is_tracked(Ping(n=1))
