"""The figures: percentiles, the histogram, the tally of loops, and the process's resources."""

from __future__ import annotations

import pytest

from agents.load import Tally
from agents.load.metrics import OK, cpu_seconds, current_rss, histogram, peak_rss, percentile


def test_percentiles_are_nearest_rank() -> None:
    values = [float(v) for v in range(1, 101)]
    assert percentile(values, 0.5) == 50.0
    assert percentile(values, 0.95) == 95.0
    assert percentile(values, 0.99) == 99.0
    assert percentile(values, 1.0) == 100.0
    assert percentile([7.0], 0.5) == 7.0
    assert percentile([], 0.5) == 0.0


def test_the_histogram_holds_every_value_once() -> None:
    values = [0.1, 0.2, 0.2, 0.3, 0.9, 1.0]
    edges, counts = histogram(values, bins=3)
    assert len(edges) == 4 and edges[0] == 0.1 and edges[-1] == pytest.approx(1.0)
    assert sum(counts) == len(values)
    assert counts == [4, 0, 2]


def test_a_histogram_of_equal_values_is_one_bin() -> None:
    assert histogram([0.5, 0.5]) == ([0.5, 0.5], [2])
    assert histogram([]) == ([], [])


def test_fewer_values_than_bins_make_fewer_bins() -> None:
    _, counts = histogram([1.0, 2.0], bins=30)
    assert len(counts) == 2 and sum(counts) == 2


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_the_tally_counts_each_loop_once() -> None:
    clock = Clock()
    tally = Tally(clock)
    a = tally.begin(measured=False)
    b = tally.begin(measured=True)
    c = tally.begin(measured=True)
    assert tally.in_flight == tally.peak_in_flight == 3 and tally.warm_up_started == 1
    clock.now = 100.5
    tally.end(a, measured=False, outcome=OK)
    tally.end(b, measured=True, outcome=OK)
    clock.now = 101.0
    tally.end(c, measured=True, outcome="RetriesExhausted")
    assert tally.started == 3 and tally.ok == 2 and tally.failed == 1
    assert tally.by_outcome == {OK: 2, "RetriesExhausted": 1}
    assert tally.latencies == [0.5], "only measured loops with a result"
    assert tally.failed_latencies == [1.0]
    assert tally.measured_ended == 2 and tally.last_end == 1.0
    assert tally.in_flight == 0 and tally.untyped == {}


def test_untyped_failures_are_set_apart() -> None:
    tally = Tally()
    tally.end(tally.begin(measured=True), measured=True, outcome="KeyError", typed=False)
    assert tally.untyped == {"KeyError": 1} and tally.failed == 1


def test_p95_so_far() -> None:
    clock = Clock()
    tally = Tally(clock)
    for i in range(20):
        began = tally.begin(measured=True)
        clock.now += i / 100
        tally.end(began, measured=True, outcome=OK)
    assert tally.p95() == pytest.approx(0.18)


def test_this_process_has_cpu_and_memory() -> None:
    assert cpu_seconds() > 0
    assert current_rss() > 1_000_000 and peak_rss() > 1_000_000
