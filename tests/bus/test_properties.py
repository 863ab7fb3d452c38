"""Property tests of the bus's invariants: no loss, order, queue groups, requests, accounting.

Each example runs on a fresh ``Bus`` made inside the test body (Hypothesis reruns the body,
a fixture would be shared between examples), and every body is bounded by ``fail_after`` so
that a hang is a failure rather than a stuck run.
"""

from __future__ import annotations

from collections import Counter

import anyio
import anyio.lowlevel
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bus import (
    DEAD_LETTERS,
    BufferFull,
    Bus,
    DeadLetter,
    Message,
    NoResponders,
    Policy,
    RemoteError,
    RequestTimeout,
    Topic,
)

from .messages import Pong

pytestmark = pytest.mark.anyio

EXAMPLES = settings(max_examples=50, deadline=None)
BOUND = 10.0  # seconds any one example may take before it counts as a hang


class Seq(Message, frozen=True, kw_only=True):
    publisher: int
    seq: int


class Call(Message, frozen=True, kw_only=True):
    n: int
    kind: str


SEQ = Topic("test.props.seq", Seq)
CALL = Topic("test.props.call", Call, reply=Pong)
NOBODY = Topic("test.props.nobody", Call, reply=Pong)

# A publisher: how many messages it sends, and every how many it yields (0: never).
publishers_st = st.lists(st.tuples(st.integers(0, 25), st.integers(0, 3)), min_size=1, max_size=4)
# A subscriber: its buffer size, and every how many messages its handler yields (0: never).
subscriber_st = st.tuples(st.integers(1, 8), st.integers(0, 3))
subscribers_st = st.lists(subscriber_st, min_size=1, max_size=4)


def every(n: int, seq: int) -> bool:
    return n > 0 and seq % n == 0


def sent_by(publishers: list[tuple[int, int]]) -> Counter[tuple[int, int]]:
    """Each (publisher, seq) the publishers send, once."""
    return Counter((p, seq) for p, (count, _) in enumerate(publishers) for seq in range(count))


async def publish_concurrently(
    bus: Bus, publishers: list[tuple[int, int]], *, tolerate_full: bool = False
) -> int:
    """Run the publishers at once; return how many publishes raised ``BufferFull``."""
    refused = 0

    async def publisher(p: int, count: int, yield_every: int) -> None:
        nonlocal refused
        for seq in range(count):
            try:
                await bus.publish(SEQ, Seq(publisher=p, seq=seq))
            except BufferFull:
                if not tolerate_full:
                    raise
                refused += 1
            if every(yield_every, seq):
                await anyio.lowlevel.checkpoint()

    async with anyio.create_task_group() as tg:
        for p, (count, yield_every) in enumerate(publishers):
            tg.start_soon(publisher, p, count, yield_every)
    return refused


@EXAMPLES
@given(
    publishers=publishers_st,
    subscribers=subscribers_st,
    concurrency=st.integers(1, 3),
)
async def test_block_policy_delivers_every_message_to_every_subscriber_exactly_once(
    publishers: list[tuple[int, int]],
    subscribers: list[tuple[int, int]],
    concurrency: int,
) -> None:
    seen: list[list[tuple[int, int]]] = [[] for _ in subscribers]
    with anyio.fail_after(BOUND):
        async with Bus("props") as bus:
            for got, (buffer, yield_every) in zip(seen, subscribers, strict=True):

                async def on_seq(msg: Seq, got: list[tuple[int, int]] = got, y: int = yield_every):
                    if every(y, msg.seq):
                        await anyio.lowlevel.checkpoint()
                    got.append((msg.publisher, msg.seq))

                bus.subscribe(SEQ, on_seq, buffer=buffer, policy="block", concurrency=concurrency)
            await publish_concurrently(bus, publishers)
            await bus.drain()
            stats = bus.stats()
    expected = sent_by(publishers)
    for got in seen:
        assert Counter(got) == expected
    total = sum(expected.values())
    assert (stats.fanout, stats.delivered, stats.dropped) == (
        total * len(subscribers),
        total * len(subscribers),
        0,
    )


@EXAMPLES
@given(publishers=publishers_st, subscribers=subscribers_st)
async def test_each_sequential_subscriber_sees_each_publishers_messages_in_order(
    publishers: list[tuple[int, int]], subscribers: list[tuple[int, int]]
) -> None:
    seen: list[list[tuple[int, int]]] = [[] for _ in subscribers]
    with anyio.fail_after(BOUND):
        async with Bus("props") as bus:
            for got, (buffer, yield_every) in zip(seen, subscribers, strict=True):

                async def on_seq(msg: Seq, got: list[tuple[int, int]] = got, y: int = yield_every):
                    if every(y, msg.seq):
                        await anyio.lowlevel.checkpoint()
                    got.append((msg.publisher, msg.seq))

                bus.subscribe(SEQ, on_seq, buffer=buffer, policy="block", concurrency=1)
            await publish_concurrently(bus, publishers)
            await bus.drain()
    for got in seen:
        for p in range(len(publishers)):
            seqs = [seq for publisher, seq in got if publisher == p]
            assert seqs == sorted(set(seqs)), f"publisher {p} out of order: {seqs}"


@EXAMPLES
@given(
    publishers=publishers_st,
    groups=st.lists(subscribers_st, min_size=1, max_size=3),  # the members of each group
    plain=st.lists(subscriber_st, max_size=3),
)
async def test_each_queue_group_and_each_plain_subscriber_handles_each_message_once(
    publishers: list[tuple[int, int]],
    groups: list[list[tuple[int, int]]],
    plain: list[tuple[int, int]],
) -> None:
    by_group: list[list[tuple[int, int]]] = [[] for _ in groups]
    by_member: list[Counter[int]] = [Counter() for _ in groups]
    by_plain: list[list[tuple[int, int]]] = [[] for _ in plain]
    with anyio.fail_after(BOUND):
        async with Bus("props") as bus:
            for g, members in enumerate(groups):
                for m, (buffer, yield_every) in enumerate(members):

                    async def on_member(msg: Seq, g: int = g, m: int = m, y: int = yield_every):
                        if every(y, msg.seq):
                            await anyio.lowlevel.checkpoint()
                        by_group[g].append((msg.publisher, msg.seq))
                        by_member[g][m] += 1

                    bus.subscribe(SEQ, on_member, queue=f"group{g}", buffer=buffer)
            for got, (buffer, yield_every) in zip(by_plain, plain, strict=True):

                async def on_plain(
                    msg: Seq, got: list[tuple[int, int]] = got, y: int = yield_every
                ):
                    if every(y, msg.seq):
                        await anyio.lowlevel.checkpoint()
                    got.append((msg.publisher, msg.seq))

                bus.subscribe(SEQ, on_plain, buffer=buffer)
            await publish_concurrently(bus, publishers)
            await bus.drain()
    expected = sent_by(publishers)
    for g, got in enumerate(by_group):
        assert Counter(got) == expected, f"queue group {g}"
        assert set(by_member[g]) <= set(range(len(groups[g])))
    for got in by_plain:
        assert Counter(got) == expected


@EXAMPLES
@given(
    kinds=st.lists(st.sampled_from(["reply", "raise", "sleep", "none"]), min_size=1, max_size=8),
    members=st.integers(1, 3),
)
async def test_every_request_ends_in_its_reply_or_exactly_one_typed_error(
    kinds: list[str], members: int
) -> None:
    timeout = 0.05
    outcomes: dict[int, tuple[object, ...]] = {}

    async def serve(msg: Call) -> Pong:
        if msg.kind == "raise":
            raise ValueError(f"refused {msg.n}")
        if msg.kind == "sleep":
            await anyio.sleep(60)  # far past the timeout: the bus must cancel it
        return Pong(n=msg.n * 2 + 1)

    async def call(bus: Bus, n: int, kind: str) -> None:
        topic = NOBODY if kind == "none" else CALL
        try:
            reply = await bus.request(topic, Call(n=n, kind=kind), timeout=timeout)
        except RemoteError as exc:
            outcome: tuple[object, ...] = ("RemoteError", exc.remote_type, exc.remote_message)
        except RequestTimeout as exc:
            outcome = ("RequestTimeout", exc.timeout)
        except NoResponders as exc:
            outcome = ("NoResponders", exc.subject)
        else:
            outcome = ("reply", reply)
        assert n not in outcomes, f"request {n} ended twice"
        outcomes[n] = outcome

    with anyio.fail_after(BOUND):
        async with Bus("props", close_timeout=BOUND) as bus:
            for _ in range(members):
                # enough workers that no request waits behind a sleeping one
                bus.subscribe(CALL, serve, queue="rpc", concurrency=len(kinds))
            async with anyio.create_task_group() as tg:
                for n, kind in enumerate(kinds):
                    tg.start_soon(call, bus, n, kind)
            await bus.drain()
            stats = bus.stats()

    expected: dict[int, tuple[object, ...]] = {}
    for n, kind in enumerate(kinds):
        if kind == "reply":
            expected[n] = ("reply", Pong(n=n * 2 + 1))
        elif kind == "raise":
            expected[n] = ("RemoteError", "ValueError", f"refused {n}")
        elif kind == "sleep":
            expected[n] = ("RequestTimeout", timeout)
        else:
            expected[n] = ("NoResponders", NOBODY.subject)
    assert outcomes == expected
    assert (stats.timeouts, stats.no_responders, stats.in_flight) == (
        kinds.count("sleep"),
        kinds.count("none"),
        0,
    )


POLICY_REASON = {
    "block": None,
    "drop_oldest": "dropped_oldest",
    "drop_newest": "dropped_newest",
    "error": "buffer_full",
}


@EXAMPLES
@given(
    publishers=publishers_st,
    subscribers=st.lists(
        st.tuples(
            st.sampled_from(["block", "drop_oldest", "drop_newest", "error"]),
            st.integers(1, 8),  # buffer
            st.integers(0, 4),  # the handler raises on every n-th message (0: never)
            st.integers(0, 3),  # the handler yields on every n-th message (0: never)
            st.integers(1, 2),  # concurrency
            st.sampled_from([None, None, "workers"]),  # queue group
        ),
        min_size=1,
        max_size=5,
    ),
)
async def test_after_drain_every_delivery_is_accounted_for_and_dead_lettered(
    publishers: list[tuple[int, int]],
    subscribers: list[tuple[Policy, int, int, int, int, str | None]],
) -> None:
    letters: list[DeadLetter] = []
    with anyio.fail_after(BOUND):
        async with Bus("props") as bus:
            bus.subscribe(DEAD_LETTERS, letters.append, buffer=100_000, name="dead")
            for i, (policy, buffer, fail_every, yield_every, concurrency, queue) in enumerate(
                subscribers
            ):

                async def on_seq(msg: Seq, f: int = fail_every, y: int = yield_every) -> None:
                    if every(y, msg.seq):
                        await anyio.lowlevel.checkpoint()
                    if every(f, msg.seq):
                        raise RuntimeError(f"failed on {msg.publisher}/{msg.seq}")

                bus.subscribe(
                    SEQ,
                    on_seq,
                    queue=queue,
                    buffer=buffer,
                    policy=policy,
                    concurrency=concurrency,
                    name=f"sub{i}",
                )
            refused = await publish_concurrently(bus, publishers, tolerate_full=True)
            await bus.drain()
            stats = bus.stats()

    settled = stats.delivered + stats.dropped + stats.failed + stats.cancelled
    assert stats.in_flight == 0
    assert stats.fanout == settled + stats.unprocessed
    assert stats.balanced

    subs = {s.name: s for s in stats.subscriptions}
    assert set(subs) == {"dead", *(f"sub{i}" for i in range(len(subscribers)))}
    for s in subs.values():
        assert (s.pending, s.running) == (0, 0), s.name
        assert s.received == s.delivered + s.dropped + s.failed + s.cancelled + s.unprocessed, (
            s.name
        )
    assert sum(s.received for s in subs.values()) == stats.fanout

    # Every drop and failure of the other subscriptions is one DeadLetter, and nothing else is.
    others = [s for name, s in subs.items() if name != "dead"]
    assert len(letters) == sum(s.dropped + s.failed for s in others)
    assert subs["dead"].delivered == len(letters)
    assert stats.dead_lettered == len(letters)
    reasons = Counter((d.subscription, d.reason) for d in letters)
    expected: Counter[tuple[str, str]] = Counter()
    for s in others:
        reason = POLICY_REASON[s.policy]
        assert reason is not None or s.dropped == 0, f"{s.name} (block) dropped {s.dropped}"
        if s.dropped:
            expected[(s.name, str(reason))] = s.dropped
        if s.failed:
            expected[(s.name, "handler_error")] = s.failed
    assert reasons == expected

    # A BufferFull reached a publisher for some refusal of an `error` subscription, never without.
    refusals = sum(s.dropped for s in others if s.policy == "error")
    assert refused <= refusals
    assert (refused == 0) == (refusals == 0)
