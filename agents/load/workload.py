"""What one loop of a load run does: the built-in synthetic workload, or a scenario script.

A workload puts its agents on the runtime once (:meth:`setup`), then runs one loop per
call of :meth:`run`, which returns when the loop has its result and raises the typed
error that ended it otherwise. :attr:`policy` is what the mock LLM answers with.
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, Protocol

from bus import Actor
from tools import tool

from ..agent import Agent
from ..llm.policy import Policy, Rule, ScriptedCall
from ..runtime import Runtime
from ..scenario import Scenario, policy_of
from .options import LoadError
from .report import WorkloadInfo

AGENT_CONCURRENCY = 1_000_000  # tasks an agent takes at once: the driver sets the load


class LoopFailed(LoadError):
    """A scenario's ``main`` returned a non-zero exit status."""


class Workload(Protocol):
    """One kind of loop (see the module's docstring)."""

    policy: Policy | None
    calls_per_loop: float | None  # LLM calls one loop is expected to make, if known

    def info(self) -> WorkloadInfo:
        """What the report says of it."""
        ...

    async def setup(self, runtime: Runtime) -> None:
        """Put its agents on ``runtime``, before the first loop."""
        ...

    async def run(self, runtime: Runtime, n: int) -> None:
        """Loop number ``n``: return with its result, or raise what ended it."""
        ...


@tool
async def lookup(key: str) -> str:
    """Look a key up (the synthetic workload's tool: it answers at once)."""
    return f"the value of {key}"


class SyntheticWorkload:
    """``agents`` agents sharing one tool; each loop is a task for agent ``n % agents``
    that takes ``steps`` LLM calls: in each step but the last, the model calls the tool
    ``tools`` times at once; the last step answers. The mock's policy scripts it exactly
    (rules by step); a real model is asked to do the same and allowed one step more."""

    def __init__(
        self, *, agents: int, steps: int, tools: int, loop_timeout: float | None = None
    ) -> None:
        self.agents, self.steps, self.tools = agents, steps, tools
        self.loop_timeout = loop_timeout
        self.calls_per_loop: float | None = float(steps)
        self.policy: Policy | None = Policy(
            [
                Rule(
                    name=f"step {step}",
                    step=step,
                    tool_calls=[
                        ScriptedCall(name=lookup.name, arguments={"key": f"step{step}-call{call}"})
                        for call in range(tools)
                    ],
                )
                for step in range(steps - 1)
            ],
            default=Rule(text="done"),
        )

    def info(self) -> WorkloadInfo:
        """The shape, for the report."""
        return WorkloadInfo(
            kind="synthetic", agents=self.agents, steps=self.steps, tools=self.tools
        )

    def instructions(self, name: str) -> str:
        """Agent ``name``'s system prompt: what a real model is asked to do."""
        if self.steps == 1:
            return f"You are {name}, a load-test agent. Answer every task with one word: done."
        return (
            f"You are {name}, a load-test agent. In each of your first {self.steps - 1} "
            f"steps, call the {lookup.name} tool {self.tools} times at once; then answer with "
            "one word: done."
        )

    async def setup(self, runtime: Runtime) -> None:
        """Start the agents, ``agent0`` to ``agent<N-1>``, each offered the tool."""
        for k in range(self.agents):
            name = f"agent{k}"
            await runtime.add(
                Agent(
                    name,
                    self.instructions(name),
                    tools=[lookup],
                    max_steps=self.steps + 1,
                    concurrency=AGENT_CONCURRENCY,
                )
            )

    async def run(self, runtime: Runtime, n: int) -> None:
        """Task ``n`` for agent ``n % agents``."""
        await runtime.ask(f"agent{n % self.agents}", f"task {n}", timeout=self.loop_timeout)


class SharedRuntime(Runtime):
    """The runtime every loop of a scenario shares: ``add`` starts an actor of a given
    name once (later loops' agents of that name are the same agent), so a scenario's
    ``main(runtime)`` can run many times at once on one bus, gateway and cap."""

    def __init__(self, runtime: Runtime) -> None:
        super().__init__(
            runtime.bus, runtime.config, runtime.gateway, runtime.memory, runtime.tools
        )
        self.agents = runtime.agents
        self._started: set[str] = set()
        self._lock = asyncio.Lock()

    async def add(self, *actors: Actor) -> None:
        """Start those of ``actors`` whose name no loop has started yet."""
        async with self._lock:
            fresh = [actor for actor in actors if actor.name not in self._started]
            self._started.update(actor.name for actor in fresh)
            await super().add(*fresh)


class ScenarioWorkload:
    """Each loop awaits the scenario's ``main(runtime)`` on a :class:`SharedRuntime`.

    Its ``POLICY`` answers on the mock, shared by every loop: a rule marked ``once``
    answers the first loop only.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        scenario = Scenario.inspect(path)
        if scenario.kind != "main":
            raise LoadError(
                f"{path}: hivebus load runs a scenario's `async def main(runtime)` once per "
                "loop; this script is a plain program"
            )
        with scenario.as_program():
            module = scenario.load()
            self.policy: Policy | None = policy_of(module)
        self._main: Callable[[Runtime], Awaitable[Any]] = module.main
        if not inspect.iscoroutinefunction(self._main):
            raise LoadError(f"{path}: main(runtime) must be a coroutine function")
        self.calls_per_loop: float | None = None
        self._shared: SharedRuntime | None = None

    def info(self) -> WorkloadInfo:
        """The scenario's path, for the report."""
        return WorkloadInfo(kind="scenario", scenario=str(self.path))

    async def setup(self, runtime: Runtime) -> None:
        """Wrap ``runtime`` for the loops to share (its ``main`` adds the agents)."""
        self._shared = SharedRuntime(runtime)

    async def run(self, runtime: Runtime, n: int) -> None:
        """One ``main(runtime)``; a non-zero status it returns is :class:`LoopFailed`."""
        result = await self._main(self._shared or runtime)
        if isinstance(result, int) and not isinstance(result, bool) and result:
            raise LoopFailed(f"{self.path}: main returned {result}")
