"""The runtime: gateway, memory and tool executor on one bus, for agents and scenarios."""

from __future__ import annotations

import pytest

from agents import Agent
from agents.config import load_config
from agents.llm import Policy, Rule
from agents.llm.policy import ScriptedCall
from agents.runtime import open_runtime
from bus import Bus, NoResponders
from tools import calculator

pytestmark = pytest.mark.anyio

POLICY = Policy(
    [Rule(step=0, tool_calls=[ScriptedCall(name="calculator", arguments={"expression": "6*7"})])]
)


async def test_an_agents_tools_join_the_executor_and_the_mock_answers() -> None:
    config = load_config(None, env={})
    async with open_runtime(config, policy=POLICY) as runtime:
        assert runtime.uses_mock
        await runtime.add(Agent("calc", "You are calc.", tools=[calculator]))
        assert list(runtime.tools.tools) == ["calculator"]
        result = await runtime.ask("calc", "six times seven?")
        assert result.text == "Based on calculator: 42."
        assert runtime.gateway.stats().calls == 2
        assert "calc" in repr(runtime)


async def test_on_a_given_bus_what_the_runtime_started_stops_with_it() -> None:
    async with Bus("host") as bus:
        async with open_runtime(load_config(None, env={}), policy=POLICY, bus=bus) as runtime:
            await runtime.add(Agent("calc", "You are calc.", tools=[calculator]))
            await runtime.ask("calc", "six times seven?")
        with pytest.raises(NoResponders):  # the agent, the store and the gateway are gone
            await runtime.ask("calc", "again?")
        assert bus.stats().in_flight == 0
