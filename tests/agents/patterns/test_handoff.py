"""Handoff: the model passes the conversation to another agent, which answers the task."""

from __future__ import annotations

import anyio
import pytest

from agents import Agent, MaxStepsExceeded, TaskTimeout
from agents.llm import Policy, Rule
from agents.llm.policy import ScriptedCall
from agents.llm.wire import AssistantMessage, ToolMessage, UserMessage
from agents.patterns import Handoff, HandoffFailed, HandoffLimitExceeded
from tools import calculator, tool

from .world import calls, world

pytestmark = pytest.mark.anyio

TRANSFERS = ["transfer_to_billing", "transfer_to_technical"]


def triage(**options: object) -> Agent:
    return Agent(
        "triage",
        "You are triage. You route customers.",
        handoffs=[Handoff(agent="billing", description="Payments, refunds."), "technical"],
        **options,  # type: ignore[arg-type]
    )


async def test_the_target_continues_the_same_conversation_and_answers_the_task() -> None:
    policy = Policy(
        [
            Rule(
                agent="triage",
                step=0,
                tools=TRANSFERS,  # offered to the model as tools
                tool_calls=calls("transfer_to_billing", reason="refund request"),
                once=True,
            ),
            # billing sees triage's turn: one assistant message before its first step
            Rule(agent="billing", step=1, text="Your refund is on its way.", once=True),
        ]
    )
    async with world(policy) as w:
        await w.runtime.add(triage(), Agent("billing", "You are billing."))
        result = await w.runtime.ask("triage", "I want my money back", conversation_id="c")
        assert (result.agent, result.text) == ("billing", "Your refund is on its way.")
        assert result.handoffs == ["triage"] and result.conversation_id == "c"
        assert (result.steps, result.tool_calls) == (2, 1)  # the whole task's
        history = await w.memory("c")
        assert [type(m) for m in history] == [
            UserMessage,
            AssistantMessage,
            ToolMessage,
            AssistantMessage,
        ]
        assert history[0].content == "I want my money back"  # appended once
        assert history[2].content == "Transferred to billing."
        handed = [e for e in w.events("triage") if e.kind == "handed_off"]
        assert [(e.tool, e.text) for e in handed] == [
            ("transfer_to_billing", "to billing: refund request")
        ]
        assert "finished" not in w.kinds("triage") and w.kinds("billing")[-1] == "finished"
        # the target's task is caused by the original one, and continues it
        passed = w.on("agent.billing.inbox")[0]
        assert w.parent(passed).subject == "agent.triage.inbox"
        assert passed.payload.handoffs == ["triage"] and passed.payload.content == "refund request"
    policy.assert_complete()


async def test_usage_and_cost_cover_every_agent_the_task_passed_through() -> None:
    policy = Policy(
        [
            Rule(agent="a", tool_calls=calls("transfer_to_b", reason="b knows")),
            Rule(agent="b", tool_calls=calls("transfer_to_c", reason="c knows")),
            Rule(agent="c", text="c answers"),
        ]
    )
    async with world(policy, priced=True) as w:
        await w.runtime.add(
            Agent("a", "You are a.", handoffs=["b"]),
            Agent("b", "You are b.", handoffs=["c"]),
            Agent("c", "You are c."),
        )
        result = await w.runtime.ask("a", "who knows?")
        assert (result.agent, result.handoffs, result.steps) == ("c", ["a", "b"], 3)
        total = w.runtime.gateway.stats().total
        assert total.calls == 3
        assert result.usage.total_tokens == total.prompt_tokens + total.completion_tokens
        assert result.cost == pytest.approx(total.cost) and result.cost > 0


async def test_a_handoff_loop_ends_with_a_typed_error_naming_the_path() -> None:
    policy = Policy(
        [
            Rule(agent="ping", tool_calls=calls("transfer_to_pong", reason="yours")),
            Rule(agent="pong", tool_calls=calls("transfer_to_ping", reason="no, yours")),
        ]
    )
    async with world(policy) as w:
        await w.runtime.add(
            Agent("ping", "You are ping.", handoffs=["pong"], max_handoffs=3),
            Agent("pong", "You are pong.", handoffs=["ping"], max_handoffs=3),
        )
        with pytest.raises(HandoffLimitExceeded, match="max_handoffs=3") as info:
            await w.runtime.ask("ping", "whose is it?")
        assert "ping -> pong -> ping -> pong -> ping" in str(info.value)
        assert info.value.agent == "pong"
        handed = [e for name in ("ping", "pong") for e in w.events(name) if e.kind == "handed_off"]
        assert len(handed) == 3
        assert all(w.kinds(name)[-1] == "failed" for name in ("ping", "pong"))


async def test_max_handoffs_zero_forbids_handing_off() -> None:
    policy = Policy([Rule(agent="triage", tool_calls=calls("transfer_to_technical", reason="x"))])
    async with world(policy) as w:
        await w.runtime.add(triage(max_handoffs=0), Agent("technical", "You are technical."))
        with pytest.raises(HandoffLimitExceeded, match="triage -> technical"):
            await w.runtime.ask("triage", "it is broken")
        assert w.on("agent.technical.inbox") == []


async def test_handing_off_to_an_agent_nobody_runs_fails_clearly() -> None:
    policy = Policy([Rule(agent="triage", tool_calls=calls("transfer_to_technical", reason="x"))])
    async with world(policy) as w:
        await w.runtime.add(triage())
        with pytest.raises(HandoffFailed, match="no agent 'technical' runs") as info:
            await w.runtime.ask("triage", "it is broken")
        assert info.value.agent == "triage"


async def test_other_tools_of_the_answer_run_and_only_the_first_transfer_counts() -> None:
    answer = [
        ScriptedCall(name="calculator", arguments={"expression": "6*7"}),
        ScriptedCall(name="transfer_to_technical", arguments={"reason": "first"}),
        ScriptedCall(name="transfer_to_billing", arguments={"reason": "second"}),
    ]
    policy = Policy(
        [
            Rule(agent="triage", step=0, tool_calls=answer, once=True),
            Rule(agent="technical", step=1, text="Fixed.", once=True),
        ]
    )
    async with world(policy) as w:
        router = Agent(
            "triage", "You are triage.", tools=[calculator], handoffs=["billing", "technical"]
        )
        await w.runtime.add(
            router, Agent("technical", "You are technical."), Agent("billing", "You are billing.")
        )
        result = await w.runtime.ask("triage", "compute, then fix", conversation_id="t")
        assert (result.agent, result.text) == ("technical", "Fixed.")
        results = [m for m in await w.memory("t") if isinstance(m, ToolMessage)]
        assert [m.content for m in results] == [
            "42",
            "Transferred to technical.",
            "not transferred: this answer already transfers to 'technical'",
        ]
        assert w.on("agent.billing.inbox") == []
    policy.assert_complete()


async def test_a_malformed_reason_does_not_stop_the_transfer() -> None:
    policy = Policy(
        [
            Rule(
                agent="triage",
                step=0,
                tool_calls=[ScriptedCall(name="transfer_to_billing", arguments="{oops")],
                once=True,
            ),
            Rule(agent="billing", text="Billing here."),
        ]
    )
    async with world(policy) as w:
        await w.runtime.add(triage(), Agent("billing", "You are billing."))
        result = await w.runtime.ask("triage", "money")
        assert result.agent == "billing"
        assert w.on("agent.billing.inbox")[0].payload.content == "{oops"
    policy.assert_complete()


async def test_a_target_can_hand_back_and_the_conversation_keeps_one_user_message() -> None:
    policy = Policy(
        [
            Rule(agent="triage", step=0, tool_calls=calls("transfer_to_billing", reason="a")),
            Rule(agent="billing", step=1, tool_calls=calls("transfer_to_triage", reason="b")),
            Rule(agent="triage", step=2, text="Back at triage."),
        ]
    )
    async with world(policy) as w:
        await w.runtime.add(triage(), Agent("billing", "You are billing.", handoffs=["triage"]))
        result = await w.runtime.ask("triage", "hello", conversation_id="h")
        assert (result.agent, result.handoffs) == ("triage", ["triage", "billing"])
        history = await w.memory("h")
        assert sum(isinstance(m, UserMessage) for m in history) == 1
        assert [m.content for m in history if isinstance(m, ToolMessage)] == [
            "Transferred to billing.",
            "Transferred to triage.",
        ]


def test_handoff_definitions_are_checked() -> None:
    with pytest.raises(ValueError, match="cannot hand off to itself"):
        Agent("a", "x", handoffs=["a"])
    with pytest.raises(ValueError, match="max_handoffs"):
        Agent("a", "x", handoffs=["b"], max_handoffs=-1)
    with pytest.raises(ValueError, match="not a valid tool name"):
        Agent("a", "x", handoffs=["b c"])
    clash = calculator.__class__(lambda: "x", name="transfer_to_b")
    with pytest.raises(ValueError, match="named like a handoff"):
        Agent("a", "x", tools=[clash], handoffs=["b"])


def test_a_handoff_tool_tells_the_model_when_to_use_it() -> None:
    spec = Handoff(agent="billing", description="Payments, refunds.").tool().function
    assert spec.name == "transfer_to_billing"
    assert spec.description is not None and spec.description.endswith("Payments, refunds.")
    assert spec.parameters is not None and spec.parameters["required"] == ["reason"]


async def test_the_targets_failure_reaches_the_original_caller_as_itself() -> None:
    policy = Policy(
        [
            Rule(agent="triage", tool_calls=calls("transfer_to_technical", reason="broken")),
            Rule(agent="technical", tool_calls=calls("calculator", expression="1+1")),
        ]
    )
    async with world(policy) as w:
        technical = Agent("technical", "You are technical.", tools=[calculator], max_steps=2)
        await w.runtime.add(triage(), technical)
        with pytest.raises(MaxStepsExceeded, match="max_steps=2") as info:
            await w.runtime.ask("triage", "it is broken")
        assert info.value.agent == "technical"
        assert w.kinds("technical")[-1] == "failed" and w.kinds("triage")[-1] == "failed"


async def test_the_tasks_deadline_covers_every_agent_it_is_handed_to() -> None:
    @tool
    async def slow_fix() -> str:
        """Takes too long."""
        await anyio.sleep(10)
        return "fixed"

    policy = Policy(
        [
            Rule(agent="triage", tool_calls=calls("transfer_to_technical", reason="broken")),
            Rule(agent="technical", tool_calls=calls("slow_fix")),
        ]
    )
    async with world(policy) as w:
        await w.runtime.add(triage(), Agent("technical", "You are technical.", tools=[slow_fix]))
        with anyio.fail_after(5), pytest.raises(TaskTimeout, match=r"within 0\.5s"):
            await w.runtime.ask("triage", "it is broken", timeout=0.5)
        passed = w.on("agent.technical.inbox")[0].payload
        assert passed.timeout is not None and passed.timeout < 0.5  # what was left of it
        with anyio.fail_after(5):
            await w.bus.drain()
        assert w.bus.stats().in_flight == 0


async def test_many_conversations_are_handed_off_at_once_each_to_its_own_end() -> None:
    policy = Policy(
        [Rule(agent="triage", step=0, tool_calls=calls("transfer_to_billing", reason="pay"))]
    )
    async with world(policy) as w:
        await w.runtime.add(triage(), Agent("billing", "You are billing."))
        results = {}

        async def one(n: int) -> None:
            results[n] = await w.runtime.ask("triage", f"customer {n}", conversation_id=f"c{n}")

        with anyio.fail_after(30):
            async with anyio.create_task_group() as group:
                for n in range(50):
                    group.start_soon(one, n)
        for n, result in results.items():
            assert (result.agent, result.conversation_id) == ("billing", f"c{n}")
        for n in (0, 31, 49):
            history = await w.memory(f"c{n}")
            assert [m.content for m in history if isinstance(m, UserMessage)] == [f"customer {n}"]
            assert len(history) == 4
