"""A recorded agent run shared by the tests of summaries, descriptions and views.

``record_team_run`` runs, on the mock LLM:
- ``researcher`` (tool ``count_bees``): step 1 calls the tool twice, once with bad
  arguments (an error result), step 2 answers;
- ``looper`` (``max_steps=1``): calls the tool and runs out of steps (a failed task).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from agents import Agent, AgentResult, MaxStepsExceeded, load_config, open_runtime
from agents.llm import Policy, Rule, ScriptedCall
from bus import TraceRecorder, read_trace
from bus.trace import TraceRecord
from tools import tool


@tool
def count_bees(hive: str) -> int:
    """How many bees live in a hive."""
    return {"north": 12_000}.get(hive, 0)


POLICY = Policy(
    [
        Rule(
            agent="researcher",
            step=0,
            tool_calls=[
                ScriptedCall(name="count_bees", arguments={"hive": "north"}),
                ScriptedCall(name="count_bees", arguments={"hive": 5}),
            ],
        ),
        Rule(agent="researcher", step=1, text="The north hive holds 12000 bees."),
        Rule(
            agent="looper",
            tool_calls=[ScriptedCall(name="count_bees", arguments={"hive": "north"})],
        ),
    ]
)


async def record_team_run(path: Path) -> tuple[list[TraceRecord], AgentResult]:
    """Run the team (see the module's docstring); the trace's records and the
    researcher's result."""
    policy = Policy(POLICY.rules)  # a fresh policy: one instance belongs to one run
    async with open_runtime(load_config(None, env={}), policy=policy) as runtime:
        with TraceRecorder(runtime.bus, path):
            await runtime.add(
                Agent("researcher", "You are researcher.", tools=[count_bees]),
                Agent("looper", "You are looper.", tools=[count_bees], max_steps=1),
            )
            result = await runtime.ask("researcher", "How many bees in the north hive?")
            with pytest.raises(MaxStepsExceeded):
                await runtime.ask("looper", "Loop forever.")
            await runtime.bus.drain()
    return read_trace(path), result
