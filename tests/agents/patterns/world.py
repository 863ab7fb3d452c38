"""A runtime on the real mock LLM for the pattern tests, and what it lets a test look at."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import anyio
import msgspec

from agents import Runtime, open_runtime
from agents.config import ModelPrice, load_config
from agents.llm import Policy
from agents.llm.messages import ChatRequest
from agents.llm.policy import ScriptedCall
from agents.llm.wire import ChatMessage
from agents.memory import MEMORY_WINDOW, MemoryWindow
from agents.patterns import Utterance, chat_messages_topic
from agents.task import AgentEvent, AgentResult, Task, events_topic, inbox_topic
from bus import Actor, Context, Envelope, handler


class World:
    """The runtime, and every envelope that crossed its bus."""

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        self.bus = runtime.bus
        self.envelopes: list[Envelope] = []
        self.bus.tap(">", self.envelopes.append)

    def on(self, subject: str) -> list[Envelope]:
        return [e for e in self.envelopes if e.subject == subject]

    def events(self, agent: str) -> list[AgentEvent]:
        return [e.payload for e in self.on(events_topic(agent).subject)]

    def kinds(self, agent: str) -> list[str]:
        return [e.kind for e in self.events(agent)]

    def utterances(self, chat: str) -> list[Utterance]:
        return [e.payload for e in self.on(chat_messages_topic(chat).subject)]

    def llm_requests(self, agent: str) -> list[ChatRequest]:
        return [e.payload for e in self.on("llm.chat") if e.payload.agent == agent]

    def parent(self, envelope: Envelope) -> Envelope:
        return next(e for e in self.envelopes if e.id == envelope.causation_id)

    async def memory(self, conversation: str) -> list[ChatMessage]:
        window = await self.bus.request(MEMORY_WINDOW, MemoryWindow(conversation_id=conversation))
        return window.messages


@asynccontextmanager
async def world(policy: Policy | None = None, *, priced: bool = False) -> AsyncIterator[World]:
    """A runtime with the embedded mock answering with ``policy``; ``priced``: calls cost
    $1 per 1,000 prompt tokens and $2 per 1,000 completion tokens."""
    config = load_config(None, env={})
    if priced:
        prices = {config.llm.model: ModelPrice(input=1000.0, output=2000.0)}
        config = msgspec.structs.replace(
            config, llm=msgspec.structs.replace(config.llm, prices=prices)
        )
    async with open_runtime(config, policy=policy) as runtime:
        yield World(runtime)


def calls(name: str, **arguments: Any) -> list[ScriptedCall]:
    """One scripted tool call."""
    return [ScriptedCall(name=name, arguments=arguments)]


class Mute(Actor):
    """Takes tasks on ``agent.<name>.inbox`` and never answers them."""

    def __init__(self, name: str) -> None:
        super().__init__(f"mute-{name}")
        self.inbox = inbox_topic(name)
        self.concurrency = 16
        self.entered = anyio.Event()
        self.cancelled = 0

    @handler(lambda self: self.inbox, queue="agent")
    async def work(self, task: Task, ctx: Context) -> AgentResult:
        self.entered.set()
        try:
            await anyio.sleep(3600)
        except anyio.get_cancelled_exc_class():
            self.cancelled += 1
            raise
        raise AssertionError("a mute agent answered")
