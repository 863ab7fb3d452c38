"""Termination conditions: each one's reason, and how ``&`` and ``|`` combine them."""

from __future__ import annotations

import pytest

from agents.llm.wire import Usage
from agents.patterns import (
    AllOf,
    AnyOf,
    ChatState,
    CostBudget,
    Deadline,
    FunctionCondition,
    MaxMessages,
    TerminationCondition,
    TextMention,
    TokenBudget,
    Utterance,
)


def state(
    *said: tuple[str, str], tokens: int = 0, cost: float = 0.0, elapsed: float = 0.0
) -> ChatState:
    messages = [Utterance(chat="c", speaker="user", text="the task TERMINATE", turn=0)]
    messages += [
        Utterance(chat="c", speaker=speaker, text=text, turn=turn)
        for turn, (speaker, text) in enumerate(said, 1)
    ]
    return ChatState(
        chat="c",
        participants=("a", "b"),
        messages=messages,
        usage=Usage(prompt_tokens=tokens, completion_tokens=0, total_tokens=tokens),
        cost=cost,
        elapsed=elapsed,
    )


def test_max_messages_counts_what_participants_said_not_the_task() -> None:
    condition = MaxMessages(2)
    assert condition.check(state(("a", "x"))) is None
    assert condition.check(state(("a", "x"), ("b", "y"))) == "max_messages: 2 messages"


def test_text_mention_looks_at_the_last_message_only_and_never_at_the_task() -> None:
    condition = TextMention("TERMINATE")
    assert condition.check(state()) is None  # the task says it; nobody has spoken yet
    assert condition.check(state(("a", "TERMINATE"), ("b", "go on"))) is None
    assert condition.check(state(("a", "ok. TERMINATE"))) == "text_mention: 'TERMINATE' by a"
    assert condition.check(state(("a", "terminate"))) is None  # case-sensitive


def test_text_mention_can_be_limited_to_some_speakers() -> None:
    condition = TextMention("DONE", speakers=["b"])
    assert condition.check(state(("a", "DONE"))) is None
    assert condition.check(state(("a", "x"), ("b", "DONE"))) == "text_mention: 'DONE' by b"


def test_token_and_cost_budgets_are_met_once_spent() -> None:
    assert TokenBudget(100).check(state(tokens=99)) is None
    assert TokenBudget(100).check(state(tokens=100)) == "token_budget: 100 of 100 tokens used"
    assert CostBudget(0.5).check(state(cost=0.49)) is None
    assert CostBudget(0.5).check(state(cost=0.5)) == "cost_budget: $0.500000 of $0.5 spent"


def test_a_deadline_is_met_by_time_and_says_how_much_is_left() -> None:
    condition = Deadline(2)
    assert condition.check(state(elapsed=1.5)) is None
    assert condition.time_left(state(elapsed=1.5)) == pytest.approx(0.5)
    assert condition.check(state(elapsed=2.0)) == "deadline: 2s passed"
    assert MaxMessages(3).time_left(state()) is None


def test_a_function_condition_returns_a_reason_or_true() -> None:
    def two_speakers(s: ChatState) -> bool:
        return len({m.speaker for m in s.messages[1:]}) == 2

    assert FunctionCondition(two_speakers).check(state(("a", "x"))) is None
    assert FunctionCondition(two_speakers).check(state(("a", "x"), ("b", "y"))) == (
        "function: two_speakers"
    )
    custom = FunctionCondition(lambda s: "enough" if s.turns > 1 else "")
    assert custom.check(state(("a", "x"))) is None
    assert custom.check(state(("a", "x"), ("a", "y"))) == "enough"


def test_or_stops_on_the_first_condition_met() -> None:
    condition = MaxMessages(5) | TextMention("STOP") | TokenBudget(1000)
    assert isinstance(condition, AnyOf) and len(condition.conditions) == 3  # flattened
    assert condition.check(state(("a", "x"))) is None
    assert condition.check(state(("a", "STOP"))) == "text_mention: 'STOP' by a"
    assert (
        condition.check(state(("a", "x"), tokens=2000)) == "token_budget: 2000 of 1000 tokens used"
    )


def test_and_stops_only_when_every_condition_is_met() -> None:
    condition = TextMention("STOP") & MaxMessages(2)
    assert isinstance(condition, AllOf)
    assert condition.check(state(("a", "STOP"))) is None
    assert condition.check(state(("a", "x"), ("b", "y"))) is None
    assert condition.check(state(("a", "x"), ("b", "STOP"))) == (
        "text_mention: 'STOP' by b and max_messages: 2 messages"
    )


def test_and_and_or_nest() -> None:
    condition = (TextMention("STOP") & MaxMessages(2)) | TokenBudget(50)
    assert repr(condition) == "((TextMention('STOP') & MaxMessages(2)) | TokenBudget(50))"
    assert condition.check(state(("a", "STOP"))) is None
    assert condition.check(state(("a", "STOP"), tokens=60)) == "token_budget: 60 of 50 tokens used"
    assert condition.check(state(("a", "x"), ("b", "STOP"))) is not None


def test_time_left_of_a_composition() -> None:
    early, late = Deadline(1), Deadline(3)
    now = state(elapsed=0.5)
    assert (early | late | MaxMessages(2)).time_left(now) == pytest.approx(0.5)
    assert (early & late).time_left(now) == pytest.approx(2.5)
    assert (early & MaxMessages(2)).time_left(now) is None  # time alone cannot meet it


def test_bad_conditions_are_refused() -> None:
    with pytest.raises(ValueError, match="count >= 1"):
        MaxMessages(0)
    with pytest.raises(ValueError, match="needs a text"):
        TextMention("")
    with pytest.raises(ValueError, match="tokens >= 1"):
        TokenBudget(0)
    with pytest.raises(ValueError, match="usd > 0"):
        CostBudget(0)
    with pytest.raises(ValueError, match="seconds > 0"):
        Deadline(-1)
    with pytest.raises(ValueError, match="at least one"):
        AnyOf()
    with pytest.raises(TypeError, match="not a termination condition"):
        MaxMessages(1) | "STOP"  # type: ignore[operator]

    async def later(s: ChatState) -> bool:
        return True

    with pytest.raises(TypeError, match="plain function"):
        FunctionCondition(later)  # type: ignore[arg-type]
    with pytest.raises(NotImplementedError):
        TerminationCondition().check(state())
