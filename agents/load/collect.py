"""From what a finished run left behind (:class:`Finished`) to its :class:`LoadReport`."""

from __future__ import annotations

from dataclasses import dataclass, field
from urllib.parse import urlsplit

from bus import BusStats, CloseReport

from ..llm.gateway import GatewayStats
from .bottleneck import find_bottleneck
from .metrics import Snapshot, Tally, histogram, peak_rss, percentile
from .mock_process import ServedStats
from .options import DEFAULT_LATENCY, LoadOptions
from .report import (
    Accounting,
    BusFigures,
    Histogram,
    LatencyFigures,
    LLMFigures,
    LoadReport,
    LoopFigures,
    ModeInfo,
    ResourceFigures,
    Series,
    TargetInfo,
    ThroughputFigures,
    WorkloadInfo,
)
from .target import Target

MAX_POINTS = 300  # points per plotted series: enough for a page, small in the JSON


@dataclass(kw_only=True)
class Finished:
    """A run's raw figures, gathered once everything has stopped."""

    options: LoadOptions
    workload: WorkloadInfo
    target: Target
    tally: Tally
    stopped_by: str | None
    max_arrival_lag: float
    start: Snapshot  # when the run began
    marked: Snapshot  # when the measured window began (the end of the warm-up)
    end: Snapshot  # when the last loop ended
    samples: list[Snapshot]
    gateway: GatewayStats
    bus: BusStats
    closed: CloseReport
    served: ServedStats | None
    baseline_rss: int
    event_loop: str
    gc: str
    started_at: str
    elapsed: float
    tasks_left: int
    notes: list[str] = field(default_factory=list)


def build_report(run: Finished) -> LoadReport:
    """Every section of the report (see :mod:`agents.load.report`)."""
    tally = run.tally
    ordered = sorted(tally.latencies)
    edges, counts = histogram(ordered)
    return LoadReport(
        started_at=run.started_at,
        elapsed=round(run.elapsed, 3),
        workload=run.workload,
        mode=_mode(run.options),
        target=_target(run),
        loops=LoopFigures(
            started=tally.started,
            ok=tally.ok,
            failed=tally.failed,
            warm_up=tally.warm_up_started,
            measured=tally.started - tally.warm_up_started,
            by_outcome=dict(sorted(tally.by_outcome.items(), key=lambda kv: -kv[1])),
            untyped=tally.untyped,
            peak_in_flight=tally.peak_in_flight,
            stopped_by=run.stopped_by,
        ),
        latency=_latency(ordered, sorted(tally.failed_latencies)),
        throughput=_throughput(run),
        llm=_llm(run),
        bus=_bus(run.bus, run.closed),
        resources=_resources(run),
        accounting=_accounting(run),
        bottleneck=find_bottleneck(run.samples, run.marked, run.end),
        series=_series(run.samples),
        histogram=Histogram(edges=[round(e, 6) for e in edges], counts=counts),
        notes=run.notes,
    )


def _mode(options: LoadOptions) -> ModeInfo:
    return ModeInfo(
        kind=options.mode,
        concurrency=options.workers if options.mode == "closed" else None,
        rate=options.rate,
        ramp_up=options.ramp_up,
        warm_up=options.warm_up,
        loops=options.loop_count,
        duration=options.duration,
    )


def _target(run: Finished) -> TargetInfo:
    llm, options = run.target.llm, run.options
    is_mock = run.target.kind != "real"
    is_ours = run.target.kind in ("mock-subprocess", "mock-in-process")  # its specs known
    url = llm.base_url or ""
    if not is_mock:  # a real endpoint's path may carry a deployment: keep the host only
        parts = urlsplit(url)
        url = f"{parts.scheme}://{parts.netloc}"
    return TargetInfo(
        kind=run.target.kind,
        url=url,
        model=llm.model,
        cap=llm.max_concurrency,
        rpm=llm.rpm,
        tpm=llm.tpm,
        request_timeout=llm.request_timeout,
        latency=(options.latency or DEFAULT_LATENCY) if is_ours else None,
        faults=options.faults if is_ours else None,
        why=run.target.why,
    )


def _latency(ordered: list[float], failed: list[float]) -> LatencyFigures:
    def at(q: float) -> float:
        return round(percentile(ordered, q), 6)

    return LatencyFigures(
        count=len(ordered),
        mean=round(sum(ordered) / len(ordered), 6) if ordered else 0.0,
        p50=at(0.50),
        p90=at(0.90),
        p95=at(0.95),
        p99=at(0.99),
        max=round(ordered[-1], 6) if ordered else 0.0,
        min=round(ordered[0], 6) if ordered else 0.0,
        failed_count=len(failed),
        failed_p50=round(percentile(failed, 0.5), 6),
    )


def _throughput(run: Finished) -> ThroughputFigures:
    start, end = run.marked, run.end
    window = max(end.t - start.t, 1e-9)

    def per_second(amount: float) -> float:
        return round(amount / window, 3)

    return ThroughputFigures(
        window=round(window, 3),
        loops_per_s=per_second(run.tally.measured_ended),
        llm_requests_per_s=per_second(end.llm_calls - start.llm_calls),
        tokens_per_s=per_second(end.tokens - start.tokens),
        bus_messages_per_s=per_second(end.bus_published - start.bus_published),
        max_arrival_lag=round(run.max_arrival_lag, 4),
    )


def _llm(run: Finished) -> LLMFigures:
    stats, samples = run.gateway, run.samples
    queued = sum(
        s.llm_queued * (s.t - p.t) for p, s in zip([run.start, *samples], samples, strict=False)
    )
    limits = [e.limits for e in stats.endpoints]
    return LLMFigures(
        calls=stats.calls,
        succeeded=stats.succeeded,
        failed=stats.failed,
        attempts=stats.calls + sum(stats.retries.values()),
        retries=stats.retries,
        failures=stats.failures,
        prompt_tokens=stats.total.prompt_tokens,
        completion_tokens=stats.total.completion_tokens,
        cost=stats.total.cost,
        cap_wait=round(queued + sum(limit.wait_seconds_cap for limit in limits), 3),
        rate_wait=round(sum(lim.wait_seconds_rate + lim.paused_seconds for lim in limits), 3),
        peak_in_flight=max((s.llm_in_flight for s in samples), default=0),
        peak_queued=stats.max_queued,
    )


def _bus(stats: BusStats, closed: CloseReport) -> BusFigures:
    return BusFigures(
        published=stats.published,
        fanout=stats.fanout,
        delivered=stats.delivered,
        dropped=stats.dropped,
        failed=stats.failed,
        cancelled=stats.cancelled,
        dead_lettered=stats.dead_lettered,
        in_flight=stats.in_flight,
        balanced=stats.balanced,
        drained=closed.drained,
        unprocessed=closed.unprocessed,
        interrupted=closed.interrupted,
        failed_requests=closed.failed_requests,
    )


def _resources(run: Finished) -> ResourceFigures:
    start, end, tally = run.marked, run.end, run.tally
    measured_cpu = end.cpu - start.cpu
    window = end.t - start.t
    most = max(s.rss for s in [*run.samples, run.end])
    growth = max(0, most - run.baseline_rss)
    lags = sorted(s.lag for s in run.samples)
    return ResourceFigures(
        event_loop=run.event_loop,
        gc=run.gc,
        cpu_seconds=round(run.end.cpu - run.start.cpu, 3),
        cpu_seconds_measured=round(measured_cpu, 3),
        cpu_utilisation=round(measured_cpu / window, 3) if window > 0 else 0.0,
        cpu_per_loop=round(measured_cpu / tally.measured_ended, 6) if tally.measured_ended else 0,
        peak_rss=max(peak_rss(), most),  # the kernel's high-water mark lags a little
        baseline_rss=run.baseline_rss,
        rss_growth=growth,
        rss_per_loop=round(growth / tally.peak_in_flight, 1) if tally.peak_in_flight else 0.0,
        lag_p99=round(percentile(lags, 0.99), 4),
        mock_cpu_seconds=None if run.served is None else run.served.cpu_seconds,
    )


def _accounting(run: Finished) -> Accounting:
    tally, gateway = run.tally, run.gateway
    on_bus = run.bus.subjects.get("llm.chat")
    attempts = gateway.calls + sum(gateway.retries.values())
    mock = run.served.mock if run.served is not None else None
    return Accounting(
        loops_balanced=tally.ok + tally.failed == tally.started and tally.in_flight == 0,
        llm_calls_on_bus=on_bus.published if on_bus is not None else 0,
        gateway_calls=gateway.calls,
        gateway_attempts=attempts,
        mock_requests=mock.requests if mock is not None else None,
        mock_peak_in_flight=mock.peak_in_flight if mock is not None else None,
        llm_balanced=None if mock is None else mock.requests == attempts,
        bus_balanced=run.bus.balanced,
        tasks_left=run.tasks_left,
    )


def _series(samples: list[Snapshot], over: float = 1.0) -> Series:
    """The samples as plotted series; throughput is taken over the last ``over`` seconds."""
    throughput: list[float] = []
    first = 0
    for sample in samples:
        while sample.t - samples[first].t > over:
            first += 1
        before = samples[first]
        done = sample.ok + sample.failed - before.ok - before.failed
        dt = sample.t - before.t
        throughput.append(round(done / dt, 3) if dt > 0 else 0.0)
    stride = max(1, -(-len(samples) // MAX_POINTS))
    points = samples[::stride]
    return Series(
        t=[round(p.t, 3) for p in points],
        loops_done=[p.ok for p in points],
        loops_failed=[p.failed for p in points],
        loops_in_flight=[p.loops_in_flight for p in points],
        llm_in_flight=[p.llm_in_flight for p in points],
        llm_queued=[p.llm_queued for p in points],
        throughput=throughput[::stride],
    )
