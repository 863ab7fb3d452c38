"""Which stored messages go to the model: the sliding window, as pure functions.

Both stores use these, so a window is the same whatever keeps the history. The rules:
system and developer messages are *pinned* (always kept, and counted toward both
limits); the rest is cut into *turns* — one message, or an assistant message with tool
calls together with the tool results that follow it, which are kept or dropped as one;
the newest turns win.
"""

from __future__ import annotations

from collections.abc import Sequence
from itertools import pairwise
from typing import NamedTuple, Protocol

from ..llm.wire import (
    AssistantMessage,
    ChatMessage,
    DeveloperMessage,
    RefusalPart,
    SystemMessage,
    TextPart,
    ToolCall,
    ToolMessage,
)

_PINNED = (SystemMessage, DeveloperMessage)

# The estimate: ~4 characters of English per token, plus what the chat format spends
# around each message and each tool call, and a flat cost per image, audio or file part.
CHARS_PER_TOKEN = 4
MESSAGE_OVERHEAD = 4
TOOL_CALL_OVERHEAD = 8
ATTACHMENT_TOKENS = 85


class TokenCounter(Protocol):
    """Counts the tokens one message costs in a prompt (a tokenizer, or an estimate)."""

    def __call__(self, message: ChatMessage, /) -> int: ...


def estimate_tokens(message: ChatMessage) -> int:
    """A fast *estimate* of a message's tokens: characters / 4 plus a per-message overhead.

    It reads the text, the name, tool call names and arguments, and counts an image, audio
    or file part as a flat 85 tokens. Real tokenizers differ by ±30 % on English and more on
    code or other languages; pass a real counter to the store when the budget is tight.
    """
    chars = 0
    tokens = MESSAGE_OVERHEAD
    content = message.content
    if isinstance(content, str):
        chars += len(content)
    elif content is not None:
        for part in content:
            if isinstance(part, TextPart):
                chars += len(part.text)
            elif isinstance(part, RefusalPart):
                chars += len(part.refusal)
            else:
                tokens += ATTACHMENT_TOKENS
    if isinstance(message, ToolMessage):
        chars += len(message.tool_call_id)
    else:
        chars += len(message.name or "")
    if isinstance(message, AssistantMessage):
        chars += len(message.refusal or "")
        for call in message.tool_calls or ():
            tokens += TOOL_CALL_OVERHEAD
            if isinstance(call, ToolCall):
                chars += len(call.id) + len(call.function.name) + len(call.function.arguments)
            else:
                chars += len(call.id) + len(call.custom.name) + len(call.custom.input)
    return tokens + -(-chars // CHARS_PER_TOKEN)


class _Turn(NamedTuple):
    start: int
    stop: int
    # False for a tool result with no call before it, or calls missing a result: the
    # API rejects either, so such a turn is never sent (and kept in storage as it came).
    is_sendable: bool


def _split(messages: Sequence[ChatMessage]) -> tuple[list[int], list[_Turn]]:
    """The indexes of the pinned messages, and the other messages cut into turns."""
    pinned: list[int] = []
    turns: list[_Turn] = []
    i, n = 0, len(messages)
    while i < n:
        message = messages[i]
        if isinstance(message, _PINNED):
            pinned.append(i)
            i += 1
        elif isinstance(message, AssistantMessage) and message.tool_calls:
            calls = {call.id for call in message.tool_calls}
            answered: set[str] = set()
            j = i + 1
            while j < n:
                result = messages[j]
                if not isinstance(result, ToolMessage) or result.tool_call_id not in calls:
                    break
                answered.add(result.tool_call_id)
                j += 1
            turns.append(_Turn(i, j, answered == calls))
            i = j
        else:
            turns.append(_Turn(i, i + 1, not isinstance(message, ToolMessage)))
            i += 1
    return pinned, turns


def _all_sendable(messages: Sequence[ChatMessage]) -> bool:
    """True if every turn of ``messages`` may be sent: each tool result answers a call of
    the assistant message before it, and every call has its result (what :func:`_split`
    finds, in one pass with no turns built; False leaves the question to it)."""
    waiting: set[str] = set()  # calls of the last assistant message not answered yet
    calls: set[str] = set()  # all of that message's calls
    for message in messages:
        if isinstance(message, ToolMessage):
            if message.tool_call_id not in calls or message.tool_call_id not in waiting:
                return False  # a result with no call before it (or twice): _split decides
            waiting.discard(message.tool_call_id)
            continue
        if waiting:
            return False  # calls missing a result
        calls = set()
        if isinstance(message, AssistantMessage) and message.tool_calls:
            calls = {call.id for call in message.tool_calls}
            waiting = set(calls)
    return not waiting


def select_window(
    messages: Sequence[ChatMessage],
    *,
    max_messages: int | None = None,
    max_tokens: int | None = None,
    count_tokens: TokenCounter = estimate_tokens,
    costs: Sequence[int] | None = None,
) -> tuple[list[ChatMessage], int, int]:
    """The newest turns that fit, with every pinned message: ``(window, tokens, dropped)``.

    ``costs``, if given, are the messages' token counts already made (a store that counts
    each message once, when it is stored); else ``count_tokens`` counts them now.

    ``window`` keeps the stored order; ``tokens`` is its cost by ``count_tokens``;
    ``dropped`` is how many stored messages were left out. A limit of None is no limit.
    Turns are taken newest first until one does not fit, so the window is always a
    contiguous stretch of the conversation's end (never a later turn with a hole before
    it). If the pinned messages alone exceed a limit, the window is just them: the system
    prompt is never dropped to make room.
    """
    if (max_messages is not None and max_messages < 0) or (
        max_tokens is not None and max_tokens < 0
    ):
        raise ValueError(f"window limits must be >= 0, got {max_messages=}, {max_tokens=}")
    if costs is None:
        costs = [count_tokens(m) for m in messages]
    elif len(costs) != len(messages):
        raise ValueError(f"{len(costs)} token counts for {len(messages)} messages")
    if (max_messages is None or len(messages) <= max_messages) and _all_sendable(messages):
        total = sum(costs)
        if max_tokens is None or total <= max_tokens:
            return list(messages), total, 0  # all of it fits: what the turns below come to
    pinned, turns = _split(messages)
    size = len(pinned)
    tokens = sum(costs[i] for i in pinned)
    first = len(messages)  # the start of the oldest turn kept
    for turn in reversed(turns):
        if not turn.is_sendable:
            continue
        cost = sum(costs[turn.start : turn.stop])
        grown = size + turn.stop - turn.start
        if (max_messages is not None and grown > max_messages) or (
            max_tokens is not None and tokens + cost > max_tokens
        ):
            break
        size, tokens, first = grown, tokens + cost, turn.start
    keep = [False] * len(messages)
    for i in pinned:
        keep[i] = True
    for turn in turns:
        if turn.start >= first and turn.is_sendable:
            keep[turn.start : turn.stop] = [True] * (turn.stop - turn.start)
    window = [m for m, kept in zip(messages, keep, strict=True) if kept]
    return window, tokens, len(messages) - len(window)


def trim_history(messages: Sequence[ChatMessage], max_stored: int) -> list[ChatMessage]:
    """The history with its oldest turns dropped until at most ``max_stored`` messages remain.

    For bounding what a store keeps, not what the model sees: pinned messages and the
    newest turn always stay (so the result may exceed ``max_stored``), turns go whole, and
    an unfinished tool-call turn is kept as it is, since its results may be on their way.
    """
    if len(messages) <= max_stored:
        return list(messages)
    _, turns = _split(messages)
    excess = len(messages) - max_stored
    start = 0
    for turn, following in pairwise(turns):
        if excess <= 0:
            break
        excess -= turn.stop - turn.start
        start = following.start
    return [m for i, m in enumerate(messages) if i >= start or isinstance(m, _PINNED)]
