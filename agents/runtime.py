"""Everything a multi-agent program needs on one bus, started and stopped together: the
LLM gateway (and the embedded mock when no endpoint is configured), a memory store and a
tool executor that runs the tools of every agent added."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from bus import Actor, Bus, Context
from tools import ToolExecutor

from .agent import Agent
from .config import Config, ConfigError, load_config
from .llm.gateway import LLMGateway
from .llm.policy import Policy
from .llm.runtime import llm_gateway
from .memory import InMemoryStore, MemoryStore
from .task import AgentResult, ask


class Runtime:
    """A running bus with the gateway, a memory store and a tool executor on it.

    Each of the three is None when ``config.bus.remote`` says a ``hivebus worker`` process
    serves it (over NATS). ``add`` puts actors on the bus; an :class:`Agent`'s tools join
    the shared executor (when it runs here; a remote one must have them).
    ``ask`` gives an agent a task. Made by :func:`open_runtime` (and by ``hivebus run``
    for a scenario's ``main(runtime)``).
    """

    def __init__(
        self,
        bus: Bus,
        config: Config,
        gateway: LLMGateway | None,
        memory: MemoryStore | None,
        tools: ToolExecutor | None,
    ) -> None:
        self.bus = bus
        self.config = config
        self.gateway = gateway
        self.memory = memory
        self.tools = tools
        self.agents: dict[str, Agent] = {}

    def __repr__(self) -> str:
        return f"<Runtime bus={self.bus.name!r} agents={list(self.agents)}>"

    @property
    def uses_mock(self) -> bool:
        """True when the embedded mock LLM answers (no endpoint configured)."""
        return self.config.llm.uses_mock

    async def add(self, *actors: Actor) -> None:
        """Start ``actors`` on the bus; agents' tools are added to the tool executor first,
        so an agent never calls a tool nobody runs."""
        for actor in actors:
            if isinstance(actor, Agent):
                if self.tools is not None:
                    for each in actor.tools.values():
                        self.tools.add(each)
                self.agents[actor.name] = actor
            await self.bus.add(actor)

    async def ask(
        self,
        agent: str,
        content: str,
        *,
        conversation_id: str = "",
        timeout: float | None = None,
        via: Context | None = None,
    ) -> AgentResult:
        """Give ``agent`` a task and return its result (see :func:`agents.ask`)."""
        return await ask(
            via or self.bus, agent, content, conversation_id=conversation_id, timeout=timeout
        )


@asynccontextmanager
async def open_runtime(
    config: Config | None = None,
    *,
    policy: Policy | None = None,
    bus: Bus | None = None,
    memory: MemoryStore | None = None,
    name: str = "hivebus",
) -> AsyncIterator[Runtime]:
    """Start a :class:`Runtime`: on ``bus`` (or a new one on ``config.bus.transport``,
    closed on exit), with ``config`` (default: :func:`load_config`), ``memory`` (default:
    in memory) and, when no endpoint is configured, the embedded mock LLM answering with
    ``policy``. The roles in ``config.bus.remote`` are left to worker processes.
    """
    if config is None:
        config = load_config()
    remote = set(config.bus.remote)
    if remote and bus is None and config.bus.transport == "local":
        raise ConfigError(
            "config", "bus.remote needs a NATS transport (bus.transport = 'nats://...')"
        )
    async with _bus(bus, name, config.bus.transport) as running:
        store = None if "memory" in remote else memory or InMemoryStore()
        executor = None if "tools" in remote else ToolExecutor([])
        runtime: Runtime | None = None
        for actor in (store, executor):
            if actor is not None:
                await running.add(actor)
        try:
            async with _gateway(running, config, policy, "gateway" in remote) as gateway:
                runtime = Runtime(running, config, gateway, store, executor)
                yield runtime
        finally:  # on a bus that lives on, what this runtime started stops taking work
            for actor in [store, executor, *(runtime.agents.values() if runtime else ())]:
                if actor is not None:
                    actor.stop()


@asynccontextmanager
async def _gateway(
    bus: Bus, config: Config, policy: Policy | None, remote: bool
) -> AsyncIterator[LLMGateway | None]:
    if remote:
        yield None
        return
    async with llm_gateway(bus, config.llm, policy=policy) as gateway:
        yield gateway


@asynccontextmanager
async def _bus(bus: Bus | None, name: str, transport: str) -> AsyncIterator[Bus]:
    if bus is not None:
        yield bus
        return
    async with Bus(name, transport=transport) as new:
        yield new
