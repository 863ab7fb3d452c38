"""Thousands of concurrent agent loops against a slow mock LLM, beside the ideal time.

    .venv/bin/python scripts/bench/load.py [--json] [--loops-small 1000] [--loops-large 10000]

Each loop is the synthetic workload of ``hivebus load`` (3 steps, one tool call in each
of the first two: 3 LLM calls per loop), all loops started at once, against the mock at
50 ms latency in its own process, through a gateway capped at 1,000 calls in flight.
For each size, the same number of plain aiohttp requests (concurrency 1,000) against
the same mock is measured in the same run, and the loops' total time is held to the
ideal = max(LLM calls x 0.05 s / 1,000, LLM calls / raw requests/s) (bar: <= 1.3x).

Each size runs in a fresh child process (this script with ``--child``), so the RSS
figures are its own: peak RSS, and memory per loop = (peak RSS during the loops - RSS
just before them) / loops; bar: memory per loop at the large size within 1.5x of the
small one. The loops run with ``hivebus load``'s gc settings (see
``agents.load.eventloop.load_gc``); the raw client, for the ideal, with CPython's
defaults, and once more with the loops' settings, for reference. The exit status is 0
whatever the checks say (the table marks LOW ones).
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import subprocess
import sys
import tempfile
import time
from collections.abc import Coroutine
from pathlib import Path
from typing import Any

import msgspec
import orjson

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from agents.config import Config, LLMConfig
from agents.llm.policy import PolicyFile
from agents.load.eventloop import load_gc, loop_factory, running_loop_name
from agents.load.metrics import current_rss, peak_rss
from agents.load.workload import SyntheticWorkload
from agents.runtime import open_runtime
from bus import Bus
from scripts.bench._report import check, print_checks
from scripts.bench.gateway import mock_server, raw_client

LATENCY = 0.05  # seconds the mock takes per call
CAP = 1000  # the gateway's calls in flight, and the raw client's concurrency
STEPS, TOOLS, AGENTS = 3, 1, 10
CALLS_PER_LOOP = STEPS  # one LLM call per step
RSS_SAMPLE = 0.005  # seconds between RSS samples during the loops
MIB = 1024 * 1024


def workload() -> SyntheticWorkload:
    return SyntheticWorkload(agents=AGENTS, steps=STEPS, tools=TOOLS)


async def agent_loops(url: str, loops: int) -> dict[str, Any]:
    """The child's part: ``loops`` loops at once on a fresh runtime; time and RSS."""
    config = Config(
        llm=LLMConfig(base_url=url, max_concurrency=CAP, request_timeout=600.0, deadline=600.0)
    )
    work = workload()
    async with (
        Bus("bench-load", request_timeout=600.0, close_timeout=30.0) as bus,
        open_runtime(config, bus=bus) as runtime,
    ):
        await work.setup(runtime)
        await work.run(runtime, -1)  # one loop first: connection set-up, lazy imports
        gc.collect()
        baseline = peak = current_rss()
        running = True

        async def sample() -> None:
            nonlocal peak
            while running:
                peak = max(peak, current_rss())
                await asyncio.sleep(RSS_SAMPLE)

        sampler = asyncio.create_task(sample())
        with load_gc() as gc_settings:  # as `hivebus load` runs its loops
            cpu, wall = time.process_time(), time.perf_counter()
            await asyncio.gather(*(work.run(runtime, n) for n in range(loops)))
            elapsed, cpu = time.perf_counter() - wall, time.process_time() - cpu
        peak = max(peak, current_rss())
        running = False
        await sampler
        calls = runtime.gateway.stats().calls
    return {
        "loops": loops,
        "llm_calls": calls - CALLS_PER_LOOP,  # less the first loop's
        "elapsed_s": elapsed,
        "cpu_us_per_loop": cpu / loops * 1e6,
        "baseline_rss_mib": baseline / MIB,
        "peak_rss_mib": max(peak, peak_rss()) / MIB,
        "kib_per_loop": (peak - baseline) / loops / 1024,
        "event_loop": running_loop_name(),
        "gc": gc_settings,
    }


def run_child(url: str, loops: int) -> dict[str, Any]:
    """This script with ``--child``, in a process of its own: its figures."""
    command = [sys.executable, __file__, "--child", str(loops), "--url", url]
    done = subprocess.run(command, capture_output=True, text=True, check=False, timeout=900)
    if done.returncode != 0:
        raise RuntimeError(f"the {loops:,}-loop child failed:\n{done.stderr.strip()}")
    figures: dict[str, Any] = orjson.loads(done.stdout.strip().splitlines()[-1])
    return figures


async def measure_raw(url: str, requests: int, tuned_gc: bool = False) -> dict[str, float]:
    with load_gc(tuned_gc):
        return await raw_client(url, requests, CAP)


def run_async(coroutine: Coroutine[Any, Any, Any]) -> Any:
    """Run ``coroutine`` on uvloop when installed (as ``hivebus load`` does), else asyncio."""
    with asyncio.Runner(loop_factory=loop_factory()) as runner:
        return runner.run(coroutine)


def run(args: argparse.Namespace) -> dict[str, Any]:
    checks: list[dict[str, Any]] = []
    figures: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as scratch:
        policy = workload().policy
        assert policy is not None
        path = Path(scratch) / "policy.json"
        path.write_bytes(
            msgspec.json.encode(PolicyFile(rules=list(policy.rules), default=policy.default))
        )
        with mock_server(f"{LATENCY * 1000:g}ms", policy=str(path)) as url:
            run_async(measure_raw(url, 500))  # warm the mock up
            for loops in (args.loops_small, args.loops_large):
                calls = loops * CALLS_PER_LOOP
                raw = run_async(measure_raw(url, calls))
                # for reference, not the bar: raw aiohttp with the loops' gc settings
                raw_tuned = run_async(measure_raw(url, calls, tuned_gc=True))
                mine = run_child(url, loops)
                ideal = max(calls * LATENCY / CAP, calls / raw["rps"])
                name = f"{loops:,} loops @50ms, cap {CAP:,}: seconds"
                ok = mine["elapsed_s"] <= 1.3 * ideal
                checks.append(check(name, mine["elapsed_s"], ideal, "<= 1.3x ideal", ok))
                figures[f"loops{loops}"] = {
                    "agents": mine,
                    "raw": raw,
                    "raw_tuned_gc": raw_tuned,
                    "ideal_s": ideal,
                }
    small = figures[f"loops{args.loops_small}"]["agents"]
    large = figures[f"loops{args.loops_large}"]["agents"]
    # a floor of 0.01 KiB keeps the ratio finite should a small run's RSS not move at all
    small_kib, large_kib = max(small["kib_per_loop"], 0.01), max(large["kib_per_loop"], 0.01)
    name = f"KiB per loop at {args.loops_large:,} vs {args.loops_small:,}"
    checks.append(check(name, large_kib, small_kib, "<= 1.5x", large_kib <= 1.5 * small_kib))
    return {"bench": "load", "checks": checks, "figures": figures}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--loops-small", type=int, default=1000, help="the 1k figure's loops")
    parser.add_argument("--loops-large", type=int, default=10_000, help="the 10k figure's")
    parser.add_argument("--json", action="store_true", help="print one JSON object last")
    parser.add_argument("--child", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--url", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child is not None:
        print(orjson.dumps(run_async(agent_loops(args.url, args.child))).decode())
        return
    result = run(args)
    print_checks(result, "load", as_json=False)
    for figure in result["figures"].values():
        mine, raw, tuned = figure["agents"], figure["raw"], figure["raw_tuned_gc"]
        print(
            f"  {mine['loops']:,} loops ({mine['event_loop']}, {mine['gc']}): "
            f"{mine['llm_calls']:,} LLM calls in {mine['elapsed_s']:.2f} s, ideal "
            f"{figure['ideal_s']:.2f} s (raw aiohttp {raw['rps']:,.0f} requests/s; with the "
            f"same gc settings {tuned['rps']:,.0f}); peak RSS {mine['peak_rss_mib']:,.1f} MiB, "
            f"{mine['kib_per_loop']:.1f} KiB per loop, {mine['cpu_us_per_loop']:,.0f} us CPU "
            "per loop"
        )
    if args.json:
        print(orjson.dumps(result).decode())


if __name__ == "__main__":
    main()
