"""The monitor's web server: one self-contained page and a small JSON + Server-Sent Events API.

Routes (all ``GET``; JSON unless said):

- ``/``: the page (``page.html``, shipped in the package: no CDN, works offline);
- ``/api/info``: ``{"mode": "live" | "replay", "title", "buses", "replay": {start, end,
  records} | null}``;
- ``/api/stream`` (live only): Server-Sent Events, ``records`` frames (``{"records": [...],
  "dropped": n, "sampled_out": n}``, the kept backlog first) and a ``snapshot`` a second;
- ``/api/snapshot?at=T``: the page's snapshot (replay: the state at time ``T``);
- ``/api/records?until=T&limit=N&agent=&subject=&conversation=``: the last ``N`` records
  up to ``T`` that pass the filters, and how many pass;
- ``/api/message/ID?at=T``: one record, its causation chain (root first) and its replies
  (replay: as kept at time ``T``, where the page's slider is).

It binds to 127.0.0.1 by default. Binding anywhere else requires a token, which every
request must then carry (``?token=`` or ``Authorization: Bearer``); without a token, only
requests whose ``Host`` is a loopback name are answered (no DNS rebinding).
"""

from __future__ import annotations

import asyncio
import hmac
import ipaddress
import math
import time
from collections.abc import Awaitable, Callable, Sequence
from importlib import resources
from pathlib import Path
from types import TracebackType
from typing import Any

import orjson
from aiohttp import web

from bus import Bus, HivebusError
from bus.trace import TraceRecord, read_trace

from .hub import MonitorHub, run_ticks, sse
from .state import MonitorState

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

LOOPBACK_NAMES = frozenset({"localhost", "127.0.0.1", "::1", "[::1]"})
SNAPSHOT_EVERY = 1.0  # seconds between snapshots on a live stream
RECORDS_LIMIT = 5000  # the most records one /api/records answer holds


class MonitorError(HivebusError, ValueError):
    """The monitor cannot be served as asked (a non-loopback bind without a token, a bad
    trace file, a port in use); the message says which."""


def is_loopback(host: str) -> bool:
    if host in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def _hostname(host: str) -> str:
    """The name in a ``Host`` header: ``[::1]:8080`` -> ``::1``, ``localhost:80`` ->
    ``localhost``, ``[::1]`` -> ``::1``."""
    if host.startswith("["):
        return host[1 : host.find("]")] if "]" in host else host
    return host.rsplit(":", 1)[0]


def page() -> bytes:
    """The page, as shipped in the package."""
    return resources.files("agents.monitor").joinpath("page.html").read_bytes()


class ReplaySource:
    """A recorded run for the page: the state at any time ``T``, built forward from the
    start (a later ``T`` continues from the last one; an earlier one starts again)."""

    def __init__(self, records: Sequence[TraceRecord], *, keep: int = 5000) -> None:
        self.records = sorted(records, key=lambda r: r.timestamp)
        self.keep = keep
        self.start = self.records[0].timestamp if self.records else 0.0
        self.end = self.records[-1].timestamp if self.records else 0.0
        self._state = MonitorState(keep=keep)
        self._fed = 0

    def at(self, until: float | None) -> MonitorState:
        """The state after every record at or before ``until`` (None: the end)."""
        until = self.end if until is None else until
        behind = self._fed and self.records[self._fed - 1].timestamp > until
        if behind:
            self._state, self._fed = MonitorState(keep=self.keep), 0
        records, fed = self.records, self._fed
        while fed < len(records) and records[fed].timestamp <= until:
            self._state.feed(records[fed])
            fed += 1
        self._fed = fed
        return self._state


def _float(request: web.Request, name: str) -> float | None:
    value = request.query.get(name)
    if value in (None, ""):
        return None
    try:
        number = float(value)
    except ValueError:
        number = math.nan
    if not math.isfinite(number):
        raise web.HTTPBadRequest(
            text=orjson.dumps({"error": f"{name}={value!r}: expected a number"}).decode(),
            content_type="application/json",
        )
    return number


def _json(data: Any, status: int = 200) -> web.Response:
    return web.Response(
        body=orjson.dumps(data, default=repr), status=status, content_type="application/json"
    )


class MonitorServer:
    """The monitor served on ``host:port``: ``url`` is where to open it.

    Use :func:`serve_monitor` (a live bus) or :func:`serve_replay` (a recorded trace);
    ``close()`` (or ``async with``) stops it and detaches from the buses.
    """

    def __init__(
        self,
        *,
        hub: MonitorHub | None = None,
        replay: ReplaySource | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        token: str | None = None,
        title: str = "hivebus",
    ) -> None:
        if (hub is None) == (replay is None):
            raise ValueError("a monitor shows either a live hub or a replay")
        if not is_loopback(host) and not token:
            raise MonitorError(
                f"the monitor binds to {host}, beyond this machine: give it a token "
                "(token=secrets.token_urlsafe(), or HIVEBUS_MONITOR_TOKEN for the CLI)"
            )
        self.hub = hub
        self.replay = replay
        self.host = host
        self.port = port
        self.title = title
        self._token = token
        self._runner: web.AppRunner | None = None
        self._ticks: asyncio.Task[None] | None = None
        self._streams: set[asyncio.Task[Any]] = set()
        self._snapshot: tuple[float, dict[str, Any]] | None = None

    def __repr__(self) -> str:  # never the token
        mode = "live" if self.hub is not None else "replay"
        token = "***" if self._token else None
        return f"MonitorServer({mode}, {self.url.split('?')[0]!r}, token={token})"

    @property
    def url(self) -> str:
        """The page's address (with ``?token=...`` when there is a token: hand it out with care)."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        base = f"http://{host}:{self.port}/"
        return f"{base}?token={self._token}" if self._token else base

    # -- life ----------------------------------------------------------------------------------

    async def start(self) -> MonitorServer:
        app = web.Application(middlewares=[self._guard])
        app.router.add_get("/", self._page)
        app.router.add_get("/api/info", self._info)
        app.router.add_get("/api/stream", self._stream, allow_head=False)
        app.router.add_get("/api/snapshot", self._snapshot_view)
        app.router.add_get("/api/records", self._records)
        app.router.add_get("/api/message/{id}", self._message)
        app.on_shutdown.append(self._end_streams)
        runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0)
        await runner.setup()
        site = web.TCPSite(runner, self.host, self.port)
        try:
            await site.start()
        except OSError as error:
            await runner.cleanup()
            raise MonitorError(
                f"the monitor cannot listen on {self.host}:{self.port}: {error.strerror or error}"
            ) from None
        self._runner = runner
        server = getattr(site, "_server", None)
        sockets = getattr(server, "sockets", None) or []
        if sockets:
            self.port = sockets[0].getsockname()[1]
        if self.hub is not None:
            self._ticks = asyncio.get_running_loop().create_task(run_ticks(self.hub))
        return self

    async def close(self) -> None:
        """Stop serving (idempotent); the pages' streams end, the taps are closed."""
        if self._ticks is not None:
            self._ticks.cancel()
            await asyncio.gather(self._ticks, return_exceptions=True)
            self._ticks = None
        if self._runner is not None:
            runner, self._runner = self._runner, None
            await runner.cleanup()
        if self.hub is not None:
            self.hub.detach_all()

    async def __aenter__(self) -> MonitorServer:
        if self._runner is None:
            await self.start()
        return self

    async def __aexit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    async def _end_streams(self, app: web.Application) -> None:
        for task in list(self._streams):
            task.cancel()

    # -- guard ---------------------------------------------------------------------------------

    @web.middleware
    async def _guard(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        if self._token:
            given = request.query.get("token") or ""
            auth = request.headers.get("Authorization", "")
            if auth.startswith("Bearer "):
                given = auth[7:]
            # (surrogateescape: a header that is not UTF-8 is a wrong token, not a crash)
            given_bytes = given.encode("utf-8", "surrogateescape")
            if not hmac.compare_digest(given_bytes, self._token.encode()):
                return _json({"error": "this monitor needs its token (?token=...)"}, 401)
        elif not is_loopback(_hostname(request.host or "")):
            return _json({"error": "this monitor answers only to a loopback Host"}, 403)
        response = await handler(request)
        response.headers.setdefault("Cache-Control", "no-store")
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        response.headers.setdefault("Referrer-Policy", "no-referrer")
        return response

    # -- routes --------------------------------------------------------------------------------

    async def _page(self, request: web.Request) -> web.Response:
        response = web.Response(body=page(), content_type="text/html", charset="utf-8")
        response.headers["Content-Security-Policy"] = (
            "default-src 'self'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; "
            "img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'"
        )
        return response

    async def _info(self, request: web.Request) -> web.Response:
        replay = None
        if self.replay is not None:
            r = self.replay
            replay = {"start": r.start, "end": r.end, "records": len(r.records)}
        buses = self.hub.bus_names if self.hub is not None else []
        mode = "live" if self.hub is not None else "replay"
        return _json({"mode": mode, "title": self.title, "buses": buses, "replay": replay})

    def _state(self, until: float | None) -> MonitorState:
        if self.replay is not None:
            return self.replay.at(until)
        assert self.hub is not None
        return self.hub.state

    async def _live_snapshot(self) -> dict[str, Any]:
        assert self.hub is not None
        now = time.monotonic()
        if self._snapshot is None or now - self._snapshot[0] > SNAPSHOT_EVERY / 2:
            self._snapshot = (now, await self.hub.snapshot())
        return self._snapshot[1]

    async def _snapshot_view(self, request: web.Request) -> web.Response:
        at = _float(request, "at")
        if self.replay is not None:
            snap = self.replay.at(at).snapshot(at)
            snap["mode"] = "replay"
            return _json(snap)
        return _json({**await self._live_snapshot(), "mode": "live"})

    async def _records(self, request: web.Request) -> web.Response:
        until = _float(request, "until")
        limit = _float(request, "limit")
        q = request.query
        records, total = self._state(until).select(
            until=until,
            limit=min(RECORDS_LIMIT, int(limit)) if limit is not None else 300,
            agent=q.get("agent") or None,
            subject=q.get("subject") or None,
            conversation=q.get("conversation") or None,
        )
        return _json({"records": records, "total": total})

    async def _message(self, request: web.Request) -> web.Response:
        found = self._state(_float(request, "at")).message(request.match_info["id"])
        if found is None:
            return _json({"error": "no such message (or no longer kept)"}, 404)
        return _json(found)

    async def _stream(self, request: web.Request) -> web.StreamResponse:
        hub = self.hub
        if hub is None:
            return _json({"error": "a replay has no live stream: use /api/records"}, 404)
        response = web.StreamResponse(
            headers={"Content-Type": "text/event-stream", "X-Accel-Buffering": "no"}
        )
        response.headers["Cache-Control"] = "no-store"
        task = asyncio.current_task()
        assert task is not None
        self._streams.add(task)
        client = hub.connect()  # (before the headers go: a page that has them is counted)
        try:
            await response.prepare(request)
            while True:
                snap = {**await self._live_snapshot(), "mode": "live"}
                snap["monitor"] = {**snap["monitor"], "dropped": client.dropped}
                await response.write(sse("snapshot", orjson.dumps(snap, default=repr)))
                deadline = time.monotonic() + SNAPSHOT_EVERY
                while (left := deadline - time.monotonic()) > 0:
                    try:
                        await asyncio.wait_for(client.wake.wait(), left)
                    except TimeoutError:
                        break
                    for frame in client.take():
                        await response.write(frame)
        except ConnectionError:  # the page went away
            return response
        finally:
            hub.disconnect(client)
            self._streams.discard(task)


async def serve_monitor(
    *buses: Bus,
    host: str = "127.0.0.1",
    port: int = 0,
    token: str | None = None,
    title: str | None = None,
    budget: int = 1000,
    burst: int = 5000,
) -> MonitorServer:
    """Serve the monitor of ``buses`` (on this event loop) and return the running server:

        monitor = await serve_monitor(bus, port=8765)
        print("monitor:", monitor.url)
        ...
        await monitor.close()          # or: async with await serve_monitor(bus) as monitor:

    ``budget`` is how many messages a second it turns into records for the page, in bursts
    of up to ``burst`` (beyond that they are counted, not shown; the counters stay exact).
    Attach more buses with ``monitor.hub.attach(bus)``.
    """
    hub = MonitorHub(budget=budget, burst=burst)
    for bus in buses:
        hub.attach(bus)
    name = title or (", ".join(bus.name for bus in buses) if buses else "hivebus")
    server = MonitorServer(hub=hub, host=host, port=port, token=token, title=name)
    try:
        return await server.start()
    except BaseException:
        hub.detach_all()
        raise


async def serve_replay(
    trace: str | Path | Sequence[TraceRecord],
    *,
    host: str = "127.0.0.1",
    port: int = 0,
    token: str | None = None,
    title: str | None = None,
) -> MonitorServer:
    """Serve a recorded trace (a path, or its records) in the same page, with a time slider."""
    if isinstance(trace, str | Path):
        records = read_trace(trace)
        name = title or Path(trace).name
    else:
        records, name = list(trace), title or "trace"
    if not records:
        raise MonitorError(f"{name}: the trace holds no message to replay")
    server = MonitorServer(
        replay=ReplaySource(records), host=host, port=port, token=token, title=name
    )
    return await server.start()
