"""The bottleneck heuristic on made-up samples: each limit, and the CPU before them."""

from __future__ import annotations

from dataclasses import replace

from agents.load import Snapshot, find_bottleneck

ZERO = Snapshot(
    t=0.0,
    ok=0,
    failed=0,
    loops_in_flight=0,
    llm_calls=0,
    llm_in_flight=0,
    llm_queued=0,
    retries=0,
    tokens=0,
    cost=0.0,
    wait_cap=0.0,
    wait_rate=0.0,
    at_endpoint=0,
    bus_published=0,
    cpu=0.0,
    rss=0,
)


def run(
    *,
    seconds: int = 10,
    queued: int = 0,
    at_endpoint: int = 0,
    wait_rate: float = 0.0,
    wait_cap: float = 0.0,
    cpu: float = 0.1,
    calls: int = 1000,
) -> tuple[list[Snapshot], Snapshot]:
    """A steady run: every second the same queue and calls at the endpoint."""
    samples = [
        replace(ZERO, t=float(t), llm_queued=queued, at_endpoint=at_endpoint, cpu=cpu * t)
        for t in range(1, seconds)
    ]
    end = replace(
        ZERO,
        t=float(seconds),
        llm_calls=calls,
        llm_queued=queued,
        at_endpoint=at_endpoint,
        wait_rate=wait_rate,
        wait_cap=wait_cap,
        cpu=cpu * seconds,
    )
    return samples, end


def test_calls_queued_for_a_slot_point_at_the_cap() -> None:
    samples, end = run(queued=60, at_endpoint=64)
    found = find_bottleneck(samples, ZERO, end)
    assert found.kind == "cap"
    assert found.call_seconds == {"cap": 600.0, "rate_limit": 0.0, "endpoint_latency": 640.0}
    assert "cap" in found.reason and "10%" in found.reason


def test_a_short_queue_points_at_the_endpoint() -> None:
    samples, end = run(queued=5, at_endpoint=64)  # waiting < a fifth of the endpoint's time
    assert find_bottleneck(samples, ZERO, end).kind == "endpoint_latency"


def test_admissions_own_wait_for_a_slot_counts_for_the_cap() -> None:
    samples, end = run(at_endpoint=10, wait_cap=50.0)
    assert find_bottleneck(samples, ZERO, end).kind == "cap"


def test_slots_taken_by_calls_waiting_for_the_budget_point_at_the_rate_limit() -> None:
    # 64 slots all held by calls waiting for the RPM budget, 100 more queued behind them:
    # the queue is the rate limit's doing, not the cap's
    samples, end = run(queued=100, at_endpoint=2, wait_rate=620.0)
    found = find_bottleneck(samples, ZERO, end)
    assert found.kind == "rate_limit"
    assert found.call_seconds["rate_limit"] > 10 * found.call_seconds["cap"]


def test_a_saturated_process_points_at_the_cpu_first() -> None:
    samples, end = run(queued=100, at_endpoint=64, cpu=0.97)
    found = find_bottleneck(samples, ZERO, end)
    assert found.kind == "cpu" and found.cpu_utilisation == 0.97
    assert "97% of a core" in found.reason


def test_no_calls_no_bottleneck() -> None:
    samples, end = run(calls=0)
    assert find_bottleneck(samples, ZERO, end).kind == "none"


def test_too_short_a_window_says_so() -> None:
    samples, end = run(seconds=2, queued=60, at_endpoint=64)
    found = find_bottleneck(samples, ZERO, end)
    assert found.kind == "none" and "too short" in found.reason


def test_only_the_measured_window_counts() -> None:
    samples, end = run(queued=60, at_endpoint=64)
    start = samples[4]  # the warm-up ended at t=5
    found = find_bottleneck(samples, start, end)
    assert found.call_seconds["cap"] == 300.0
    assert found.call_seconds["endpoint_latency"] == 320.0
