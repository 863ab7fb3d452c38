"""Whole load runs in this process, against the mock LLM: the counts add up exactly."""

from __future__ import annotations

import asyncio
from pathlib import Path

import anyio
import msgspec
import pytest

from agents import task as agent_task
from agents.config import Config
from agents.llm import errors as llm_errors
from agents.llm.mock import MockLLM
from agents.load import LoadOptions, LoadReport, SyntheticWorkload, arrivals_before, run_load
from agents.load.report import read_report
from agents.load.run import write_report

from .conftest import FAULTS

pytestmark = pytest.mark.anyio

TYPED_ERRORS = {
    *llm_errors.__all__,
    *(name for name in dir(agent_task) if name.endswith(("Exceeded", "Timeout", "Unavailable"))),
    "InvalidOutput",
}


async def test_a_faulty_run_adds_up_exactly(fast_config: Config) -> None:
    before = asyncio.all_tasks()
    options = LoadOptions(
        loops=200, concurrency=40, latency="0", faults=FAULTS, mock_in_process=True, seed=7
    )
    report = await run_load(options, config=fast_config)
    assert asyncio.all_tasks() == before, "nothing of the run is left running"
    loops, llm, acc = report.loops, report.llm, report.accounting
    assert loops.started == 200 and loops.ok + loops.failed == loops.started
    assert sum(loops.by_outcome.values()) == loops.started
    assert loops.failed > 0 and llm.retries, "the faults were felt: retries and failed loops"
    assert loops.untyped == {}
    assert set(loops.by_outcome) - {"ok"} <= TYPED_ERRORS, loops.by_outcome
    # every LLM call on the bus reached the gateway; every attempt reached the mock
    assert acc.llm_calls_on_bus == acc.gateway_calls == llm.calls
    assert llm.calls == llm.succeeded + llm.failed
    assert acc.mock_requests == acc.gateway_attempts == llm.attempts
    assert llm.attempts == llm.calls + sum(llm.retries.values())
    assert acc.llm_balanced is True and acc.loops_balanced is True
    # the bus: balanced, drained, nothing unprocessed or interrupted at close
    assert acc.bus_balanced and report.bus.balanced and report.bus.drained
    assert report.bus.unprocessed == report.bus.interrupted == report.bus.failed_requests == 0
    assert report.bus.in_flight == 0 and acc.tasks_left == 0


async def test_what_the_mock_served_is_what_the_gateway_saw(fast_config: Config) -> None:
    mock = MockLLM(SyntheticWorkload(agents=10, steps=3, tools=1).policy, faults=FAULTS, seed=5)
    async with mock as url:
        options = LoadOptions(loops=200, concurrency=40, mock_url=url)
        report = await run_load(options, config=fast_config)
        with anyio.fail_after(5):  # a hung request's handler ends as its client hangs up
            while mock.stats().in_flight:  # noqa: ASYNC110 - the mock has no event for it
                await asyncio.sleep(0.01)
        served = mock.stats()
    llm = report.llm
    assert report.target.kind == "mock-url" and report.accounting.mock_requests is None
    assert served.requests == llm.attempts == llm.calls + sum(llm.retries.values())
    assert served.requests == sum(served.responses.values()) + served.faults["timeout"]
    assert served.responses.get(200, 0) - served.faults["badjson"] == llm.succeeded
    assert served.responses.get(429, 0) == served.faults["429"]
    assert served.responses.get(500, 0) == served.faults["500"]
    assert report.loops.ok * 3 <= llm.succeeded


async def test_closed_loop_holds_the_concurrency(fast_config: Config) -> None:
    options = LoadOptions(loops=120, concurrency=15, latency="5ms", mock_in_process=True)
    report = await run_load(options, config=fast_config)
    assert report.mode.kind == "closed" and report.mode.concurrency == 15
    assert report.loops.peak_in_flight == 15
    assert report.loops.ok == 120 and report.loops.failed == 0
    assert report.llm.calls == 120 * 3  # three steps, one LLM call each
    assert report.accounting.mock_peak_in_flight is not None
    assert report.accounting.mock_peak_in_flight <= 15


async def test_the_llm_cap_bounds_what_the_mock_sees(fast_config: Config) -> None:
    options = LoadOptions(loops=60, concurrency=30, cap=4, latency="30ms", mock_in_process=True)
    report = await run_load(options, config=fast_config)
    assert report.target.cap == 4
    assert report.accounting.mock_peak_in_flight is not None
    assert report.accounting.mock_peak_in_flight <= 4
    assert report.llm.peak_queued > 0, "calls beyond the cap queue for the gateway"
    assert report.llm.cap_wait > 0
    assert report.bottleneck.kind == "cap", report.bottleneck


async def test_open_loop_starts_the_scheduled_number_of_loops(fast_config: Config) -> None:
    rate, duration, ramp, warm = 80.0, 0.75, 0.5, 0.25
    options = LoadOptions(
        rate=rate,
        duration=duration,
        ramp_up=ramp,
        warm_up=warm,
        latency="1ms",
        mock_in_process=True,
    )
    report = await run_load(options, config=fast_config)
    expected = arrivals_before(warm + duration, rate, ramp)
    assert report.mode.kind == "open" and report.mode.rate == rate
    assert report.loops.started == expected == 60  # 20 during the ramp, then 80/s for 0.5s
    assert report.loops.warm_up == arrivals_before(warm, rate, ramp) == 5
    assert report.loops.measured == expected - 5
    assert report.loops.ok + report.loops.failed == expected
    assert report.elapsed >= warm + duration - 0.05, "arrivals are never early"


async def test_warm_up_loops_are_counted_but_not_measured(fast_config: Config) -> None:
    options = LoadOptions(loops=30, concurrency=5, warm_up=0.2, latency="5ms", mock_in_process=True)
    report = await run_load(options, config=fast_config)
    assert report.loops.warm_up > 0
    assert report.loops.measured == 30 == report.latency.count
    assert report.loops.started == 30 + report.loops.warm_up
    assert report.llm.calls == 3 * report.loops.started
    assert any("warm-up" in note for note in report.notes)


async def test_a_duration_bounds_the_run(fast_config: Config) -> None:
    options = LoadOptions(duration=0.4, concurrency=5, latency="10ms", mock_in_process=True)
    report = await run_load(options, config=fast_config)
    assert report.mode.duration == 0.4 and report.mode.loops is None
    assert report.loops.started > 0
    assert report.throughput.window >= 0.4 - 0.05
    assert report.loops.ok + report.loops.failed == report.loops.started


async def test_the_mock_in_its_own_process_is_counted_too(fast_config: Config) -> None:
    options = LoadOptions(loops=30, concurrency=10, latency="1ms", faults="500:0.1")
    report = await run_load(options, config=fast_config)
    assert report.target.kind == "mock-subprocess"
    assert report.accounting.mock_requests == report.llm.attempts
    assert report.accounting.llm_balanced is True
    assert report.resources.mock_cpu_seconds is not None
    assert report.resources.mock_cpu_seconds > 0


async def test_the_report_names_the_event_loop_and_resources(fast_config: Config) -> None:
    options = LoadOptions(loops=20, concurrency=5, latency="1ms", mock_in_process=True)
    report = await run_load(options, config=fast_config)
    resources = report.resources
    assert resources.event_loop == "asyncio"  # what pytest runs under
    assert resources.gc == "gc every 50,000 allocations"
    assert resources.peak_rss > 0 and resources.baseline_rss > 0
    assert resources.cpu_seconds > 0 and resources.cpu_per_loop > 0
    assert report.throughput.loops_per_s > 0 and report.throughput.llm_requests_per_s > 0
    assert report.throughput.tokens_per_s > 0 and report.throughput.bus_messages_per_s > 0
    assert report.bottleneck.kind == "none", "too short a run to tell"
    assert "too short" in report.bottleneck.reason


async def test_the_written_report_reads_back(tmp_path: Path, fast_config: Config) -> None:
    options = LoadOptions(loops=10, concurrency=5, latency="1ms", mock_in_process=True)
    report = await run_load(options, config=fast_config)
    json_path, html_path = write_report(report, tmp_path / "out")
    assert html_path.read_text().startswith("<!DOCTYPE html>")
    again = read_report(json_path)
    assert again == report
    assert isinstance(msgspec.json.decode(json_path.read_bytes()), dict)
    assert isinstance(again, LoadReport)
