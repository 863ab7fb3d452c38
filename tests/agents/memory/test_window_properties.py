"""The window's and the trim's invariants, over histories generated turn by turn."""

from __future__ import annotations

from dataclasses import dataclass
from unittest.mock import patch

from hypothesis import given, settings
from hypothesis import strategies as st

from agents.llm.wire import (
    AssistantMessage,
    ChatMessage,
    DeveloperMessage,
    FunctionCall,
    SystemMessage,
    ToolCall,
    ToolMessage,
    UserMessage,
)
from agents.memory import TokenCounter, estimate_tokens, select_window, trim_history, window

EXAMPLES = settings(max_examples=200, deadline=None)
KINDS = ("system", "developer", "user", "assistant", "tools", "unfinished", "orphan")


@dataclass
class Turn:
    """What the generator built: its kind tells whether it may be sent and is pinned."""

    kind: str
    messages: list[ChatMessage]

    @property
    def is_pinned(self) -> bool:
        return self.kind in ("system", "developer")

    @property
    def is_sendable(self) -> bool:
        return self.kind not in ("unfinished", "orphan")


@st.composite
def turns(draw: st.DrawFn, number: int) -> Turn:
    kind = draw(st.sampled_from(KINDS))
    text = draw(st.text(alphabet="abc xyz", max_size=80))
    if kind == "system":
        return Turn(kind, [SystemMessage(content=text)])
    if kind == "developer":
        return Turn(kind, [DeveloperMessage(content=text)])
    if kind == "user":
        return Turn(kind, [UserMessage(content=text)])
    if kind == "assistant":
        return Turn(kind, [AssistantMessage(content=text)])
    if kind == "orphan":
        return Turn(kind, [ToolMessage(tool_call_id=f"orphan-{number}", content=text)])
    ids = [f"call-{number}-{k}" for k in range(draw(st.integers(1, 3)))]
    answered = draw(st.permutations(ids))
    if kind == "unfinished":
        answered = answered[: draw(st.integers(0, len(ids) - 1))]
    call = AssistantMessage(
        tool_calls=[ToolCall(id=i, function=FunctionCall(name="f", arguments=text)) for i in ids]
    )
    return Turn(kind, [call, *(ToolMessage(tool_call_id=i, content=text) for i in answered)])


@st.composite
def histories(draw: st.DrawFn) -> list[Turn]:
    size = draw(st.integers(0, 25))
    return [draw(turns(n)) for n in range(size)]


def flat(history: list[Turn]) -> list[ChatMessage]:
    return [m for turn in history for m in turn.messages]


def one(_: ChatMessage) -> int:
    return 1


limits = st.none() | st.integers(0, 30)
budgets = st.none() | st.integers(0, 300)
counters = st.sampled_from([estimate_tokens, one])


@dataclass
class Outcome:
    """A window, told in turns: which were kept, and what the pinned ones cost."""

    history: list[Turn]
    window: list[ChatMessage]
    tokens: int
    dropped: int
    kept: list[bool]  # per turn, all of its messages in the window
    pinned_size: int
    pinned_tokens: int


def run(
    history: list[Turn], max_messages: int | None, max_tokens: int | None, count: TokenCounter
) -> Outcome:
    messages = flat(history)
    window, tokens, dropped = select_window(
        messages, max_messages=max_messages, max_tokens=max_tokens, count_tokens=count
    )
    in_window = {id(m) for m in window}
    kept = []
    for turn in history:
        inside = [id(m) in in_window for m in turn.messages]
        assert all(inside) or not any(inside), f"{turn.kind} turn split: {inside}"
        kept.append(all(inside))
    pinned = [m for turn in history if turn.is_pinned for m in turn.messages]
    return Outcome(
        history,
        window,
        tokens,
        dropped,
        kept,
        len(pinned),
        sum(count(m) for m in pinned),
    )


@EXAMPLES
@given(histories(), limits, budgets, counters)
def test_the_window_is_an_ordered_subsequence_and_the_counts_add_up(
    history: list[Turn], max_messages: int | None, max_tokens: int | None, count: TokenCounter
) -> None:
    outcome = run(history, max_messages, max_tokens, count)
    position = {id(m): i for i, m in enumerate(flat(history))}
    indexes = [position[id(m)] for m in outcome.window]
    assert indexes == sorted(set(indexes))
    assert outcome.dropped + len(outcome.window) == len(position)
    assert outcome.tokens == sum(count(m) for m in outcome.window)


@EXAMPLES
@given(histories(), limits, budgets, counters)
def test_pinned_messages_are_always_in_the_window(
    history: list[Turn], max_messages: int | None, max_tokens: int | None, count: TokenCounter
) -> None:
    outcome = run(history, max_messages, max_tokens, count)
    assert all(kept for turn, kept in zip(history, outcome.kept, strict=True) if turn.is_pinned)


@EXAMPLES
@given(histories(), limits, budgets, counters)
def test_the_limits_hold_unless_the_pinned_messages_alone_exceed_them(
    history: list[Turn], max_messages: int | None, max_tokens: int | None, count: TokenCounter
) -> None:
    outcome = run(history, max_messages, max_tokens, count)
    only_pinned = len(outcome.window) == outcome.pinned_size
    if max_messages is not None and not only_pinned:
        assert len(outcome.window) <= max_messages
    if max_tokens is not None and not only_pinned:
        assert outcome.tokens <= max_tokens
    if only_pinned:
        assert outcome.tokens == outcome.pinned_tokens


@EXAMPLES
@given(histories(), limits, budgets, counters)
def test_every_tool_call_in_the_window_is_followed_by_all_its_results(
    history: list[Turn], max_messages: int | None, max_tokens: int | None, count: TokenCounter
) -> None:
    window = run(history, max_messages, max_tokens, count).window
    waiting: set[str] = set()  # calls whose results must come next
    for message in window:
        if isinstance(message, ToolMessage):
            assert message.tool_call_id in waiting, "a tool result without its call"
            waiting.discard(message.tool_call_id)
            continue
        assert not waiting, f"calls {waiting} left without results"
        if isinstance(message, AssistantMessage) and message.tool_calls:
            waiting = {c.id for c in message.tool_calls}
    assert not waiting


@EXAMPLES
@given(histories(), limits, budgets, counters)
def test_the_kept_turns_are_the_newest_that_fit(
    history: list[Turn], max_messages: int | None, max_tokens: int | None, count: TokenCounter
) -> None:
    outcome = run(history, max_messages, max_tokens, count)
    candidates = [
        (turn, kept)
        for turn, kept in zip(history, outcome.kept, strict=True)
        if not turn.is_pinned and turn.is_sendable
    ]
    unsent = [
        t for t, kept in zip(history, outcome.kept, strict=True) if not t.is_sendable and kept
    ]
    assert not unsent
    flags = [kept for _, kept in candidates]
    first = flags.index(True) if True in flags else len(flags)
    assert all(flags[first:]), f"a hole among the newest turns: {flags}"
    if first > 0:  # the next older turn must not have fitted
        older = candidates[first - 1][0].messages
        too_many = max_messages is not None and len(outcome.window) + len(older) > max_messages
        too_big = (
            max_tokens is not None and outcome.tokens + sum(count(m) for m in older) > max_tokens
        )
        assert too_many or too_big


@EXAMPLES
@given(histories(), st.integers(1, 30))
def test_a_trim_keeps_the_pinned_and_the_newest_turns_whole(
    history: list[Turn], max_stored: int
) -> None:
    messages = flat(history)
    trimmed = trim_history(messages, max_stored)
    in_trim = {id(m) for m in trimmed}
    position = {id(m): i for i, m in enumerate(messages)}
    indexes = [position[id(m)] for m in trimmed]
    assert indexes == sorted(indexes)
    flags = []
    for turn in history:
        inside = [id(m) in in_trim for m in turn.messages]
        assert all(inside) or not any(inside)
        if turn.is_pinned:
            assert all(inside)
        else:
            flags.append(all(inside))
    first = flags.index(True) if True in flags else len(flags)
    assert all(flags[first:])
    if flags:
        assert flags[-1], "the newest turn is always kept"
    if len(trimmed) > max_stored:  # only pinned messages and the newest turn are left
        assert flags.count(True) <= 1
    if first > 0:  # dropping one turn fewer would have been over the cap
        dropped_last = [t for t in history if not t.is_pinned][first - 1]
        assert len(trimmed) + len(dropped_last.messages) > max_stored


@EXAMPLES
@given(histories(), limits, budgets, counters)
def test_token_counts_made_in_advance_give_the_same_window(
    history: list[Turn], max_messages: int | None, max_tokens: int | None, count: TokenCounter
) -> None:
    messages = flat(history)
    limits_ = {"max_messages": max_messages, "max_tokens": max_tokens}
    counted_now = select_window(messages, count_tokens=count, **limits_)
    counted_before = select_window(messages, costs=[count(m) for m in messages], **limits_)
    assert counted_before == counted_now


@EXAMPLES
@given(histories(), limits, st.none() | st.integers(0, 400), st.booleans())
def test_the_whole_history_shortcut_gives_what_the_turns_give(
    history: list[Turn], max_messages: int | None, max_tokens: int | None, duplicate: bool
) -> None:
    """When everything fits and every turn may be sent, the window is taken whole in one
    pass; it must be exactly what cutting the history into turns gives."""
    messages = flat(history)
    if duplicate and any(isinstance(m, ToolMessage) for m in messages):
        first = next(i for i, m in enumerate(messages) if isinstance(m, ToolMessage))
        messages.insert(first, messages[first])  # a result given twice
    shortcut = select_window(messages, max_messages=max_messages, max_tokens=max_tokens)
    with patch.object(window, "_all_sendable", lambda _: False):  # the turns, always
        by_turns = select_window(messages, max_messages=max_messages, max_tokens=max_tokens)
    assert shortcut == by_turns
