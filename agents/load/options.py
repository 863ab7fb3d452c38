"""What ``hivebus load`` was asked to do: :class:`LoadOptions`, read from the command line
(:func:`add_arguments`, :meth:`LoadOptions.from_args`) and checked as a whole.

Every mistake is a :class:`LoadError` whose message names the option, so that the CLI
prints it as one line.
"""

from __future__ import annotations

import argparse
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from bus import HivebusError

from ..llm.mock_specs import Faults, Latency, MockConfigError, parse_duration

DEFAULT_LOOPS = 1000
DEFAULT_CONCURRENCY = 100
DEFAULT_LATENCY = "50ms"
REPORTS_DIR = Path(".hivebus") / "load"

LOAD_DESCRIPTION = """\
Drive many concurrent agent loops -- the built-in synthetic workload (--agents agents; each
loop --steps LLM calls, with --tools tool calls in every step but the last) or a scenario
script's main(runtime), once per loop -- against the mock LLM, and report what happened:
loops ok and failed by cause, loop latency p50/p90/p95/p99/max, LLM requests/s and tokens/s,
retries by cause, time spent waiting for the concurrency cap or the rate limit, bus
messages/s, CPU seconds and peak RSS (per loop too), which event loop ran, and the
bottleneck it points at: the cap, the rate limit, the endpoint's latency or this process's
CPU. The report is written as report.json and report.html (plots; opens with no network).

Closed loop by default: --concurrency loops at once, each starting the next as it ends.
--rate starts loops at that rate whatever is in flight (open loop). --ramp-up rises to
either over S seconds; loops started during --warm-up are driven but not measured.

The mock LLM runs in a process of its own (--mock-in-process: in this one; --mock-url: one
already running). With OPENAI_API_KEY or a base URL configured, the load goes to that real
endpoint only with --yes-real-endpoint and --max-calls N (and --max-cost USD when prices are
configured): no loop starts once its calls could pass the cap, and loops in flight are
cancelled if retries reach it.

Durations are seconds: 0.5, 500ms or 2s. Exit status: 0 when the run finished and its
report was written, 1 (one line on stderr) when it could not run."""


class LoadError(HivebusError):
    """``hivebus load`` cannot run as asked; the message names the option and why."""


class RealEndpointRefused(LoadError):
    """A real (paid) endpoint is configured, and the flags that make it safe are missing."""


@dataclass(frozen=True, kw_only=True)
class LoadOptions:
    """One load run (see ``hivebus load --help``).

    Closed loop (``concurrency`` loops at once, each starting the next as it ends) unless
    ``rate`` (loops started per second, whatever is in flight: open loop). The run is
    ``loops`` loops or ``duration`` seconds, after ``warm_up`` seconds whose loops are
    driven but left out of the figures; ``ramp_up`` raises the concurrency (or the rate)
    linearly from zero over that many seconds.
    """

    scenario: Path | None = None
    agents: int = 10
    steps: int = 3
    tools: int = 1
    loops: int | None = None
    duration: float | None = None
    concurrency: int | None = None
    rate: float | None = None
    ramp_up: float = 0.0
    warm_up: float = 0.0
    loop_timeout: float | None = None
    latency: str | None = None
    faults: str | None = None
    seed: int = 0
    rpm: int | None = None
    tpm: int | None = None
    cap: int | None = None
    request_timeout: float | None = None
    config: Path | None = None
    mock_url: str | None = None
    mock_in_process: bool = False
    report: Path | None = None
    yes_real_endpoint: bool = False
    max_calls: int | None = None
    max_cost: float | None = None
    quiet: bool = False
    json: bool = False
    uvloop: bool = True
    tuned_gc: bool = True
    sample_interval: float = 0.1

    def __post_init__(self) -> None:
        _check(self)

    @property
    def mode(self) -> Literal["closed", "open"]:
        """``open`` with a ``rate``, else ``closed``."""
        return "open" if self.rate is not None else "closed"

    @property
    def loop_count(self) -> int | None:
        """The measured loops to drive; None when the run is bounded by ``duration``."""
        if self.duration is not None:
            return self.loops
        return self.loops if self.loops is not None else DEFAULT_LOOPS

    @property
    def workers(self) -> int:
        """Loops at once in closed-loop mode."""
        return self.concurrency or DEFAULT_CONCURRENCY

    @property
    def mock_latency(self) -> Latency:
        """The mock's latency (:data:`DEFAULT_LATENCY` unless given)."""
        return Latency.parse(self.latency if self.latency is not None else DEFAULT_LATENCY)

    @property
    def mock_faults(self) -> Faults:
        """The faults the mock injects (none unless given)."""
        return Faults.parse(self.faults)

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> LoadOptions:
        """The options of a parsed ``hivebus load`` command line."""
        return cls(
            scenario=_path(args.scenario),
            agents=args.agents,
            steps=args.steps,
            tools=args.tools,
            loops=args.loops,
            duration=_seconds("--duration", args.duration),
            concurrency=args.concurrency,
            rate=args.rate,
            ramp_up=_seconds("--ramp-up", args.ramp_up) or 0.0,
            warm_up=_seconds("--warm-up", args.warm_up) or 0.0,
            loop_timeout=_seconds("--loop-timeout", args.loop_timeout),
            latency=args.latency,
            faults=args.faults,
            seed=args.seed,
            rpm=args.rpm,
            tpm=args.tpm,
            cap=args.cap,
            request_timeout=_seconds("--request-timeout", args.request_timeout),
            config=_path(args.config),
            mock_url=args.mock_url,
            mock_in_process=args.mock_in_process,
            report=Path(args.report) if args.report else default_report_dir(),
            yes_real_endpoint=args.yes_real_endpoint,
            max_calls=args.max_calls,
            max_cost=args.max_cost,
            quiet=args.quiet,
            json=args.json,
            uvloop=not args.no_uvloop,
            tuned_gc=not args.default_gc,
        )


def default_report_dir(now: float | None = None) -> Path:
    """``.hivebus/load/load-YYYYmmdd-HHMMSS`` under the working folder, numbered if taken."""
    stamp = time.strftime("%Y%m%d-%H%M%S", time.localtime(now))
    path = REPORTS_DIR / f"load-{stamp}"
    number = 1
    while path.exists():
        number += 1
        path = REPORTS_DIR / f"load-{stamp}-{number}"
    return path


def _path(value: str | None) -> Path | None:
    return None if value is None else Path(value)


def _seconds(option: str, value: str | None) -> float | None:
    if value is None:
        return None
    try:
        return parse_duration(value)
    except MockConfigError as error:
        raise LoadError(f"{option}: {error}") from None


def _check(o: LoadOptions) -> None:
    positive = {
        "--agents": o.agents,
        "--steps": o.steps,
        "--loops": o.loops,
        "--concurrency": o.concurrency,
        "--rpm": o.rpm,
        "--tpm": o.tpm,
        "--cap": o.cap,
        "--max-calls": o.max_calls,
    }
    for option, value in positive.items():
        if value is not None and value < 1:
            raise LoadError(f"{option}: must be at least 1, got {value}")
    above_zero = {
        "--duration": o.duration,
        "--rate": o.rate,
        "--loop-timeout": o.loop_timeout,
        "--request-timeout": o.request_timeout,
        "--max-cost": o.max_cost,
    }
    for option, number in above_zero.items():
        if number is not None and not (number > 0 and math.isfinite(number)):
            raise LoadError(f"{option}: must be a positive number, got {number:g}")
    if o.tools < 0:
        raise LoadError(f"--tools: must be 0 or more, got {o.tools}")
    if o.tools == 0 and o.steps > 1:
        raise LoadError("--tools 0: a step without tool calls is the final answer; use --steps 1")
    if o.ramp_up < 0 or o.warm_up < 0:
        raise LoadError("--ramp-up and --warm-up cannot be negative")
    if o.loops is not None and o.duration is not None:
        raise LoadError("--loops and --duration: give one of them, not both")
    if o.mock_url is not None and o.mock_in_process:
        raise LoadError("--mock-url and --mock-in-process: give one of them, not both")
    if o.rate is not None and o.concurrency is not None:
        raise LoadError(
            "--rate (open loop) and --concurrency (closed loop): give one of them, not both"
        )
    try:  # read here, so that a bad spec fails before anything starts
        Latency.parse(o.latency if o.latency is not None else DEFAULT_LATENCY)
        Faults.parse(o.faults)
    except MockConfigError as error:
        raise LoadError(str(error)) from None


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of ``hivebus load``."""
    parser.add_argument(
        "scenario",
        metavar="SCENARIO",
        nargs="?",
        help="a scenario script (async def main(runtime), optional POLICY) to run as each "
        "loop; default: the built-in synthetic workload (--agents, --steps, --tools)",
    )
    work = parser.add_argument_group("workload (synthetic)")
    work.add_argument("--agents", type=int, default=10, metavar="N", help="agents (default 10)")
    work.add_argument(
        "--steps", type=int, default=3, metavar="K", help="LLM calls per loop (default 3)"
    )
    work.add_argument(
        "--tools",
        type=int,
        default=1,
        metavar="T",
        help="tool calls per step, in every step but the last (default 1)",
    )
    run = parser.add_argument_group(
        "how hard, how long (--loops or --duration; --concurrency or --rate)"
    )
    run.add_argument("--loops", type=int, metavar="N", help=f"default {DEFAULT_LOOPS}")
    run.add_argument("--duration", metavar="S", help="seconds of loops after the warm-up")
    run.add_argument(
        "--concurrency",
        type=int,
        metavar="C",
        help=f"closed loop: C loops at once (default {DEFAULT_CONCURRENCY})",
    )
    run.add_argument(
        "--rate", type=float, metavar="R", help="open loop: R loops started per second"
    )
    run.add_argument("--ramp-up", metavar="S", help="rise to C (or R) over S seconds")
    run.add_argument(
        "--warm-up", metavar="S", help="loops started in the first S seconds are not measured"
    )
    run.add_argument("--loop-timeout", metavar="S", help="deadline of one loop (default 300s)")
    mock = parser.add_argument_group("the mock LLM")
    mock.add_argument("--latency", metavar="SPEC", help=f"e.g. 50ms,lognormal ({DEFAULT_LATENCY})")
    mock.add_argument("--faults", metavar="SPEC", help="e.g. 429:0.05,500:0.02,timeout:0.01")
    mock.add_argument("--seed", type=int, default=0, help="seed of the mock's draws")
    mock.add_argument("--mock-url", metavar="URL", help="an already running mock (127.0.0.1)")
    mock.add_argument(
        "--mock-in-process",
        action="store_true",
        help="serve the mock in this process (default: a subprocess of its own)",
    )
    llm = parser.add_argument_group("the LLM gateway")
    llm.add_argument("--cap", type=int, metavar="C", help="LLM calls in flight at most")
    llm.add_argument("--rpm", type=int, metavar="R", help="requests per minute")
    llm.add_argument("--tpm", type=int, metavar="T", help="tokens per minute")
    llm.add_argument("--request-timeout", metavar="S", help="seconds for one attempt")
    llm.add_argument("--config", metavar="FILE", help="configuration file (.toml or .json)")
    real = parser.add_argument_group("a real endpoint (OPENAI_API_KEY or a base URL set)")
    real.add_argument("--yes-real-endpoint", action="store_true", help="load it, really")
    real.add_argument("--max-calls", type=int, metavar="N", help="hard cap on LLM calls")
    real.add_argument("--max-cost", type=float, metavar="USD", help="hard cap on the cost")
    out = parser.add_argument_group("output")
    out.add_argument(
        "--report",
        metavar="DIR",
        help="write report.json and report.html there (default: .hivebus/load/load-TIME)",
    )
    out.add_argument("--quiet", "-q", action="store_true", help="only the closing line")
    out.add_argument("--json", action="store_true", help="print the report as one JSON object")
    out.add_argument("--no-uvloop", action="store_true", help="use asyncio's loop even if uvloop")
    out.add_argument(
        "--default-gc",
        action="store_true",
        help="keep CPython's gc thresholds (default: collect less often while loops run)",
    )
