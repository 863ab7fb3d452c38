"""DeadlineGrid and TaskDeadline: asyncio.timeout's behaviour, on a shared coarse grid."""

from __future__ import annotations

import asyncio

import pytest

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
