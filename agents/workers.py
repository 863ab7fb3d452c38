"""Ready-made factories for ``hivebus worker`` (``agents.workers:NAME``).

    hivebus worker --transport nats://127.0.0.1:4222 agents.workers:gateway
    hivebus worker --transport nats://127.0.0.1:4222 agents.workers:memory agents.workers:tools

``gateway`` reads the configuration as ``hivebus run`` does (``$HIVEBUS_CONFIG``,
``OPENAI_API_KEY``, ``HIVEBUS_*``); with no endpoint configured it answers from the
embedded mock LLM, started in the worker. Several gateway workers share the load (they
are one queue group), each with its own concurrency cap and rate limits.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from bus import Bus
from tools import ToolExecutor, calculator, clock

from .config import load_config
from .llm.runtime import llm_gateway
from .memory import InMemoryStore


@asynccontextmanager
async def gateway(bus: Bus) -> AsyncIterator[None]:
    """The LLM gateway (and the mock LLM when no endpoint is configured)."""
    async with llm_gateway(bus, load_config().llm):
        yield


def memory(bus: Bus) -> InMemoryStore:
    """An in-memory store (conversations live as long as the worker)."""
    return InMemoryStore()


def tools(bus: Bus) -> ToolExecutor:
    """A tool executor with the built-in tools that need no setting up: calculator, clock.
    For your own tools, write a factory returning ``ToolExecutor([your, tools])``."""
    return ToolExecutor([calculator, clock])
