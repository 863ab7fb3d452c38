"""What travels on the bus for memory: ``memory.append``, ``memory.window``, ``memory.clear``.

Every request names its conversation; a store keeps each conversation apart.
"""

from __future__ import annotations

from bus import Message, Topic

from ..llm.wire import ChatMessage


class MemoryAppend(Message, frozen=True, kw_only=True):
    """Add ``messages`` to the end of a conversation (created on first append)."""

    conversation_id: str
    messages: list[ChatMessage]


class Appended(Message, frozen=True, kw_only=True):
    """The append is stored (durably, for a persistent store); ``total`` messages now."""

    conversation_id: str
    total: int


class MemoryWindow(Message, frozen=True, kw_only=True):
    """Ask for the newest messages that fit; limits default to the store's.

    ``max_messages`` and ``max_tokens`` bound the window; system messages are always kept
    and count toward both; an assistant message with tool calls is never returned without
    its tool results, nor a tool result without its call.

    ``append``: messages to store first, as a ``memory.append`` would (one round trip for
    an agent's "remember the last step, then show me the conversation").
    """

    conversation_id: str
    max_messages: int | None = None
    max_tokens: int | None = None
    append: list[ChatMessage] | None = None


class Window(Message, frozen=True, kw_only=True):
    """The window, oldest first, its estimated ``tokens``, and how many were ``dropped``."""

    conversation_id: str
    messages: list[ChatMessage]
    tokens: int
    dropped: int


class MemoryClear(Message, frozen=True, kw_only=True):
    """Forget a conversation: its messages and its notes."""

    conversation_id: str


class Cleared(Message, frozen=True, kw_only=True):
    """How many messages were forgotten."""

    conversation_id: str
    removed: int


MEMORY_APPEND: Topic[MemoryAppend, Appended] = Topic("memory.append", MemoryAppend, reply=Appended)
MEMORY_WINDOW: Topic[MemoryWindow, Window] = Topic("memory.window", MemoryWindow, reply=Window)
MEMORY_CLEAR: Topic[MemoryClear, Cleared] = Topic("memory.clear", MemoryClear, reply=Cleared)
