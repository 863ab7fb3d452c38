"""The monitor against what a real bus throws at it: odd payloads, requests never answered,
big messages, short-lived buses on loops that end, a long replay, odd requests."""

from __future__ import annotations

import asyncio
import socket
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from agents.cli_monitor import MonitorThread
from agents.monitor import MonitorHub, MonitorServer, MonitorState, serve_monitor, serve_replay
from bus import Bus, Message, Topic
from bus.trace import TraceRecord

from .test_cli_monitor import fetch
from .test_server import collect, get

pytestmark = pytest.mark.anyio


class Job(Message, frozen=True):
    content: str


class JobDone(Message, frozen=True):
    steps: list[str]  # a service's own reply type: "steps" is no number here


class Note(Message, frozen=True):
    n: int
    text: str = ""


INBOX = Topic("agent.planner.inbox", Job, reply=JobDone)
NOTES = Topic("notes.posted", Note)


def rec(**fields: Any) -> TraceRecord:
    base: dict[str, Any] = {"type": "X", "sender": "hivebus", "payload": {}}
    return TraceRecord(**(base | fields))


async def test_an_odd_payload_is_shown_and_breaks_nothing() -> None:
    async with Bus("odd") as bus:
        bus.subscribe(INBOX, lambda job: JobDone(steps=["plan", "act"]), name="planner")
        bus.subscribe(NOTES, lambda note: None)
        async with await serve_monitor(bus) as monitor, aiohttp.ClientSession() as http:
            response = await http.get(monitor.url + "api/stream")
            for n in range(20):
                await bus.publish(NOTES, Note(n=n))
            await bus.request(INBOX, Job(content="go"))
            records, _ = await collect(response, 22)
            response.close()
            assert {r["subject"] for r in records} >= {"notes.posted", "agent.planner.inbox"}
            (planner,) = monitor.hub.state.snapshot()["agents"]  # type: ignore[union-attr]
            assert (planner["state"], planner["steps"]) == ("done", 0)
            status, _ = await get(http, monitor.url + "api/snapshot")
            assert status == 200


def test_a_task_that_ends_clears_what_its_agent_had_in_flight() -> None:
    """An LLM call that never got its reply (timed out) must not leave the agent
    "thinking" once its task has failed."""
    state = MonitorState()
    records = [
        rec(id="t", subject="agent.a.inbox", kind="request", type="Task", timestamp=1.0),
        rec(id="c", subject="llm.chat", kind="request", sender="a.work", timestamp=1.1),
        rec(id="m", subject="memory.window", kind="request", sender="a.work", timestamp=1.2),
        rec(
            id="r",
            subject="_INBOX.x",
            kind="reply",
            type="ErrorReply",
            correlation_id="t",
            timestamp=5.0,
            payload={"remote_type": "RequestTimeout", "message": "llm.chat timed out"},
        ),
    ]
    for record in records[:3]:
        state.feed(record)
    assert [(a["name"], a["state"]) for a in state.snapshot()["agents"]] == [("a", "thinking")]
    state.feed(records[3])
    (agent,) = state.snapshot()["agents"]
    assert (agent["state"], agent["errors"]) == ("failed", 1)


async def test_a_new_page_gets_the_newest_of_what_is_kept() -> None:
    async with Bus("kept") as bus:
        bus.subscribe(NOTES, lambda note: None)
        hub = MonitorHub(client_bytes=200_000)
        hub.attach(bus)
        for n in range(2000):
            await bus.publish(NOTES, Note(n=n, text="x" * 500))
        await hub.tick()
        assert len(hub.state.records) == 2000
        client = hub.connect()
        sent = b"".join(client.take())
        assert b'"n":1999' in sent and b'"n":0,' not in sent  # the newest, not the oldest
        assert len(sent) <= 200_000 // 2 + 10_000
        hub.detach_all()


async def test_a_huge_message_is_streamed_without_its_payload_and_opened_whole() -> None:
    async with Bus("huge") as bus:
        bus.subscribe(NOTES, lambda note: None)
        async with await serve_monitor(bus) as monitor, aiohttp.ClientSession() as http:
            response = await http.get(monitor.url + "api/stream")
            big = "y" * 200_000
            for n in range(30):
                await bus.publish(NOTES, Note(n=n, text=big))
            records, _ = await collect(response, 30)
            response.close()
            assert all(r["truncated"] for r in records)
            assert "shown when the message is opened" in records[0]["payload"]
            found = (await get(http, monitor.url + f"api/message/{records[0]['id']}"))[1]
            assert found["record"]["payload"]["text"] == big


def test_short_lived_buses_keep_the_counts_exact_and_snapshots_quick() -> None:
    """As under ``hivebus run``: a set-up bus whose loop has ended, then the main one."""
    out: list[Any] = []

    async def setup() -> None:
        async with Bus("setup") as bus:
            await bus.publish(NOTES, Note(n=-1))

    async def main(url: str) -> None:
        async with Bus("main") as bus:
            bus.subscribe(NOTES, lambda note: None, buffer=100_000)
            for n in range(30_000):
                await bus.publish(NOTES, Note(n=n))
            await asyncio.sleep(0.3)
            out.append(await asyncio.to_thread(fetch, url + "api/snapshot"))

    with MonitorThread(title="t") as monitor, monitor.observing():
        asyncio.run(setup())
        asyncio.run(main(monitor.url))
        after = fetch(monitor.url + "api/snapshot")  # (the ended loops' buses read directly)
    (snap,) = out
    assert snap["monitor"]["seen"] == 30_001 == snap["bus"]["messages"]
    assert snap["monitor"]["seen"] == snap["monitor"]["sampled_out"] + monitor.hub.shown
    assert after["bus"]["messages"] == 30_001


async def test_attaching_needs_the_buss_own_loop() -> None:
    bus = Bus("early")
    hub = MonitorHub()
    with pytest.raises(RuntimeError, match="from its event loop"):
        await asyncio.to_thread(hub.attach, bus)


async def test_a_message_of_a_long_replay_opens_at_the_sliders_time(tmp_path: Path) -> None:
    records = [
        rec(id=f"m{i}", subject="notes.posted", kind="event", timestamp=1000.0 + i)
        for i in range(8000)
    ]
    async with await serve_replay(records) as monitor, aiohttp.ClientSession() as http:
        status, _ = await get(http, monitor.url + "api/message/m100")
        assert status == 404  # no longer kept at the end of the run (5,000 are)
        status, found = await get(http, monitor.url + "api/message/m100?at=1100")
        assert status == 200 and found["record"]["id"] == "m100"


async def test_odd_requests_get_clear_answers() -> None:
    async with Bus("odd") as bus, await serve_monitor(bus, token="t0ken") as monitor:
        port = monitor.port
        base = f"http://127.0.0.1:{port}/"
        async with aiohttp.ClientSession() as http:
            for query in ("limit=nan", "limit=1e999", "until=later"):
                status, body = await get(http, base + f"api/records?token=t0ken&{query}")
                assert status == 400 and "expected a number" in body["error"]
            async with http.head(base + "api/stream?token=t0ken") as head:
                assert head.status == 405
        raw = b"GET /api/info HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer \xff\xfe\r\n"
        with socket.create_connection(("127.0.0.1", port)) as conn:
            conn.sendall(raw + b"Connection: close\r\n\r\n")
            answer = await asyncio.to_thread(conn.recv, 4096)
        assert answer.startswith(b"HTTP/1.1 401")


async def test_ipv6_loopback_host_is_answered() -> None:
    async with (
        Bus("six") as bus,
        MonitorServer(hub=_hub(bus)) as monitor,
        aiohttp.ClientSession() as http,
    ):
        status, _ = await get(http, monitor.url + "api/info", headers={"Host": "[::1]"})
        assert status == 200


def _hub(bus: Bus) -> MonitorHub:
    hub = MonitorHub()
    hub.attach(bus)
    return hub
