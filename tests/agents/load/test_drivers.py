"""Starting loops: the open-loop schedule, the gate, the budget, and the driver, on a fake
workload (no bus, no LLM) so that each rule is seen alone."""

from __future__ import annotations

import asyncio
import itertools
from typing import Any, cast

import pytest

from agents.llm.gateway import GatewayStats, UsageTotals
from agents.load import Budget, Driver, Gate, LoadOptions, Tally, arrival_time, arrivals_before
from agents.load.drivers import CANCELLED
from agents.load.report import WorkloadInfo
from agents.runtime import Runtime
from bus import HivebusError

pytestmark = pytest.mark.anyio


class Boom(HivebusError):
    """A typed failure of a loop."""


class FakeWorkload:
    """Records when each loop started; loop ``n`` fails as ``failures`` says."""

    policy = None
    calls_per_loop = 1.0

    def __init__(
        self, tally: Tally, seconds: float = 0.0, failures: dict[int, BaseException] | None = None
    ) -> None:
        self.tally = tally
        self.seconds = seconds
        self.failures = failures or {}
        self.started: dict[int, float] = {}
        self.running = self.most = 0

    def info(self) -> WorkloadInfo:
        return WorkloadInfo(kind="synthetic")

    async def setup(self, runtime: Runtime) -> None:
        pass

    async def run(self, runtime: Runtime, n: int) -> None:
        self.started[n] = self.tally.now()
        self.running += 1
        self.most = max(self.most, self.running)
        try:
            await asyncio.sleep(self.seconds)
        finally:
            self.running -= 1
        if n in self.failures:
            raise self.failures[n]


def gateway_stats(calls: int = 0, retries: int = 0, cost: float = 0.0) -> GatewayStats:
    return GatewayStats(
        calls=calls,
        succeeded=calls,
        failed=0,
        in_flight=0,
        queued=0,
        max_queued=0,
        fallbacks=0,
        retries={"RateLimited": retries} if retries else {},
        failures={},
        total=UsageTotals(calls=calls, prompt_tokens=0, completion_tokens=0, cost=cost),
        by_model={},
        by_agent={},
        endpoints=(),
    )


def no_budget() -> Budget:
    return Budget(None, None, None, lambda: gateway_stats())


def driver_for(options: LoadOptions, **workload: Any) -> tuple[Driver, FakeWorkload, Tally, Gate]:
    tally = Tally()
    gate = Gate(options, tally, no_budget())
    fake = FakeWorkload(tally, **workload)
    return Driver(options, fake, cast(Runtime, None), tally, gate), fake, tally, gate


# -- the open-loop schedule ---------------------------------------------------------------


def test_arrivals_are_evenly_spaced_without_a_ramp() -> None:
    assert [arrival_time(k, 4.0) for k in range(5)] == [0.0, 0.25, 0.5, 0.75, 1.0]
    assert arrivals_before(1.0, 4.0) == 4
    assert arrivals_before(1.01, 4.0) == 5


def test_a_ramp_starts_slowly_then_holds_the_rate() -> None:
    rate, ramp = 100.0, 2.0
    during_ramp = arrivals_before(ramp, rate, ramp)
    assert during_ramp == 100  # half of what the full rate would start
    assert arrivals_before(1.0, rate, ramp) == 25  # a quarter of the ramp's in its first half
    assert arrivals_before(3.0, rate, ramp) == 200
    times = [arrival_time(k, rate, ramp) for k in range(300)]
    assert times == sorted(times)
    gaps = [b - a for a, b in itertools.pairwise(times)]
    assert gaps[10] > gaps[50] > gaps[99] and gaps[150] == pytest.approx(1 / rate)


@pytest.mark.parametrize("ramp", [0.0, 0.5, 3.0])
def test_arrivals_before_inverts_the_schedule(ramp: float) -> None:
    rate = 37.0
    for k in range(0, 400, 7):
        at = arrival_time(k, rate, ramp)
        assert arrivals_before(at, rate, ramp) == k
        assert arrivals_before(at + 1e-6, rate, ramp) == k + 1


# -- the gate -----------------------------------------------------------------------------


def test_the_gate_counts_measured_loops_after_the_warm_up() -> None:
    tally = Tally()
    started: list[bool] = []
    gate = Gate(LoadOptions(loops=2, warm_up=1.0), tally, no_budget(), lambda: started.append(True))
    assert gate.next(0.0) is False and gate.next(0.99) is False  # warm-up: unbounded
    assert not started
    assert gate.next(1.0) is True and started == [True]
    assert gate.next(1.5) is True
    assert gate.next(1.6) is None and gate.measured_started == 2
    assert started == [True], "called once, as measuring begins"


def test_the_gate_closes_at_the_end_of_the_duration() -> None:
    gate = Gate(LoadOptions(duration=2.0, warm_up=0.5), Tally(), no_budget())
    assert gate.next(2.49) is True
    assert gate.next(2.5) is None
    assert gate.stopped_by is None, "the end of the run is not a stop"


def test_the_budget_refuses_a_loop_that_could_pass_max_calls() -> None:
    stats = {"calls": 0}
    budget = Budget(10, None, 3.0, lambda: gateway_stats(calls=stats["calls"]))
    assert budget.refuses(in_flight=2, ended=0) is None  # 0 + 3 loops x 3 <= 10
    assert budget.refuses(in_flight=3, ended=0) == "max_calls"  # 0 + 4 x 3 > 10
    stats["calls"] = 7
    assert budget.refuses(in_flight=0, ended=2) == "max_calls"  # 7 + 3.5 per loop so far


def test_the_budget_counts_retries_as_calls() -> None:
    budget = Budget(10, None, 1.0, lambda: gateway_stats(calls=5, retries=5))
    assert budget.refuses(in_flight=0, ended=5) == "max_calls"
    assert budget.exceeded(attempts=10, cost=0.0) == "max_calls"
    assert budget.exceeded(attempts=9, cost=0.0) is None


def test_the_budget_refuses_a_loop_that_could_pass_max_cost() -> None:
    budget = Budget(None, 1.0, None, lambda: gateway_stats(calls=4, cost=0.6))
    assert budget.refuses(in_flight=0, ended=4) is None  # 0.6 + 0.15 < 1
    assert budget.refuses(in_flight=3, ended=4) == "max_cost"  # 0.6 + 4 x 0.15 >= 1
    assert budget.exceeded(attempts=0, cost=1.0) == "max_cost"


def test_a_gate_stopped_by_the_budget_says_so() -> None:
    budget = Budget(1, None, 1.0, lambda: gateway_stats(calls=1))
    gate = Gate(LoadOptions(loops=5), Tally(), budget)
    assert gate.next(0.0) is None and gate.stopped_by == "max_calls"
    assert gate.open_at(0.0) is False


# -- the driver ---------------------------------------------------------------------------


async def test_closed_loop_runs_exactly_the_loops_at_the_concurrency() -> None:
    driver, fake, tally, _ = driver_for(LoadOptions(loops=25, concurrency=4), seconds=0.005)
    await driver.run()
    assert tally.started == tally.ok == 25 and tally.failed == 0
    assert fake.most == tally.peak_in_flight == 4
    assert sorted(fake.started) == list(range(25))
    assert len(tally.latencies) == 25 and tally.in_flight == 0


async def test_fewer_loops_than_workers_is_fine() -> None:
    driver, fake, tally, _ = driver_for(LoadOptions(loops=3, concurrency=10))
    await driver.run()
    assert tally.started == 3 and fake.most <= 3


async def test_closed_loop_ramps_its_workers_up() -> None:
    options = LoadOptions(loops=8, concurrency=4, ramp_up=0.4)
    driver, fake, _, _ = driver_for(options, seconds=0.3)
    await driver.run()
    firsts = sorted(fake.started.values())[:4]
    for worker, started in enumerate(firsts):  # worker w starts no earlier than w/4 of the ramp
        assert started >= 0.4 * worker / 4 - 0.005


async def test_each_failure_is_counted_by_its_type() -> None:
    failures: dict[int, BaseException] = {1: Boom("typed"), 2: ValueError("untyped")}
    driver, _, tally, _ = driver_for(LoadOptions(loops=5, concurrency=1), failures=failures)
    await driver.run()
    assert tally.ok == 3 and tally.failed == 2 and tally.started == 5
    assert tally.by_outcome == {"ok": 3, "Boom": 1, "ValueError": 1}
    assert tally.untyped == {"ValueError": 1}
    assert len(tally.failed_latencies) == 2


async def test_open_loop_never_starts_a_loop_early() -> None:
    options = LoadOptions(rate=50.0, duration=0.3, ramp_up=0.2)
    driver, fake, tally, _ = driver_for(options, seconds=0.05)
    await driver.run()
    assert tally.started == arrivals_before(0.3, 50.0, 0.2) == 10
    for n, started in fake.started.items():
        assert started >= arrival_time(n, 50.0, 0.2) - 0.005
    assert fake.most >= 2, "open loop: the next starts whatever is in flight"


async def test_stopping_cancels_the_loops_in_flight() -> None:
    driver, _, tally, gate = driver_for(LoadOptions(loops=100, concurrency=5), seconds=10.0)

    async def stop_soon() -> None:
        while tally.in_flight < 5:  # noqa: ASYNC110 - the tally has no event to wait on
            await asyncio.sleep(0.001)
        driver.stop("max_calls")

    async with asyncio.timeout(5):
        await asyncio.gather(driver.run(), stop_soon())
    assert tally.by_outcome == {CANCELLED: 5} and tally.started == 5
    assert tally.ok + tally.failed == tally.started and tally.in_flight == 0
    assert gate.stopped_by == "max_calls"
