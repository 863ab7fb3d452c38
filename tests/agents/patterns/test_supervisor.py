"""Supervisor/worker: plan, fan out to a pool of agents sharing a name, combine."""

from __future__ import annotations

from collections.abc import Sequence

import anyio
import anyio.lowlevel
import pytest

from agents import Agent, InvalidOutput, MaxStepsExceeded, TaskTimeout
from agents.llm import Policy, Rule
from agents.llm.wire import ToolMessage, UserMessage
from agents.patterns import SubtaskResult, Supervisor, answer_text
from tools import calculator, tool

from .world import Mute, calls, world

pytestmark = pytest.mark.anyio

PLAN = Rule(
    agent="lead",
    contains="Split this task",
    json={"subtasks": [{"task": "cats"}, {"task": "dogs"}, {"task": "owls"}]},
)


def pool(size: int, **options: object) -> list[Agent]:
    return [Agent("researcher", "You are researcher.", **options) for _ in range(size)]  # type: ignore[arg-type]


async def test_subtasks_run_in_parallel_spread_over_the_pool_and_are_combined() -> None:
    inside = peak = 0
    all_in = anyio.Event()

    @tool
    async def lookup(topic: str) -> str:
        """Look a topic up (waits until every lookup has started)."""
        nonlocal inside, peak
        inside += 1
        peak = max(peak, inside)
        if inside == 3:
            all_in.set()
        try:
            with anyio.fail_after(5):  # one at a time, this would never be set
                await all_in.wait()
        finally:
            inside -= 1
        return f"facts about {topic}"

    policy = Policy(
        [
            PLAN,
            Rule(agent="lead", contains="Combine them", text="Cats, dogs and owls.", once=True),
        ]
    )
    members = pool(3, tools=[lookup], concurrency=1)  # only a spread runs them at once
    async with world(policy) as w:
        await w.runtime.add(Supervisor("lead", workers="researcher"), *members)
        result = await w.runtime.ask("lead", "Write about pets.", timeout=20)
        assert (result.agent, result.text) == ("lead", "Cats, dogs and owls.")
        assert peak == 3
        assert [m.subscriptions[0].stats().delivered for m in members] == [1, 1, 1]
        assert (result.steps, result.tool_calls) == (2 + 3 * 2, 3)
        total = w.runtime.gateway.stats().total
        assert result.usage.total_tokens == total.prompt_tokens + total.completion_tokens
        # the combining call saw every worker's answer, in the plan's order
        combine = str(w.llm_requests("lead")[-1].messages[-1].content)
        expected = [f"## Subtask {n}: {t}" for n, t in enumerate(["cats", "dogs", "owls"], 1)]
        assert [line for line in combine.splitlines() if line.startswith("## ")] == expected
        for topic in ("cats", "dogs", "owls"):
            assert f"Based on lookup: facts about {topic}." in combine
        # the subtasks are requests caused by the supervisor's task
        for task in w.on("agent.researcher.inbox"):
            assert w.parent(task).subject == "agent.lead.inbox"
        assert w.kinds("lead")[-1] == "finished"
    policy.assert_complete()


async def test_a_pool_shares_tasks_round_robin() -> None:
    members = pool(3)
    async with world() as w:
        await w.runtime.add(*members)
        for n in range(9):
            await w.runtime.ask("researcher", f"question {n}")
        assert [m.subscriptions[0].stats().delivered for m in members] == [3, 3, 3]


async def test_plan_and_combine_functions_need_no_llm_of_the_supervisors_own() -> None:
    def split(task: str) -> list[str]:
        return [part.strip() for part in task.split(";")]

    async def join(task: str, results: Sequence[SubtaskResult]) -> str:
        await anyio.lowlevel.checkpoint()
        return " | ".join(f"{r.subtask}={answer_text(r.result)}" for r in results)

    policy = Policy([Rule(agent="researcher", regex=r"^(\w+)$", text="done")])
    async with world(policy) as w:
        lead = Supervisor("lead", workers="researcher", plan=split, combine=join)
        await w.runtime.add(lead, *pool(2))
        result = await w.runtime.ask("lead", "a; b; c")
        assert result.text == "a=done | b=done | c=done"
        assert w.llm_requests("lead") == [] and result.steps == 3


async def test_an_invalid_plan_is_shown_to_the_model_and_corrected() -> None:
    policy = Policy(
        [
            Rule(agent="lead", contains="Split this task", json={"subtasks": []}, once=True),
            Rule(
                agent="lead",
                contains="Your plan is not valid",
                json={"subtasks": [{"task": "x"}]},
                once=True,
            ),
            Rule(agent="lead", contains="Combine them", text="ok", once=True),
        ]
    )
    async with world(policy) as w:
        await w.runtime.add(Supervisor("lead", workers="researcher"), *pool(1))
        result = await w.runtime.ask("lead", "do it")
        assert result.text == "ok" and len(w.on("agent.researcher.inbox")) == 1
        retry = str(w.llm_requests("lead")[1].messages[-1].content)
        assert "Expected `array` of length >= 1" in retry
    policy.assert_complete()


async def test_a_plan_that_stays_invalid_ends_the_task_typed() -> None:
    subtasks = [{"task": f"part {n}"} for n in range(5)]
    policy = Policy([Rule(agent="lead", json={"subtasks": subtasks})])
    async with world(policy) as w:
        lead = Supervisor("lead", workers="researcher", max_subtasks=4, plan_attempts=2)
        await w.runtime.add(lead, *pool(1))
        with pytest.raises(InvalidOutput, match="5 subtasks, but at most 4") as info:
            await w.runtime.ask("lead", "too much")
        assert (info.value.agent, info.value.steps) == ("lead", 2)
        assert w.on("agent.researcher.inbox") == []
        assert w.kinds("lead")[-1] == "failed"


async def test_a_plan_function_with_no_subtasks_is_refused() -> None:
    async with world() as w:
        await w.runtime.add(Supervisor("lead", workers="researcher", plan=lambda task: []))
        with pytest.raises(InvalidOutput, match="at least one subtask"):
            await w.runtime.ask("lead", "nothing")


async def test_a_workers_failure_fails_the_task_with_the_workers_error() -> None:
    policy = Policy(
        [PLAN, Rule(agent="researcher", tool_calls=calls("calculator", expression="1+1"))]
    )
    async with world(policy) as w:
        await w.runtime.add(
            Supervisor("lead", workers="researcher"), *pool(2, tools=[calculator], max_steps=1)
        )
        with pytest.raises(MaxStepsExceeded) as info:
            await w.runtime.ask("lead", "go")
        assert info.value.agent == "researcher"
        failed = w.events("lead")[-1]
        assert failed.kind == "failed" and "MaxStepsExceeded" in (failed.text or "")


async def test_a_worker_that_never_answers_ends_the_task_at_its_deadline() -> None:
    policy = Policy([PLAN])
    async with world(policy) as w:
        mute = Mute("researcher")
        await w.runtime.add(Supervisor("lead", workers="researcher"), mute)
        with anyio.fail_after(5), pytest.raises(TaskTimeout, match="within 1s") as info:
            await w.runtime.ask("lead", "go", timeout=1)
        assert info.value.agent == "lead"
        with anyio.fail_after(5):
            await w.bus.drain()
        assert mute.cancelled == 3 and w.bus.stats().in_flight == 0


async def test_a_supervisor_can_be_delegated_to_like_an_agent() -> None:
    policy = Policy(
        [
            Rule(agent="boss", step=0, tool_calls=calls("team", task="pets"), once=True),
            Rule(
                agent="lead",
                contains="Split this task",
                json={"subtasks": [{"task": "a"}, {"task": "b"}]},
            ),
            Rule(agent="lead", contains="Combine them", text="team answer"),
        ]
    )
    async with world(policy) as w:
        lead = Supervisor("lead", workers="researcher")
        boss = Agent("boss", "You are boss.", tools=[lead.as_tool(name="team")])
        await w.runtime.add(lead, boss, *pool(2))
        await w.runtime.ask("boss", "ask the team", conversation_id="b")
        results = [m.content for m in await w.memory("b") if isinstance(m, ToolMessage)]
        assert results == ["team answer"]
    policy.assert_complete()


async def test_a_conversation_handed_to_a_supervisor_is_planned_from_its_request() -> None:
    policy = Policy(
        [
            Rule(agent="triage", step=0, tool_calls=calls("transfer_to_lead", reason="big job")),
            Rule(
                agent="lead",
                contains="Split this task",
                json={"subtasks": [{"task": "x"}, {"task": "y"}]},
            ),
            Rule(agent="lead", contains="Combine them", text="Both parts done."),
        ]
    )
    async with world(policy) as w:
        triage = Agent("triage", "You are triage.", handoffs=["lead"])
        await w.runtime.add(triage, Supervisor("lead", workers="researcher"), *pool(2))
        result = await w.runtime.ask("triage", "Renovate the kitchen.", conversation_id="k")
        assert (result.agent, result.handoffs, result.text) == (
            "lead",
            ["triage"],
            "Both parts done.",
        )
        planning = str(w.llm_requests("lead")[0].messages[-1].content)
        assert planning.startswith("Renovate the kitchen.\n\n(triage handed this over: big job)")
        history = await w.memory("k")
        assert sum(isinstance(m, UserMessage) for m in history) == 1
        assert history[-1].content == "Both parts done."
        assert result.steps == 1 + 2 + 2  # triage's, the supervisor's, the workers'


def test_bad_supervisor_definitions_are_refused() -> None:
    with pytest.raises(ValueError, match="its own worker"):
        Supervisor("lead", workers="lead")
    with pytest.raises(ValueError, match="one subject token"):
        Supervisor("a.b", workers="w")
    with pytest.raises(ValueError, match="max_subtasks"):
        Supervisor("lead", workers="w", max_subtasks=0)


async def test_on_the_default_mock_a_supervisor_plans_delegates_and_answers() -> None:
    async with world() as w:  # no script: the mock makes up a valid plan
        await w.runtime.add(Supervisor("lead", workers="researcher"), *pool(2))
        result = await w.runtime.ask("lead", "Compare tea and coffee.")
        tasks = [e.payload.content for e in w.on("agent.researcher.inbox")]
        assert len(tasks) == 1 and tasks[0].startswith("Compare tea and coffee. Split this")
        assert result.text and result.steps == 3


async def test_concurrent_tasks_of_one_supervisor_keep_their_own_results() -> None:
    def split(task: str) -> list[str]:
        return [f"{task}/{part}" for part in ("x", "y", "z")]

    def join(task: str, results: Sequence[SubtaskResult]) -> str:
        return ",".join(r.result.text or "" for r in results)

    policy = Policy([Rule(agent="researcher", regex=r"^(t\d+/[xyz])$", text="ok")])
    async with world(policy) as w:
        await w.runtime.add(Supervisor("lead", workers="researcher", plan=split, combine=join))
        await w.runtime.add(*pool(4))
        answers: dict[int, str | None] = {}

        async def one(n: int) -> None:
            answers[n] = (await w.runtime.ask("lead", f"t{n}")).text

        with anyio.fail_after(20):
            async with anyio.create_task_group() as group:
                for n in range(25):
                    group.start_soon(one, n)
        assert answers == {n: "ok,ok,ok" for n in range(25)}
        asked = sorted(e.payload.content for e in w.on("agent.researcher.inbox"))
        assert asked == sorted(f"t{n}/{p}" for n in range(25) for p in "xyz")
