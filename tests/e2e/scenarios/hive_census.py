"""A scenario for ``hivebus run``: a researcher counts bees with a tool, a writer reports.

    hivebus run tests/e2e/scenarios/hive_census.py [-- --hive south]

On the mock LLM its ``POLICY`` scripts both agents (``gateway`` and ``tools`` serve the
same in worker processes: ``hivebus worker --transport URL
tests.e2e.scenarios.hive_census:gateway``); ``--hive`` changes which hive the
researcher's model asks the tool about (a changed model answer, for ``trace diff``).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from agents import Agent, Runtime, load_config
from agents.llm import Policy, Rule, ScriptedCall, llm_gateway
from bus import Bus
from tools import ToolExecutor, tool

HIVES = {"north": 12_000, "south": 8_000}


@tool
def count_bees(hive: str) -> int:
    """How many bees live in a hive (north or south)."""
    return HIVES.get(hive, 0)


def _hive() -> str:
    parser = argparse.ArgumentParser(prog="hive_census")
    parser.add_argument("--hive", default="north", choices=sorted(HIVES))
    return str(parser.parse_args(sys.argv[1:]).hive)


def POLICY() -> Policy:  # the name hivebus run looks for
    return _policy(_hive())


def _policy(hive: str) -> Policy:
    return Policy(
        [
            Rule(
                agent="researcher",
                step=0,
                tool_calls=[ScriptedCall(name="count_bees", arguments={"hive": hive})],
            ),
            Rule(agent="researcher", step=1, text=f"The {hive} hive holds {HIVES[hive]} bees."),
            Rule(agent="writer", text=f"Report: the {hive} hive is home to {HIVES[hive]} bees."),
        ]
    )


async def main(runtime: Runtime) -> None:
    await runtime.add(
        Agent("researcher", "You are researcher. Count bees with tools.", tools=[count_bees]),
        Agent("writer", "You are writer. Write a one-line report."),
    )
    finding = await runtime.ask("researcher", "How many bees live in the hive?")
    report = await runtime.ask("writer", f"Report this finding: {finding.text}")
    print(report.text)


@asynccontextmanager
async def gateway(bus: Bus) -> AsyncIterator[None]:
    """The LLM gateway with this scenario's mock policy, for ``hivebus worker``."""
    async with llm_gateway(bus, load_config().llm, policy=_policy("north")):
        yield


def tools(bus: Bus) -> ToolExecutor:
    """The researcher's tool, for ``hivebus worker``."""
    return ToolExecutor([count_bees])
