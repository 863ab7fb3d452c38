"""Admission to an endpoint: cap, RPM/TPM budgets with reservation, pauses — on a fake clock."""

from __future__ import annotations

import anyio
import pytest

from agents.llm.limits import Admission, estimate_tokens

pytestmark = pytest.mark.anyio


class FakeClock:
    """Time that moves only when someone sleeps."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds
        await anyio.lowlevel.checkpoint()


async def test_the_concurrency_cap_holds_and_counts_waiters() -> None:
    admission = Admission(max_concurrency=2)
    running = peak = 0

    async def call() -> None:
        nonlocal running, peak
        await admission.acquire(1)
        running += 1
        peak = max(peak, running)
        await anyio.sleep(0.01)
        running -= 1
        admission.release(1, 1)

    async with anyio.create_task_group() as tg:
        for _ in range(6):
            tg.start_soon(call)
        await anyio.sleep(0.001)
        assert admission.stats().waiting == 4
    assert peak == 2
    stats = admission.stats()
    assert stats.in_flight == 0 and stats.wait_seconds_cap > 0


async def test_requests_per_minute_spread_a_burst_over_the_minute() -> None:
    clock = FakeClock()
    admission = Admission(max_concurrency=100, rpm=60, clock=clock, sleep=clock.sleep)
    for _ in range(60):
        await admission.acquire(1)
        admission.release(1, None)
    assert clock.now == 1000.0  # the first minute's budget is there at once
    await admission.acquire(1)
    assert clock.now == pytest.approx(1001.0)  # then one a second
    assert admission.stats().wait_seconds_rate == pytest.approx(1.0)


async def test_tokens_are_reserved_at_admission_and_reconciled_with_usage() -> None:
    clock = FakeClock()
    admission = Admission(max_concurrency=100, tpm=6000, clock=clock, sleep=clock.sleep)
    await admission.acquire(5000)  # reserve 5000 of 6000
    admission.release(5000, 1000)  # it used 1000: 4000 come back
    await admission.acquire(5000)
    assert clock.now == 1000.0  # no wait: 5000 were available again
    admission.release(5000, 5000)
    await admission.acquire(3000)  # 0 left + refill 100/s: waits 30s
    assert clock.now == pytest.approx(1030.0)


async def test_a_pause_holds_every_new_call_until_it_ends() -> None:
    clock = FakeClock()
    admission = Admission(max_concurrency=10, clock=clock, sleep=clock.sleep)
    admission.pause(12.5)
    assert admission.paused_for == 12.5
    await admission.acquire(1)
    assert clock.now == pytest.approx(1012.5)
    assert admission.stats().paused_seconds == pytest.approx(12.5)


async def test_provider_quota_headers_pause_the_endpoint_when_exhausted() -> None:
    clock = FakeClock()
    admission = Admission(max_concurrency=10, clock=clock, sleep=clock.sleep)
    admission.observe({"x-ratelimit-remaining-requests": "5", "x-ratelimit-reset-requests": "1s"})
    assert admission.paused_for == 0
    admission.observe({"x-ratelimit-remaining-tokens": "0", "x-ratelimit-reset-tokens": "6m0s"})
    assert admission.paused_for == 360.0


async def test_a_cancelled_waiter_gives_its_slot_back() -> None:
    admission = Admission(max_concurrency=1)
    await admission.acquire(1)
    with anyio.move_on_after(0.01):
        await admission.acquire(1)
    admission.release(1, None)
    with anyio.fail_after(1):
        await admission.acquire(1)  # would hang if the cancelled waiter kept a slot
    assert admission.stats().waiting == 0


def test_bad_limits_and_the_token_estimate() -> None:
    with pytest.raises(ValueError, match="max_concurrency must be >= 1, got 0"):
        Admission(max_concurrency=0)
    assert estimate_tokens(0) == 1 and estimate_tokens(400) == 101


async def test_a_reservation_above_the_budget_is_reconciled_against_what_was_taken() -> None:
    clock = FakeClock()
    admission = Admission(max_concurrency=4, tpm=1000, clock=clock, sleep=clock.sleep)
    await admission.acquire(5000)  # clamped: takes the whole 1000
    admission.release(5000, 900)  # used 900 of what it took: 100 come back
    assert admission._tokens is not None and admission._tokens.level == pytest.approx(100)


async def test_a_failed_attempt_gives_its_reservation_back() -> None:
    clock = FakeClock()
    admission = Admission(max_concurrency=4, tpm=3000, clock=clock, sleep=clock.sleep)
    for _ in range(3):
        await admission.acquire(1000)
        admission.release(1000, 0)  # the provider refused it: no tokens used
    assert admission.ready(3000)


async def test_try_acquire_takes_at_once_or_leaves_everything_as_it_was() -> None:
    clock = FakeClock()
    admission = Admission(max_concurrency=1, rpm=60, clock=clock, sleep=clock.sleep)
    assert admission.try_acquire(1)
    assert not admission.try_acquire(1)  # the one slot is taken
    assert admission.stats().in_flight == 1
    admission.release(1, 1)
    admission.pause(5)
    assert not admission.try_acquire(1)  # paused
    assert admission.stats().in_flight == 0
