"""The agent loop against the real mock LLM over loopback, with real tools and memory."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import Any

import anyio
import msgspec
import pytest

from agents.agent import Agent
from agents.llm import Backoff, Endpoint, LLMGateway, MockLLM, Policy, RetriesExhausted, Rule
from agents.llm.policy import ScriptedCall
from agents.llm.wire import AssistantMessage, ToolMessage, UserMessage
from agents.memory import MEMORY_WINDOW, InMemoryStore, MemoryWindow
from agents.task import (
    AgentEvent,
    AgentResult,
    InvalidOutput,
    MaxStepsExceeded,
    Task,
    TaskTimeout,
    ToolUnavailable,
    ask,
    events_topic,
    inbox_topic,
)
from bus import Bus, Envelope
from tools import Tool, ToolExecutor, calculator, tool

pytestmark = pytest.mark.anyio


class World:
    """A bus with memory, a tool executor, the gateway and the mock behind it."""

    def __init__(self, bus: Bus, gateway: LLMGateway, executor: ToolExecutor | None) -> None:
        self.bus = bus
        self.gateway = gateway
        self.executor = executor
        self.envelopes: list[Envelope] = []
        bus.tap(">", self.envelopes.append)

    def events(self, agent: str) -> list[AgentEvent]:
        subject = events_topic(agent).subject
        return [e.payload for e in self.envelopes if e.subject == subject]

    async def memory(self, conversation: str) -> list[Any]:
        window = await self.bus.request(MEMORY_WINDOW, MemoryWindow(conversation_id=conversation))
        return window.messages


@asynccontextmanager
async def world(
    policy: Policy | None,
    tools: Sequence[Tool[..., Any]] = (),
    *,
    executor: bool = True,
    faults: dict[str, float] | None = None,
    attempts: int = 3,
    latency: float | None = None,
) -> AsyncIterator[World]:
    mock = MockLLM(policy, faults=faults, latency=latency)
    async with mock as url, Bus("agents", request_timeout=30) as bus:
        await bus.add(InMemoryStore())
        runner = ToolExecutor(tools, default_timeout=10) if executor else None
        if runner is not None:
            await bus.add(runner)
        endpoint = Endpoint(name="mock", base_url=url, model="mock-1", max_concurrency=64)
        gateway = LLMGateway([endpoint], retry=Backoff(max_attempts=attempts, base=0.001))
        await bus.add(gateway)
        yield World(bus, gateway, runner)


def calls(*pairs: tuple[str, Any]) -> list[ScriptedCall]:
    return [ScriptedCall(name=name, arguments=arguments) for name, arguments in pairs]


async def test_an_agent_uses_the_calculator_twice_and_answers_from_the_results() -> None:
    policy = Policy(
        [
            Rule(step=0, tool_calls=calls(("calculator", {"expression": "2+3"})), once=True),
            Rule(step=1, tool_calls=calls(("calculator", {"expression": "5*4"})), once=True),
        ]
    )
    async with world(policy, [calculator]) as w:
        await w.bus.add(Agent("mathy", "You are mathy.", tools=[calculator]))
        result = await ask(w.bus, "mathy", "What is (2+3)*4?", conversation_id="c1")
        assert (result.steps, result.tool_calls) == (3, 2)
        # the mock answers from the results it was shown
        assert result.text == "Based on calculator: 5. Based on calculator: 20."
        assert result.usage.total_tokens > 0 and result.duration > 0
        history = await w.memory("c1")
        assert [type(m).__name__ for m in history] == [
            "UserMessage",
            "AssistantMessage",
            "ToolMessage",
            "AssistantMessage",
            "ToolMessage",
            "AssistantMessage",
        ]
        assert [m.content for m in history if isinstance(m, ToolMessage)] == ["5", "20"]
        kinds = [e.kind for e in w.events("mathy")]
        assert kinds == [
            "step_started",
            "llm_answered",
            "tool_called",
            "tool_answered",
            "step_started",
            "llm_answered",
            "tool_called",
            "tool_answered",
            "step_started",
            "llm_answered",
            "finished",
        ]
    policy.assert_complete()


async def test_the_loop_is_a_tree_of_messages_caused_by_the_task() -> None:
    policy = Policy([Rule(step=0, tool_calls=calls(("calculator", {"expression": "1+1"})))])
    async with world(policy, [calculator]) as w:
        await w.bus.add(Agent("tree", "You are tree.", tools=[calculator]))
        await ask(w.bus, "tree", "one plus one")
        task = next(e for e in w.envelopes if e.subject == "agent.tree.inbox")
        caused = {e.subject for e in w.envelopes if e.causation_id == task.id}
        assert {
            "memory.append",
            "memory.window",
            "llm.chat",
            "tool.call",
            "agent.tree.events",
        } <= caused
        reply = next(e for e in w.envelopes if e.correlation_id == task.id and e.id != task.id)
        assert isinstance(reply.payload, AgentResult)


async def test_tool_calls_of_one_step_run_in_parallel() -> None:
    running = peak = 0
    both_in = anyio.Event()

    @tool
    async def slow(label: str) -> str:
        """Wait for the other call, then answer."""
        nonlocal running, peak
        running += 1
        peak = max(peak, running)
        if running == 2:
            both_in.set()
        with anyio.fail_after(5):
            await both_in.wait()  # a sequential loop would never get here: it would hang
        running -= 1
        return label

    policy = Policy(
        [Rule(step=0, tool_calls=calls(("slow", {"label": "a"}), ("slow", {"label": "b"})))]
    )
    async with world(policy, [slow]) as w:
        await w.bus.add(Agent("par", "You are par.", tools=[slow]))
        result = await ask(w.bus, "par", "two at once", conversation_id="p")
        assert peak == 2 and result.tool_calls == 2
        results = [m.content for m in await w.memory("p") if isinstance(m, ToolMessage)]
        assert results == ["a", "b"]  # in the order of the calls


async def test_every_tool_error_reaches_the_model_which_recovers() -> None:
    @tool
    def explode() -> str:
        """Always fails."""
        raise RuntimeError("the flux capacitor is empty")

    @tool(timeout=0.05)
    async def hang() -> str:
        """Never answers."""
        await anyio.sleep(10)
        return "never"

    broken = [
        ScriptedCall(name="nope", arguments={}),
        ScriptedCall(name="calculator", arguments="{not json"),
        ScriptedCall(name="calculator", arguments={"expression": 5}),
        ScriptedCall(name="explode", arguments={}),
        ScriptedCall(name="hang", arguments={}),
    ]
    policy = Policy(
        [
            Rule(step=0, tool_calls=broken, once=True),
            Rule(step=1, tool_calls=calls(("calculator", {"expression": "6*7"})), once=True),
        ]
    )
    tools = [calculator, explode, hang]
    async with world(policy, tools) as w:
        await w.bus.add(Agent("sturdy", "You are sturdy.", tools=tools))
        result = await ask(w.bus, "sturdy", "try everything", conversation_id="s")
        assert (result.text or "").endswith("Based on calculator: 42.")
        errors = [m.content for m in await w.memory("s") if isinstance(m, ToolMessage)][:5]
        assert "unknown tool 'nope'" in errors[0] and "calculator, explode, hang" in errors[0]
        assert "not valid JSON" in errors[1]
        assert "Expected `str`, got `int` - at `$.expression`" in errors[2]
        assert "RuntimeError: the flux capacitor is empty" in errors[3]
        assert "time limit of 0.05s" in errors[4]
        answered = [e for e in w.events("sturdy") if e.kind == "tool_answered"]
        assert [e.is_error for e in answered] == [True] * 5 + [False]
    policy.assert_complete()


class Measure(msgspec.Struct, frozen=True, kw_only=True):
    value: int
    unit: str


async def test_structured_output_invalid_first_is_corrected_with_the_validation_error() -> None:
    policy = Policy(
        [
            Rule(step=0, json={"value": "lots", "unit": "m"}, once=True),
            Rule(step=1, contains="Expected `int`", json={"value": 20, "unit": "m"}, once=True),
        ]
    )
    async with world(policy) as w:
        await w.bus.add(Agent("typed", "You are typed.", output_type=Measure))
        result = await ask(w.bus, "typed", "how far?", conversation_id="t")
        assert result.output == Measure(value=20, unit="m")
        assert result.steps == 2
        history = await w.memory("t")
        assert isinstance(history[2], UserMessage) and "$.value" in str(history[2].content)
        assert [e.kind for e in w.events("typed")].count("output_invalid") == 1
    policy.assert_complete()


async def test_structured_output_that_stays_invalid_ends_in_a_typed_error() -> None:
    policy = Policy([Rule(text="not json at all")])
    async with world(policy) as w:
        await w.bus.add(Agent("stubborn", "You are stubborn.", output_type=Measure))
        with pytest.raises(InvalidOutput, match="not a valid Measure after 3 tries") as info:
            await ask(w.bus, "stubborn", "how far?")
        assert info.value.agent == "stubborn" and info.value.steps == 3


async def test_max_steps_ends_the_task_with_a_clear_error_not_a_hang() -> None:
    policy = Policy([Rule(tool_calls=calls(("calculator", {"expression": "1+1"})))])
    async with world(policy, [calculator]) as w:
        await w.bus.add(Agent("loopy", "You are loopy.", tools=[calculator], max_steps=4))
        with pytest.raises(MaxStepsExceeded, match="max_steps=4") as info:
            await ask(w.bus, "loopy", "forever")
        assert info.value.steps == 4
        assert w.events("loopy")[-1].kind == "failed"


async def test_the_last_step_is_remembered_when_max_steps_ends_the_loop() -> None:
    # A step's messages are stored with the next step's window request: when no step
    # follows, they are stored on their own, not lost.
    policy = Policy([Rule(tool_calls=calls(("calculator", {"expression": "1+1"})))])
    async with world(policy, [calculator]) as w:
        await w.bus.add(Agent("loopy", "You are loopy.", tools=[calculator], max_steps=2))
        with pytest.raises(MaxStepsExceeded):
            await ask(w.bus, "loopy", "forever", conversation_id="c-max")
        stored = await w.memory("c-max")
        assert [type(m).__name__ for m in stored] == [
            "UserMessage",
            "AssistantMessage",
            "ToolMessage",
            "AssistantMessage",
            "ToolMessage",
        ]


async def test_a_step_ended_by_the_deadline_before_the_next_window_is_remembered() -> None:
    # The deadline falls between a step's act and the next window request (the one that
    # would have stored the step): a slow event subscriber holds step 2's step_started
    # publish until the deadline. The step's messages are stored all the same.
    # (The deadline leaves step 1 — an HTTP call, a window, a tool — time on a slow machine;
    # the reader, held from step 1 on, is held past the deadline however late that comes.)
    async def slow_reader(event: AgentEvent) -> None:
        if event.kind == "tool_called":
            await anyio.sleep(2.0)  # tool_answered then fills the buffer of 1

    policy = Policy([Rule(tool_calls=calls(("calculator", {"expression": "6*7"})))])
    async with world(policy, [calculator]) as w:
        w.bus.subscribe(events_topic("held"), slow_reader, buffer=1)
        await w.bus.add(Agent("held", "You are held.", tools=[calculator], deadline=1.5))
        with pytest.raises(TaskTimeout, match=r"\(step 2\)"):
            await ask(w.bus, "held", "compute", conversation_id="c-held")
        stored = await w.memory("c-held")
        assert [type(m).__name__ for m in stored] == [
            "UserMessage",
            "AssistantMessage",
            "ToolMessage",
        ]
        assert stored[2].content == "42"


async def test_a_reader_of_the_events_that_never_reads_does_not_hold_the_answer(
    caplog: pytest.LogCaptureFixture,
) -> None:
    # The task's deadline passes with its step-2 event stuck behind a full buffer; its
    # 'failed' event cannot get in either. The answer is owed all the same: the report
    # waits REPORT_GRACE at most (it held the asker forever).
    from agents.task import REPORT_GRACE

    stuck = anyio.Event()

    async def stuck_reader(event: AgentEvent) -> None:
        if event.kind == "tool_called":
            await stuck.wait()

    policy = Policy([Rule(tool_calls=calls(("calculator", {"expression": "6*7"})))])
    async with world(policy, [calculator]) as w:
        w.bus.subscribe(events_topic("stuck"), stuck_reader, buffer=1)
        await w.bus.add(Agent("stuck", "You are stuck.", tools=[calculator], deadline=1.0))
        started = time.monotonic()
        with anyio.fail_after(20), pytest.raises(TaskTimeout, match=r"within 1s \(step 2\)"):
            await ask(w.bus, "stuck", "compute")  # no timeout of its own: the agent's deadline
        assert time.monotonic() - started >= 1.0 + REPORT_GRACE - 0.1
        assert "its 'failed' event found no room in time" in caplog.text
        stuck.set()


async def test_cancelling_a_task_mid_step_leaves_nothing_running() -> None:
    entered = anyio.Event()
    outcome: list[str] = []

    @tool
    async def forever() -> str:
        """Runs until cancelled."""
        entered.set()
        try:
            await anyio.sleep(30)
        finally:
            outcome.append("tool cancelled")
        return "never"

    policy = Policy([Rule(tool_calls=calls(("forever", {})))])
    async with world(policy, [forever]) as w:
        w.executor.default_timeout = 60  # type: ignore[union-attr]
        await w.bus.add(Agent("patient", "You are patient.", tools=[forever]))
        async with anyio.create_task_group() as group:
            group.start_soon(ask, w.bus, "patient", "wait")
            with anyio.fail_after(5):
                await entered.wait()
            group.cancel_scope.cancel()
        with anyio.fail_after(5):
            await w.bus.drain()
        assert outcome == ["tool cancelled"]
        stats = w.bus.stats()
        assert stats.in_flight == 0 and stats.balanced
        assert w.executor.stats().in_flight == 0  # type: ignore[union-attr]
        assert w.gateway.stats().in_flight == 0


async def test_a_task_deadline_ends_it_with_task_timeout() -> None:
    @tool
    async def slowpoke() -> str:
        """Slow."""
        await anyio.sleep(5)
        return "late"

    policy = Policy([Rule(tool_calls=calls(("slowpoke", {})))])
    async with world(policy, [slowpoke]) as w:
        await w.bus.add(Agent("hasty", "You are hasty.", tools=[slowpoke]))
        with pytest.raises(TaskTimeout, match=r"within 0\.2s"):
            await ask(w.bus, "hasty", "quick", timeout=0.2)
        assert w.events("hasty")[-1].kind == "failed"


async def test_an_llm_failure_after_retries_ends_the_task_named() -> None:
    async with world(None, faults={"500": 1.0}, attempts=2) as w:
        await w.bus.add(Agent("unlucky", "You are unlucky."))
        with pytest.raises(RetriesExhausted, match="2 attempts failed"):
            await ask(w.bus, "unlucky", "hello")
        failed = w.events("unlucky")[-1]
        assert failed.kind == "failed" and "RetriesExhausted" in (failed.text or "")


async def test_a_tool_with_no_executor_fails_the_task_clearly() -> None:
    policy = Policy([Rule(tool_calls=calls(("calculator", {"expression": "1"})))])
    async with world(policy, [calculator], executor=False) as w:
        await w.bus.add(Agent("alone", "You are alone.", tools=[calculator]))
        with pytest.raises(ToolUnavailable, match="no tool executor"):
            await ask(w.bus, "alone", "compute")


async def test_a_conversation_continues_across_tasks() -> None:
    async with world(None) as w:
        await w.bus.add(Agent("chatty", "You are chatty."))
        await ask(w.bus, "chatty", "first question", conversation_id="x")
        await ask(w.bus, "chatty", "second question", conversation_id="x")
        history = await w.memory("x")
        assert [m.content for m in history if isinstance(m, UserMessage)] == [
            "first question",
            "second question",
        ]
        assert sum(isinstance(m, AssistantMessage) for m in history) == 2


async def test_a_thousand_conversations_on_ten_agents_get_their_own_answers() -> None:
    async with world(None) as w:
        for k in range(10):
            await w.bus.add(Agent(f"a{k}", f"You are a{k}.", concurrency=100))
        results: dict[int, AgentResult] = {}

        async def one(n: int) -> None:
            results[n] = await ask(
                w.bus, f"a{n % 10}", f"question {n}", conversation_id=f"conv-{n}"
            )

        with anyio.fail_after(60):
            async with anyio.create_task_group() as group:
                for n in range(1000):
                    group.start_soon(one, n)
        for n, result in results.items():
            assert result.agent == f"a{n % 10}" and result.conversation_id == f"conv-{n}"
            assert f'"question {n}"' in (result.text or "")
        for n in (0, 517, 999):
            history = await w.memory(f"conv-{n}")
            assert [m.content for m in history if isinstance(m, UserMessage)] == [f"question {n}"]
        assert len(results) == 1000 and w.bus.stats().balanced


async def test_bad_agent_definitions_are_refused() -> None:
    with pytest.raises(ValueError, match="one subject token"):
        Agent("has.dot", "x")
    with pytest.raises(ValueError, match="max_steps"):
        Agent("ok", "x", max_steps=0)
    with pytest.raises(ValueError, match="share a name"):
        Agent("ok", "x", tools=[calculator, calculator])


async def test_a_task_sent_directly_gets_its_own_conversation() -> None:
    async with world(None) as w:
        await w.bus.add(Agent("direct", "You are direct."))
        result = await w.bus.request(inbox_topic("direct"), Task(content="hi"))
        assert result.conversation_id  # the task's id
        assert len(await w.memory(result.conversation_id)) == 2


async def test_an_llm_call_cut_short_by_the_task_deadline_ends_it_as_task_timeout() -> None:
    async with world(None, latency=2.0) as w:
        await w.bus.add(Agent("slow", "You are slow.", deadline=0.3))
        with pytest.raises(TaskTimeout, match=r"within 0\.3s \(step 1"):
            await ask(w.bus, "slow", "anything")


async def test_ask_without_a_timeout_leaves_the_agents_own_deadline(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import agents.task

    monkeypatch.setattr(agents.task, "DEFAULT_TASK_DEADLINE", 0.05)  # no longer a cap
    monkeypatch.setattr(agents.task, "ASK_MARGIN", 0.0)

    @tool
    async def ponder() -> str:
        """Takes a while."""
        await anyio.sleep(0.3)
        return "done"

    policy = Policy([Rule(step=0, tool_calls=calls(("ponder", {})))])
    async with world(policy, [ponder]) as w:
        await w.bus.add(Agent("patient", "You are patient.", tools=[ponder], deadline=10))
        result = await ask(w.bus, "patient", "take your time")
        assert result.text == "Based on ponder: done."


async def test_max_steps_spent_on_invalid_output_says_so() -> None:
    policy = Policy([Rule(text="not json")])
    async with world(policy) as w:
        await w.bus.add(
            Agent("picky", "You are picky.", output_type=Measure, max_steps=2, output_retries=5)
        )
        with pytest.raises(MaxStepsExceeded, match=r"its answers did not validate"):
            await ask(w.bus, "picky", "how far?")


class Finding(msgspec.Struct, frozen=True, kw_only=True):
    claim: str


class Report(msgspec.Struct, frozen=True, kw_only=True):
    title: str
    findings: list[Finding]


def test_the_output_schema_is_an_object_at_its_root_as_openai_requires() -> None:
    agent = Agent("reporter", "You are reporter.", output_type=Report)
    assert agent._response_format is not None
    schema = agent._response_format.json_schema.schema
    assert schema is not None and schema["type"] == "object" and "$ref" not in schema
    assert schema["properties"]["findings"]["items"]["properties"] == {"claim": {"type": "string"}}


async def test_events_are_published_only_while_someone_listens() -> None:
    async with MockLLM() as url, Bus("quiet") as bus:
        await bus.add(InMemoryStore())
        endpoint = Endpoint(name="mock", base_url=url, model="mock-1")
        await bus.add(LLMGateway([endpoint]))
        await bus.add(Agent("hush", "You are quiet."))
        await ask(bus, "hush", "hello")
        subject = events_topic("hush").subject
        assert subject not in bus.stats().subjects  # never built, never counted
        heard: list[AgentEvent] = []
        bus.subscribe(events_topic("hush"), heard.append)
        await ask(bus, "hush", "hello again")
        await bus.drain()
        assert [e.kind for e in heard] == ["step_started", "llm_answered", "finished"]
        assert bus.stats().subjects[subject].published == 3
