"""The in-memory store: conversations in a dict, bounded in number, age and length."""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable, Sequence

from ..llm.wire import ChatMessage
from .store import MemoryStore
from .window import TokenCounter, estimate_tokens, trim_history


class _Conversation:
    __slots__ = ("costs", "messages", "notes", "touched")

    def __init__(self, touched: float) -> None:
        self.messages: list[ChatMessage] = []
        self.costs: list[int] = []  # each message's tokens, counted once when stored
        self.notes: dict[str, str] = {}
        self.touched = touched


class InMemoryStore(MemoryStore):
    """Conversations kept in this process, lost with it; for tests and stateless services.

    So that a long-running service does not grow without bound, a conversation not
    touched (appended, read, cleared, noted) for ``ttl`` seconds is evicted, and past
    ``max_conversations`` the least recently touched one is; both are counted in
    :meth:`stats`. Eviction happens on every request, oldest first, so an idle
    conversation goes as soon as any conversation is touched; there is no background task.
    ``max_stored`` (default: no cap) bounds each conversation's history: past it, the
    oldest turns are dropped whole (see :func:`trim_history`), pinned messages stay, and
    ``Appended.total`` counts what is left. ``clock`` is injectable for tests.
    """

    def __init__(
        self,
        *,
        name: str = "memory",
        max_messages: int | None = None,
        max_tokens: int | None = None,
        count_tokens: TokenCounter = estimate_tokens,
        ttl: float | None = 24 * 3600.0,
        max_conversations: int | None = 100_000,
        max_stored: int | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__(
            name, max_messages=max_messages, max_tokens=max_tokens, count_tokens=count_tokens
        )
        if ttl is not None and ttl <= 0:
            raise ValueError(f"ttl must be > 0 seconds, got {ttl}")
        if max_conversations is not None and max_conversations < 1:
            raise ValueError(f"max_conversations must be >= 1, got {max_conversations}")
        if max_stored is not None and max_stored < 1:
            raise ValueError(f"max_stored must be >= 1, got {max_stored}")
        self.ttl = ttl
        self.max_conversations = max_conversations
        self.max_stored = max_stored
        self._clock = clock
        # Least recently touched first: eviction by age and by count both pop the front.
        self._conversations: OrderedDict[str, _Conversation] = OrderedDict()
        self._message_count = 0

    async def _store_messages(self, conversation_id: str, messages: list[ChatMessage]) -> int:
        return len(self._store(conversation_id, messages).messages)

    async def _store_and_load(
        self, conversation_id: str, messages: list[ChatMessage]
    ) -> tuple[Sequence[ChatMessage], Sequence[int] | None]:
        conversation = self._store(conversation_id, messages)  # (touched once, not twice)
        return conversation.messages, conversation.costs

    def _store(self, conversation_id: str, messages: list[ChatMessage]) -> _Conversation:
        conversation = self._touch(conversation_id, create=True)
        assert conversation is not None
        count = self.count_tokens
        costs = [count(m) for m in messages]  # first: a counter that raises stores nothing
        history = conversation.messages
        history.extend(messages)
        conversation.costs.extend(costs)
        self._message_count += len(messages)
        if self.max_stored is not None and len(history) > self.max_stored:
            kept = trim_history(history, self.max_stored)
            self._trimmed += len(history) - len(kept)
            self._message_count -= len(history) - len(kept)
            conversation.messages = kept
            conversation.costs = [count(m) for m in kept]
        return conversation

    async def _load_for_window(
        self, conversation_id: str
    ) -> tuple[Sequence[ChatMessage], Sequence[int] | None]:
        conversation = self._touch(conversation_id, create=False)
        if conversation is None:
            return (), ()
        return conversation.messages, conversation.costs

    async def _load_messages(self, conversation_id: str) -> Sequence[ChatMessage]:
        conversation = self._touch(conversation_id, create=False)
        return () if conversation is None else conversation.messages

    async def _forget(self, conversation_id: str) -> int:
        self._evict_idle(self._clock())
        conversation = self._conversations.pop(conversation_id, None)
        if conversation is None:
            return 0
        self._message_count -= len(conversation.messages)
        return len(conversation.messages)

    async def _store_note(self, conversation_id: str, key: str, value: str) -> dict[str, str]:
        conversation = self._touch(conversation_id, create=True)
        assert conversation is not None
        conversation.notes[key] = value
        return dict(conversation.notes)

    async def _load_notes(self, conversation_id: str, key: str | None) -> dict[str, str]:
        conversation = self._touch(conversation_id, create=False)
        if conversation is None:
            return {}
        notes = conversation.notes
        if key is None:
            return dict(notes)
        return {key: notes[key]} if key in notes else {}

    def _sizes(self) -> tuple[int, int]:
        return len(self._conversations), self._message_count

    def _touch(self, conversation_id: str, *, create: bool) -> _Conversation | None:
        """The conversation, marked as just used (made first if ``create``), after evicting
        whatever is past its TTL."""
        now = self._clock()
        self._evict_idle(now)
        conversations = self._conversations
        conversation = conversations.get(conversation_id)
        if conversation is not None:
            conversation.touched = now
            conversations.move_to_end(conversation_id)
        elif create:
            conversation = conversations[conversation_id] = _Conversation(now)
            if self.max_conversations is not None and len(conversations) > self.max_conversations:
                _, evicted = conversations.popitem(last=False)
                self._message_count -= len(evicted.messages)
                self._evicted_capacity += 1
        return conversation

    def _evict_idle(self, now: float) -> None:
        if self.ttl is None:
            return
        conversations = self._conversations
        while conversations:
            oldest = next(iter(conversations))
            conversation = conversations[oldest]
            if now - conversation.touched < self.ttl:
                return
            del conversations[oldest]
            self._message_count -= len(conversation.messages)
            self._evicted_ttl += 1
