"""observe_buses: a runner sees every bus started inside a block, as it starts."""

from __future__ import annotations

import asyncio
import threading

import pytest

from bus import Actor, Bus, Envelope, handler, observe_buses

from .messages import PING, Ping

pytestmark = pytest.mark.anyio


class Greeter(Actor):
    """Publishes on start: a tap added by an observer must see it."""

    async def on_start(self) -> None:
        await self.bus.publish(PING, Ping(n=1))

    @handler(PING)
    async def heard(self, msg: Ping) -> None:
        return None


async def test_an_observer_sees_each_bus_before_its_first_message() -> None:
    started: list[str] = []
    seen: list[str] = []

    def attach(bus: Bus) -> None:
        started.append(bus.name)
        bus.tap(">", lambda env: seen.append(f"{bus.name}:{env.subject}"))

    with observe_buses(attach):
        first = Bus("first")
        await first.add(Greeter("greeter"))  # started with the bus, publishing at once
        async with first:
            await first.drain()
        async with Bus("second") as second:
            await second.publish(PING, Ping(n=2))
    assert started == ["first", "second"]
    assert seen == ["first:test.ping", "second:test.ping"]


async def test_buses_started_outside_the_block_are_not_observed() -> None:
    started: list[Bus] = []
    with observe_buses(started.append):
        pass
    async with Bus("after"):
        pass
    assert started == []


async def test_observers_nest_and_the_inner_one_ends_with_its_block() -> None:
    outer: list[str] = []
    inner: list[str] = []
    with observe_buses(lambda bus: outer.append(bus.name)):
        with observe_buses(lambda bus: inner.append(bus.name)):
            async with Bus("both"):
                pass
        async with Bus("outer-only"):
            pass
    assert outer == ["both", "outer-only"]
    assert inner == ["both"]


async def test_a_failing_observer_stops_the_bus_from_starting() -> None:
    def broken(bus: Bus) -> None:
        raise RuntimeError("observer bug")

    bus = Bus("never")
    with observe_buses(broken), pytest.raises(RuntimeError, match="observer bug"):
        async with bus:
            pass
    async with bus:  # nothing was started: it can still start, unobserved
        assert repr(bus).startswith("Bus('never', running")


def test_a_program_running_its_own_event_loop_is_observed() -> None:
    """What ``hivebus run`` relies on for plain ``asyncio.run(...)`` programs."""
    seen: list[Envelope] = []

    async def program() -> None:
        async with Bus("program") as bus:
            await bus.publish(PING, Ping(n=3))

    with observe_buses(lambda bus: bus.tap(">", seen.append) and None):
        asyncio.run(program())
    assert [env.payload for env in seen] == [Ping(n=3)]


def test_another_threads_buses_are_not_observed() -> None:
    started: list[str] = []

    def elsewhere() -> None:
        async def program() -> None:
            async with Bus("thread"):
                pass

        asyncio.run(program())

    with observe_buses(lambda bus: started.append(bus.name)):
        thread = threading.Thread(target=elsewhere)
        thread.start()
        thread.join(timeout=30)
    assert started == []
