"""Taps, the trace recorder, and reading a trace back as a tree."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest

from bus import Bus, Context, Envelope, Message, Topic, TraceRecorder, read_trace
from bus.trace import TraceFormatError, build_tree, format_tree, select

from .conftest import local
from .messages import PING, RPC, Other, Ping, Pong

pytestmark = pytest.mark.anyio


async def test_a_tap_sees_publishes_requests_and_replies_without_changing_delivery(
    bus: Bus,
) -> None:
    seen: list[Envelope] = []
    handled: list[int] = []
    tap = bus.tap(">", seen.append)

    async def serve(msg: Ping) -> Pong:
        handled.append(msg.n)
        return Pong(n=msg.n)

    bus.subscribe(RPC, serve)
    await bus.publish(PING, Ping(n=1))  # no subscriber: the tap still sees it
    await bus.request(RPC, Ping(n=2))
    tap.close()
    await bus.publish(PING, Ping(n=3))
    assert [(e.subject.split(".")[0], type(e.payload).__name__) for e in seen] == [
        ("test", "Ping"),
        ("test", "Ping"),
        ("_INBOX", "Pong"),
    ]
    request, reply = seen[1], seen[2]
    assert reply.correlation_id == request.id and reply.causation_id == request.id
    assert handled == [2]
    stats = bus.stats()
    if local(bus):  # (over NATS only the server knows what reached no one)
        assert stats.subjects["test.ping"].unrouted == 2  # taps are not subscribers


async def test_a_failing_tap_is_counted_and_does_not_break_publishing(bus: Bus) -> None:
    def broken(env: Envelope) -> None:
        raise RuntimeError("tap bug")

    seen: list[int] = []
    bus.tap("test.*", broken)
    bus.subscribe(PING, lambda m: seen.append(m.n))
    await bus.publish(PING, Ping(n=1))
    await bus.drain()
    assert seen == [1]
    assert bus.stats().tap_errors == 1


async def test_the_taps_after_a_failing_one_still_see_every_message(bus: Bus) -> None:
    """A single subscriber takes publish's fast path, which runs the taps too."""
    calls: list[str] = []

    def first(env: Envelope) -> None:
        calls.append("first")

    def broken(env: Envelope) -> None:
        calls.append("broken")
        raise RuntimeError("tap bug")

    def last(env: Envelope) -> None:
        calls.append("last")

    for tap in (first, broken, last):
        bus.tap("test.ping", tap)
    seen: list[int] = []
    bus.subscribe(PING, lambda m: seen.append(m.n))
    for n in range(3):
        await bus.publish(PING, Ping(n=n))
    await bus.drain()
    assert seen == [0, 1, 2]
    assert calls == ["first", "broken", "last"] * 3  # each once, in order, for each message
    assert bus.stats().tap_errors == 3


class Secretive(Message, frozen=True, kw_only=True):
    api_key: str
    nested: dict[str, str]
    text: str
    max_tokens: int = 5
    note: str = ""


async def test_the_recorder_writes_a_trace_that_reads_back_into_the_same_tree(
    tmp_path: Path,
) -> None:
    step = Topic("test.step", Other)
    path = tmp_path / "run.jsonl"
    async with Bus() as bus:

        async def root(msg: Ping, ctx: Context) -> None:
            await ctx.publish(step, Other(text="a"))
            await ctx.request(RPC, Ping(n=msg.n + 1))

        async def serve(msg: Ping, ctx: Context) -> Pong:
            await ctx.publish(step, Other(text="b"))
            return Pong(n=msg.n)

        bus.subscribe(PING, root, name="root")
        bus.subscribe(RPC, serve, name="serve")
        bus.subscribe(step, lambda m: None)
        with TraceRecorder(bus, path, flush_every=2) as recorder:
            await bus.publish(PING, Ping(n=1), sender="you")
            await bus.drain()
        assert recorder.count == 5

    records = read_trace(path)
    assert [r.kind for r in records] == ["event", "event", "request", "event", "reply"]
    (tree,) = build_tree(records)
    assert tree.record.sender == "you" and tree.record.payload == {"n": 1}
    shape = [(depth, node.record.subject) for depth, node in tree.walk()]
    assert shape == [(0, "test.ping"), (1, "test.step"), (1, "test.rpc"), (2, "test.step")]
    request = tree.children[1]
    assert request.reply is not None and request.reply.payload == {"n": 2}
    assert request.duration is not None and request.duration >= 0
    lines = format_tree([tree])
    assert len(lines) == 4
    assert "you → test.ping [Ping]" in lines[0]
    assert "root → test.rpc [Ping] ⏱ " in lines[2]
    assert select([tree], "other.>") == []
    assert select([tree], "test.step") == [tree]  # any message of the tree may match


async def test_secrets_never_reach_the_trace(tmp_path: Path) -> None:
    path = tmp_path / "secret.jsonl"
    topic = Topic("test.secret", Secretive)
    async with Bus() as bus:
        with TraceRecorder(bus, path):
            await bus.publish(
                topic,
                Secretive(
                    api_key="k-123",
                    nested={"db_password": "hunter2", "GITHUB_TOKEN": "t0k", "city": "Oslo"},
                    text="ok",
                    note="sk-live-abcdef",  # a credential in an innocent-looking field
                ),
                headers={"Authorization": "Bearer xyz", "X-Auth-Token": "abc", "x-run": "7"},
            )
    raw = path.read_text()
    for secret in ("k-123", "hunter2", "t0k", "sk-live-abcdef", "xyz", "abc"):
        assert secret not in raw
    (record,) = read_trace(path)
    assert record.payload == {
        "api_key": "***",
        "nested": {"db_password": "***", "GITHUB_TOKEN": "***", "city": "Oslo"},
        "text": "ok",
        "max_tokens": 5,  # token counts are not tokens
        "note": "***",
    }
    assert record.headers == {"Authorization": "***", "X-Auth-Token": "***", "x-run": "7"}


def test_a_trace_cut_off_mid_line_keeps_the_lines_before(tmp_path: Path) -> None:
    path = tmp_path / "cut.jsonl"
    good = {"id": "1", "subject": "a", "kind": "event", "type": "X", "sender": "s", "timestamp": 1}
    path.write_bytes(orjson.dumps(good) + b"\n" + orjson.dumps(good)[:20])  # no final newline
    assert [r.id for r in read_trace(path)] == ["1"]


def test_reading_a_broken_trace_names_the_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "bad.jsonl"
    good = {"id": "1", "subject": "a", "kind": "event", "type": "X", "sender": "s", "timestamp": 1}
    path.write_bytes(orjson.dumps(good) + b"\n{not json\n")
    with pytest.raises(TraceFormatError, match=r"bad.jsonl:2: not a trace record"):
        read_trace(path)
    with pytest.raises(TraceFormatError, match="cannot read"):
        read_trace(tmp_path / "missing.jsonl")


def test_an_unanswered_request_shows_as_such() -> None:
    from bus.trace import TraceRecord

    request = TraceRecord(
        id="r", subject="a.b", kind="request", type="Ping", sender="s", timestamp=1.0
    )
    (node,) = build_tree([request])
    assert node.duration is None
    assert "[Ping] (no reply)" in format_tree([node])[0]


async def test_a_tap_sees_only_its_pattern_and_closes_once(bus: Bus) -> None:
    seen: list[str] = []
    with bus.tap("test.*", lambda env: seen.append(env.subject)) as tap:
        await bus.publish(PING, Ping(n=1))
        await bus.publish(Topic("elsewhere.ping", Ping), Ping(n=1))
    tap.close()  # a second close is harmless
    await bus.publish(PING, Ping(n=2))
    assert seen == ["test.ping"]


def test_a_trace_with_missing_parents_still_builds_a_forest() -> None:
    from bus.trace import TraceRecord

    def rec(id: str, cause: str | None, ts: float) -> TraceRecord:
        return TraceRecord(
            id=id,
            subject=f"s.{id}",
            kind="event",
            type="X",
            sender="s",
            timestamp=ts,
            causation_id=cause,
        )

    # "b" was caused by a message the trace does not hold (recording began later).
    roots = build_tree([rec("c", "a", 3.0), rec("a", None, 1.0), rec("b", "gone", 2.0)])
    assert [r.record.id for r in roots] == ["a", "b"]
    assert [c.record.id for c in roots[0].children] == ["c"]
    assert repr(roots[0]) == "TraceNode('s.a', children=1)"


async def test_a_failed_request_is_marked_in_the_tree(tmp_path: Path) -> None:
    path = tmp_path / "err.jsonl"
    async with Bus() as bus:

        async def broken(msg: Ping) -> Pong:
            raise ValueError("no")

        bus.subscribe(RPC, broken)
        with TraceRecorder(bus, path):
            with pytest.raises(Exception, match="ValueError"):
                await bus.request(RPC, Ping(n=1))
            await bus.drain()
    records = read_trace(path)
    assert [r.type for r in records] == ["Ping", "DeadLetter", "ErrorReply"]
    assert records[2].payload["remote_type"] == "ValueError"
    lines = format_tree(build_tree(records))
    assert "ERROR" in lines[0]
    assert "_bus.dead [DeadLetter]" in lines[1]


async def test_a_trace_writer_takes_the_envelopes_of_several_buses(tmp_path: Path) -> None:
    from bus.trace import TraceWriter, to_record

    writer = TraceWriter(tmp_path / "runs" / "both.jsonl", flush_every=1).open()
    with pytest.raises(RuntimeError, match="already open"):
        writer.open()
    async with Bus("one") as one, Bus("two") as two:
        for each in (one, two):
            each.tap(">", lambda env: writer.write(to_record(env)))
        await one.publish(PING, Ping(n=1))
        await two.publish(PING, Ping(n=2))
    writer.close()
    writer.close()  # idempotent
    assert writer.count == 2
    assert [(r.sender, r.payload) for r in read_trace(writer.path)] == [
        ("one", {"n": 1}),
        ("two", {"n": 2}),
    ]


def test_prune_keeps_the_chosen_nodes_under_their_nearest_kept_ancestor() -> None:
    from bus.trace import TraceRecord, prune

    def rec(id: str, cause: str | None, sender: str, kind: str = "event") -> TraceRecord:
        return TraceRecord(
            id=id,
            subject=f"s.{id}",
            kind=kind,  # type: ignore[arg-type]
            type="X",
            sender=sender,
            timestamp=float(len(id)),
            causation_id=cause,
            correlation_id=id if kind == "request" else None,
        )

    reply = TraceRecord(
        id="r", subject="_INBOX.x", kind="reply", type="X", sender="svc", timestamp=9.0,
        correlation_id="ab",
    )  # fmt: skip
    roots = build_tree(
        [
            rec("a", None, "other"),
            rec("ab", "a", "me", kind="request"),
            rec("abc", "ab", "other"),
            rec("abcd", "abc", "me"),
            reply,
        ]
    )
    kept = prune(roots, lambda r: r.sender == "me")
    assert [(d, n.record.id) for root in kept for d, n in root.walk()] == [(0, "ab"), (1, "abcd")]
    assert kept[0].reply is reply
    assert roots[0].children[0].children[0].record.id == "abc"  # the original is untouched
    assert prune(roots, lambda r: False) == []


def test_format_tree_takes_a_describer_for_the_payload_text() -> None:
    from bus.trace import TraceRecord

    request = TraceRecord(
        id="q", subject="a.b", kind="request", type="Ping", sender="s", timestamp=1.0,
        payload={"n": 1},
    )  # fmt: skip
    (node,) = build_tree([request])
    assert format_tree([node])[0].endswith('{"n":1}')
    assert format_tree([node], lambda n: f"ping number {n.record.payload['n']}")[0].endswith(
        "(no reply) ping number 1"
    )
