"""What travels on the bus to and from an agent: a :class:`Task` on ``agent.<name>.inbox``,
its :class:`AgentResult`, and :class:`AgentEvent`s on ``agent.<name>.events``; the typed
errors a task can end with, and :func:`ask`, which restores them across the bus."""

from __future__ import annotations

import asyncio
import functools
import logging
import math
import time
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, Literal

import msgspec

from bus import (
    Bus,
    Context,
    DeadlineGrid,
    HivebusError,
    Message,
    RemoteError,
    RequestTimeout,
    TaskDeadline,
    Topic,
)

from .llm.client import restore_llm_error
from .llm.errors import LLMError
from .llm.wire import Usage

DEFAULT_TASK_DEADLINE = 300.0  # seconds, when neither the task nor the agent sets one
TASK_GRID_WIDTH = 0.1  # seconds at most that a task's deadline fires late (<< ASK_MARGIN)
DEADLINE_SLACK = 0.05  # seconds: an LLM error this near a task's deadline is the deadline
ASK_MARGIN = 1.0  # seconds the bus waits past a task's own deadline for the agent's answer
REPORT_GRACE = ASK_MARGIN / 2  # seconds a failure's event may hold the answer past the deadline

log = logging.getLogger("hivebus.agents")


class Task(Message, frozen=True, kw_only=True):
    """Ask an agent to work on ``content``.

    ``conversation_id`` names the memory the agent reads and extends; empty means a new
    conversation of its own (the task's id). ``timeout`` is the whole task's deadline in
    seconds (default: the agent's). ``handoffs`` lists the agents that handed this task
    on, oldest first: when it is not empty the agent continues the conversation it finds
    in memory and appends no user message (``content`` is then the reason given).
    """

    content: str
    conversation_id: str = ""
    timeout: float | None = None
    handoffs: list[str] = msgspec.field(default_factory=list)


class AgentResult(Message, frozen=True, kw_only=True):
    """The final answer: ``text``, and ``output`` (an instance of the agent's
    ``output_type``) when it declares one; how many LLM ``steps`` and tool calls it took,
    the tokens used, their ``cost`` in USD (0 when the endpoint has no prices), and how
    long it took in seconds.

    After handoffs, ``agent`` is the one that answered, ``handoffs`` the agents that
    passed the task on before it, and the counts cover the whole task.
    """

    agent: str
    conversation_id: str
    text: str | None
    output: Any = None
    steps: int
    tool_calls: int
    usage: Usage
    duration: float
    cost: float = 0.0
    handoffs: list[str] = msgspec.field(default_factory=list)


EventKind = Literal[
    "step_started",
    "llm_answered",
    "tool_called",
    "tool_answered",
    "output_invalid",
    "handed_off",
    "finished",
    "failed",
]


class AgentEvent(Message, frozen=True, kw_only=True):
    """One moment of a task, published on ``agent.<name>.events`` with the task as its
    cause. ``text`` is a short human-readable detail (the answer, the tool's arguments or
    result, the error), clipped."""

    agent: str
    conversation_id: str
    kind: EventKind
    step: int
    tool: str | None = None
    call_id: str | None = None
    text: str | None = None
    is_error: bool = False


@functools.lru_cache(maxsize=4096)  # (asked for on every task: made once per agent)
def inbox_topic(agent: str) -> Topic[Task, AgentResult]:
    """The subject an agent takes tasks on."""
    return Topic(f"agent.{agent}.inbox", Task, reply=AgentResult)


def events_topic(agent: str) -> Topic[AgentEvent, Any]:
    """The subject an agent reports its progress on."""
    return Topic(f"agent.{agent}.events", AgentEvent)


class AgentError(HivebusError):
    """Base of the ways a task ends without an answer (besides an LLM error, raised as is)."""

    def __init__(self, message: str, *, agent: str = "", steps: int = 0) -> None:
        super().__init__(f"agent {agent!r}: {message}" if agent else message)
        self.agent = agent
        self.steps = steps

    def remote_details(self) -> dict[str, Any]:
        """The fields to carry across the bus (see :class:`bus.RemoteError`)."""
        return {"agent": self.agent, "steps": self.steps}

    @classmethod
    def rebuild(cls, message: str, details: dict[str, Any]) -> AgentError:
        error = cls.__new__(cls)
        Exception.__init__(error, message)
        error.agent = details.get("agent", "")
        error.steps = details.get("steps", 0)
        return error


class MaxStepsExceeded(AgentError):
    """The model was still calling tools when the agent's ``max_steps`` ran out."""


class InvalidOutput(AgentError):
    """The final answer did not decode into the agent's ``output_type``, after the model
    was shown the validation error the allowed number of times."""


class TaskTimeout(AgentError):
    """The task's deadline passed before a final answer."""


class ToolUnavailable(AgentError):
    """The model called one of the agent's tools but no tool executor serves it."""


class HandoffLimitExceeded(AgentError):
    """The model handed the task on once more than the agent's ``max_handoffs`` allows
    (a loop of agents passing it around, most likely)."""


class HandoffFailed(AgentError):
    """The model handed the task to an agent that no one runs."""


_AGENT_ERRORS: dict[str, type[AgentError]] = {
    cls.__name__: cls
    for cls in (
        MaxStepsExceeded,
        InvalidOutput,
        TaskTimeout,
        ToolUnavailable,
        HandoffLimitExceeded,
        HandoffFailed,
    )
}


async def ask(
    via: Bus | Context,
    agent: str,
    content: str,
    *,
    conversation_id: str = "",
    timeout: float | None = None,
) -> AgentResult:
    """Give ``agent`` a task and return its :class:`AgentResult`.

    Raises what ended the task, as itself: an :class:`AgentError` subclass, or the
    :class:`~agents.llm.errors.LLMError` of a call the gateway could not answer.
    ``via`` is the bus, or a handler's context (then the task is part of its causation
    tree and cancelled with it). ``timeout`` None leaves the agent's own ``deadline``.
    """
    task = Task(content=content, conversation_id=conversation_id, timeout=timeout)
    # Without a timeout the agent's own deadline applies, which only it knows: the bus
    # then waits as long as it takes (the agent always ends a task by its deadline).
    wait = math.inf if timeout is None else timeout + ASK_MARGIN
    try:
        return await via.request(inbox_topic(agent), task, timeout=wait)
    except RequestTimeout:
        raise TaskTimeout(f"no answer within {timeout:g}s", agent=agent) from None
    except RemoteError as exc:
        raise restore(exc) from exc


def restore(exc: RemoteError) -> BaseException:
    """The agent or LLM error a remote error stands for (or the remote error itself)."""
    agent_error = _AGENT_ERRORS.get(exc.remote_type)
    if agent_error is not None:
        return agent_error.rebuild(exc.remote_message, dict(exc.remote_details))
    return restore_llm_error(exc)


def task_timeout(name: str, timeout: float, steps: int, last: str = "") -> TaskTimeout:
    """What ends a task whose deadline of ``timeout`` seconds passed at step ``steps``."""
    return TaskTimeout(
        f"no final answer within {timeout:g}s (step {steps}{last})", agent=name, steps=steps
    )


async def _report(
    name: str, failed: Callable[[str], Awaitable[None]], text: str, ends: float
) -> None:
    """Report what ended a task. Its answer is owed by the deadline (``ends``): an event
    whose subscribers have no room (a slow reader of the agent's events) may hold it only
    REPORT_GRACE past that (it held the answer, and an ask without a timeout, forever)."""
    try:
        async with asyncio.timeout(max(ends - time.monotonic(), 0.0) + REPORT_GRACE):
            await failed(text)
    except TimeoutError:
        log.warning("agent %r: its 'failed' event found no room in time: %s", name, text)


async def answer_by_deadline(
    name: str,
    timeout: float,
    work: Coroutine[Any, Any, AgentResult],
    step: Callable[[], int],
    failed: Callable[[str], Awaitable[None]],
    grid: DeadlineGrid,
) -> AgentResult:
    """Await a task's ``work`` within ``timeout`` seconds (watched on the actor's ``grid``:
    a set insert, where asyncio.timeout's loop timer cost three times as much a task; the
    grid should be a fine one, see :data:`TASK_GRID_WIDTH`); report what ended it (through
    ``failed``) and raise it as the asker should see it.

    An LLM call is given only the task's remaining time, so it may run out of it first:
    an LLM error at the deadline is the deadline too (:class:`TaskTimeout`), whichever
    timer fired first. A ``TimeoutError`` of the work's own is raised as it is.
    """
    deadline = TaskDeadline(grid, timeout)
    ends = time.monotonic() + timeout - DEADLINE_SLACK

    try:
        return await work
    except asyncio.CancelledError:
        timed_out = deadline.expired()
        deadline.stop()
        if not timed_out:
            raise  # cancelled from outside: the asker gave up, or the bus is closing
        error = task_timeout(name, timeout, step())
        await _report(name, failed, str(error), ends)
        raise error from None
    except LLMError as exc:
        deadline.stop()  # (before reporting: the report may wait, and is not the work)
        if time.monotonic() < ends:
            await _report(name, failed, f"{type(exc).__name__}: {exc}", ends)
            raise
        error = task_timeout(name, timeout, step(), f"; last: {exc}")
        await _report(name, failed, str(error), ends)
        raise error from exc
    except Exception as exc:
        deadline.stop()
        await _report(name, failed, f"{type(exc).__name__}: {exc}", ends)
        raise
    finally:
        deadline.stop()  # (again after the except clauses: it is a no-op the second time)
