"""Handoff: an agent passes its conversation to another agent and drops out.

An :class:`~agents.Agent` made with ``handoffs=["billing", ...]`` offers its model one
``transfer_to_<agent>(reason)`` tool per target. The agent answers those calls itself
(the tool executor never sees them): it stores the call and a "Transferred to ..."
result in the conversation, publishes a ``handed_off`` event, and sends the target a
:class:`~agents.task.Task` on the *same* conversation, caused by its own task, whose
``handoffs`` lists who passed it on. The target reads the conversation from memory and
appends nothing to it first; whatever agent finally answers, its result answers the
original task.
"""

from __future__ import annotations

import re

import msgspec

from bus import Context, NoResponders, RemoteError, RequestTimeout

from ..llm.wire import FunctionDefinition, FunctionTool, Usage
from ..task import ASK_MARGIN, AgentResult, HandoffFailed, Task, TaskTimeout, inbox_topic, restore

_TOOL_NAME = re.compile(r"[A-Za-z0-9_-]{1,64}")
_REASON_SCHEMA = {
    "type": "object",
    "properties": {
        "reason": {
            "type": "string",
            "description": "Why the conversation goes to this agent, for its records.",
        }
    },
    "required": ["reason"],
}


class Handoff(msgspec.Struct, frozen=True, kw_only=True):
    """An agent the conversation may be handed to; ``description`` tells the model when."""

    agent: str
    description: str = ""

    def __post_init__(self) -> None:
        if not _TOOL_NAME.fullmatch(self.tool_name):
            raise ValueError(
                f"cannot hand off to {self.agent!r}: {self.tool_name!r} is not a valid tool name"
            )

    @property
    def tool_name(self) -> str:
        """The tool the model calls to hand off: ``transfer_to_<agent>``."""
        return f"transfer_to_{self.agent}"

    def tool(self) -> FunctionTool:
        """The tool's definition, as offered to the model."""
        description = f"Hand the conversation over to agent {self.agent!r}; it answers from now on."
        if self.description:
            description += f" {self.description}"
        return FunctionTool(
            function=FunctionDefinition(
                name=self.tool_name, description=description, parameters=_REASON_SCHEMA
            )
        )


def as_handoff(target: str | Handoff) -> Handoff:
    """``target`` as a :class:`Handoff` (a bare name has no description)."""
    return target if isinstance(target, Handoff) else Handoff(agent=target)


class _TransferArguments(msgspec.Struct, frozen=True):
    reason: str = ""


_DECODE_ARGUMENTS = msgspec.json.Decoder(_TransferArguments)


def transfer_reason(arguments: str) -> str:
    """The ``reason`` the model gave; a transfer is not refused for a malformed one."""
    try:
        return _DECODE_ARGUMENTS.decode(arguments or "{}").reason
    except (msgspec.DecodeError, msgspec.ValidationError):
        return arguments


async def pass_on(ctx: Context, target: str, task: Task, *, budget: float) -> AgentResult:
    """Send ``task`` to ``target``'s inbox as part of the handling of ``ctx``; its result,
    or the typed error that ended it."""
    try:
        return await ctx.request(inbox_topic(target), task, timeout=budget + ASK_MARGIN)
    except NoResponders:
        raise HandoffFailed(
            f"the model handed the conversation to {target!r}, but no agent {target!r} runs",
            agent=task.handoffs[-1] if task.handoffs else "",
        ) from None
    except RequestTimeout:
        raise TaskTimeout(f"{target!r} did not answer within {budget:g}s", agent=target) from None
    except RemoteError as exc:
        raise restore(exc) from exc


def including(
    result: AgentResult,
    *,
    steps: int,
    tool_calls: int,
    usage: Usage,
    cost: float,
    duration: float,
) -> AgentResult:
    """``result`` with the work done before the handoff added to its counts."""
    prompt = result.usage.prompt_tokens + usage.prompt_tokens
    completion = result.usage.completion_tokens + usage.completion_tokens
    return msgspec.structs.replace(
        result,
        steps=result.steps + steps,
        tool_calls=result.tool_calls + tool_calls,
        usage=Usage(
            prompt_tokens=prompt, completion_tokens=completion, total_tokens=prompt + completion
        ),
        cost=result.cost + cost,
        duration=duration,
    )
