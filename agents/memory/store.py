"""What every memory store answers on the bus, whatever keeps the history."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence

import msgspec

from bus import Actor, handler
from tools.messages import NOTE_GET, NOTE_SET, NoteGet, Notes, NoteSet

from ..llm.wire import ChatMessage
from .messages import (
    MEMORY_APPEND,
    MEMORY_CLEAR,
    MEMORY_WINDOW,
    Appended,
    Cleared,
    MemoryAppend,
    MemoryClear,
    MemoryWindow,
    Window,
)
from .window import TokenCounter, estimate_tokens, select_window

# Requests beyond what the store is doing wait in the bus buffer (a deque), which is
# cheaper than parking thousands of agent loops on a full one.
_BUFFER = 65_536


class MemoryStats(msgspec.Struct, frozen=True, kw_only=True):
    """What a store holds and has done.

    ``conversations`` and ``messages`` are held now; the evictions and ``trimmed`` (old
    messages dropped past ``max_stored``) are the in-memory store's bounds at work.
    """

    conversations: int
    messages: int
    appends: int
    windows: int
    clears: int
    note_writes: int
    note_reads: int
    evicted_ttl: int = 0
    evicted_capacity: int = 0
    trimmed: int = 0


class MemoryStore(Actor, ABC):
    """Base of the stores: answers ``memory.append``, ``memory.window``, ``memory.clear``,
    ``memory.note.set`` and ``memory.note.get`` from what a subclass keeps.

    ``max_messages`` and ``max_tokens`` are the limits of a window request that gives
    none (None: no limit); ``count_tokens`` prices messages for ``max_tokens``.
    A subclass implements the five storage methods and ``_sizes``.
    """

    def __init__(
        self,
        name: str,
        *,
        max_messages: int | None = None,
        max_tokens: int | None = None,
        count_tokens: TokenCounter = estimate_tokens,
    ) -> None:
        super().__init__(name)
        if (max_messages is not None and max_messages < 0) or (
            max_tokens is not None and max_tokens < 0
        ):
            raise ValueError(f"window limits must be >= 0, got {max_messages=}, {max_tokens=}")
        self.max_messages = max_messages
        self.max_tokens = max_tokens
        self.count_tokens = count_tokens
        self._appends = self._windows = self._clears = self._note_writes = self._note_reads = 0
        self._evicted_ttl = self._evicted_capacity = self._trimmed = 0

    @handler(MEMORY_APPEND, buffer=_BUFFER)
    async def append(self, request: MemoryAppend) -> Appended:
        """Store the messages; the reply means they are kept (durably, if the store is)."""
        total = await self._store_messages(request.conversation_id, request.messages)
        self._appends += 1
        return Appended(conversation_id=request.conversation_id, total=total)

    @handler(MEMORY_WINDOW, buffer=_BUFFER)
    async def window(self, request: MemoryWindow) -> Window:
        """The newest turns within the request's limits (or the store's), after storing the
        request's ``append`` if it has one; see select_window."""
        if request.append:
            stored, costs = await self._store_and_load(request.conversation_id, request.append)
            self._appends += 1
        else:
            stored, costs = await self._load_for_window(request.conversation_id)
        messages, tokens, dropped = select_window(
            stored,
            costs=costs,
            max_messages=self.max_messages
            if request.max_messages is None
            else request.max_messages,
            max_tokens=self.max_tokens if request.max_tokens is None else request.max_tokens,
            count_tokens=self.count_tokens,
        )
        self._windows += 1
        return Window(
            conversation_id=request.conversation_id,
            messages=messages,
            tokens=tokens,
            dropped=dropped,
        )

    @handler(MEMORY_CLEAR, buffer=_BUFFER)
    async def clear(self, request: MemoryClear) -> Cleared:
        """Forget the conversation, messages and notes; ``removed`` counts the messages."""
        removed = await self._forget(request.conversation_id)
        self._clears += 1
        return Cleared(conversation_id=request.conversation_id, removed=removed)

    @handler(NOTE_SET, buffer=_BUFFER)
    async def set_note(self, request: NoteSet) -> Notes:
        """Store one note; the reply holds all of the conversation's notes after it."""
        notes = await self._store_note(request.conversation_id, request.key, request.value)
        self._note_writes += 1
        return Notes(conversation_id=request.conversation_id, notes=notes)

    @handler(NOTE_GET, buffer=_BUFFER)
    async def get_notes(self, request: NoteGet) -> Notes:
        """All of the conversation's notes, or only ``key`` (none if it is not set)."""
        notes = await self._load_notes(request.conversation_id, request.key)
        self._note_reads += 1
        return Notes(conversation_id=request.conversation_id, notes=notes)

    def stats(self) -> MemoryStats:
        """A snapshot of what the store holds and of its counters."""
        conversations, messages = self._sizes()
        return MemoryStats(
            conversations=conversations,
            messages=messages,
            appends=self._appends,
            windows=self._windows,
            clears=self._clears,
            note_writes=self._note_writes,
            note_reads=self._note_reads,
            evicted_ttl=self._evicted_ttl,
            evicted_capacity=self._evicted_capacity,
            trimmed=self._trimmed,
        )

    @abstractmethod
    async def _store_messages(self, conversation_id: str, messages: list[ChatMessage]) -> int:
        """Append to the conversation (creating it); return how many messages it holds."""

    async def _load_for_window(
        self, conversation_id: str
    ) -> tuple[Sequence[ChatMessage], Sequence[int] | None]:
        """The stored messages and, if the store keeps them, their token counts (by
        ``count_tokens``, in the same order); None: counted when a window is asked for."""
        return await self._load_messages(conversation_id), None

    async def _store_and_load(
        self, conversation_id: str, messages: list[ChatMessage]
    ) -> tuple[Sequence[ChatMessage], Sequence[int] | None]:
        """Append ``messages``, then what :meth:`_load_for_window` gives (a store may do
        both in one step: every step of an agent asks for both)."""
        await self._store_messages(conversation_id, messages)
        return await self._load_for_window(conversation_id)

    @abstractmethod
    async def _load_messages(self, conversation_id: str) -> Sequence[ChatMessage]:
        """The conversation's messages, oldest first (none if it is unknown)."""

    @abstractmethod
    async def _forget(self, conversation_id: str) -> int:
        """Remove the conversation and its notes; return how many messages it held."""

    @abstractmethod
    async def _store_note(self, conversation_id: str, key: str, value: str) -> dict[str, str]:
        """Set one note (creating the conversation); return all of its notes."""

    @abstractmethod
    async def _load_notes(self, conversation_id: str, key: str | None) -> dict[str, str]:
        """All of the conversation's notes, or just ``key`` if given and set."""

    @abstractmethod
    def _sizes(self) -> tuple[int, int]:
        """How many conversations and messages the store holds now."""
