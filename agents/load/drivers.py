"""How loops are started: closed loop (a fixed number at once, each starting the next
as it ends) or open loop (at a given rate, whatever is still in flight), both ramping
up, both stopping at a number of loops, a duration, or a budget of calls and cost.

The :class:`Gate` decides whether the next loop starts and whether it is measured
(started after the warm-up); :class:`Driver` runs them, each loop ending in exactly one
:meth:`Tally.end <agents.load.metrics.Tally.end>`: a result, or the error that ended it.
"""

from __future__ import annotations

import asyncio
import itertools
import math
from collections.abc import Callable

import anyio
from anyio.abc import TaskGroup

from bus import HivebusError

from ..llm.gateway import GatewayStats
from ..runtime import Runtime
from .metrics import OK, Tally
from .options import LoadOptions
from .workload import Workload

CANCELLED = "Cancelled"  # the outcome of a loop the run stopped (a budget reached)


def arrival_time(k: int, rate: float, ramp_up: float = 0.0) -> float:
    """When the ``k``-th loop (from 0) of an open-loop run starts, in seconds: the rate
    rises linearly from 0 to ``rate`` over ``ramp_up`` seconds, then stays. Arrivals are
    evenly spaced (deterministic), so a run of a given length starts a known number."""
    if ramp_up <= 0:
        return k / rate
    during_ramp = rate * ramp_up / 2  # the arrivals the ramp holds
    if k < during_ramp:
        return math.sqrt(2 * k * ramp_up / rate)
    return ramp_up + (k - during_ramp) / rate


def arrivals_before(t: float, rate: float, ramp_up: float = 0.0) -> int:
    """How many loops an open-loop run starts before ``t`` seconds (the inverse of
    :func:`arrival_time`): the ceiling of the arrivals due by then, the first at 0."""
    if t <= 0:
        return 0
    if ramp_up <= 0:
        due = rate * t
    elif t < ramp_up:
        due = rate * t * t / (2 * ramp_up)
    else:
        due = rate * ramp_up / 2 + rate * (t - ramp_up)
    return max(1, math.ceil(due - 1e-9 * max(1.0, due)))  # an arrival at t is not before it


class Budget:
    """The hard caps of a run: LLM attempts (calls and their retries) and cost in USD.

    A loop starts only if the loops in flight, at ``calls_per_loop`` each (the larger of
    the workload's own figure and what loops have used so far), leave room for it under
    ``max_calls``; and only while the cost so far plus the loops in flight at the average
    cost of a loop stays under ``max_cost``. When retries take the count to a cap anyway,
    :meth:`exceeded` says so, and the loops in flight are cancelled.
    """

    def __init__(
        self,
        max_calls: int | None,
        max_cost: float | None,
        calls_per_loop: float | None,
        stats: Callable[[], GatewayStats],
    ) -> None:
        self.max_calls, self.max_cost = max_calls, max_cost
        self.calls_per_loop = calls_per_loop or 1.0
        self.stats = stats

    @property
    def is_set(self) -> bool:
        """Whether there is a cap at all."""
        return self.max_calls is not None or self.max_cost is not None

    def refuses(self, in_flight: int, ended: int) -> str | None:
        """Why one more loop may not start (``--max-calls``, ``--max-cost``), or None."""
        if not self.is_set:
            return None
        stats = self.stats()
        attempts = stats.calls + sum(stats.retries.values())
        if self.max_calls is not None:
            per_loop = max(self.calls_per_loop, attempts / ended if ended else 0.0)
            if attempts + (in_flight + 1) * per_loop > self.max_calls:
                return "max_calls"
        if self.max_cost is not None:
            cost = stats.total.cost
            per_loop_cost = cost / ended if ended else 0.0
            if cost + (in_flight + 1) * per_loop_cost >= self.max_cost:
                return "max_cost"
        return None

    def exceeded(self, attempts: int, cost: float) -> str | None:
        """Which cap the run has reached already, or None."""
        if self.max_calls is not None and attempts >= self.max_calls:
            return "max_calls"
        if self.max_cost is not None and cost >= self.max_cost:
            return "max_cost"
        return None


class Gate:
    """Whether the next loop starts, and whether it is measured (see the module's
    docstring); ``on_measuring`` is called as the first measured loop starts."""

    def __init__(
        self,
        options: LoadOptions,
        tally: Tally,
        budget: Budget,
        on_measuring: Callable[[], object] = lambda: None,
    ) -> None:
        self.warm_up = options.warm_up
        self.loops = options.loop_count
        self.until = None if options.duration is None else options.warm_up + options.duration
        self.tally = tally
        self.budget = budget
        self.on_measuring = on_measuring
        self.measured_started = 0
        self.stopped_by: str | None = None

    def open_at(self, at: float) -> bool:
        """Whether a loop starting at ``at`` seconds is within the run's length."""
        if self.stopped_by is not None:
            return False
        if at < self.warm_up:
            return True
        if self.loops is not None and self.measured_started >= self.loops:
            return False
        return self.until is None or at < self.until

    def next(self, at: float) -> bool | None:
        """Take the loop starting at ``at``: True (measured), False (warm-up), or None
        (no more loops)."""
        if not self.open_at(at):
            return None
        refusal = self.budget.refuses(self.tally.in_flight, self.tally.ok + self.tally.failed)
        if refusal is not None:
            self.stopped_by = refusal
            return None
        measured = at >= self.warm_up
        if measured:
            if not self.measured_started:
                self.on_measuring()
            self.measured_started += 1
        return measured


class Driver:
    """Runs the loops of ``workload`` on ``runtime`` as ``options`` say, closed or open."""

    def __init__(
        self, options: LoadOptions, workload: Workload, runtime: Runtime, tally: Tally, gate: Gate
    ) -> None:
        self.options = options
        self.workload = workload
        self.runtime = runtime
        self.tally = tally
        self.gate = gate
        self.max_arrival_lag = 0.0  # open loop: how late the latest start was
        self._numbers = itertools.count()
        self._scope: anyio.CancelScope | None = None

    async def run(self) -> None:
        """Drive every loop to its end."""
        async with anyio.create_task_group() as group:
            self._scope = group.cancel_scope
            if self.options.mode == "open":
                await self._open(group)
            else:
                for worker in range(self.options.workers):
                    group.start_soon(self._worker, worker)

    def stop(self, reason: str) -> None:
        """Start no more loops, and cancel those in flight (a budget was reached)."""
        self.gate.stopped_by = self.gate.stopped_by or reason
        if self._scope is not None:
            self._scope.cancel()

    async def run_one(self, n: int, measured: bool) -> None:
        """One loop, counted in the tally however it ends."""
        began = self.tally.begin(measured=measured)
        try:
            await self.workload.run(self.runtime, n)
        except asyncio.CancelledError:
            self.tally.end(began, measured=measured, outcome=CANCELLED)
            raise
        except Exception as exc:  # noqa: BLE001 - a loop's failure is one of the run's figures
            typed = isinstance(exc, HivebusError)
            self.tally.end(began, measured=measured, outcome=type(exc).__name__, typed=typed)
        else:
            self.tally.end(began, measured=measured, outcome=OK)

    async def _worker(self, worker: int) -> None:
        ramp = self.options.ramp_up * worker / self.options.workers
        if ramp > self.tally.now():
            await asyncio.sleep(ramp - self.tally.now())
        while (measured := self.gate.next(self.tally.now())) is not None:
            await self.run_one(next(self._numbers), measured)

    async def _open(self, group: TaskGroup) -> None:
        rate = self.options.rate
        assert rate is not None
        for k in itertools.count():
            at = arrival_time(k, rate, self.options.ramp_up)
            if not self.gate.open_at(at):
                return
            wait = at - self.tally.now()
            if wait > 0:
                await asyncio.sleep(wait)
            else:  # behind the schedule: start it now, yet let the loops run meanwhile
                self.max_arrival_lag = max(self.max_arrival_lag, -wait)
                await asyncio.sleep(0)
            measured = self.gate.next(at)
            if measured is None:
                return
            group.start_soon(self.run_one, k, measured)
