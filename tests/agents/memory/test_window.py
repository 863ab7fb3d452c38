"""The sliding window and the history trim, as pure functions."""

from __future__ import annotations

import pytest

from agents.llm.wire import (
    AssistantMessage,
    ChatMessage,
    CustomToolCall,
    CustomToolInput,
    DeveloperMessage,
    FunctionCall,
    FunctionMessage,
    ImagePart,
    ImageURL,
    RefusalPart,
    SystemMessage,
    TextPart,
    ToolCall,
    ToolMessage,
    UserMessage,
)
from agents.memory import estimate_tokens, select_window, trim_history


def call(call_id: str, arguments: str = "{}") -> ToolCall:
    return ToolCall(id=call_id, function=FunctionCall(name="calculator", arguments=arguments))


def calls(*ids: str) -> AssistantMessage:
    return AssistantMessage(tool_calls=[call(i) for i in ids])


def result(call_id: str, content: str = "42") -> ToolMessage:
    return ToolMessage(tool_call_id=call_id, content=content)


SYSTEM = SystemMessage(content="You are terse.")


def one(_: ChatMessage) -> int:
    return 1


# -- select_window --------------------------------------------------------------------------


def test_with_no_limits_the_window_is_the_whole_history() -> None:
    history: list[ChatMessage] = [SYSTEM, UserMessage(content="hi"), AssistantMessage(content="yo")]
    window, tokens, dropped = select_window(history)
    assert window == history
    assert tokens == sum(estimate_tokens(m) for m in history)
    assert dropped == 0


def test_an_empty_history_gives_an_empty_window() -> None:
    assert select_window([], max_messages=3, max_tokens=10) == ([], 0, 0)


def test_the_newest_messages_win_the_count_limit() -> None:
    history: list[ChatMessage] = [UserMessage(content=str(i)) for i in range(10)]
    window, _, dropped = select_window(history, max_messages=3)
    assert window == history[-3:]
    assert dropped == 7


def test_the_system_prompt_is_kept_and_counts_toward_the_limits() -> None:
    history: list[ChatMessage] = [SYSTEM, *(UserMessage(content=str(i)) for i in range(5))]
    window, tokens, _ = select_window(history, max_messages=3, count_tokens=one)
    assert window == [SYSTEM, history[-2], history[-1]]
    assert tokens == 3


def test_pinned_messages_keep_their_place_in_the_order() -> None:
    history: list[ChatMessage] = [
        UserMessage(content="old"),
        SYSTEM,
        UserMessage(content="a"),
        DeveloperMessage(content="be brief"),
        UserMessage(content="b"),
    ]
    window, _, dropped = select_window(history, max_messages=4)
    assert window == history[1:]
    assert dropped == 1


def test_pinned_messages_over_the_budget_are_the_whole_window() -> None:
    history: list[ChatMessage] = [
        SYSTEM,
        DeveloperMessage(content="x" * 400),
        UserMessage(content="hi"),
    ]
    window, tokens, dropped = select_window(history, max_messages=1, max_tokens=5)
    assert window == history[:2]
    assert tokens == estimate_tokens(history[0]) + estimate_tokens(history[1])
    assert dropped == 1


def test_the_token_budget_stops_at_the_first_turn_that_does_not_fit() -> None:
    history: list[ChatMessage] = [
        UserMessage(content="small"),
        UserMessage(content="x" * 400),
        UserMessage(content="newest"),
    ]
    budget = estimate_tokens(history[0]) + estimate_tokens(history[2])
    window, tokens, dropped = select_window(history, max_tokens=budget)
    # the small old message would fit, but not without the hole before the newest one
    assert window == [history[2]]
    assert tokens == estimate_tokens(history[2])
    assert dropped == 2


def test_a_tool_call_is_kept_with_all_its_results_or_not_at_all() -> None:
    block: list[ChatMessage] = [calls("a", "b"), result("a"), result("b")]
    history: list[ChatMessage] = [UserMessage(content="add"), *block, AssistantMessage(content="3")]
    assert select_window(history, max_messages=3)[0] == [history[-1]]
    assert select_window(history, max_messages=4)[0] == [*block, history[-1]]


def test_the_results_may_come_in_any_order() -> None:
    history: list[ChatMessage] = [calls("a", "b"), result("b"), result("a")]
    assert select_window(history, max_messages=3)[0] == history


def test_a_tool_call_missing_a_result_is_never_sent() -> None:
    history: list[ChatMessage] = [
        UserMessage(content="go"),
        calls("a", "b"),
        result("a"),
        UserMessage(content="still there?"),
    ]
    window, _, dropped = select_window(history)
    assert window == [history[0], history[3]]
    assert dropped == 2


def test_a_tool_result_without_its_call_is_never_sent() -> None:
    history: list[ChatMessage] = [result("lost"), UserMessage(content="hi")]
    assert select_window(history)[0] == [history[1]]


def test_a_result_for_another_call_ends_the_block() -> None:
    history: list[ChatMessage] = [calls("a"), result("a"), result("z")]
    assert select_window(history)[0] == history[:2]


def test_custom_tool_calls_are_blocks_too() -> None:
    custom = AssistantMessage(
        tool_calls=[CustomToolCall(id="c", custom=CustomToolInput(name="grep", input="x"))]
    )
    history: list[ChatMessage] = [custom, result("c")]
    assert select_window(history, max_messages=1)[0] == []
    assert select_window(history, max_messages=2)[0] == history


def test_the_token_counter_is_pluggable() -> None:
    history: list[ChatMessage] = [UserMessage(content=str(i)) for i in range(6)]
    window, tokens, _ = select_window(history, max_tokens=4, count_tokens=one)
    assert window == history[-4:]
    assert tokens == 4


@pytest.mark.parametrize(("max_messages", "max_tokens"), [(-1, None), (None, -5)])
def test_negative_limits_are_refused(max_messages: int | None, max_tokens: int | None) -> None:
    with pytest.raises(ValueError, match=r"window limits must be >= 0"):
        select_window([], max_messages=max_messages, max_tokens=max_tokens)


def test_zero_limits_leave_only_the_pinned_messages() -> None:
    history: list[ChatMessage] = [SYSTEM, UserMessage(content="hi")]
    assert select_window(history, max_messages=0)[0] == [SYSTEM]
    assert select_window(history, max_tokens=0)[0] == [SYSTEM]


# -- estimate_tokens ----------------------------------------------------------------------


def test_the_estimate_is_about_four_characters_a_token() -> None:
    assert estimate_tokens(UserMessage(content="x" * 400)) == 100 + 4
    assert estimate_tokens(UserMessage(content="")) == 4
    assert estimate_tokens(UserMessage(content="abcde")) == 2 + 4  # rounded up


def test_the_estimate_counts_tool_call_arguments() -> None:
    small = AssistantMessage(tool_calls=[call("a", "{}")])
    big = AssistantMessage(tool_calls=[call("a", '{"x": "' + "y" * 400 + '"}')])
    assert estimate_tokens(big) - estimate_tokens(small) >= 100


def test_the_estimate_counts_each_tool_call_and_its_overhead() -> None:
    assert estimate_tokens(calls("a", "b")) > estimate_tokens(calls("a")) + 8


def test_the_estimate_reads_parts_names_and_refusals() -> None:
    image = ImagePart(image_url=ImageURL(url="https://example.org/" + "p" * 1000))
    assert estimate_tokens(UserMessage(content=[image])) == 4 + 85  # flat, whatever the URL
    parts = UserMessage(content=[TextPart(text="x" * 40), TextPart(text="y" * 40)])
    assert estimate_tokens(parts) == 4 + 20
    refused = AssistantMessage(content=[RefusalPart(refusal="n" * 40)], refusal="o" * 40)
    assert estimate_tokens(refused) == 4 + 20
    named = UserMessage(content="", name="n" * 40)
    assert estimate_tokens(named) == 4 + 10
    assert estimate_tokens(FunctionMessage(content=None, name="f" * 8)) == 4 + 2
    assert estimate_tokens(result("c" * 8, "r" * 8)) == 4 + 4


# -- trim_history -------------------------------------------------------------------------


def test_a_history_within_the_cap_is_kept_whole() -> None:
    history: list[ChatMessage] = [UserMessage(content=str(i)) for i in range(3)]
    assert trim_history(history, 3) == history


def test_trimming_drops_the_oldest_turns_and_keeps_the_pinned() -> None:
    history: list[ChatMessage] = [SYSTEM, *(UserMessage(content=str(i)) for i in range(6))]
    assert trim_history(history, 3) == [SYSTEM, *history[-2:]]


def test_trimming_drops_a_tool_turn_whole() -> None:
    history: list[ChatMessage] = [
        calls("a", "b"),
        result("a"),
        result("b"),
        UserMessage(content="then"),
        AssistantMessage(content="done"),
    ]
    assert trim_history(history, 4) == history[3:]


def test_trimming_keeps_the_newest_turn_even_past_the_cap() -> None:
    history: list[ChatMessage] = [UserMessage(content="q"), calls("a", "b"), result("a")]
    # an unfinished tool turn: its last result may be on its way, so it stays whole
    assert trim_history(history, 1) == history[1:]


def test_token_counts_must_match_the_messages() -> None:
    with pytest.raises(ValueError, match="2 token counts for 1 messages"):
        select_window([UserMessage(content="hi")], costs=[1, 2])
