"""answer_by_deadline: a task's deadline on a deadline grid, and what it reports."""

from __future__ import annotations

import asyncio

import pytest

from agents.llm.errors import LLMTimeout
from agents.task import TASK_GRID_WIDTH, AgentResult, TaskTimeout, answer_by_deadline
from bus import DeadlineGrid

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"  # (the grid cancels asyncio tasks)


async def test_a_slow_report_of_an_error_is_not_cut_short_by_the_deadline() -> None:
    """The work failed well before its deadline; reporting that takes longer than what
    was left of it, and must still end with the work's own error (not a cancellation)."""
    reported: list[str] = []

    async def work() -> AgentResult:
        raise ValueError("tool broke")

    async def failed(text: str) -> None:
        await asyncio.sleep(0.2)  # (a full events buffer, say)
        reported.append(text)

    with pytest.raises(ValueError, match="tool broke"):
        await answer_by_deadline("a", 0.05, work(), lambda: 1, failed, DeadlineGrid())
    assert reported == ["ValueError: tool broke"]
    task = asyncio.current_task()
    assert task is not None and task.cancelling() == 0


async def test_the_deadline_ends_the_work_as_a_task_timeout() -> None:
    reported: list[str] = []

    async def work() -> AgentResult:
        await asyncio.sleep(5)
        raise AssertionError("not reached")

    async def failed(text: str) -> None:
        await asyncio.sleep(0)
        reported.append(text)

    with pytest.raises(TaskTimeout, match=r"no final answer within 0.05s \(step 3\)"):
        await answer_by_deadline("a", 0.05, work(), lambda: 3, failed, DeadlineGrid())
    assert reported and "no final answer within 0.05s" in reported[0]
    task = asyncio.current_task()
    assert task is not None and task.cancelling() == 0  # the deadline's, consumed


async def test_an_llm_error_at_the_deadline_is_the_deadline() -> None:
    """An LLM call gets only the task's remaining time, so it may fail first: within
    DEADLINE_SLACK of the deadline that is the deadline, whichever timer fired."""

    async def work() -> AgentResult:
        await asyncio.sleep(0.01)  # (0.05 s timeout - 0.05 s slack: past it already)
        raise LLMTimeout("the attempt ran out of the task's time")

    async def failed(text: str) -> None:
        pass

    with pytest.raises(TaskTimeout, match="last: the attempt ran out"):
        await answer_by_deadline("a", 0.05, work(), lambda: 1, failed, DeadlineGrid())


async def test_an_outside_cancellation_is_not_a_timeout() -> None:
    async def work() -> AgentResult:
        await asyncio.sleep(5)
        raise AssertionError("not reached")

    async def failed(text: str) -> None:
        raise AssertionError("a cancellation is not reported as a failure")

    task = asyncio.create_task(
        answer_by_deadline("a", 5.0, work(), lambda: 1, failed, DeadlineGrid())
    )
    await asyncio.sleep(0.01)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


def test_a_tasks_deadline_fires_well_within_the_askers_margin() -> None:
    """Long timeouts get a coarse grid (1 % late), but a task's must fire before the
    asker's own deadline, which is only ASK_MARGIN later."""
    from agents.task import ASK_MARGIN

    assert DeadlineGrid.width(300.0) == 1.0  # the bus's grid for the asker
    grid = DeadlineGrid(TASK_GRID_WIDTH)
    assert grid.max_width == TASK_GRID_WIDTH < ASK_MARGIN / 5
    with pytest.raises(ValueError):
        DeadlineGrid(0.001)
