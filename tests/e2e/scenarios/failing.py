"""A scenario that fails half-way, for ``hivebus run``'s error reporting."""

from __future__ import annotations

from agents import Agent, Runtime
from agents.llm import Policy, Rule

POLICY = Policy([Rule(text="The hive is calm.")])


async def main(runtime: Runtime) -> None:
    await runtime.add(Agent("keeper", "You are keeper."))
    await runtime.ask("keeper", "How is the hive?")
    raise RuntimeError("the queen is missing\n(and this second line is not shown)")
