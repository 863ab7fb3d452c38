"""Deadlines across the patterns: whose deadline bounds a call, and who reports it."""

from __future__ import annotations

import asyncio
import math

import anyio
import pytest

from agents import TaskTimeout
from agents.llm.wire import Usage
from agents.patterns import (
    Deadline,
    MaxMessages,
    RoundRobinGroupChat,
    Supervisor,
    agent_tool,
    run_group_chat,
)
from agents.task import AgentResult, Task, inbox_topic
from bus import Actor, Context, handler

from .world import world

pytestmark = pytest.mark.anyio


class Slow(Actor):
    """An agent stand-in that answers every task after ``delay`` seconds."""

    def __init__(self, name: str, delay: float) -> None:
        super().__init__(f"slow-{name}")
        self.agent = name
        self.inbox = inbox_topic(name)
        self.delay = delay
        self.concurrency = 4

    @handler(lambda self: self.inbox, queue="agent")
    async def work(self, task: Task, ctx: Context) -> AgentResult:
        await anyio.sleep(self.delay)
        return AgentResult(
            agent=self.agent,
            conversation_id=ctx.id,
            text="slow answer",
            steps=1,
            tool_calls=0,
            usage=Usage(),
            duration=self.delay,
        )


def test_a_delegate_without_a_timeout_is_bounded_by_its_own_deadline_only() -> None:
    # No cap of the caller's: the delegate's task ends by its own deadline, whatever it is.
    assert agent_tool("digger", "digs").timeout == math.inf
    assert agent_tool("digger", "digs", timeout=5).timeout == pytest.approx(7.0)


async def test_a_supervisors_plan_timing_out_on_its_own_is_not_its_deadline() -> None:
    async def plan(text: str) -> list[str]:
        async with asyncio.timeout(0.05):  # e.g. a service asked with a limit of its own
            await asyncio.sleep(1)
        return [text]

    async with world() as w:
        await w.runtime.add(Supervisor("lead", workers="w", plan=plan, combine=lambda t, r: "x"))
        with pytest.raises(Exception) as caught:  # which one is the point
            await w.runtime.ask("lead", "go", timeout=30)
        assert not isinstance(caught.value, TaskTimeout), caught.value
        assert "TimeoutError" in str(caught.value)


async def test_a_deadline_anded_with_a_condition_already_met_interrupts_the_turn() -> None:
    async with world() as w:
        chat = RoundRobinGroupChat(
            "c2", ["fast", "slow"], termination=Deadline(0.5) & MaxMessages(1), max_turns=5
        )
        await w.runtime.add(chat, Slow("fast", 0.0), Slow("slow", 30.0))
        with anyio.fail_after(10):  # the slow turn (30 s) is cut at the deadline
            result = await run_group_chat(w.bus, "c2", "hello", timeout=60)
        assert result.stop_reason.startswith("deadline: 0.5s passed")
        assert [m.speaker for m in result.messages] == ["user", "fast"]
