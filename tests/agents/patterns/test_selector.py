"""The selector group chat: a function or the LLM picks each speaker."""

from __future__ import annotations

import anyio
import anyio.lowlevel
import pytest

from agents import Agent
from agents.llm import Policy, Rule
from agents.llm.wire import SystemMessage
from agents.patterns import (
    ChatState,
    Deadline,
    GroupChatTimeout,
    LLMSelector,
    MaxMessages,
    SelectorGroupChat,
    SpeakerSelectionError,
    TextMention,
    run_group_chat,
    speaker_named,
)

from .world import world

pytestmark = pytest.mark.anyio

TEAM = {
    "pro": "argues for the motion",
    "con": "argues against the motion",
    "judge": "gives the verdict, then says TERMINATE",
}


def agents(*names: str) -> list[Agent]:
    return [Agent(name, f"You are {name}.") for name in names]


async def test_a_function_selector_picks_each_speaker_from_the_transcript() -> None:
    following = {"user": "judge", "judge": "con", "con": "pro", "pro": "judge"}

    def after(state: ChatState) -> str:
        return following[state.last.speaker]

    async with world() as w:
        chat = SelectorGroupChat("debate", list(TEAM), selector=after, termination=MaxMessages(4))
        await w.runtime.add(chat, *agents(*TEAM))
        result = await run_group_chat(w.bus, "debate", "motion")
        assert [u.speaker for u in result.messages] == ["user", "judge", "con", "pro", "judge"]
        assert w.llm_requests("debate") == []  # no LLM was asked who speaks


async def test_an_async_selector_and_none_for_the_next_in_order() -> None:
    picks: list[int] = []

    async def sometimes(state: ChatState) -> str | None:
        picks.append(state.turns)
        await anyio.lowlevel.checkpoint()
        return "con" if state.turns == 0 else None

    async with world() as w:
        chat = SelectorGroupChat("order", list(TEAM), selector=sometimes, max_turns=3)
        await w.runtime.add(chat, *agents(*TEAM))
        result = await run_group_chat(w.bus, "order", "motion")
        assert [u.speaker for u in result.messages] == ["user", "con", "judge", "pro"]
        assert picks == [0, 1, 2]


async def test_a_selector_naming_no_participant_ends_the_chat_with_a_named_error() -> None:
    async with world() as w:
        await w.runtime.add(
            SelectorGroupChat("odd", list(TEAM), selector=lambda s: "zed"), *agents(*TEAM)
        )
        with pytest.raises(
            SpeakerSelectionError, match="chose 'zed', not one of pro, con, judge"
        ) as info:
            await run_group_chat(w.bus, "odd", "motion")
        assert (info.value.chat, info.value.turns) == ("odd", 0)


async def test_a_selector_that_never_decides_ends_the_chat_at_its_deadline() -> None:
    async def undecided(state: ChatState) -> str:
        await anyio.sleep(3600)
        return "pro"

    async with world() as w:
        await w.runtime.add(
            SelectorGroupChat("stuck", list(TEAM), selector=undecided), *agents(*TEAM)
        )
        with (
            anyio.fail_after(5),
            pytest.raises(GroupChatTimeout, match="no speaker was chosen") as info,
        ):
            await run_group_chat(w.bus, "stuck", "motion", timeout=0.3)
        assert info.value.speaker == ""


async def test_the_llm_selector_picks_speakers_from_their_descriptions() -> None:
    policy = Policy(
        [
            Rule(agent="debate", contains="Who speaks next?", text="pro", once=True),
            Rule(agent="debate", contains="[pro]:", text="Con.", once=True),
            Rule(agent="debate", contains="[con]:", text="I pick judge", once=True),
            Rule(agent="judge", text="Pro wins. TERMINATE", once=True),
        ]
    )
    async with world(policy) as w:
        chat = SelectorGroupChat("debate", TEAM, termination=TextMention("TERMINATE"))
        await w.runtime.add(chat, *agents(*TEAM))
        result = await run_group_chat(w.bus, "debate", "Cats beat dogs.")
        assert [u.speaker for u in result.messages] == ["user", "pro", "con", "judge"]
        assert result.stop_reason == "text_mention: 'TERMINATE' by judge"
        asked = w.llm_requests("debate")
        assert len(asked) == 3
        system = asked[0].messages[0]
        assert isinstance(system, SystemMessage)
        assert "- con: argues against the motion" in str(system.content)
        assert "Answer with exactly one name from: pro, con, judge." in str(
            asked[-1].messages[-1].content
        )
        # the selector's tokens count toward the chat's, like everyone else's
        total = w.runtime.gateway.stats().total
        assert result.usage.total_tokens == total.prompt_tokens + total.completion_tokens
    policy.assert_complete()


async def test_an_invalid_llm_answer_is_shown_to_it_and_corrected() -> None:
    policy = Policy(
        [
            Rule(agent="debate", contains="Who speaks next?", text="the audience", once=True),
            Rule(
                agent="debate",
                contains="'the audience' is not a participant",
                text='"Con."',
                once=True,
            ),
        ]
    )
    async with world(policy) as w:
        chat = SelectorGroupChat("debate", TEAM, max_turns=1)
        await w.runtime.add(chat, *agents(*TEAM))
        result = await run_group_chat(w.bus, "debate", "motion")
        assert result.messages[-1].speaker == "con"
    policy.assert_complete()


async def test_an_llm_that_names_nobody_falls_back_to_the_order() -> None:
    policy = Policy([Rule(agent="debate", text="everyone")])
    async with world(policy) as w:
        chat = SelectorGroupChat("debate", TEAM, selector=LLMSelector(attempts=2), max_turns=2)
        await w.runtime.add(chat, *agents(*TEAM))
        result = await run_group_chat(w.bus, "debate", "motion")
        assert [u.speaker for u in result.messages] == ["user", "pro", "con"]
        assert len(w.llm_requests("debate")) == 4  # two answers per turn


async def test_without_fallback_an_llm_that_names_nobody_is_an_error() -> None:
    policy = Policy([Rule(agent="debate", text="pro and con")])
    async with world(policy) as w:
        selector = LLMSelector(attempts=3, fallback=False)
        await w.runtime.add(SelectorGroupChat("debate", TEAM, selector=selector), *agents(*TEAM))
        with pytest.raises(SpeakerSelectionError, match="named no participant in 3 answers"):
            await run_group_chat(w.bus, "debate", "motion")


async def test_llm_selector_instructions_and_model_reach_the_request() -> None:
    policy = Policy([Rule(agent="debate", text="judge")])
    async with world(policy) as w:
        selector = LLMSelector(
            instructions="Let the judge speak last.", model="mock-x", temperature=0
        )
        await w.runtime.add(
            SelectorGroupChat("debate", TEAM, selector=selector, max_turns=1), *agents(*TEAM)
        )
        await run_group_chat(w.bus, "debate", "motion")
        request = w.llm_requests("debate")[0]
        assert (request.model, request.temperature) == ("mock-x", 0)
        assert str(request.messages[0].content).endswith("Let the judge speak last.")


def test_speaker_named_reads_a_name_out_of_an_answer() -> None:
    names = ["pro", "con", "judge-2"]
    assert speaker_named("con", names) == "con"
    assert speaker_named("  **Con.**\n", names) == "con"
    assert speaker_named("I think judge-2 should speak", names) == "judge-2"
    assert speaker_named("pro or con", names) is None  # two names: no choice
    assert speaker_named("progress", names) is None  # not as a word
    assert speaker_named("judge", names) is None
    with pytest.raises(ValueError, match="attempts"):
        LLMSelector(attempts=0)


async def test_a_deadline_condition_met_while_choosing_stops_the_chat_normally() -> None:
    async def slow(state: ChatState) -> str:
        if state.turns:
            await anyio.sleep(3600)
        return "pro"

    async with world() as w:
        chat = SelectorGroupChat("slow", list(TEAM), selector=slow, termination=Deadline(0.5))
        await w.runtime.add(chat, *agents(*TEAM))
        with anyio.fail_after(5):
            result = await run_group_chat(w.bus, "slow", "motion")
        assert [u.speaker for u in result.messages] == ["user", "pro"]
        assert result.stop_reason == "deadline: 0.5s passed (while choosing the next speaker)"
