"""A plain asyncio program, as ``hivebus run`` runs it (``__main__``, its own runtime).

hivebus run tests/e2e/scenarios/plain_program.py
"""

from __future__ import annotations

import asyncio

from agents import Agent, load_config, open_runtime
from agents.llm import Policy, Rule, ScriptedCall
from tools import calculator

POLICY = Policy(
    [Rule(step=0, tool_calls=[ScriptedCall(name="calculator", arguments={"expression": "6*7"})])]
)


async def main() -> None:
    async with open_runtime(load_config(), policy=POLICY) as runtime:
        await runtime.add(Agent("calc", "You are calc.", tools=[calculator]))
        result = await runtime.ask("calc", "What is six times seven?")
        print(f"answer: {result.text}")


if __name__ == "__main__":
    asyncio.run(main())
