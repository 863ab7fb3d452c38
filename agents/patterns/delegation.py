"""Delegation: an agent offered to another agent's model as a tool.

The tool sends a :class:`~agents.task.Task` to the agent's inbox through the tool call's
:class:`~tools.ToolContext`, so the delegate's work sits under the call in the causation
tree and is cancelled with it. What ends the delegate's task without an answer is raised
by the tool, and the tool executor hands it to the calling model as an error result.
"""

from __future__ import annotations

import math
from collections.abc import Awaitable
from typing import Annotated

import msgspec

from bus import RemoteError, RequestTimeout
from tools import Tool, ToolContext

from ..task import (
    ASK_MARGIN,
    AgentResult,
    Task,
    TaskTimeout,
    inbox_topic,
    restore,
)

TaskText = Annotated[
    str, msgspec.Meta(description="The task for the agent, complete and self-contained.")
]
_ENCODER = msgspec.json.Encoder()


def answer_text(result: AgentResult) -> str:
    """An agent's answer as the text a model reads: its structured output as JSON, if it
    has one, else its text."""
    if result.output is not None:
        return _ENCODER.encode(result.output).decode()
    return result.text or ""


def agent_tool(
    agent: str,
    description: str,
    *,
    name: str | None = None,
    timeout: float | None = None,
) -> Tool[..., Awaitable[str]]:
    """A tool (named ``name``, default ``agent``, with one parameter ``task: str``) that
    gives ``agent`` the task and returns its answer (see :func:`answer_text`).

    Each call is a new conversation for the delegate. ``timeout`` bounds the delegate's
    task (default: its own deadline); the tool's time limit in the executor follows it.
    """
    # No timeout: the delegate's own deadline, which only it knows (it always ends by it).
    wait = math.inf if timeout is None else timeout + ASK_MARGIN

    async def delegate(task: TaskText, ctx: ToolContext) -> str:
        request = Task(content=task, timeout=timeout)
        try:
            result = await ctx.request(inbox_topic(agent), request, timeout=wait)
        except RequestTimeout:
            raise TaskTimeout(f"no answer within {timeout:g}s", agent=agent) from None
        except RemoteError as exc:
            raise restore(exc) from exc
        return answer_text(result)

    return Tool(delegate, name=name or agent, description=description, timeout=wait + ASK_MARGIN)
