"""The report of a load run: :class:`LoadReport`, frozen Structs written as
``report.json`` (and rendered as ``report.html`` by :mod:`agents.load.html`).

Times are in seconds, memory in bytes, waits in call-seconds (summed over calls). The
figures (latency, throughput, CPU per loop) cover the measured window: loops started
after the warm-up. The counts (loops, LLM calls, bus messages) and the accounting
cover the whole run, warm-up included, so that they add up.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import msgspec

REPORT_VERSION = 1
BottleneckKind = Literal["cap", "rate_limit", "endpoint_latency", "cpu", "none"]


class _Section(msgspec.Struct, frozen=True, kw_only=True):
    pass


class WorkloadInfo(_Section, frozen=True, kw_only=True):
    """What a loop is: the synthetic workload's shape, or the scenario's path."""

    kind: Literal["synthetic", "scenario"]
    agents: int | None = None
    steps: int | None = None
    tools: int | None = None
    scenario: str | None = None


class ModeInfo(_Section, frozen=True, kw_only=True):
    """How loops were started: ``closed`` (``concurrency`` at once) or ``open`` (``rate``
    per second); how many (``loops``) or for how long (``duration``)."""

    kind: Literal["closed", "open"]
    concurrency: int | None
    rate: float | None
    ramp_up: float
    warm_up: float
    loops: int | None
    duration: float | None


class TargetInfo(_Section, frozen=True, kw_only=True):
    """Where the LLM calls went, and the gateway's limits on them."""

    kind: str
    url: str
    model: str
    cap: int
    rpm: int | None
    tpm: int | None
    request_timeout: float
    latency: str | None
    faults: str | None
    why: str


class LoopFigures(_Section, frozen=True, kw_only=True):
    """How the loops ended: ``ok + failed == started``. ``by_outcome`` counts ``ok`` and
    each error's type name; ``untyped`` the failures that were not a hivebus error."""

    started: int
    ok: int
    failed: int
    warm_up: int
    measured: int
    by_outcome: dict[str, int]
    untyped: dict[str, int]
    peak_in_flight: int
    stopped_by: str | None


class LatencyFigures(_Section, frozen=True, kw_only=True):
    """Loop latency of the measured loops that ended with a result."""

    count: int
    mean: float
    p50: float
    p90: float
    p95: float
    p99: float
    max: float
    min: float
    failed_count: int
    failed_p50: float


class ThroughputFigures(_Section, frozen=True, kw_only=True):
    """Rates over the measured window (from the end of the warm-up to the last loop's end)."""

    window: float
    loops_per_s: float
    llm_requests_per_s: float
    tokens_per_s: float
    bus_messages_per_s: float
    max_arrival_lag: float


class LLMFigures(_Section, frozen=True, kw_only=True):
    """The gateway's counts over the run: ``attempts`` is calls plus retries. Waits:
    ``cap_wait`` (admission's wait for a slot plus the calls queued on the bus for the
    gateway, sampled), ``rate_wait`` (the RPM/TPM budget and 429 pauses)."""

    calls: int
    succeeded: int
    failed: int
    attempts: int
    retries: dict[str, int]
    failures: dict[str, int]
    prompt_tokens: int
    completion_tokens: int
    cost: float
    cap_wait: float
    rate_wait: float
    peak_in_flight: int
    peak_queued: int


class BusFigures(_Section, frozen=True, kw_only=True):
    """The bus's accounting after it closed, and what closing it found."""

    published: int
    fanout: int
    delivered: int
    dropped: int
    failed: int
    cancelled: int
    dead_lettered: int
    in_flight: int
    balanced: bool
    drained: bool
    unprocessed: int
    interrupted: int
    failed_requests: int


class ResourceFigures(_Section, frozen=True, kw_only=True):
    """This process's CPU (all of the run, and the measured window) and memory.

    ``rss_growth`` is the most resident memory sampled during the run less what it held
    before; per loop, it is divided by the most loops in flight at once.
    """

    event_loop: str
    gc: str = "default gc"  # the gc settings while the loops ran (reports before: default)
    cpu_seconds: float
    cpu_seconds_measured: float
    cpu_utilisation: float
    cpu_per_loop: float
    peak_rss: int
    baseline_rss: int
    rss_growth: int
    rss_per_loop: float
    lag_p99: float
    mock_cpu_seconds: float | None


class Accounting(_Section, frozen=True, kw_only=True):
    """Whether the counts add up: loops, LLM calls on the bus, at the gateway and at the
    mock (``None``: the mock's counts are not known here), the bus, and what was left."""

    loops_balanced: bool
    llm_calls_on_bus: int
    gateway_calls: int
    gateway_attempts: int
    mock_requests: int | None
    mock_peak_in_flight: int | None
    llm_balanced: bool | None
    bus_balanced: bool
    tasks_left: int


class Bottleneck(_Section, frozen=True, kw_only=True):
    """What held the run back, and why (see :mod:`agents.load.bottleneck`)."""

    kind: BottleneckKind
    reason: str
    call_seconds: dict[str, float]
    cpu_utilisation: float


class Series(_Section, frozen=True, kw_only=True):
    """The run over time, one point per sample (``t`` seconds from the start)."""

    t: list[float]
    loops_done: list[int]
    loops_failed: list[int]
    loops_in_flight: list[int]
    llm_in_flight: list[int]
    llm_queued: list[int]
    throughput: list[float]


class Histogram(_Section, frozen=True, kw_only=True):
    """Loop latencies of the measured ok loops: ``counts[i]`` in ``[edges[i], edges[i+1])``."""

    edges: list[float]
    counts: list[int]


class LoadReport(_Section, frozen=True, kw_only=True):
    """Everything ``hivebus load`` found (see the module's docstring)."""

    version: int = REPORT_VERSION
    started_at: str
    elapsed: float
    workload: WorkloadInfo
    mode: ModeInfo
    target: TargetInfo
    loops: LoopFigures
    latency: LatencyFigures
    throughput: ThroughputFigures
    llm: LLMFigures
    bus: BusFigures
    resources: ResourceFigures
    accounting: Accounting
    bottleneck: Bottleneck
    series: Series
    histogram: Histogram
    notes: list[str] = []


def to_json(report: LoadReport, *, indent: int = 0) -> bytes:
    """The report as JSON (one line unless ``indent``)."""
    data = msgspec.json.encode(report)
    return msgspec.json.format(data, indent=indent) if indent else data


def read_report(path: Path) -> LoadReport:
    """A report written by :func:`write_report`."""
    return msgspec.json.decode(path.read_bytes(), type=LoadReport)
