"""The live side of the monitor: taps on buses, a bounded budget, and one bounded queue per page.

The tap costs the bus one C-level ``deque.append`` per envelope and nothing else (the deque
is bounded: under a flood it keeps the newest, and nothing piles up between ticks); every
``tick`` seconds the hub takes what came and turns what its budget allows into records (a
token bucket: ``budget`` messages a second, bursts of up to ``burst``, so a whole scenario
of a few thousand messages is shown in full while a load test is sampled). The rest are
counted as *sampled out*: the exact counters still come from the bus itself. When the
buses outrun the budget, the hub also samples in time: it takes its taps off for up to
``MAX_DARK`` seconds, in proportion to the excess, so that a flood of messages costs the bus
almost nothing for being watched. It feeds
them to a :class:`~agents.monitor.state.MonitorState`, encodes them once,
and offers the frame to every connected page. A page that reads too slowly has a queue
that fills up to ``client_bytes``; frames past that are dropped for that page alone and
counted, so a stalled browser never slows the bus or the other pages.

The hub may live on another event loop (another thread) than the buses it watches, as under
``hivebus run``: the tap is thread-safe, and the counters are read on each bus's own loop.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import time
from collections import deque
from collections.abc import Callable
from typing import Any

import msgspec
import orjson

from bus import Bus, BusStats, Envelope, Tap
from bus.trace import to_record
from bus.transport import NatsStats

from ..llm.gateway import LLMGateway
from .state import MonitorState, Rec, model_row

log = logging.getLogger("hivebus.monitor")

FRAME_BYTES = 256 << 10  # about the most one frame holds: well under a page's bound
RECORD_BYTES = 64 << 10  # a record bigger than this is sent without its payload
SLICE_SECONDS = 0.004  # the longest the monitor holds the loop making records at a time
SUBSCRIPTIONS_SHOWN = 50
MAX_DARK = 1.0  # seconds: the longest the taps stay off while the buses outrun the budget
STATS_TIMEOUT = 0.5  # seconds to wait for a bus's loop to hand over its counters


def sse(event: str, data: bytes) -> bytes:
    """One Server-Sent Events frame (``data`` is one line of JSON)."""
    return b"event: " + event.encode() + b"\ndata: " + data + b"\n\n"


class Client:
    """One connected page: a queue of frames bounded in bytes, and what it missed."""

    __slots__ = ("dropped", "frames", "max_bytes", "size", "wake")

    def __init__(self, max_bytes: int) -> None:
        self.frames: deque[bytes] = deque()
        self.size = 0
        self.max_bytes = max_bytes
        self.dropped = 0  # messages in frames dropped because this page fell behind
        self.wake = asyncio.Event()

    def offer(self, frame: bytes, messages: int = 0) -> bool:
        """Queue ``frame``; when the queue is full, drop it and count its messages."""
        if self.size + len(frame) > self.max_bytes:
            self.dropped += messages
            return False
        self.frames.append(frame)
        self.size += len(frame)
        self.wake.set()
        return True

    def take(self) -> list[bytes]:
        frames = list(self.frames)
        self.frames.clear()
        self.size = 0
        self.wake.clear()
        return frames


class _Watched:
    """One bus the hub watches: its loop, its tap (None while the hub is dark), its counters.
    The tap is added and removed on the bus's own loop (the router is not thread-safe)."""

    __slots__ = ("baseline", "bus", "closed", "loop", "sink", "stats", "tap")

    def __init__(
        self, bus: Bus, loop: asyncio.AbstractEventLoop, sink: Callable[[Envelope], Any]
    ) -> None:
        self.bus = bus
        self.loop = loop
        self.sink = sink
        self.closed = False
        self.baseline = _tapped(bus)  # what its tap would have seen before it was added
        self.tap: Tap | None = bus.tap(">", sink)
        self.stats: dict[str, Any] | None = None  # the last counters read

    def here(self) -> bool:
        """Whether touching the bus from here is safe: its loop is this thread's, or it is
        not running (a finished script's loop runs nothing any more)."""
        return self.loop is _running_loop() or not self.loop.is_running()

    def on_its_loop(self, action: Callable[[], None]) -> None:
        if self.here():
            action()
            return
        try:
            self.loop.call_soon_threadsafe(action)
        except RuntimeError:  # it closed just now
            action()

    def untap(self) -> None:
        if self.tap is not None:
            self.tap.close()
            self.tap = None

    def retap(self) -> None:
        if self.tap is None and not self.closed:
            self.tap = self.bus.tap(">", self.sink)


class MonitorHub:
    """Watches buses and feeds pages (see the module's docstring)."""

    def __init__(
        self,
        *,
        budget: int = 1000,
        burst: int = 5000,
        tick: float = 0.1,
        keep: int = 5000,
        client_bytes: int = 8 << 20,
    ) -> None:
        if budget < 1 or tick <= 0:
            raise ValueError("the monitor's budget must be >= 1 message/s and its tick > 0 s")
        self.budget = budget
        self.burst = max(burst, int(budget * tick), 1)
        self._allowance = float(self.burst)  # records the bucket holds now
        self._ticked = time.monotonic()
        self.tick_seconds = tick
        self.client_bytes = client_bytes
        self.state = MonitorState(keep=keep)
        self.clients: set[Client] = set()
        self.seen = 0  # every envelope the taps saw (exact as of the last snapshot)
        self.shown = 0  # ... of which turned into records
        self.sampled_out = 0  # ... and the others: over the budget
        self._taken = 0  # what the ticks took from the taps (a lower bound of seen)
        self.dark_until = 0.0  # while overloaded, the taps are off until then (monotonic)
        self._pending: deque[Envelope] = deque(maxlen=self.burst)
        self._watched: list[_Watched] = []
        self._seen_at: deque[tuple[float, int]] = deque(maxlen=64)  # (time, seen) a snapshot
        self._calls_at: deque[tuple[float, int]] = deque(maxlen=64)  # (time, LLM calls)
        self._subject_counts: deque[tuple[float, dict[str, int]]] = deque(maxlen=8)

    # -- buses ---------------------------------------------------------------------------------

    def attach(self, bus: Bus) -> None:
        """Watch ``bus`` from now on. Call it on the bus's own event loop: its tap is added
        and removed there, and its counters read there."""
        loop = _running_loop()
        if loop is None:
            raise RuntimeError(f"attach bus {bus.name!r} to the monitor from its event loop")
        self._watched.append(_Watched(bus, loop, self._pending.append))

    def detach_all(self) -> None:
        for watched in self._watched:
            watched.closed = True
            watched.on_its_loop(watched.untap)

    @property
    def bus_names(self) -> list[str]:
        return [w.bus.name for w in self._watched]

    # -- the tick ------------------------------------------------------------------------------

    async def tick(self) -> None:
        """Take what the taps saw, turn what the budget allows into records, offer them.
        The records are made in slices, with the loop free between them (the watched bus
        may share this loop)."""
        pending = self._pending
        n = len(pending)
        now = time.monotonic()
        if self.dark_until and now >= self.dark_until:
            self.dark_until = 0.0
            for watched in self._watched:
                watched.on_its_loop(watched.retap)
        allowance = min(self.burst, self._allowance + (now - self._ticked) * self.budget)
        self._ticked = now
        if not n:
            self._allowance = allowance
            return
        take = min(n, int(allowance))
        self._allowance = allowance - take
        for _ in range(n - take):  # over the budget: the oldest go (a live view wants the newest)
            pending.popleft()
        envelopes = [pending.popleft() for _ in range(take)]
        self._taken += n
        self._count(self._taken)
        if n > take:  # flooded: sample in time too, so that the taps cost the bus ~nothing
            self._go_dark(min(MAX_DARK, self.tick_seconds * (n - take) / max(take, 1)), now)
        records: list[Rec] = []
        feed = self.state.feed
        began = time.perf_counter()
        for env in envelopes:
            try:
                records.append(feed(to_record(env)))
            except Exception:  # one odd message is not shown; the others are
                log.exception("the monitor could not show %s on %s", env.id, env.subject)
            if time.perf_counter() - began > SLICE_SECONDS:  # let the loop (the bus) run
                self._offer(records)
                records = []
                await asyncio.sleep(0)
                began = time.perf_counter()
        self._offer(records)

    def _offer(self, records: list[Rec]) -> None:
        self.shown += len(records)
        self._count(self.seen)
        if not self.clients or not records:
            return
        for body, count in _frames([_encoded(rec) for rec in records]):
            for client in self.clients:
                client.offer(self._records_frame(body, client), count)

    def _go_dark(self, seconds: float, now: float) -> None:
        """Take the taps off for ``seconds`` (the buses' counters stay exact meanwhile)."""
        if seconds < self.tick_seconds or self.dark_until:
            return
        self.dark_until = now + seconds
        for watched in self._watched:
            watched.on_its_loop(watched.untap)

    def _count(self, seen: int) -> None:
        self.seen = max(self.seen, seen)
        self.sampled_out = self.seen - self.shown

    def _records_frame(self, body: bytes, client: Client) -> bytes:
        tail = f',"dropped":{client.dropped},"sampled_out":{self.sampled_out}}}'.encode()
        return sse("records", b'{"records":' + body + tail)

    def connect(self) -> Client:
        """A new page: it gets the newest kept records at once (as many as half its queue
        holds), then every frame from the next tick."""
        client = Client(self.client_bytes)
        backlog: list[bytes] = []
        size = 0
        for rec in reversed(self.state.records):
            data = _encoded(rec)
            size += len(data)
            if size > self.client_bytes // 2:
                break
            backlog.append(data)
        backlog.reverse()
        for body, _count in _frames(backlog):
            client.offer(self._records_frame(body, client))
        self.clients.add(client)
        return client

    def disconnect(self, client: Client) -> None:
        self.clients.discard(client)

    # -- snapshots -----------------------------------------------------------------------------

    async def snapshot(self, client: Client | None = None) -> dict[str, Any]:
        """The page's snapshot: the records' view, with the buses' exact counters over it."""
        now = time.time()
        snap = self.state.snapshot(now)
        watched = list(self._watched)  # (a bus may be attached meanwhile)
        read = await asyncio.gather(*(_read_stats(w) for w in watched))
        for w, stats in zip(watched, read, strict=True):
            w.stats = stats or w.stats
        if all(w.stats is not None for w in watched):  # the buses' own count of what was seen
            self._count(sum(w.stats["tapped"] - w.baseline for w in watched if w.stats))
        live = [w.stats for w in watched if w.stats is not None]
        if live:
            snap["bus"] = self._bus_view(live, now)
            gateways = [g for stats in live for g in stats["gateways"]]
            if gateways:
                calls = sum(int(g["calls"]) for g in gateways)
                rate = _per_second(self._calls_at, now, calls)
                snap["gateway"] = _gateway_view(gateways, snap["gateway"], rate)
        snap["monitor"] = {
            "dropped": client.dropped if client is not None else 0,
            "sampled_out": self.sampled_out,
            "seen": self.seen,
        }
        return snap

    def _bus_view(self, live: list[dict[str, Any]], now: float) -> dict[str, Any]:
        counts: dict[str, int] = {}
        for stats in live:
            for subject, published in stats["subjects"].items():
                counts[subject] = counts.get(subject, 0) + published
        self._subject_counts.append((now, counts))
        then, before = self._subject_counts[0]
        span = now - then
        rates = {s: (c - before.get(s, 0)) / span if span > 0 else 0.0 for s, c in counts.items()}
        ordered = sorted(counts, key=lambda s: (-rates[s], -counts[s]))
        subjects = [{"subject": s, "count": counts[s], "rate": rates[s]} for s in ordered]
        subscriptions = sorted(
            (sub for stats in live for sub in stats["subscriptions"]),
            key=lambda s: (-(s["pending"] / max(1, s["buffer"])), -s["dropped"]),
        )[:SUBSCRIPTIONS_SHOWN]

        def total(key: str) -> int:
            return sum(int(stats[key]) for stats in live)

        rate = _per_second(self._seen_at, now, self.seen)
        return {
            "messages": self.seen,
            "rate": rate,
            "subjects": subjects[:200],
            "subscriptions": subscriptions,
            "dropped": total("dropped"),
            "failed": total("failed"),
            "dead_lettered": total("dead_lettered"),
            "in_flight": total("in_flight"),
        }


def _encoded(rec: Rec) -> bytes:
    """A record as the page gets it: one whose payload is too big for a frame has it left
    out (``"truncated": true``); the page loads it from ``/api/message/ID`` when opened."""
    data = orjson.dumps(rec, default=repr)
    if len(data) > RECORD_BYTES:
        note = f"({len(data):,} bytes: shown when the message is opened)"
        data = orjson.dumps({**rec, "payload": note, "truncated": True}, default=repr)
    return data


def _frames(records: list[bytes]) -> list[tuple[bytes, int]]:
    """Encoded records as JSON arrays of at most about ``FRAME_BYTES``, each with its count."""
    frames: list[tuple[bytes, int]] = []
    chunk: list[bytes] = []
    size = 0
    for data in records:
        if chunk and size + len(data) > FRAME_BYTES:
            frames.append((b"[" + b",".join(chunk) + b"]", len(chunk)))
            chunk, size = [], 0
        chunk.append(data)
        size += len(data) + 1
    if chunk:
        frames.append((b"[" + b",".join(chunk) + b"]", len(chunk)))
    return frames


def _running_loop() -> asyncio.AbstractEventLoop | None:
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return None


def _tapped(bus: Bus) -> int:
    """How many envelopes a tap on ">" has seen on ``bus`` since it started: every publish
    (requests and dead letters too), every reply, and what came from the NATS server."""
    return _tapped_of(bus.stats(), bus.transport_stats())


def _tapped_of(stats: BusStats, transport: NatsStats | None) -> int:
    return stats.published + stats.replies + (transport.received if transport else 0)


def _collect(bus: Bus) -> dict[str, Any]:
    """A bus's counters as plain data (read on the bus's own loop)."""
    stats = bus.stats()
    transport = bus.transport_stats()
    subscriptions = [
        {
            "name": s.name,
            "pattern": s.pattern,
            "pending": s.pending,
            "buffer": s.buffer,
            "running": s.running,
            "dropped": s.dropped,
            "failed": s.failed,
        }
        for s in stats.subscriptions
        if not s.pattern.startswith("_INBOX.")
    ]
    gateways = [msgspec.to_builtins(a.stats()) for a in bus.actors if isinstance(a, LLMGateway)]
    return {
        "tapped": _tapped_of(stats, transport),
        "subjects": {s: c.published for s, c in stats.subjects.items()},
        "subscriptions": subscriptions,
        "dropped": stats.dropped,
        "failed": stats.failed,
        "dead_lettered": stats.dead_lettered,
        "in_flight": stats.in_flight,
        "gateways": gateways,
    }


async def _read_stats(watched: _Watched) -> dict[str, Any] | None:
    """A bus's counters, read on its own loop when that runs in another thread (None when
    it does not answer within ``STATS_TIMEOUT``: busy, or closing under us)."""
    if watched.here():
        return _collect(watched.bus)
    done: concurrent.futures.Future[dict[str, Any]] = concurrent.futures.Future()

    def collect() -> None:
        if done.set_running_or_notify_cancel():  # (not if the reader gave up already)
            try:
                done.set_result(_collect(watched.bus))
            except Exception as error:  # noqa: BLE001 - handed to the reader, raised there
                done.set_exception(error)

    try:
        watched.loop.call_soon_threadsafe(collect)
    except RuntimeError:  # its loop closed just now: nothing runs there any more
        return _collect(watched.bus)
    try:
        return await asyncio.wait_for(asyncio.wrap_future(done), STATS_TIMEOUT)
    except TimeoutError:
        return None


def _per_second(history: deque[tuple[float, int]], now: float, count: int) -> float:
    """The rate of an exact running ``count`` over about the last five seconds."""
    history.append((now, count))
    then, before = next(((t, c) for t, c in history if now - t <= 5.5), history[-1])
    return (count - before) / (now - then) if now > then else 0.0


def _gateway_view(
    gateways: list[dict[str, Any]], seen: dict[str, Any] | None, rate: float
) -> dict[str, Any]:
    """The gateways' own counters (exact: calls and their rate, retries, the queue), with
    the latency percentiles of the calls shown (the gateway keeps no distribution)."""

    def total(key: str) -> int:
        return sum(int(g[key]) for g in gateways)

    retries: dict[str, int] = {}
    failures: dict[str, int] = {}
    models: dict[str, dict[str, Any]] = {}
    for g in gateways:
        for cause, n in g["retries"].items():
            retries[cause] = retries.get(cause, 0) + n
        for cause, n in g["failures"].items():
            failures[cause] = failures.get(cause, 0) + n
        for model, usage in g["by_model"].items():
            row = models.setdefault(model, model_row(model))
            for key in ("calls", "prompt_tokens", "completion_tokens", "cost"):
                row[key] += usage[key]
    return {
        "in_flight": total("in_flight"),
        "queued": total("queued"),
        "calls": total("calls"),
        "succeeded": total("succeeded"),
        "failed": total("failed"),
        "rate": rate,
        "latency_ms": seen["latency_ms"] if seen else None,
        "retries": retries,
        "failures": failures,
        "models": sorted(models.values(), key=lambda m: -m["calls"]),
    }


async def run_ticks(hub: MonitorHub) -> None:
    """Tick the hub until cancelled; a failing tick is logged, never fatal to the program."""
    try:
        while True:
            await asyncio.sleep(hub.tick_seconds)
            await _safe_tick(hub)
    finally:  # what came since the last tick still reaches the state
        await _safe_tick(hub)


async def _safe_tick(hub: MonitorHub) -> None:
    try:
        await hub.tick()
    except Exception:
        log.exception("the monitor's tick failed")
