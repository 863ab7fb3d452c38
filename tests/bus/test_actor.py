"""Actors: handlers bound to topics, state, a shared concurrency limit, supervision."""

from __future__ import annotations

import anyio
import anyio.lowlevel
import pytest

from bus import DEAD_LETTERS, Actor, Bus, Context, RemoteError, Topic, handler

from .messages import PING, RPC, Other, Ping, Pong

pytestmark = pytest.mark.anyio

OTHER = Topic("test.other", Other)


class Counter(Actor):
    """Counts pings and answers requests with the count so far."""

    async def on_start(self) -> None:
        self.count = 0
        self.started = getattr(self, "started", 0) + 1

    async def on_stop(self) -> None:
        self.stopped = getattr(self, "stopped", 0) + 1

    @handler(RPC)
    async def count_it(self, msg: Ping, ctx: Context) -> Pong:
        if msg.n < 0:
            raise ValueError("negative")
        self.count += 1
        return Pong(n=self.count)


async def test_an_actor_keeps_private_state_and_is_started_and_stopped_with_the_bus() -> None:
    counter = Counter("counter")
    async with Bus() as bus:
        await bus.add(counter)
        replies = [await bus.request(RPC, Ping(n=1)) for _ in range(3)]
        assert counter.subscriptions[0].name == "counter.count_it"
    assert replies == [Pong(n=1), Pong(n=2), Pong(n=3)]
    assert (counter.started, counter.stopped) == (1, 1)


async def test_an_actor_added_before_start_starts_with_the_bus() -> None:
    bus = Bus()
    counter = await bus.add(Counter())
    assert counter.name == "Counter"
    async with bus:
        assert await bus.request(RPC, Ping(n=1)) == Pong(n=1)


async def test_resume_keeps_state_after_a_failure() -> None:
    counter = Counter()
    async with Bus() as bus:
        await bus.add(counter)
        await bus.request(RPC, Ping(n=1))
        with pytest.raises(RemoteError, match="negative"):
            await bus.request(RPC, Ping(n=-1))
        assert await bus.request(RPC, Ping(n=1)) == Pong(n=2)


async def test_restart_runs_on_stop_then_on_start_before_the_next_message() -> None:
    class Restarting(Counter):
        supervision = "restart"

    counter = Restarting()
    async with Bus() as bus:
        await bus.add(counter)
        await bus.request(RPC, Ping(n=1))
        with pytest.raises(RemoteError):
            await bus.request(RPC, Ping(n=-1))
        assert await bus.request(RPC, Ping(n=1)) == Pong(n=1)  # state was reset
        assert (counter.restarts, counter.started) == (1, 2)


async def test_stop_unsubscribes_the_actor_after_a_failure() -> None:
    from bus import NoResponders

    class Stopping(Counter):
        supervision = "stop"

    async with Bus() as bus:
        await bus.add(Stopping())
        with pytest.raises(RemoteError):
            await bus.request(RPC, Ping(n=-1))
        with pytest.raises(NoResponders):
            await bus.request(RPC, Ping(n=1))


async def test_concurrency_is_shared_across_the_actors_topics() -> None:
    class Busy(Actor):
        concurrency = 1

        def __init__(self) -> None:
            super().__init__("busy")
            self.running = 0
            self.peak = 0

        async def _work(self) -> None:
            self.running += 1
            self.peak = max(self.peak, self.running)
            await anyio.sleep(0.01)
            self.running -= 1

        @handler(PING)
        async def on_ping(self, msg: Ping) -> None:
            await self._work()

        @handler(OTHER)
        async def on_other(self, msg: Other) -> None:
            await self._work()

    busy = Busy()
    async with Bus() as bus:
        await bus.add(busy)
        for n in range(3):
            await bus.publish(PING, Ping(n=n))
            await bus.publish(OTHER, Other(text=str(n)))
        await bus.drain()
    assert busy.peak == 1


async def test_topics_may_depend_on_the_instance() -> None:
    class Inbox(Actor):
        def __init__(self, name: str) -> None:
            super().__init__(name)
            self.inbox = Topic(f"agent.{name}.inbox", Other)
            self.got: list[str] = []

        @handler(lambda self: self.inbox)
        async def on_message(self, msg: Other) -> None:
            self.got.append(msg.text)

    a, b = Inbox("a"), Inbox("b")
    async with Bus() as bus:
        await bus.add(a)
        await bus.add(b)
        await bus.publish(a.inbox, Other(text="for a"))
        await bus.publish(b.inbox, Other(text="for b"))
    assert (a.got, b.got) == (["for a"], ["for b"])


async def test_an_actor_without_handlers_is_refused() -> None:
    async with Bus() as bus:
        with pytest.raises(TypeError, match="has no @handler methods"):
            await bus.add(Actor("empty"))


async def test_failures_of_an_actor_are_dead_lettered_with_its_name() -> None:
    async with Bus() as bus:
        letters: list[str] = []
        bus.subscribe(DEAD_LETTERS, lambda d: letters.append(d.subscription))
        await bus.add(Counter("c1"))
        with pytest.raises(RemoteError):
            await bus.request(RPC, Ping(n=-1))
        await bus.drain()
    assert letters == ["c1.count_it"]
    assert PING.subject == "test.ping"


async def test_an_actor_that_fails_to_start_fails_the_bus_start_cleanly() -> None:
    class Broken(Counter):
        async def on_start(self) -> None:
            raise ConnectionError("no database")

    bus = Bus()
    await bus.add(Counter("fine"))
    await bus.add(Broken("broken"))
    with pytest.raises(ConnectionError, match="no database"):
        async with bus:
            pytest.fail("the body must not run")  # pragma: no cover
    from bus import BusClosed

    with pytest.raises(BusClosed):
        await bus.publish(PING, Ping(n=1))


async def test_stop_unsubscribes_and_bus_is_only_available_while_started() -> None:
    counter = Counter("c")
    with pytest.raises(RuntimeError, match="'c' is not started"):
        _ = counter.bus
    async with Bus() as bus:
        await bus.add(counter)
        assert counter.bus is bus
        counter.stop()
        from bus import NoResponders

        with pytest.raises(NoResponders):
            await bus.request(RPC, Ping(n=1))
    with pytest.raises(RuntimeError):
        _ = counter.bus
    assert repr(counter) == "<Counter 'c'>"


async def test_queue_groups_of_actors_share_the_work() -> None:
    class Worker(Actor):
        def __init__(self, name: str) -> None:
            super().__init__(name)
            self.jobs: list[int] = []

        @handler(RPC, queue="workers")
        async def work(self, msg: Ping) -> Pong:
            self.jobs.append(msg.n)
            await anyio.lowlevel.checkpoint()
            return Pong(n=msg.n)

    workers = [Worker(f"w{i}") for i in range(3)]
    async with Bus() as bus:
        for w in workers:
            await bus.add(w)
        async with anyio.create_task_group() as tg:
            for n in range(9):
                tg.start_soon(bus.request, RPC, Ping(n=n))
    assert sorted(n for w in workers for n in w.jobs) == list(range(9))
    assert all(len(w.jobs) == 3 for w in workers)


async def test_a_handler_feeding_a_siblings_full_buffer_does_not_deadlock() -> None:
    got: list[int] = []

    class Pipe(Actor):
        concurrency = 1

        @handler(PING)
        async def first(self, msg: Ping, ctx: Context) -> None:
            for n in range(3):
                await ctx.publish(OTHER, Other(text=str(n)))

        @handler(OTHER, buffer=1)
        async def second(self, msg: Other) -> None:
            got.append(int(msg.text))

    async with Bus(close_timeout=0.5) as bus:
        await bus.add(Pipe())
        await bus.publish(PING, Ping(n=0))
        await bus.drain(timeout=2)
    assert got == [0, 1, 2]


async def test_a_restart_completes_before_a_sibling_handler_runs() -> None:
    seen: list[object] = []

    class Service(Actor):
        concurrency = 1
        supervision = "restart"

        async def on_start(self) -> None:
            self.db: dict[str, bool] | None = {"ok": True}

        async def on_stop(self) -> None:
            self.db = None
            await anyio.sleep(0.02)  # closing a connection takes a while

        @handler(PING)
        async def boom(self, msg: Ping) -> None:
            raise ValueError("boom")

        @handler(OTHER)
        async def use(self, msg: Other) -> None:
            seen.append(self.db)

    async with Bus() as bus:
        await bus.add(Service())
        await bus.publish(PING, Ping(n=1))
        await bus.publish(OTHER, Other())
        await bus.drain()
    assert seen == [{"ok": True}]


async def test_an_actor_that_cannot_restart_is_stopped() -> None:
    from bus import NoResponders

    class Fragile(Counter):
        supervision = "restart"

        async def on_start(self) -> None:
            if getattr(self, "count", None) is not None:
                raise ConnectionError("cannot reconnect")
            self.count = 0

    async with Bus() as bus:
        await bus.add(Fragile())
        with pytest.raises(RemoteError):
            await bus.request(RPC, Ping(n=-1))
        await bus.drain()
        with pytest.raises(NoResponders):
            await bus.request(RPC, Ping(n=1))


async def test_a_misspelt_supervision_or_a_second_add_is_refused() -> None:
    class Typo(Counter):
        supervision = "restrat"  # type: ignore[assignment]

    async with Bus() as bus:
        with pytest.raises(ValueError, match="unknown supervision 'restrat'"):
            await bus.add(Typo("typo"))
        counter = await bus.add(Counter("once"))
        with pytest.raises(RuntimeError, match="already added"):
            await bus.add(counter)
        assert len(counter.subscriptions) == 1


async def test_on_stop_is_not_called_when_on_start_failed() -> None:
    class Broken(Counter):
        async def on_start(self) -> None:
            raise ConnectionError("down")

    broken = Broken("broken")
    async with Bus() as bus:
        with pytest.raises(ConnectionError):
            await bus.add(broken)
    assert not hasattr(broken, "stopped")
    assert bus.close_report is not None and bus.close_report.actor_errors == {}
