"""Queue groups: each message to exactly one member of each group."""

from __future__ import annotations

from collections import Counter

import pytest

from bus import Bus, Topic

from .conftest import local
from .messages import PING, Ping

pytestmark = pytest.mark.anyio


async def test_each_group_gets_each_message_once_and_plain_subscribers_all(bus: Bus) -> None:
    handled: Counter[tuple[str, int]] = Counter()
    for group, members in (("g1", 3), ("g2", 2)):
        for i in range(members):
            bus.subscribe(
                PING,
                lambda m, g=group: handled.update([(g, m.n)]),
                queue=group,
                name=f"{group}-{i}",
            )
    bus.subscribe(PING, lambda m: handled.update([("plain", m.n)]))
    for n in range(30):
        await bus.publish(PING, Ping(n=n))
    await bus.drain()
    assert handled == Counter({(g, n): 1 for g in ("g1", "g2", "plain") for n in range(30)})


async def test_members_share_the_load(bus: Bus) -> None:
    by_member: Counter[str] = Counter()
    for name in ("a", "b", "c"):
        bus.subscribe(PING, lambda m, name=name: by_member.update([name]), queue="w", name=name)
    for n in range(30):
        await bus.publish(PING, Ping(n=n))
    await bus.drain()
    if local(bus):  # round robin
        assert by_member == Counter({"a": 10, "b": 10, "c": 10})
    else:  # the server picks at random: each message once, the load spread
        assert by_member.total() == 30 and len(by_member) >= 2


async def test_groups_span_patterns_by_queue_name(bus: Bus) -> None:
    seen: list[str] = []
    bus.subscribe(Topic("jobs.*", Ping), lambda m: seen.append("star"), queue="w")
    bus.subscribe(Topic("jobs.>", Ping), lambda m: seen.append("rest"), queue="w")
    await bus.publish(Topic("jobs.a", Ping), Ping(n=1))
    await bus.drain()
    assert len(seen) == 1  # one member of group "w", whichever pattern it used


def test_queue_group_names_are_validated() -> None:
    bus = Bus()
    with pytest.raises(ValueError, match=r"invalid queue group name 'a\.b': a queue group is one"):
        bus.subscribe(PING, lambda m: None, queue="a.b")


@pytest.mark.local_only("round robin is the local transport's: the server picks at random")
async def test_round_robin_survives_subscription_churn_elsewhere(bus: Bus) -> None:
    by_member: Counter[str] = Counter()
    for name in ("a", "b"):
        bus.subscribe(PING, lambda m, name=name: by_member.update([name]), queue="w", name=name)
    for n in range(20):
        await bus.publish(PING, Ping(n=n))
        bus.subscribe(Topic("churn.*", Ping), lambda m: None).unsubscribe()  # evicts routes
    await bus.drain()
    assert by_member == Counter({"a": 10, "b": 10})
