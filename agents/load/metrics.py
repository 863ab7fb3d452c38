"""The figures of a load run as it goes: how each loop ended (:class:`Tally`), the
runtime's counters sampled at a steady interval (:class:`Sampler`, :class:`Snapshot`),
this process's CPU and memory, and the latency statistics."""

from __future__ import annotations

import asyncio
import math
import os
import resource
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from ..runtime import Runtime

OK = "ok"


def cpu_seconds() -> float:
    """User and system CPU seconds this process has used (all its threads)."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def peak_rss() -> int:
    """The most resident memory this process has held, in bytes (a high-water mark)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak if sys.platform == "darwin" else peak * 1024  # Linux counts in KiB


def current_rss() -> int:
    """Resident memory now, in bytes (Linux); the high-water mark elsewhere."""
    try:
        with open("/proc/self/statm", "rb") as statm:
            return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return peak_rss()


def percentile(ordered: Sequence[float], q: float) -> float:
    """The nearest-rank ``q`` quantile (0 < q <= 1) of an ascending sequence; 0 if empty."""
    if not ordered:
        return 0.0
    return ordered[min(len(ordered) - 1, max(0, math.ceil(q * len(ordered)) - 1))]


def histogram(values: Sequence[float], bins: int = 30) -> tuple[list[float], list[int]]:
    """Equal-width bins from the least to the greatest value: (edges, counts)."""
    if not values:
        return [], []
    low, high = min(values), max(values)
    if high <= low:
        return [low, low], [len(values)]
    bins = max(1, min(bins, len(values)))
    width = (high - low) / bins
    counts = [0] * bins
    for value in values:
        counts[min(bins - 1, int((value - low) / width))] += 1
    return [low + i * width for i in range(bins + 1)], counts


class Tally:
    """Every loop's start and end: counts by outcome, loops in flight, and the latencies
    of the measured ones (those started after the warm-up). ``ok + failed == started``
    once nothing is in flight: each loop ends exactly once, in a result or an error."""

    def __init__(self, clock: Callable[[], float] = time.perf_counter) -> None:
        self.clock = clock
        self.origin = clock()
        self.started = self.ok = self.failed = self.in_flight = self.peak_in_flight = 0
        self.warm_up_started = 0
        self.by_outcome: dict[str, int] = {}
        self.untyped: dict[str, int] = {}  # failures that were not a HivebusError
        self.latencies: list[float] = []  # measured loops that ended with a result
        self.failed_latencies: list[float] = []
        self.measured_ended = 0
        self.last_end = 0.0

    def now(self) -> float:
        """Seconds since the tally began."""
        return self.clock() - self.origin

    def begin(self, *, measured: bool) -> float:
        """Count a loop that starts now; pass what this returns to :meth:`end`."""
        self.started += 1
        self.warm_up_started += not measured
        self.in_flight += 1
        self.peak_in_flight = max(self.peak_in_flight, self.in_flight)
        return self.clock()

    def end(self, began: float, *, measured: bool, outcome: str, typed: bool = True) -> None:
        """Count how a loop ended: :data:`OK`, or the name of the error that ended it
        (``typed``: a hivebus error)."""
        ended = self.clock()
        self.in_flight -= 1
        self.by_outcome[outcome] = self.by_outcome.get(outcome, 0) + 1
        if outcome == OK:
            self.ok += 1
        else:
            self.failed += 1
            if not typed:
                self.untyped[outcome] = self.untyped.get(outcome, 0) + 1
        if measured:
            self.measured_ended += 1
            self.last_end = ended - self.origin
            (self.latencies if outcome == OK else self.failed_latencies).append(ended - began)

    def p95(self) -> float:
        """The 95th percentile of the measured loops' latency so far."""
        return percentile(sorted(self.latencies), 0.95)


@dataclass(frozen=True, slots=True)
class Snapshot:
    """The runtime's counters at one moment, ``t`` seconds into the run. Waits are summed
    over calls (call-seconds); ``lag`` is how late the sampler woke (event-loop lag)."""

    t: float
    ok: int
    failed: int
    loops_in_flight: int
    llm_calls: int
    llm_in_flight: int
    llm_queued: int
    retries: int
    tokens: int
    cost: float
    wait_cap: float
    wait_rate: float
    at_endpoint: int
    bus_published: int
    cpu: float
    rss: int
    lag: float = 0.0


def snapshot(runtime: Runtime, tally: Tally, lag: float = 0.0) -> Snapshot:
    """Read every counter now."""
    assert runtime.gateway is not None  # (hivebus load keeps its gateway in-process)
    gateway = runtime.gateway.stats()
    limits = [endpoint.limits for endpoint in gateway.endpoints]
    total = gateway.total
    return Snapshot(
        t=tally.now(),
        ok=tally.ok,
        failed=tally.failed,
        loops_in_flight=tally.in_flight,
        llm_calls=gateway.calls,
        llm_in_flight=gateway.in_flight,
        llm_queued=gateway.queued,
        retries=sum(gateway.retries.values()),
        tokens=total.prompt_tokens + total.completion_tokens,
        cost=total.cost,
        wait_cap=sum(limit.wait_seconds_cap for limit in limits),
        wait_rate=sum(limit.wait_seconds_rate + limit.paused_seconds for limit in limits),
        at_endpoint=sum(limit.in_flight for limit in limits),
        bus_published=runtime.bus.stats().published,
        cpu=cpu_seconds(),
        rss=current_rss(),
        lag=lag,
    )


class Sampler:
    """Takes a :class:`Snapshot` every ``interval`` seconds while :meth:`run` runs and
    hands it to each ``watcher`` (the progress view, the budget). :meth:`mark` keeps the
    snapshot the measured window starts from."""

    def __init__(
        self,
        runtime: Runtime,
        tally: Tally,
        interval: float,
        watchers: Sequence[Callable[[Snapshot], None]] = (),
    ) -> None:
        self.runtime = runtime
        self.tally = tally
        self.interval = interval
        self.watchers = list(watchers)
        self.samples: list[Snapshot] = []
        self.start = self.take()
        self.marked: Snapshot | None = None

    def take(self, lag: float = 0.0) -> Snapshot:
        """A snapshot now (not kept)."""
        return snapshot(self.runtime, self.tally, lag)

    def mark(self) -> Snapshot:
        """The start of the measured window (the end of the warm-up)."""
        self.marked = self.take()
        return self.marked

    async def run(self) -> None:
        """Sample until cancelled."""
        due = time.perf_counter()
        while True:
            due += self.interval
            await asyncio.sleep(max(0.0, due - time.perf_counter()))
            lag = max(0.0, time.perf_counter() - due)
            if lag > self.interval:  # fell behind (a saturated loop): resume from now
                due = time.perf_counter()
            sample = self.take(lag)
            self.samples.append(sample)
            for watch in self.watchers:
                watch(sample)
