"""Supervisor/worker: split a task, fan the parts out to a pool of workers, combine.

A :class:`Supervisor` takes tasks like an agent (a :class:`~agents.task.Task` on
``agent.<name>.inbox``, answered with an :class:`~agents.task.AgentResult`), so it can be
asked, delegated to and handed off to like one. The workers are agents sharing one name:
several :class:`~agents.Agent` instances of a name form a queue group on its inbox, so
the subtasks, sent all at once, are spread over them round-robin.
"""

from __future__ import annotations

import inspect
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Annotated, Any, TypeVar

import anyio
import msgspec

from bus import Actor, Context, DeadlineGrid, HivebusError, handler
from tools import Tool
from tools._schema import object_schema

from ..llm.client import chat
from ..llm.messages import ChatRequest, ChatResult
from ..llm.wire import (
    AssistantMessage,
    ChatMessage,
    JsonSchema,
    ResponseFormatJsonSchema,
    SystemMessage,
    Usage,
    UserMessage,
)
from ..memory import MEMORY_APPEND, MEMORY_WINDOW, MemoryAppend, MemoryWindow
from ..task import (
    DEFAULT_TASK_DEADLINE,
    TASK_GRID_WIDTH,
    AgentEvent,
    AgentResult,
    EventKind,
    InvalidOutput,
    Task,
    answer_by_deadline,
    ask,
    events_topic,
    inbox_topic,
)
from .delegation import agent_tool, answer_text

T = TypeVar("T")


class Subtask(msgspec.Struct, frozen=True, kw_only=True):
    """One part of a plan: a ``task`` a worker can do alone."""

    task: Annotated[str, msgspec.Meta(min_length=1)]


class Plan(msgspec.Struct, frozen=True, kw_only=True):
    """A task split into subtasks (the planning LLM's answer):
    ``{"subtasks": [{"task": "..."}, ...]}``."""

    subtasks: Annotated[list[Subtask], msgspec.Meta(min_length=1)]


class SubtaskResult(msgspec.Struct, frozen=True, kw_only=True):
    """A subtask and the worker's result for it."""

    subtask: str
    result: AgentResult


PlanFunction = Callable[[str], Sequence[str] | Awaitable[Sequence[str]]]
"""Splits a task (its text) into subtasks."""
CombineFunction = Callable[[str, Sequence[SubtaskResult]], str | Awaitable[str]]
"""Combines the workers' results (in the plan's order) into the answer to the task."""

_PLAN_FORMAT = ResponseFormatJsonSchema(
    json_schema=JsonSchema(name="Plan", schema=object_schema(Plan, "the supervisor's Plan"))
)
_PLAN_DECODER = msgspec.json.Decoder(Plan)


class Supervisor(Actor):
    """Answers a task by splitting it (``plan``), asking ``workers`` (an agent name: one
    agent, or a pool of agents sharing the name) for every subtask at once, and combining
    their results (``combine``).

    Without ``plan``, the LLM splits the task into at most ``max_subtasks`` subtasks as
    JSON (a :class:`Plan`), shown its mistakes up to ``plan_attempts`` answers in all,
    then the task fails with :class:`~agents.task.InvalidOutput`. Without ``combine``,
    the LLM writes the answer from the results. ``instructions`` is the system prompt of
    both calls. A worker's failure fails the task with the worker's error; ``deadline``
    is a task's default time limit in seconds. The answer's counts (steps, tool calls,
    tokens, cost) include the workers'.

    Like an agent, it keeps the task and its answer in the task's conversation; handed
    a conversation (``Task.handoffs``), it works on the last request in it.
    """

    def __init__(
        self,
        name: str,
        workers: str,
        *,
        instructions: str | None = None,
        plan: PlanFunction | None = None,
        combine: CombineFunction | None = None,
        max_subtasks: int = 8,
        plan_attempts: int = 2,
        model: str | None = None,
        temperature: float | None = None,
        deadline: float = DEFAULT_TASK_DEADLINE,
        concurrency: int = 64,
    ) -> None:
        super().__init__(name)
        if "." in name or not name.strip() or any(c.isspace() for c in name):
            raise ValueError(f"supervisor name {name!r} must be one subject token")
        if workers == name:
            raise ValueError(f"supervisor {name!r} cannot be its own worker")
        if max_subtasks < 1 or plan_attempts < 1 or deadline <= 0 or concurrency < 1:
            raise ValueError(
                "max_subtasks, plan_attempts and concurrency must be >= 1, deadline > 0"
            )
        self.workers = workers
        self.instructions = instructions or (
            f"You are {name}, a supervisor: you split a task into independent subtasks "
            "for your workers, then combine their results into one answer."
        )
        self.plan = plan
        self.combine = combine
        self.max_subtasks = max_subtasks
        self.plan_attempts = plan_attempts
        self.model = model
        self.temperature = temperature
        self.deadline = deadline
        self.concurrency = concurrency
        self.inbox = inbox_topic(name)
        self.events = events_topic(name)
        self._deadlines = DeadlineGrid(TASK_GRID_WIDTH)  # the tasks' deadlines

    async def on_start(self) -> None:
        # A grid of this start's own: its timers are this loop's, and a restart (on_stop,
        # then this) leaves the tasks still running with the deadlines they have.
        self._deadlines = DeadlineGrid(TASK_GRID_WIDTH)

    def __repr__(self) -> str:
        return f"<Supervisor {self.name!r} workers={self.workers!r}>"

    def as_tool(
        self, description: str | None = None, *, name: str | None = None
    ) -> Tool[..., Awaitable[str]]:
        """This supervisor as a tool for an agent's model (see
        :func:`~agents.patterns.agent_tool`)."""
        text = description or f"Give {self.name!r} a task; its workers share it out."
        return agent_tool(self.name, text, name=name)

    @handler(lambda self: self.inbox, queue="agent", buffer=65_536)
    async def work(self, task: Task, ctx: Context) -> AgentResult:
        """Plan, fan out, combine: the answer to one task."""
        run = _SupervisorRun(self, task, ctx)
        return await answer_by_deadline(
            self.name,
            task.timeout or self.deadline,
            run.run(),
            lambda: run.steps,
            lambda text: run.event("failed", text=text, is_error=True),
            self._deadlines,
        )


class _SupervisorRun:
    def __init__(self, supervisor: Supervisor, task: Task, ctx: Context) -> None:
        self.supervisor = supervisor
        self.task = task
        self.ctx = ctx
        self.conversation = task.conversation_id or ctx.id
        self.steps = 0
        self.tool_calls = 0
        self.prompt_tokens = self.completion_tokens = 0
        self.cost = 0.0
        self.started = time.monotonic()
        self.deadline = self.started + (task.timeout or supervisor.deadline)
        self.content = task.content

    async def event(self, kind: EventKind, **fields: Any) -> None:
        event = AgentEvent(
            agent=self.supervisor.name,
            conversation_id=self.conversation,
            kind=kind,
            step=self.steps,
            **fields,
        )
        await self.ctx.publish(self.supervisor.events, event)

    async def run(self) -> AgentResult:
        self.content = await self.read_task()
        subtasks = await self.split()
        results = await self.fan_out(subtasks)
        for each in results:
            self.steps += each.result.steps
            self.tool_calls += each.result.tool_calls
            self.add(each.result.usage, each.result.cost)
        text = await self.join(results)
        await self.remember([AssistantMessage(content=text)])
        await self.event("finished", text=text[:200])
        return AgentResult(
            agent=self.supervisor.name,
            conversation_id=self.conversation,
            text=text,
            steps=self.steps,
            tool_calls=self.tool_calls,
            usage=Usage(
                prompt_tokens=self.prompt_tokens,
                completion_tokens=self.completion_tokens,
                total_tokens=self.prompt_tokens + self.completion_tokens,
            ),
            duration=time.monotonic() - self.started,
            cost=self.cost,
            handoffs=self.task.handoffs,
        )

    async def read_task(self) -> str:
        """The task's text; after a handoff, the request the conversation ends with."""
        if not self.task.handoffs:
            await self.remember([UserMessage(content=self.task.content)])
            return self.task.content
        window = await self.ctx.request(
            MEMORY_WINDOW, MemoryWindow(conversation_id=self.conversation)
        )
        asked = [m.content for m in window.messages if isinstance(m, UserMessage)]
        last = asked[-1] if asked and isinstance(asked[-1], str) else ""
        if not last:
            return self.task.content
        return f"{last}\n\n({self.task.handoffs[-1]} handed this over: {self.task.content})"

    async def remember(self, messages: list[ChatMessage]) -> None:
        append = MemoryAppend(conversation_id=self.conversation, messages=messages)
        await self.ctx.request(MEMORY_APPEND, append)

    def add(self, usage: Usage, cost: float | None) -> None:
        self.prompt_tokens += usage.prompt_tokens
        self.completion_tokens += usage.completion_tokens
        self.cost += cost or 0.0

    async def think(self, messages: list[ChatMessage], *, structured: bool = False) -> ChatResult:
        supervisor = self.supervisor
        self.steps += 1
        result = await chat(
            self.ctx,
            ChatRequest(
                messages=messages,
                model=supervisor.model,
                temperature=supervisor.temperature,
                response_format=_PLAN_FORMAT if structured else None,
                agent=supervisor.name,
                timeout=max(0.001, self.deadline - time.monotonic()),
            ),
        )
        self.add(result.usage, result.cost)
        await self.event("llm_answered", text=(result.text or "")[:200])
        return result

    async def split(self) -> list[str]:
        supervisor = self.supervisor
        if supervisor.plan is not None:
            subtasks = list(await _maybe_await(supervisor.plan(self.content)))
            problem = _problem(subtasks, supervisor.max_subtasks)
            if problem is not None:
                raise InvalidOutput(f"the plan function's plan: {problem}", agent=supervisor.name)
            return subtasks
        return await self.split_by_llm()

    async def split_by_llm(self) -> list[str]:
        supervisor = self.supervisor
        ask_for = (
            f"{self.content}\n\nSplit this task into at most {supervisor.max_subtasks} "
            "independent subtasks that workers can do in parallel, each complete and "
            'self-contained. Answer with JSON: {"subtasks": [{"task": "..."}, ...]}.'
        )
        messages: list[ChatMessage] = [
            SystemMessage(content=supervisor.instructions),
            UserMessage(content=ask_for),
        ]
        problem = ""
        for _ in range(supervisor.plan_attempts):
            answer = (await self.think(messages, structured=True)).text or ""
            try:
                subtasks = [each.task for each in _PLAN_DECODER.decode(answer).subtasks]
            except (msgspec.DecodeError, msgspec.ValidationError) as exc:
                problem = str(exc)
            else:
                found = _problem(subtasks, supervisor.max_subtasks)
                if found is None:
                    return subtasks
                problem = found
            retry = f"Your plan is not valid: {problem}. Answer again with only the JSON."
            messages += [AssistantMessage(content=answer), UserMessage(content=retry)]
        raise InvalidOutput(
            f"no valid plan after {supervisor.plan_attempts} tries: {problem}",
            agent=supervisor.name,
            steps=self.steps,
        )

    async def fan_out(self, subtasks: list[str]) -> list[SubtaskResult]:
        """Every subtask to the workers at once; the results in the plan's order."""
        results: list[AgentResult | None] = [None] * len(subtasks)
        failures: list[HivebusError] = []

        async def one(index: int, subtask: str) -> None:
            budget = max(0.001, self.deadline - time.monotonic())
            try:
                results[index] = await ask(
                    self.ctx, self.supervisor.workers, subtask, timeout=budget
                )
            except HivebusError as exc:  # re-raised below, not wrapped in a group
                failures.append(exc)
                group.cancel_scope.cancel()

        async with anyio.create_task_group() as group:
            for index, subtask in enumerate(subtasks):
                group.start_soon(one, index, subtask)
        if failures:
            raise failures[0]
        return [
            SubtaskResult(subtask=subtask, result=result)
            for subtask, result in zip(subtasks, results, strict=True)
            if result is not None
        ]

    async def join(self, results: list[SubtaskResult]) -> str:
        supervisor = self.supervisor
        if supervisor.combine is not None:
            return await _maybe_await(supervisor.combine(self.content, results))
        parts = "\n\n".join(
            f"## Subtask {number}: {each.subtask}\n{answer_text(each.result)}"
            for number, each in enumerate(results, 1)
        )
        request = (
            f"The task: {self.content}\n\nYour workers' results:\n\n{parts}\n\n"
            "Combine them into the final answer to the task."
        )
        messages: list[ChatMessage] = [
            SystemMessage(content=supervisor.instructions),
            UserMessage(content=request),
        ]
        return (await self.think(messages)).text or ""


def _problem(subtasks: Sequence[str], most: int) -> str | None:
    if not subtasks or not all(s.strip() for s in subtasks):
        return "it needs at least one subtask, none of them empty"
    if len(subtasks) > most:
        return f"{len(subtasks)} subtasks, but at most {most} are allowed"
    return None


async def _maybe_await(value: T | Awaitable[T]) -> T:
    if inspect.isawaitable(value):
        return await value
    return value
