"""A load run from start to end: choose the target, start the mock and the runtime, drive
the loops while sampling, stop everything, and build the report (:func:`run_load`);
then write and show it (:func:`load_main`, what ``hivebus load`` awaits)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import anyio
import msgspec
from rich.console import Console

from bus import Bus

from ..config import Config, ConfigError, load_config
from ..runtime import open_runtime
from .collect import Finished, build_report
from .drivers import Budget, Driver, Gate
from .eventloop import load_gc, running_loop_name
from .html import render
from .metrics import Sampler, Snapshot, Tally, current_rss
from .options import LoadError, LoadOptions
from .progress import Progress, headline, summary_lines
from .report import LoadReport, to_json
from .target import choose_target, open_target
from .workload import ScenarioWorkload, SyntheticWorkload, Workload

CLOSE_TIMEOUT = 30.0  # seconds the bus may take to drain at the end


def make_workload(options: LoadOptions) -> Workload:
    """The scenario of ``options``, or the synthetic workload of its shape."""
    if options.scenario is not None:
        return ScenarioWorkload(options.scenario)
    return SyntheticWorkload(
        agents=options.agents,
        steps=options.steps,
        tools=options.tools,
        loop_timeout=options.loop_timeout,
    )


def write_report(report: LoadReport, folder: Path) -> tuple[Path, Path]:
    """Write ``report.json`` and ``report.html`` into ``folder`` (made if missing)."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        json_path, html_path = folder / "report.json", folder / "report.html"
        json_path.write_bytes(to_json(report, indent=2) + b"\n")
        html_path.write_text(render(report), encoding="utf-8")
    except OSError as error:
        raise LoadError(f"--report {folder}: cannot write: {error.strerror or error}") from None
    return json_path, html_path


def check_writable(folder: Path) -> None:
    """Raise :class:`LoadError` now, rather than after the run, if ``folder`` cannot be
    made or written to."""
    existing = folder
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if existing.exists() and not existing.is_dir():
        raise LoadError(f"--report {folder}: cannot write: {existing} is not a folder")
    if not os.access(existing, os.W_OK):
        raise LoadError(f"--report {folder}: cannot write: {existing} is read-only")


async def run_load(
    options: LoadOptions, *, config: Config | None = None, console: Console | None = None
) -> LoadReport:
    """Run the load ``options`` describe and return its report. ``config`` defaults to
    :func:`~agents.load_config` of ``options.config``; ``console`` shows the progress
    (None: no progress)."""
    if config is None:
        config = load_config(options.config)
    if "gateway" in config.bus.remote:
        raise ConfigError(
            "config", "hivebus load measures the LLM gateway: it cannot run in a worker"
        )
    workload = make_workload(options)
    choice = choose_target(options, config.llm)
    before = asyncio.all_tasks()
    baseline_rss = current_rss()
    started_at = datetime.now(UTC).isoformat(timespec="seconds")
    began = time.perf_counter()
    async with open_target(choice, options, workload.policy) as target:
        bus = Bus(
            "load",
            transport=config.bus.transport,
            request_timeout=3600.0,
            close_timeout=CLOSE_TIMEOUT,
        )
        async with bus:
            runtime_config = msgspec.structs.replace(config, llm=target.llm)
            async with open_runtime(runtime_config, bus=bus) as runtime:
                gateway = runtime.gateway
                assert gateway is not None  # (refused above: it is what load measures)
                await workload.setup(runtime)
                # before the clocks start: the collection and freeze are set-up, not load
                with load_gc(options.tuned_gc) as gc_settings:
                    tally = Tally()
                    sampler = Sampler(runtime, tally, options.sample_interval)
                    budget = Budget(
                        options.max_calls,
                        options.max_cost,
                        workload.calls_per_loop,
                        gateway.stats,
                    )
                    gate = Gate(options, tally, budget, on_measuring=sampler.mark)
                    driver = Driver(options, workload, runtime, tally, gate)

                    def guard(sample: Snapshot) -> None:
                        reached = budget.exceeded(sample.llm_calls + sample.retries, sample.cost)
                        if reached is not None:
                            driver.stop(reached)

                    progress = (
                        Progress(console, tally, warm_up=options.warm_up) if console else None
                    )
                    sampler.watchers += [guard] if budget.is_set else []
                    sampler.watchers += [progress.watch] if progress else []
                    with _quiet_scenario(options), progress.running() if progress else _nothing():
                        async with anyio.create_task_group() as group:
                            group.start_soon(sampler.run)
                            await driver.run()
                            group.cancel_scope.cancel()
                    end = sampler.take()
        closed = bus.close_report
        assert closed is not None
        served = await target.served()
    finished = Finished(
        options=options,
        workload=workload.info(),
        target=target,
        tally=tally,
        stopped_by=gate.stopped_by,
        max_arrival_lag=driver.max_arrival_lag,
        start=sampler.start,
        marked=sampler.marked or end,
        end=end,
        samples=sampler.samples,
        gateway=gateway.stats(),
        bus=bus.stats(),
        closed=closed,
        served=served,
        baseline_rss=baseline_rss,
        event_loop=running_loop_name(),
        gc=gc_settings,
        started_at=started_at,
        elapsed=time.perf_counter() - began,
        tasks_left=len(asyncio.all_tasks() - before - {asyncio.current_task()}),
        notes=_notes(options, target.why),
    )
    return build_report(finished)


def _notes(options: LoadOptions, why: str) -> list[str]:
    notes = [f"LLM target: {why}."]
    if options.mock_url is not None and options.scenario is None:
        notes.append(
            "--mock-url: the running mock answers by its own policy, so the loops' steps and "
            "tool calls follow it rather than --steps/--tools."
        )
    if options.scenario is not None:
        notes.append("The scenario's own output (print) was discarded during the run.")
    if options.warm_up:
        notes.append(
            f"Loops started in the first {options.warm_up:g}s (warm-up) are counted in the "
            "accounting but left out of latency, throughput and CPU per loop."
        )
    return notes


@contextlib.contextmanager
def _nothing() -> Iterator[None]:
    yield


@contextlib.contextmanager
def _quiet_scenario(options: LoadOptions) -> Iterator[None]:
    """A scenario's prints, once per loop, would bury the progress: discard them."""
    if options.scenario is None:
        yield
        return
    with open(os.devnull, "w") as sink, contextlib.redirect_stdout(sink):
        yield


async def load_main(options: LoadOptions) -> int:
    """``hivebus load``: run, write the report, show it; the exit status."""
    console = Console(file=sys.stdout, highlight=False)
    if not console.is_terminal and "COLUMNS" not in os.environ:
        console.width = 160
    shown = not (options.quiet or options.json)
    if options.report is not None:
        check_writable(options.report)
    report = await run_load(options, console=console if shown else None)
    paths = write_report(report, options.report) if options.report is not None else None
    if options.json:
        print(to_json(report).decode(), flush=True)
    elif options.quiet:
        where = f" · report {paths[1]}" if paths else ""
        print(headline(report) + where, flush=True)
    else:
        for line in summary_lines(report, paths):
            console.print(line, soft_wrap=True, markup=False, highlight=False)
    return 0
