"""Pieces of the report built from samples: the plotted series, the event loop's name,
and the garbage collector's settings."""

from __future__ import annotations

import asyncio
import gc
import sys
import types
from dataclasses import replace

import pytest

from agents.load import loop_factory, running_loop_name
from agents.load.collect import MAX_POINTS, _series
from agents.load.eventloop import YOUNG_GC_THRESHOLD, load_gc

from .test_bottleneck import ZERO


def test_throughput_is_taken_over_the_last_second() -> None:
    samples = [replace(ZERO, t=t / 10, ok=t * 5) for t in range(1, 31)]  # 50 loops a second
    series = _series(samples)
    assert series.t == [round(t / 10, 3) for t in range(1, 31)]
    assert series.throughput[0] == 0.0
    assert all(rate == pytest.approx(50.0) for rate in series.throughput[1:])
    assert series.loops_done[-1] == 150


def test_long_runs_are_thinned_to_a_few_hundred_points() -> None:
    samples = [replace(ZERO, t=t / 10, ok=t, llm_queued=t % 7) for t in range(1, 2001)]
    series = _series(samples)
    assert len(series.t) <= MAX_POINTS
    lengths = {len(values) for values in (series.t, series.throughput, series.llm_queued)}
    assert lengths == {len(series.t)}
    assert series.throughput[-1] == pytest.approx(10.0)


def test_no_samples_no_series() -> None:
    series = _series([])
    assert series.t == [] and series.throughput == []


def test_the_running_loop_is_named() -> None:
    async def name() -> str:
        return running_loop_name()

    assert asyncio.run(name()) == "asyncio"


def test_uvloop_is_used_when_installed_unless_turned_off(monkeypatch: pytest.MonkeyPatch) -> None:
    fake = types.ModuleType("uvloop")
    fake.new_event_loop = asyncio.new_event_loop  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "uvloop", fake)
    assert loop_factory() is asyncio.new_event_loop
    assert loop_factory(use_uvloop=False) is None


def test_the_tuned_gc_collects_less_often_during_the_loops_and_is_undone_after() -> None:
    before = gc.get_threshold()
    frozen = gc.get_freeze_count()
    kept = [object() for _ in range(10)]  # made by the set-up: frozen out of the collector
    with pytest.raises(RuntimeError), load_gc() as name:
        assert name == "gc every 50,000 allocations"
        assert gc.get_threshold() == (YOUNG_GC_THRESHOLD, *before[1:])
        assert gc.get_freeze_count() > frozen
        assert gc.isenabled()
        raise RuntimeError("a loop crashed")  # undone all the same
    assert gc.get_threshold() == before
    assert gc.get_freeze_count() == frozen
    assert kept


def test_default_gc_changes_nothing() -> None:
    before = gc.get_threshold()
    with load_gc(tuned=False) as name:
        assert name == "default gc"
        assert gc.get_threshold() == before
    assert gc.get_threshold() == before
