"""The route cache: correct after every subscribe and unsubscribe, and bounded."""

from __future__ import annotations

import pytest

from bus import Bus, Topic

from .messages import PING, Ping

pytestmark = pytest.mark.anyio


async def test_a_literal_subscription_evicts_only_its_own_subject(bus: Bus) -> None:
    await bus.publish(Topic("a.x", Ping), Ping(n=1))
    await bus.publish(Topic("b.x", Ping), Ping(n=1))
    bus.subscribe(Topic("a.x", Ping), lambda m: None)
    assert "a.x" not in bus._router.cache and "b.x" in bus._router.cache


async def test_a_cached_route_learns_of_a_new_wildcard_subscription(bus: Bus) -> None:
    seen: list[str] = []
    bus.subscribe(PING, lambda m: seen.append("exact"))
    await bus.publish(PING, Ping(n=1))  # caches the route of test.ping
    bus.subscribe(Topic("test.*", Ping), lambda m: seen.append("star"))
    bus.subscribe(Topic("other.>", Ping), lambda m: seen.append("unrelated"))
    await bus.publish(PING, Ping(n=2))
    await bus.drain()
    assert seen == ["exact", "exact", "star"]


async def test_unsubscribing_stops_delivery_through_cached_routes(bus: Bus) -> None:
    a_topic, b_topic = Topic("a.x", Ping), Topic("b.x", Ping)
    seen: list[str] = []
    sub = bus.subscribe(Topic("a.*", Ping), lambda m: seen.append("a"))
    bus.subscribe(b_topic, lambda m: seen.append("b"))
    await bus.publish(a_topic, Ping(n=1))
    await bus.publish(b_topic, Ping(n=1))
    await bus.drain()
    cache = bus._router.cache
    assert {"a.x", "b.x"} <= set(cache)
    sub.unsubscribe()
    assert "a.x" not in cache
    await bus.publish(a_topic, Ping(n=2))
    await bus.drain()
    assert seen == ["a", "b"]


async def test_ten_thousand_subscriptions_each_get_their_own_subject(bus: Bus) -> None:
    counts = [0] * 10_000

    def make(i: int):  # type: ignore[no-untyped-def]
        def on(msg: Ping) -> None:
            counts[i] += 1

        return on

    subs = [bus.subscribe(Topic(f"conv.c{i}.*", Ping), make(i), buffer=4) for i in range(10_000)]
    for i in range(10_000):
        await bus.publish(Topic(f"conv.c{i}.inbox", Ping), Ping(n=i))
    await bus.drain()
    assert counts == [1] * 10_000
    for sub in subs:
        sub.unsubscribe()
    assert len(bus._router.subscriptions) == 0
    assert bus._router.subscriptions._root.children == {}  # pruned


async def test_the_route_cache_is_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    from bus import _routing

    monkeypatch.setattr(_routing, "MAX_CACHED_ROUTES", 10)
    async with Bus() as bus:
        seen: list[int] = []
        bus.subscribe(Topic("conv.>", Ping), lambda m: seen.append(m.n))
        for i in range(25):
            await bus.publish(Topic(f"conv.{i}", Ping), Ping(n=i))
        assert len(bus._router.cache) <= 10
        await bus.drain()
    assert seen == list(range(25))
