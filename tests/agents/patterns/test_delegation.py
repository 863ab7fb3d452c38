"""Delegation: an agent as another agent's tool, asked over the bus through the tool call."""

from __future__ import annotations

import anyio
import msgspec
import pytest

from agents import Agent
from agents.llm import Policy, Rule
from agents.llm.wire import AssistantMessage, ToolMessage
from agents.patterns import agent_tool
from tools import calculator, tool

from .world import Mute, calls, world

pytestmark = pytest.mark.anyio


async def test_a_delegate_answers_the_callers_tool_call_with_its_text() -> None:
    policy = Policy(
        [
            Rule(agent="writer", step=0, tool_calls=calls("researcher", task="capital of France?")),
            Rule(agent="researcher", contains="capital of France?", text="Paris.", once=True),
            Rule(agent="writer", step=1, contains="Paris.", text="It is Paris.", once=True),
        ]
    )
    researcher = Agent("researcher", "You are researcher. You look things up.")
    async with world(policy) as w:
        await w.runtime.add(
            researcher, Agent("writer", "You are writer.", tools=[researcher.as_tool()])
        )
        result = await w.runtime.ask(
            "writer", "What is the capital of France?", conversation_id="w"
        )
        assert (result.agent, result.text, result.tool_calls) == ("writer", "It is Paris.", 1)
        results = [m for m in await w.memory("w") if isinstance(m, ToolMessage)]
        assert [m.content for m in results] == ["Paris."]
        # the delegate's task was caused by the tool call, which the writer's task caused
        delegated = w.on("agent.researcher.inbox")[0]
        call = w.parent(delegated)
        assert call.subject == "tool.call"
        assert w.parent(call).subject == "agent.writer.inbox"
        assert delegated.payload.content == "capital of France?"
    policy.assert_complete()


class Measure(msgspec.Struct, frozen=True, kw_only=True):
    value: int
    unit: str


async def test_a_delegates_structured_output_comes_back_as_json() -> None:
    policy = Policy(
        [
            Rule(agent="boss", step=0, tool_calls=calls("measure", task="how far?"), once=True),
            Rule(agent="measurer", json={"value": 20, "unit": "m"}, once=True),
        ]
    )
    measurer = Agent("measurer", "You are measurer.", output_type=Measure)
    measure = measurer.as_tool("Measures distances.", name="measure")
    async with world(policy) as w:
        await w.runtime.add(measurer, Agent("boss", "You are boss.", tools=[measure]))
        await w.runtime.ask("boss", "how far is it?", conversation_id="b")
        results = [m.content for m in await w.memory("b") if isinstance(m, ToolMessage)]
        assert results == ['{"value":20,"unit":"m"}']
    policy.assert_complete()


async def test_a_delegates_failure_reaches_the_caller_model_which_recovers() -> None:
    policy = Policy(
        [
            Rule(agent="boss", step=0, tool_calls=calls("helper", task="add up"), once=True),
            Rule(agent="helper", tool_calls=calls("calculator", expression="1+1")),
            Rule(
                agent="boss", step=1, contains="MaxStepsExceeded", text="I do it myself.", once=True
            ),
        ]
    )
    helper = Agent("helper", "You are helper.", tools=[calculator], max_steps=1)
    async with world(policy) as w:
        await w.runtime.add(helper, Agent("boss", "You are boss.", tools=[helper.as_tool()]))
        result = await w.runtime.ask("boss", "add up for me", conversation_id="b")
        assert result.text == "I do it myself."
        error = next(m for m in await w.memory("b") if isinstance(m, ToolMessage))
        assert "raised MaxStepsExceeded" in str(error.content)
        assert "agent 'helper'" in str(error.content) and "max_steps=1" in str(error.content)
        answered = next(e for e in w.events("boss") if e.kind == "tool_answered")
        assert answered.is_error and answered.tool == "helper"
        assert w.kinds("helper")[-1] == "failed"
    policy.assert_complete()


async def test_a_delegate_nobody_runs_is_an_error_result_not_a_crash() -> None:
    policy = Policy(
        [
            Rule(agent="boss", step=0, tool_calls=calls("ghost", task="boo"), once=True),
            Rule(agent="boss", step=1, contains="no responders", text="Nobody home.", once=True),
        ]
    )
    async with world(policy) as w:
        ghost = agent_tool("ghost", "A missing agent.")
        await w.runtime.add(Agent("boss", "You are boss.", tools=[ghost]))
        result = await w.runtime.ask("boss", "ask the ghost")
        assert result.text == "Nobody home."
    policy.assert_complete()


async def test_a_delegates_time_limit_is_an_error_result_for_the_caller() -> None:
    policy = Policy(
        [
            Rule(agent="boss", step=0, tool_calls=calls("slow", task="wait"), once=True),
            Rule(agent="boss", step=1, contains="TaskTimeout", text="Too slow.", once=True),
        ]
    )
    async with world(policy) as w:
        mute = Mute("slow")
        await w.runtime.add(
            mute, Agent("boss", "You are boss.", tools=[agent_tool("slow", "Slow.", timeout=0.2)])
        )
        with anyio.fail_after(5):
            result = await w.runtime.ask("boss", "ask the slow one")
        assert result.text == "Too slow."
        assert mute.cancelled == 1  # the abandoned task did not keep running
    policy.assert_complete()


async def test_cancelling_the_caller_cancels_the_delegates_work() -> None:
    entered = anyio.Event()
    outcome: list[str] = []

    @tool
    async def forever() -> str:
        """Runs until cancelled."""
        entered.set()
        try:
            await anyio.sleep(30)
        finally:
            outcome.append("cancelled")
        return "never"

    policy = Policy(
        [
            Rule(agent="boss", tool_calls=calls("deep", task="go deep")),
            Rule(agent="deep", tool_calls=calls("forever")),
        ]
    )
    deep = Agent("deep", "You are deep.", tools=[forever])
    async with world(policy) as w:
        await w.runtime.add(deep, Agent("boss", "You are boss.", tools=[deep.as_tool()]))
        async with anyio.create_task_group() as group:
            group.start_soon(w.runtime.ask, "boss", "dig")
            with anyio.fail_after(5):
                await entered.wait()
            group.cancel_scope.cancel()
        with anyio.fail_after(5):
            await w.bus.drain()
        assert outcome == ["cancelled"]
        assert w.bus.stats().in_flight == 0 and w.runtime.tools.stats().in_flight == 0


async def test_as_tool_makes_one_tool_per_arguments_with_a_task_parameter() -> None:
    agent = Agent("researcher", "You are researcher.\nYou look things up.")
    made = agent.as_tool()
    assert agent.as_tool() is made  # so several callers can share it in one executor
    assert agent.as_tool("Other.") is not made
    definition = made.definition()["function"]
    assert definition["name"] == "researcher"
    assert definition["description"] == (
        "Give agent 'researcher' a task; it answers. You are researcher."
    )
    assert definition["parameters"]["required"] == ["task"]
    assert definition["parameters"]["properties"]["task"]["type"] == "string"
    with pytest.raises(RuntimeError, match="did not come over the bus"):
        await made.invoke('{"task": "x"}')


async def test_two_agents_can_share_one_delegate() -> None:
    policy = Policy(
        [
            Rule(agent="a", step=0, tool_calls=calls("helper", task="from a")),
            Rule(agent="b", step=0, tool_calls=calls("helper", task="from b")),
            Rule(agent="helper", regex=r"from (a|b)", text="helped"),
        ]
    )
    helper = Agent("helper", "You are helper.")
    async with world(policy) as w:
        shared = helper.as_tool()
        await w.runtime.add(
            helper,
            Agent("a", "You are a.", tools=[shared]),
            Agent("b", "You are b.", tools=[shared]),
        )
        for name in ("a", "b"):
            result = await w.runtime.ask(name, "go", conversation_id=name)
            assert result.text == "Based on helper: helped."
            said = [m for m in await w.memory(name) if isinstance(m, AssistantMessage)]
            assert len(said) == 2
