"""DeadlineGrid and TaskDeadline: asyncio.timeout's behaviour, on a shared coarse grid."""

from __future__ import annotations

import asyncio
import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bus import DeadlineGrid, TaskDeadline

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"  # (the grid is asyncio's: loop.call_at, Task.uncancel)


def _fire(grid: DeadlineGrid) -> None:
    """Every watched deadline passes now."""
    for key in list(grid.buckets):
        grid._expire(key)


async def test_the_deadline_cancels_the_task_and_says_so() -> None:
    grid = DeadlineGrid()
    deadline = TaskDeadline(grid, 0.02)
    task = asyncio.current_task()
    assert task is not None
    with pytest.raises(asyncio.CancelledError):
        try:
            await asyncio.sleep(5)
        except asyncio.CancelledError:
            assert deadline.expired()
            raise
        finally:
            deadline.stop()
    assert task.cancelling() == 0  # the cancellation was the deadline's: consumed
    assert not any(due for _, due in grid.buckets.values())


async def test_work_done_in_time_is_not_cancelled_and_leaves_nothing_watched() -> None:
    grid = DeadlineGrid()
    deadline = TaskDeadline(grid, 5.0)
    await asyncio.sleep(0)
    deadline.stop()
    assert not deadline.expired()
    assert not any(due for _, due in grid.buckets.values())
    grid.clear()
    assert not grid.buckets


async def test_an_outside_cancellation_in_the_same_turn_wins() -> None:
    grid = DeadlineGrid()
    task = asyncio.current_task()
    assert task is not None
    deadline = TaskDeadline(grid, 5.0)
    asyncio.get_running_loop().call_soon(task.cancel)  # from outside ...
    asyncio.get_running_loop().call_soon(_fire, grid)  # ... and the deadline, same turn
    try:
        await asyncio.sleep(5)
    except asyncio.CancelledError:
        assert not deadline.expired()  # not a timeout: the outside cancel stays
    finally:
        deadline.stop()
    assert task.cancelling() == 1
    task.uncancel()


async def test_a_deadline_the_work_swallowed_is_undone_by_stop() -> None:
    grid = DeadlineGrid()
    task = asyncio.current_task()
    assert task is not None
    deadline = TaskDeadline(grid, 0.02)
    try:
        await asyncio.sleep(5)
    except asyncio.CancelledError:
        pass  # work that swallows its cancellation (and returns, say)
    finally:
        deadline.stop()
    assert task.cancelling() == 0
    await asyncio.sleep(0)  # the task goes on, not cancelled


def test_it_needs_a_running_task() -> None:
    with pytest.raises(RuntimeError, match="running task"):
        TaskDeadline(DeadlineGrid(), 1.0)


@given(st.floats(min_value=1e-6, max_value=1e9, allow_nan=False))
def test_the_grid_is_10ms_or_about_one_percent_of_the_timeout(timeout: float) -> None:
    width = DeadlineGrid.width(timeout)
    expected = max(0.01, 10.0 ** math.floor(math.log10(timeout / 100)))
    assert width == pytest.approx(expected)  # (comparisons, for what a logarithm gives)
    assert width == 0.01 or timeout / 1000 < width <= timeout / 100 * (1 + 1e-9)


async def test_a_deadline_never_fires_early_on_any_grid() -> None:
    loop = asyncio.get_running_loop()
    grid = DeadlineGrid()

    class Entry:
        def expire(self) -> None:
            pass

    for timeout in (0.005, 9.99, 10.0, 99.0, 100.0, 999.0, 1000.0, 5000.0, 20_000.0):
        now = loop.time()
        key = grid.watch(loop, timeout, Entry())
        assert key is not None
        width, tick = key
        assert width == DeadlineGrid.width(timeout)
        assert now + timeout <= tick * width <= loop.time() + timeout + width
    assert grid.watch(loop, math.inf, Entry()) is None
    grid.clear()


async def test_a_grid_may_be_capped_for_callers_with_a_small_margin() -> None:
    loop = asyncio.get_running_loop()
    capped = DeadlineGrid(max_width=0.1)

    class Entry:
        def expire(self) -> None:
            pass

    for timeout in (5.0, 50.0, 300.0, 5000.0):
        key = capped.watch(loop, timeout, Entry())
        assert key is not None
        assert key[0] == min(DeadlineGrid.width(timeout), 0.1)
    capped.clear()
