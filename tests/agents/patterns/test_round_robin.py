"""The round-robin group chat on the mock LLM: turns, transcripts, every way it stops."""

from __future__ import annotations

import anyio
import msgspec
import pytest

from agents import Agent, MaxStepsExceeded
from agents.llm import Policy, Rule
from agents.llm.wire import AssistantMessage, UserMessage
from agents.patterns import (
    CostBudget,
    Deadline,
    FunctionCondition,
    GroupChatTimeout,
    MaxMessages,
    RoundRobinGroupChat,
    TextMention,
    TokenBudget,
    run_group_chat,
)
from tools import calculator, tool

from .world import Mute, calls, world

pytestmark = pytest.mark.anyio


def speakers(result: object) -> list[str]:
    return [u.speaker for u in result.messages]  # type: ignore[attr-defined]


async def test_participants_take_turns_and_see_each_other_by_name() -> None:
    policy = Policy(
        [
            Rule(agent="writer", step=0, contains="[user]: A poem", text="Roses.", once=True),
            Rule(agent="critic", step=0, contains="[writer]: Roses.", text="Longer.", once=True),
            Rule(
                agent="writer", step=1, contains="[critic]: Longer.", text="Roses red.", once=True
            ),
            Rule(
                agent="critic", step=1, contains="[writer]: Roses red.", text="TERMINATE", once=True
            ),
        ]
    )
    async with world(policy) as w:
        chat = RoundRobinGroupChat(
            "review", ["writer", "critic"], termination=TextMention("TERMINATE")
        )
        await w.runtime.add(
            chat, Agent("writer", "You are writer."), Agent("critic", "You are critic.")
        )
        result = await run_group_chat(w.bus, "review", "A poem, please.", conversation_id="r")
        assert speakers(result) == ["user", "writer", "critic", "writer", "critic"]
        assert [u.text for u in result.messages][1:] == [
            "Roses.",
            "Longer.",
            "Roses red.",
            "TERMINATE",
        ]
        assert [u.turn for u in result.messages] == [0, 1, 2, 3, 4]
        assert result.stop_reason == "text_mention: 'TERMINATE' by critic"
        assert result.turns == 4 and result.usage.total_tokens > 0 and result.duration > 0
        assert w.utterances("review") == result.messages  # published as they were said
        # each participant keeps its side of the chat, told only what is new each turn
        writer = await w.memory("r.writer")
        assert [type(m) for m in writer] == [UserMessage, AssistantMessage] * 2
        assert "The conversation so far:" in str(writer[0].content)
        assert (
            str(writer[2].content)
            == "Since your last turn:\n\n[critic]: Longer.\n\nIt is your turn, writer."
        )
        # every turn is a task caused by the chat's task
        for task in w.on("agent.writer.inbox") + w.on("agent.critic.inbox"):
            assert w.parent(task).subject == "chat.review.inbox"
    policy.assert_complete()


async def test_max_messages_stops_the_chat() -> None:
    async with world() as w:
        chat = RoundRobinGroupChat("trio", ["a", "b", "c"], termination=MaxMessages(4))
        await w.runtime.add(chat, *(Agent(n, f"You are {n}.") for n in "abc"))
        result = await run_group_chat(w.bus, "trio", "talk")
        assert speakers(result) == ["user", "a", "b", "c", "a"]
        assert result.stop_reason == "max_messages: 4 messages"


async def test_max_turns_bounds_a_chat_with_no_condition() -> None:
    async with world() as w:
        await w.runtime.add(
            RoundRobinGroupChat("duo", ["a", "b"], max_turns=3),
            Agent("a", "You are a."),
            Agent("b", "You are b."),
        )
        result = await run_group_chat(w.bus, "duo", "talk")
        assert (result.turns, result.stop_reason) == (3, "max_turns: 3 turns")


async def test_a_token_budget_stops_the_chat_once_spent() -> None:
    async with world() as w:
        await w.runtime.add(Agent("a", "You are a."), Agent("b", "You are b."))
        await w.runtime.add(RoundRobinGroupChat("cheap", ["a", "b"], termination=TokenBudget(1)))
        one = await run_group_chat(w.bus, "cheap", "talk")
        assert one.turns == 1 and one.stop_reason.startswith("token_budget: ")
        first_turn = one.usage.total_tokens
        # a budget of two turns' worth stops after the second turn
        budget = TokenBudget(first_turn + 1) | MaxMessages(10)
        await w.runtime.add(RoundRobinGroupChat("dear", ["a", "b"], termination=budget))
        two = await run_group_chat(w.bus, "dear", "talk")
        assert two.turns == 2 and two.stop_reason.startswith("token_budget: ")
        assert two.usage.total_tokens > first_turn


async def test_a_cost_budget_stops_a_priced_chat() -> None:
    async with world(priced=True) as w:
        await w.runtime.add(Agent("a", "You are a."), Agent("b", "You are b."))
        chat = RoundRobinGroupChat(
            "paid", ["a", "b"], termination=CostBudget(0.001) | MaxMessages(5)
        )
        await w.runtime.add(chat)
        result = await run_group_chat(w.bus, "paid", "talk")
        assert result.turns == 1
        assert result.stop_reason == f"cost_budget: ${result.cost:.6f} of $0.001 spent"
        assert result.cost == pytest.approx(w.runtime.gateway.stats().total.cost)
        assert result.cost >= 0.001


async def test_with_no_prices_a_cost_budget_is_never_met() -> None:
    async with world() as w:
        await w.runtime.add(Agent("a", "You are a."))
        chat = RoundRobinGroupChat("free", ["a"], termination=CostBudget(0.001) | MaxMessages(3))
        await w.runtime.add(chat)
        result = await run_group_chat(w.bus, "free", "talk")
        assert (result.cost, result.stop_reason) == (0.0, "max_messages: 3 messages")


async def test_a_deadline_condition_interrupts_a_slow_turn_and_stops_normally() -> None:
    outcome: list[str] = []

    @tool
    async def ponder() -> str:
        """Takes its time."""
        try:
            await anyio.sleep(10)
        finally:
            outcome.append("interrupted")
        return "thought"

    policy = Policy([Rule(agent="slow", tool_calls=calls("ponder"))])
    async with world(policy) as w:
        await w.runtime.add(
            Agent("fast", "You are fast."), Agent("slow", "You are slow.", tools=[ponder])
        )
        chat = RoundRobinGroupChat("clock", ["fast", "slow"], termination=Deadline(1))
        await w.runtime.add(chat)
        with anyio.fail_after(5):
            result = await run_group_chat(w.bus, "clock", "think")
        assert speakers(result) == ["user", "fast"]
        assert result.stop_reason == "deadline: 1s passed (slow was interrupted)"
        assert 1 <= result.duration < 3
        with anyio.fail_after(5):
            await w.bus.drain()
        assert outcome == ["interrupted"] and w.bus.stats().in_flight == 0


async def test_and_stops_only_when_both_conditions_hold() -> None:
    policy = Policy(
        [
            Rule(agent="a", step=0, text="DONE", once=True),
            Rule(agent="b", step=0, text="not yet", once=True),
            Rule(agent="a", step=1, text="DONE again", once=True),
        ]
    )
    async with world(policy) as w:
        chat = RoundRobinGroupChat(
            "both", ["a", "b"], termination=TextMention("DONE") & MaxMessages(3)
        )
        await w.runtime.add(chat, Agent("a", "You are a."), Agent("b", "You are b."))
        result = await run_group_chat(w.bus, "both", "go")
        assert result.turns == 3
        assert result.stop_reason == "text_mention: 'DONE' by a and max_messages: 3 messages"
    policy.assert_complete()


async def test_a_function_condition_stops_the_chat() -> None:
    def critic_spoke(state: object) -> bool:
        return any(m.speaker == "critic" for m in state.messages)  # type: ignore[attr-defined]

    async with world() as w:
        chat = RoundRobinGroupChat(
            "fn",
            ["a", "b", "critic"],
            termination=FunctionCondition(critic_spoke, name="critic spoke"),
        )
        await w.runtime.add(chat, *(Agent(n, f"You are {n}.") for n in ("a", "b", "critic")))
        result = await run_group_chat(w.bus, "fn", "go")
        assert speakers(result)[-1] == "critic" and result.stop_reason == "function: critic spoke"


async def test_a_speaker_that_never_answers_ends_the_chat_at_its_deadline_named() -> None:
    async with world() as w:
        ghost = Mute("ghost")
        await w.runtime.add(
            RoundRobinGroupChat("haunted", ["host", "ghost"]), Agent("host", "You are host."), ghost
        )
        with anyio.fail_after(5), pytest.raises(GroupChatTimeout) as info:
            await run_group_chat(w.bus, "haunted", "anyone there?", timeout=1)
        error = info.value
        assert (error.chat, error.speaker, error.turns) == ("haunted", "ghost", 1)
        assert "'ghost' did not answer within" in str(error) and "(turn 2)" in str(error)
        with anyio.fail_after(5):
            await w.bus.drain()
        assert ghost.cancelled == 1 and w.bus.stats().in_flight == 0
        assert [u.speaker for u in w.utterances("haunted")] == ["user", "host"]


async def test_a_turn_timeout_ends_the_chat_before_its_deadline() -> None:
    async with world() as w:
        ghost = Mute("ghost")
        chat = RoundRobinGroupChat("strict", ["ghost"], turn_timeout=0.3)
        await w.runtime.add(chat, ghost)
        with (
            anyio.fail_after(5),
            pytest.raises(GroupChatTimeout, match=r"'ghost' did not answer within 0\.3s"),
        ):
            await run_group_chat(w.bus, "strict", "hello", timeout=60)


async def test_a_speakers_failure_ends_the_chat_with_its_own_error() -> None:
    policy = Policy([Rule(agent="loopy", tool_calls=calls("calculator", expression="1+1"))])
    async with world(policy) as w:
        loopy = Agent("loopy", "You are loopy.", tools=[calculator], max_steps=2)
        await w.runtime.add(
            RoundRobinGroupChat("broken", ["fine", "loopy"]), Agent("fine", "You are fine."), loopy
        )
        with pytest.raises(MaxStepsExceeded, match="max_steps=2") as info:
            await run_group_chat(w.bus, "broken", "go")
        assert info.value.agent == "loopy"


async def test_a_conversation_id_continues_the_chat_in_each_participants_memory() -> None:
    async with world() as w:
        await w.runtime.add(
            RoundRobinGroupChat("club", ["a", "b"], max_turns=2),
            Agent("a", "You are a."),
            Agent("b", "You are b."),
        )
        await run_group_chat(w.bus, "club", "first topic", conversation_id="club-1")
        await run_group_chat(w.bus, "club", "second topic", conversation_id="club-1")
        memory = await w.memory("club-1.a")
        told = [str(m.content) for m in memory if isinstance(m, UserMessage)]
        assert len(told) == 2 and "first topic" in told[0] and "second topic" in told[1]


async def test_many_chats_run_at_once_on_one_chat_actor() -> None:
    async with world() as w:
        await w.runtime.add(
            RoundRobinGroupChat("busy", ["a", "b"], max_turns=2),
            Agent("a", "You are a."),
            Agent("b", "You are b."),
        )
        results = {}

        async def one(n: int) -> None:
            results[n] = await run_group_chat(w.bus, "busy", f"topic {n}")

        with anyio.fail_after(30):
            async with anyio.create_task_group() as group:
                for n in range(20):
                    group.start_soon(one, n)
        for n, result in results.items():
            assert result.messages[0].text == f"topic {n}" and result.turns == 2
            assert f"topic {n}" in result.messages[1].text  # the mock echoes what it was told


def test_bad_chat_definitions_are_refused() -> None:
    with pytest.raises(ValueError, match="distinct"):
        RoundRobinGroupChat("x", ["a", "a"])
    with pytest.raises(ValueError, match="distinct"):
        RoundRobinGroupChat("x", [])
    with pytest.raises(ValueError, match="one subject token"):
        RoundRobinGroupChat("x.y", ["a"])
    with pytest.raises(ValueError, match="participant 'a b'"):
        RoundRobinGroupChat("x", ["a b"])
    with pytest.raises(ValueError, match="max_turns"):
        RoundRobinGroupChat("x", ["a"], max_turns=0)
    with pytest.raises(ValueError, match="turn_timeout"):
        RoundRobinGroupChat("x", ["a"], turn_timeout=0)


async def test_cancelling_a_chat_cancels_the_turn_in_progress() -> None:
    async with world() as w:
        ghost = Mute("ghost")
        await w.runtime.add(RoundRobinGroupChat("quiet", ["ghost"]), ghost)
        async with anyio.create_task_group() as group:
            group.start_soon(run_group_chat, w.bus, "quiet", "hello")
            with anyio.fail_after(5):
                await ghost.entered.wait()
            group.cancel_scope.cancel()
        with anyio.fail_after(5):
            await w.bus.drain()
        assert ghost.cancelled == 1 and w.bus.stats().in_flight == 0


class Verdict(msgspec.Struct, frozen=True, kw_only=True):
    winner: str


async def test_a_participants_structured_output_is_said_as_json() -> None:
    policy = Policy([Rule(agent="judge", json={"winner": "pro"})])
    async with world(policy) as w:
        judge = Agent("judge", "You are judge.", output_type=Verdict)
        await w.runtime.add(RoundRobinGroupChat("court", ["judge"], max_turns=1), judge)
        result = await run_group_chat(w.bus, "court", "who won?")
        assert result.last.text == '{"winner":"pro"}'
