"""The monitor's server against real sockets: the live stream and its bounds, the replay API,
the token and the Host check."""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import aiohttp
import anyio
import orjson
import pytest

from agents import load_config, open_runtime
from agents.monitor import MonitorError, MonitorHub, MonitorServer, serve_monitor, serve_replay
from agents.monitor import hub as monitor_hub
from bus import Bus, Message, Topic, TraceRecorder
from bus.trace import TraceFormatError

from ..run_fixtures import record_team_run

pytestmark = pytest.mark.anyio


class Note(Message, frozen=True):
    n: int
    text: str = ""


NOTES = Topic("notes.posted", Note)


async def get(http: aiohttp.ClientSession, url: str, **kwargs: Any) -> tuple[int, Any]:
    """GET ``url``: the status and the decoded JSON body (or the text)."""
    async with http.get(url, **kwargs) as response:
        body = await response.read()
        if response.content_type == "application/json":
            return response.status, orjson.loads(body)
        return response.status, body.decode()


async def events(response: aiohttp.ClientResponse) -> AsyncIterator[tuple[str, Any]]:
    """The Server-Sent Events of ``response``: (event name, decoded data)."""
    name = ""
    async for raw in response.content:
        line = raw.decode().rstrip("\n")
        if line.startswith("event: "):
            name = line[7:]
        elif line.startswith("data: "):
            yield name, orjson.loads(line[6:])


async def collect(
    response: aiohttp.ClientResponse, want: int, timeout: float = 10.0
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Records until ``want`` have come, and the snapshots seen meanwhile."""
    records: list[dict[str, Any]] = []
    snapshots: list[dict[str, Any]] = []
    with anyio.fail_after(timeout):
        async for name, data in events(response):
            if name == "records":
                records.extend(data["records"])
            else:
                snapshots.append(data)
            if len(records) >= want:
                break
    return records, snapshots


async def test_a_page_gets_the_backlog_then_live_messages_and_exact_counters() -> None:
    async with Bus("live") as bus:
        bus.subscribe(NOTES, lambda note: None, name="reader")
        async with await serve_monitor(bus) as monitor, aiohttp.ClientSession() as http:
            for n in range(5):  # before any page: kept, sent as the backlog
                await bus.publish(NOTES, Note(n=n))
            await anyio.sleep(0.25)  # a tick: the five are records now
            response = await http.get(monitor.url + "api/stream")
            assert response.headers["Content-Type"] == "text/event-stream"
            for n in range(5, 12):
                await bus.publish(NOTES, Note(n=n))
            records, snapshots = await collect(response, 12)
            assert [r["payload"]["n"] for r in records] == list(range(12))
            assert records[0]["summary"] and records[0]["from"] == "live"
            records, snapshots = await collect(response, 0, timeout=3)  # the next snapshot
            snap = snapshots[-1]
            assert snap["mode"] == "live"
            subjects = {s["subject"]: s["count"] for s in snap["bus"]["subjects"]}
            assert subjects["notes.posted"] == 12
            (reader,) = [s for s in snap["bus"]["subscriptions"] if s["name"] == "reader"]
            assert reader["pattern"] == "notes.posted"
            assert snap["monitor"] == {"dropped": 0, "sampled_out": 0, "seen": 12}
            response.close()
            info = (await get(http, monitor.url + "api/info"))[1]
            assert info == {"mode": "live", "title": "live", "buses": ["live"], "replay": None}


class Login(Message, frozen=True):
    user: str
    api_key: str
    note: str


async def test_secrets_never_reach_the_page() -> None:
    logins = Topic("auth.login", Login)
    async with Bus("secret") as bus:
        bus.subscribe(logins, lambda login: None)
        async with await serve_monitor(bus) as monitor, aiohttp.ClientSession() as http:
            response = await http.get(monitor.url + "api/stream")
            await bus.publish(logins, Login(user="ana", api_key="k-123", note="sk-live-abc"))
            (record,), _ = await collect(response, 1)
            response.close()
            assert record["payload"] == {"user": "ana", "api_key": "***", "note": "***"}
            found = (await get(http, monitor.url + f"api/message/{record['id']}"))[1]
            assert "k-123" not in str(found) and "sk-live-abc" not in str(found)


async def test_the_gateway_panel_shows_the_gateways_own_counters(tmp_path: Path) -> None:
    async with open_runtime(load_config(None, env={})) as runtime:
        from agents import Agent

        await runtime.add(Agent("helper", "You are helper."))
        async with await serve_monitor(runtime.bus) as monitor, aiohttp.ClientSession() as http:
            for _ in range(3):
                await runtime.ask("helper", "Say hello.")
            await anyio.sleep(0.25)
            snap = (await get(http, monitor.url + "api/snapshot"))[1]
    gateway = snap["gateway"]
    stats = runtime.gateway.stats()  # type: ignore[union-attr]
    assert gateway["calls"] == stats.calls == 3 and gateway["succeeded"] == 3
    assert gateway["models"][0]["prompt_tokens"] == stats.total.prompt_tokens
    assert gateway["latency_ms"]["p50"] > 0
    (helper,) = snap["agents"]
    assert (helper["name"], helper["tasks"], helper["state"]) == ("helper", 3, "done")


async def test_a_page_that_never_reads_loses_frames_not_the_bus() -> None:
    """The bound: a client that never reads fills its queue, then its frames are dropped
    and counted; the bus delivers everything, and another page still gets new messages."""
    hub_bytes = 256 << 10
    async with Bus("stalled") as bus:
        seen: list[int] = []
        bus.subscribe(NOTES, lambda note: seen.append(note.n), name="reader")
        hub = MonitorHub(client_bytes=hub_bytes, budget=1_000_000)
        hub.attach(bus)
        async with MonitorServer(hub=hub) as monitor:
            host, port = "127.0.0.1", monitor.port
            stalled = socket.create_connection((host, port))
            stalled.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            stalled.sendall(f"GET /api/stream HTTP/1.1\r\nHost: {host}:{port}\r\n\r\n".encode())
            try:
                with anyio.fail_after(5):
                    while not hub.clients:  # noqa: ASYNC110 - the server's side of a raw socket
                        await anyio.sleep(0.01)
                (client,) = hub.clients
                text = "x" * 2000
                for n in range(3000):  # ~6 MB of records
                    await bus.publish(NOTES, Note(n=n, text=text))
                    if n % 100 == 0:
                        await anyio.sleep(0.02)  # let ticks run
                await bus.drain()
                await anyio.sleep(0.3)
                assert seen == list(range(3000))  # the bus did not wait for the page
                assert client.dropped > 0
                assert client.size <= hub_bytes
                async with aiohttp.ClientSession() as http:
                    fresh = await http.get(monitor.url + "api/stream")
                    await anyio.sleep(0.2)
                    await bus.publish(NOTES, Note(n=-1))
                    with anyio.fail_after(10):
                        async for name, data in events(fresh):
                            if name == "records" and any(
                                r["payload"]["n"] == -1 for r in data["records"]
                            ):
                                assert data["dropped"] == 0
                                break
                    fresh.close()
            finally:
                stalled.close()


class FakeClock:
    """The hub's monotonic clock, moved by the test only: what the budget allows is then
    exact, however slowly a loaded machine runs the test."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.now = 1024.0  # (whole binary fractions from here on: no rounding in the bucket)
        fake = SimpleNamespace(
            monotonic=lambda: self.now, perf_counter=time.perf_counter, time=time.time
        )
        monkeypatch.setattr(monitor_hub, "time", fake)

    def advance(self, seconds: float) -> None:
        self.now += seconds


async def until(condition: Callable[[], object]) -> None:
    """Wait for the server's own ticks to bring ``condition`` about."""
    with anyio.fail_after(10):
        while not condition():  # noqa: ASYNC110
            await anyio.sleep(0.01)


async def test_over_its_budget_it_samples_and_says_so(monkeypatch: pytest.MonkeyPatch) -> None:
    """A burst up to ``burst`` is shown whole; past it, ``budget`` records a second."""
    clock = FakeClock(monkeypatch)
    async with Bus("busy") as bus:
        bus.subscribe(NOTES, lambda note: None)
        hub = MonitorHub(budget=100, burst=50, tick=0.1)
        hub.attach(bus)
        async with MonitorServer(hub=hub) as monitor, aiohttp.ClientSession() as http:

            async def publish_and_count(n: int) -> dict[str, Any]:
                for i in range(n):
                    bus.publish_nowait(NOTES, Note(n=i))
                await until(lambda: hub._taken and not hub._pending)  # a tick took them
                return await hub.snapshot()  # (the buses' exact counts)

            await publish_and_count(40)  # within the burst: every one
            assert (hub.seen, hub.shown, hub.sampled_out) == (40, 40, 0)
            snap = await publish_and_count(500)
            # the 10 left of the burst are shown; the others counted, and the taps go off
            assert (hub.seen, hub.shown, hub.sampled_out) == (540, 50, 490)
            assert hub.dark_until
            assert snap["monitor"]["sampled_out"] == 490
            subjects = {s["subject"]: s["count"] for s in snap["bus"]["subjects"]}
            assert subjects["notes.posted"] == 540
            clock.advance(0.5)  # back on, with 0.5 s of budget: a whole burst again
            await until(lambda: not hub.dark_until)
            await publish_and_count(100)
            assert (hub.seen, hub.shown) == (640, 100)
            clock.advance(0.25)  # a quarter of a second later: 25 records' worth
            await until(lambda: not hub.dark_until)
            await publish_and_count(100)
            assert (hub.seen, hub.shown, hub.sampled_out) == (740, 125, 615)
            page, said = (
                monitor.url + "api/snapshot",
                {"dropped": 0, "sampled_out": 615, "seen": 740},
            )
            with anyio.fail_after(10):  # the page's snapshot says as much (it is cached 0.5 s)
                while (await get(http, page))[1]["monitor"] != said:  # noqa: ASYNC110
                    await anyio.sleep(0.1)


async def test_flooded_it_takes_its_taps_off_for_a_while_and_counts_exactly(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Past its budget it samples in time: the taps are off for a while (the bus pays
    nothing for being watched), then back; the counters stay exact all along."""
    clock = FakeClock(monkeypatch)
    async with Bus("flood") as bus:
        bus.subscribe(NOTES, lambda note: None)
        hub = MonitorHub(budget=100, burst=10, tick=0.1)
        hub.attach(bus)
        (watched,) = hub._watched
        for n in range(200):
            bus.publish_nowait(NOTES, Note(n=n))
        await hub.tick()  # 10 shown of the 10 the bounded sink kept (the burst)
        assert hub.shown == 10 and watched.tap is not None
        for n in range(200):
            bus.publish_nowait(NOTES, Note(n=n))
        clock.advance(0.03125)
        await hub.tick()  # 3 allowed of 10: dark for a while, in proportion (0.23 s)
        assert hub.shown == 13 and watched.tap is None
        assert hub.dark_until == pytest.approx(clock.now + 0.1 * 7 / 3)
        for n in range(50):  # unseen by the monitor, but counted by the bus
            bus.publish_nowait(NOTES, Note(n=n))
        assert len(hub._pending) == 0
        clock.advance(0.125)
        await hub.tick()
        assert hub.dark_until and watched.tap is None  # still dark
        clock.advance(0.125)
        await hub.tick()
        assert not hub.dark_until and watched.tap is not None  # back on
        snap = await hub.snapshot()
    assert snap["monitor"]["seen"] == 450 == hub.shown + hub.sampled_out
    assert hub.shown == 13
    assert {s["subject"]: s["count"] for s in snap["bus"]["subjects"]}["notes.posted"] == 450


async def test_the_replay_api(tmp_path: Path) -> None:
    records, _ = await record_team_run(tmp_path / "team.jsonl")
    async with (
        await serve_replay(tmp_path / "team.jsonl") as monitor,
        aiohttp.ClientSession() as http,
    ):
        info = (await get(http, monitor.url + "api/info"))[1]
        assert info["mode"] == "replay" and info["title"] == "team.jsonl"
        assert info["replay"]["records"] == len(records)
        start, end = info["replay"]["start"], info["replay"]["end"]
        mid = records[len(records) // 2].timestamp
        snap = (await get(http, monitor.url + f"api/snapshot?at={mid}"))[1]
        assert snap["mode"] == "replay" and snap["bus"]["messages"] == len(records) // 2 + 1
        url = monitor.url + f"api/records?until={end}&limit=5&agent=looper"
        page = (await get(http, url))[1]
        assert len(page["records"]) == 5 and page["total"] > 5
        chosen = page["records"][-1]["id"]
        found = (await get(http, monitor.url + f"api/message/{chosen}"))[1]
        assert found["record"]["id"] == chosen and found["chain"][-1]["id"] == chosen
        assert (await get(http, monitor.url + "api/message/nope"))[0] == 404
        status, bad = await get(http, monitor.url + "api/snapshot?at=soon")
        assert status == 400 and "at='soon'" in bad["error"]
        assert (await get(http, monitor.url + "api/stream"))[0] == 404
        assert start <= mid <= end
        async with http.get(monitor.url) as home:
            assert home.status == 200 and "text/html" in home.headers["Content-Type"]
            assert "default-src 'self'" in home.headers["Content-Security-Policy"]
            assert "<html" in await home.text()


async def test_a_bad_or_empty_trace_is_a_clear_error(tmp_path: Path) -> None:
    broken = tmp_path / "broken.jsonl"
    broken.write_text('{"id": "1"}\nnot json\n')
    with pytest.raises(TraceFormatError, match=r"broken\.jsonl"):
        await serve_replay(broken)
    empty = tmp_path / "empty.jsonl"
    empty.write_text("")
    with pytest.raises(MonitorError, match="no message"):
        await serve_replay(empty)


async def test_beyond_loopback_a_token_is_required_and_checked() -> None:
    async with Bus("guarded") as bus:
        with pytest.raises(MonitorError, match=r"0\.0\.0\.0.*token"):
            await serve_monitor(bus, host="0.0.0.0")
        secret = "s3cret-token-value"
        monitor = await serve_monitor(bus, token=secret)
        try:
            assert secret not in repr(monitor) and "***" in repr(monitor)
            base = f"http://127.0.0.1:{monitor.port}/"
            async with aiohttp.ClientSession() as http:
                assert (await get(http, base + "api/info"))[0] == 401
                assert (await get(http, base + "api/info?token=wrong"))[0] == 401
                assert (await get(http, base + f"api/info?token={secret}"))[0] == 200
                auth = {"Authorization": f"Bearer {secret}"}
                assert (await get(http, base + "api/info", headers=auth))[0] == 200
                assert monitor.url == base + f"?token={secret}"
        finally:
            await monitor.close()


async def test_without_a_token_only_a_loopback_host_is_answered() -> None:
    """A page of another site that points its own name at 127.0.0.1 (DNS rebinding) gets
    nothing."""
    async with (
        Bus("local") as bus,
        await serve_monitor(bus) as monitor,
        aiohttp.ClientSession() as http,
    ):
        evil = {"Host": f"evil.example:{monitor.port}"}
        assert (await get(http, monitor.url + "api/info", headers=evil))[0] == 403
        local = {"Host": f"localhost:{monitor.port}"}
        assert (await get(http, monitor.url + "api/info", headers=local))[0] == 200


async def test_a_port_in_use_is_a_clear_error() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        async with Bus("clash") as bus:
            with pytest.raises(MonitorError, match=f"127.0.0.1:{port}"):
                await serve_monitor(bus, port=port)
            assert not bus.stats().subjects  # and its tap was removed


async def test_closing_ends_the_streams_and_detaches(tmp_path: Path) -> None:
    async with Bus("closing") as bus:
        bus.subscribe(NOTES, lambda note: None)
        monitor = await serve_monitor(bus)
        async with aiohttp.ClientSession() as http:
            response = await http.get(monitor.url + "api/stream")
            await collect(response, 0, timeout=3)
            with anyio.fail_after(5):
                await monitor.close()
            response.close()
            with TraceRecorder(bus, tmp_path / "after.jsonl"):
                await bus.publish(NOTES, Note(n=1))
            assert monitor.hub is not None
            await asyncio.sleep(0.2)
            assert monitor.hub.seen == 0  # the tap is gone: nothing more is taken
