"""The agent: an actor whose think → act → observe loop is nothing but typed requests.

For each :class:`~agents.task.Task` on ``agent.<name>.inbox``, every step is
``memory.window`` → ``llm.chat`` → the tool calls as parallel ``tool.call`` requests →
``memory.append``, until the model answers without tool calls (the final answer) or
``max_steps`` runs out. Each of these is visible on a tap, and its progress is published
as :class:`~agents.task.AgentEvent` on ``agent.<name>.events``, caused by the task.
"""

from __future__ import annotations

import contextlib
import functools
import time
from collections.abc import Awaitable, Sequence
from typing import Any

import anyio
import msgspec

from bus import (
    DONE,
    Actor,
    BufferFull,
    Context,
    DeadlineGrid,
    NoResponders,
    RemoteError,
    RequestTimeout,
    handler,
)
from tools import TOOL_CALL, Tool, ToolCallRequest, ToolResult
from tools._schema import object_schema

from .llm.client import chat
from .llm.messages import ChatRequest, ChatResult
from .llm.wire import (
    AssistantMessage,
    ChatMessage,
    FunctionTool,
    JsonSchema,
    ResponseFormatJsonSchema,
    SystemMessage,
    ToolCall,
    ToolMessage,
    Usage,
    UserMessage,
)
from .llm.wire import Tool as WireTool
from .memory import MEMORY_APPEND, MEMORY_WINDOW, MemoryAppend, MemoryWindow
from .patterns.delegation import agent_tool
from .patterns.handoff import Handoff, as_handoff, including, pass_on, transfer_reason
from .task import (
    DEFAULT_TASK_DEADLINE,
    TASK_GRID_WIDTH,
    AgentEvent,
    AgentResult,
    EventKind,
    HandoffLimitExceeded,
    InvalidOutput,
    MaxStepsExceeded,
    Task,
    TaskTimeout,
    ToolUnavailable,
    answer_by_deadline,
    events_topic,
    inbox_topic,
    task_timeout,
)

DETAIL_CHARS = 200  # how much of an answer or a tool result an event carries


class Agent(Actor):
    """An agent: ``instructions`` (its system prompt), the ``tools`` it may call, and how
    its answers end.

    ``model`` None uses the gateway's. With ``output_type`` (a msgspec Struct) the final
    answer must be JSON of that type: its schema goes in ``response_format``, and an
    answer that does not decode goes back to the model with the validation error, at most
    ``output_retries`` times, then the task fails with :class:`InvalidOutput`.
    ``concurrency`` is how many tasks it works on at once; ``deadline`` a task's default
    time limit in seconds. The tools run in a :class:`tools.ToolExecutor` on the same bus
    (this class only offers them to the model and sends the calls).

    ``handoffs`` names the agents it may pass the conversation to (see
    :mod:`agents.patterns.handoff`): the model gets a ``transfer_to_<agent>`` tool for
    each; a task handed on more than ``max_handoffs`` times fails with
    :class:`~agents.task.HandoffLimitExceeded`. Several agents of one name share its
    inbox as a queue group: each task goes to one of them.
    """

    def __init__(
        self,
        name: str,
        instructions: str,
        *,
        tools: Sequence[Tool[..., Any]] = (),
        model: str | None = None,
        output_type: type[msgspec.Struct] | None = None,
        max_steps: int = 10,
        output_retries: int = 2,
        temperature: float | None = None,
        max_tokens: int | None = None,
        memory_tokens: int | None = None,
        deadline: float = DEFAULT_TASK_DEADLINE,
        concurrency: int = 256,
        handoffs: Sequence[str | Handoff] = (),
        max_handoffs: int = 5,
    ) -> None:
        super().__init__(name)
        if "." in name or not name.strip() or any(c.isspace() for c in name):
            raise ValueError(f"agent name {name!r} must be one subject token (no dots, spaces)")
        if max_steps < 1 or output_retries < 0 or deadline <= 0 or concurrency < 1:
            raise ValueError(
                "max_steps and concurrency must be >= 1, output_retries >= 0, deadline > 0"
            )
        if max_handoffs < 0:
            raise ValueError(f"agent {name!r}: max_handoffs must be >= 0, got {max_handoffs}")
        self.instructions = instructions
        self.tools = {t.name: t for t in tools}
        if len(self.tools) != len(tools):
            raise ValueError(f"agent {name!r}: two tools share a name")
        self.model = model
        self.output_type = output_type
        self.max_steps = max_steps
        self.output_retries = output_retries
        self.temperature = temperature
        self.max_tokens = max_tokens
        self.memory_tokens = memory_tokens
        self.deadline = deadline
        self.concurrency = concurrency
        self.handoffs = [as_handoff(target) for target in handoffs]
        self.max_handoffs = max_handoffs
        self._transfers = {h.tool_name: h.agent for h in self.handoffs}
        if clash := set(self._transfers) & set(self.tools):
            raise ValueError(f"agent {name!r}: a tool is named like a handoff: {sorted(clash)}")
        if name in self._transfers.values():
            raise ValueError(f"agent {name!r} cannot hand off to itself")
        self._as_tools: dict[tuple[Any, ...], Tool[..., Awaitable[str]]] = {}
        self.inbox = inbox_topic(name)
        self.events = events_topic(name)
        self._system = SystemMessage(content=instructions)
        self._deadlines = DeadlineGrid(TASK_GRID_WIDTH)  # the tasks' deadlines
        specs: list[WireTool] = [msgspec.convert(t.definition(), FunctionTool) for t in tools]
        specs += [h.tool() for h in self.handoffs]
        self._tool_specs = specs or None
        self._response_format = None
        self._output_decoder: msgspec.json.Decoder[Any] | None = None
        if output_type is not None:
            self._response_format = ResponseFormatJsonSchema(
                json_schema=JsonSchema(
                    name=output_type.__name__,
                    schema=object_schema(output_type, f"agent {name!r}: output_type"),
                )
            )
            self._output_decoder = msgspec.json.Decoder(output_type)

    async def on_start(self) -> None:
        # A grid of this start's own: its timers are this loop's, and a restart (on_stop,
        # then this) leaves the tasks still running with the deadlines they have.
        self._deadlines = DeadlineGrid(TASK_GRID_WIDTH)

    def __repr__(self) -> str:
        return f"<Agent {self.name!r} tools={list(self.tools)}>"

    def as_tool(
        self,
        description: str | None = None,
        *,
        name: str | None = None,
        timeout: float | None = None,
    ) -> Tool[..., Awaitable[str]]:
        """This agent as a tool for another agent's model (see
        :func:`agents.patterns.agent_tool`); the same arguments give the same tool."""
        key = (description, name, timeout)
        made = self._as_tools.get(key)
        if made is None:
            if description is None:
                first = self.instructions.strip().splitlines()[0] if self.instructions else ""
                description = f"Give agent {self.name!r} a task; it answers. {first}".strip()
            made = agent_tool(self.name, description, name=name, timeout=timeout)
            self._as_tools[key] = made
        return made

    @handler(lambda self: self.inbox, queue="agent", buffer=65_536)
    async def work(self, task: Task, ctx: Context) -> AgentResult:
        """Run one task to its final answer (or the error that ended it)."""
        run = _Run(self, task, ctx)
        return await answer_by_deadline(
            self.name,
            task.timeout or self.deadline,
            run.loop(),
            lambda: run.step,
            lambda text: run.event("failed", text=text, is_error=True),
            self._deadlines,
        )


class _Run:
    """The state of one task: its conversation, step, usage, and the deadline's clock."""

    def __init__(self, agent: Agent, task: Task, ctx: Context) -> None:
        self.agent = agent
        self.task = task
        self.ctx = ctx
        self.listening = functools.partial(ctx.bus.listening, agent.events)  # (per event)
        self.conversation = task.conversation_id or ctx.id
        self.step = 0
        self.tool_calls = 0
        self.invalid_outputs = 0
        self.prompt_tokens = self.completion_tokens = 0
        self.cost = 0.0
        self.handoff: tuple[str, str] | None = None  # (to whom, why), once the model asks
        self.unsaved: list[ChatMessage] = []  # said but not yet sent to the store
        self.started = time.monotonic()
        self.deadline = self.started + (task.timeout or agent.deadline)

    def event(self, kind: EventKind, **fields: Any) -> Awaitable[None]:
        if not self.listening():
            return DONE  # nobody subscribes or taps: not even built
        text = fields.get("text")
        if text is not None and len(text) > DETAIL_CHARS:  # (clipped only when sent)
            fields["text"] = text[: DETAIL_CHARS - 1] + "…"
        return self.ctx.publish(
            self.agent.events,
            AgentEvent(
                agent=self.agent.name,
                conversation_id=self.conversation,
                kind=kind,
                step=self.step,
                **fields,
            ),
        )

    async def remember(self, messages: list[ChatMessage]) -> None:
        await self.ctx.request(
            MEMORY_APPEND, MemoryAppend(conversation_id=self.conversation, messages=messages)
        )

    def keep(self, messages: list[ChatMessage]) -> None:
        """Store ``messages`` without waiting for the store (the run is ending in an error,
        perhaps cancelled): the publish is routed now, before anything can interrupt it."""
        with contextlib.suppress(BufferFull):  # (then they are in the dead letters)
            self.ctx.publish_nowait(
                MEMORY_APPEND, MemoryAppend(conversation_id=self.conversation, messages=messages)
            )

    async def loop(self) -> AgentResult:
        # What to store before the next window: sent along with the window request (one
        # round trip, not two), or on its own when the loop ends before another window.
        self.unsaved = [] if self.task.handoffs else [UserMessage(content=self.task.content)]
        try:
            return await self.steps()
        except BaseException:  # a deadline, a cancellation, an error: keep what was said
            if self.unsaved:
                self.keep(self.unsaved)
            raise

    async def steps(self) -> AgentResult:
        agent = self.agent
        while self.step < agent.max_steps:
            if time.monotonic() >= self.deadline:  # (the deadline's timer may fire late)
                raise task_timeout(agent.name, self.deadline - self.started, self.step)
            self.step += 1
            await self.event("step_started")
            unsaved, self.unsaved = self.unsaved, []  # (routed with the request, at its await)
            window = await self.ctx.request(
                MEMORY_WINDOW,
                MemoryWindow(
                    conversation_id=self.conversation,
                    max_tokens=agent.memory_tokens,
                    append=unsaved or None,
                ),
            )
            answer = await self.think([agent._system, *window.messages])
            message = answer.message
            calls = answer.tool_calls
            await self.event("llm_answered", text=None if calls else message.content)
            said = AssistantMessage(content=message.content, tool_calls=message.tool_calls)
            if calls:
                results = await self.act(calls)
                if self.handoff is not None:
                    await self.remember([said, *results])  # the target reads the conversation
                    return await self.hand_off(*self.handoff)
                self.unsaved = [said, *results]
                continue
            if agent._output_decoder is not None:
                output, problem = self.decode(message.content)
                if problem is not None:
                    await self.reject(said, problem)
                    continue
            else:
                output = None
            await self.remember([said])
            await self.event("finished", text=message.content)
            return AgentResult(
                agent=agent.name,
                conversation_id=self.conversation,
                text=message.content,
                output=output,
                steps=self.step,
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
        if self.unsaved:  # the last step's tool results are kept as well
            unsaved, self.unsaved = self.unsaved, []
            await self.remember(unsaved)
        why = "its answers did not validate" if self.invalid_outputs else "still calling tools"
        raise MaxStepsExceeded(
            f"no final answer after max_steps={agent.max_steps} steps ({why})",
            agent=agent.name,
            steps=self.step,
        )

    async def think(self, messages: list[ChatMessage]) -> ChatResult:
        agent = self.agent
        result = await chat(
            self.ctx,
            ChatRequest(
                messages=messages,
                model=agent.model,
                tools=agent._tool_specs,
                response_format=agent._response_format,
                temperature=agent.temperature,
                max_tokens=agent.max_tokens,
                agent=agent.name,
                timeout=max(0.001, self.deadline - time.monotonic()),
            ),
        )
        self.prompt_tokens += result.usage.prompt_tokens
        self.completion_tokens += result.usage.completion_tokens
        self.cost += result.cost or 0.0
        return result  # (its llm_answered event is the caller's: it has the calls at hand)

    async def act(self, calls: list[ToolCall]) -> list[ChatMessage]:
        """Run every tool call of one answer at once; their results, in the calls' order."""
        self.tool_calls += len(calls)
        if len(calls) == 1:  # the common case needs no task group
            result = await self.call_tool(calls[0])
            return [ToolMessage(content=result.content, tool_call_id=calls[0].id)]
        results: list[ChatMessage] = [ToolMessage(content="", tool_call_id=c.id) for c in calls]

        failures: list[Exception] = []

        async def one(index: int, call: ToolCall) -> None:
            try:
                result = await self.call_tool(call)
            except Exception as exc:  # noqa: BLE001 - re-raised below, unwrapped
                failures.append(exc)
                group.cancel_scope.cancel()
                return
            results[index] = ToolMessage(content=result.content, tool_call_id=call.id)

        async with anyio.create_task_group() as group:
            for index, call in enumerate(calls):
                group.start_soon(one, index, call)
        if failures:
            raise failures[0]  # itself, not wrapped in an exception group
        return results

    async def call_tool(self, call: ToolCall) -> ToolResult:
        name = call.function.name
        arguments = call.function.arguments
        await self.event("tool_called", tool=name, call_id=call.id, text=arguments)
        if name in self.agent._transfers:
            result = self.transfer(call)
        elif name not in self.agent.tools:
            offered = ", ".join(sorted(self.agent.tools)) or "none"
            result = ToolResult(
                call_id=call.id,
                name=name,
                content=f"unknown tool {name!r}: this agent's tools are: {offered}",
                is_error=True,
            )
        else:
            result = await self.send_tool_call(call)
        await self.event(
            "tool_answered",
            tool=name,
            call_id=call.id,
            text=result.content,
            is_error=result.is_error,
        )
        return result

    async def send_tool_call(self, call: ToolCall) -> ToolResult:
        name = call.function.name
        request = ToolCallRequest(
            call_id=call.id,
            name=name,
            arguments=call.function.arguments,
            conversation_id=self.conversation,
            agent=self.agent.name,
        )
        try:
            return await self.ctx.request(
                TOOL_CALL, request, timeout=max(0.001, self.deadline - time.monotonic())
            )
        except NoResponders:
            raise ToolUnavailable(
                f"the model called tool {name!r}, but no tool executor answers tool.call",
                agent=self.agent.name,
                steps=self.step,
            ) from None
        except RequestTimeout:
            raise TaskTimeout(
                f"tool {name!r} did not answer before the task's deadline",
                agent=self.agent.name,
                steps=self.step,
            ) from None
        except RemoteError as exc:  # an executor failing is a result the model can read
            return ToolResult(call_id=call.id, name=name, content=str(exc), is_error=True)

    def transfer(self, call: ToolCall) -> ToolResult:
        """Note the model's wish to hand off (the first one of an answer counts)."""
        target = self.agent._transfers[call.function.name]
        name = call.function.name
        if self.handoff is not None:
            content = f"not transferred: this answer already transfers to {self.handoff[0]!r}"
            return ToolResult(call_id=call.id, name=name, content=content, is_error=True)
        path = [*self.task.handoffs, self.agent.name, target]
        if len(path) - 1 > self.agent.max_handoffs:
            raise HandoffLimitExceeded(
                f"handing off to {target!r} would exceed max_handoffs={self.agent.max_handoffs}"
                f" ({' -> '.join(path)})",
                agent=self.agent.name,
                steps=self.step,
            )
        self.handoff = (target, transfer_reason(call.function.arguments))
        return ToolResult(call_id=call.id, name=name, content=f"Transferred to {target}.")

    async def hand_off(self, target: str, reason: str) -> AgentResult:
        """Let ``target`` continue this conversation; its result answers this task."""
        await self.event("handed_off", tool=f"transfer_to_{target}", text=f"to {target}: {reason}")
        budget = max(0.001, self.deadline - time.monotonic())
        task = Task(
            content=reason,
            conversation_id=self.conversation,
            timeout=budget,
            handoffs=[*self.task.handoffs, self.agent.name],
        )
        result = await pass_on(self.ctx, target, task, budget=budget)
        return including(
            result,
            steps=self.step,
            tool_calls=self.tool_calls,
            usage=Usage(prompt_tokens=self.prompt_tokens, completion_tokens=self.completion_tokens),
            cost=self.cost,
            duration=time.monotonic() - self.started,
        )

    def decode(self, content: str | None) -> tuple[Any, str | None]:
        """The structured output, or why the answer is not one."""
        assert self.agent._output_decoder is not None
        if not content:
            return None, "the answer was empty; a JSON value was expected"
        try:
            return self.agent._output_decoder.decode(content), None
        except (msgspec.DecodeError, msgspec.ValidationError) as exc:
            return None, str(exc)

    async def reject(self, said: AssistantMessage, problem: str) -> None:
        """Show the model why its answer is not the required output, or give up."""
        agent = self.agent
        self.invalid_outputs += 1
        await self.event("output_invalid", text=problem, is_error=True)
        if self.invalid_outputs > agent.output_retries:
            wanted = agent.output_type.__name__ if agent.output_type else "output"
            raise InvalidOutput(
                f"the answer is not a valid {wanted} after {self.invalid_outputs} tries: {problem}",
                agent=agent.name,
                steps=self.step,
            )
        correction = UserMessage(
            content=(
                f"Your answer does not match the required JSON schema: {problem}. "
                "Answer again with only the corrected JSON."
            )
        )
        await self.remember([said, correction])
