"""The SQLite store: conversations in a file that outlives the process."""

from __future__ import annotations

import asyncio
import os
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from typing import TypeVar

import msgspec

from ..llm.wire import ChatMessage
from ._sqlite import Database, PendingAppend, Synchronous
from .store import MemoryStore
from .window import TokenCounter, estimate_tokens

T = TypeVar("T")


class SQLiteStore(MemoryStore):
    """Conversations and notes in an SQLite file (WAL mode), kept across restarts.

    Durability: every reply is sent after its change is committed. With the default
    ``synchronous="NORMAL"`` a commit is in the write-ahead log, in the OS's hands: it
    survives the process being killed (even with SIGKILL), not a power loss or an OS crash;
    ``synchronous="FULL"`` fsyncs each commit so it survives those too, at a cost per commit.

    One dedicated thread owns the connection (sqlite3 connections are not thread-safe) and
    runs every statement in arrival order, so the event loop never blocks on the disk.
    Appends that arrive while the thread is busy are written together in one transaction
    (group commit). Nothing is evicted: the file keeps every message until ``memory.clear``;
    a window reads the whole conversation, then selects from it.
    """

    # Handlers only wait on the thread; more of them in flight means bigger group commits.
    concurrency = 64

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        name: str = "memory",
        max_messages: int | None = None,
        max_tokens: int | None = None,
        count_tokens: TokenCounter = estimate_tokens,
        synchronous: Synchronous = "NORMAL",
        busy_timeout: float = 5.0,
    ) -> None:
        super().__init__(
            name, max_messages=max_messages, max_tokens=max_tokens, count_tokens=count_tokens
        )
        if synchronous not in ("NORMAL", "FULL"):
            raise ValueError(f"synchronous must be 'NORMAL' or 'FULL', got {synchronous!r}")
        self.path = os.fspath(path)
        self.synchronous = synchronous
        self.busy_timeout = busy_timeout
        self._encode = msgspec.json.Encoder().encode
        self._pending: deque[PendingAppend] = deque()
        self._executor: ThreadPoolExecutor | None = None
        self._db: Database | None = None

    async def on_start(self) -> None:
        """Start the thread, open the file and create the schema if it is new."""
        self._executor = ThreadPoolExecutor(1, thread_name_prefix=f"hivebus-{self.name}")
        try:
            self._db = await self._run(Database, self.path, self.synchronous, self.busy_timeout)
        except BaseException:
            self._executor.shutdown(wait=True)
            self._executor = None
            raise

    async def on_stop(self) -> None:
        """Close the connection (on its thread, after any statement still queued) and the
        thread. :meth:`stats` keeps reporting the last counts."""
        executor, db = self._executor, self._db
        if executor is None or db is None:
            return
        try:
            await self._run(db.close)
        finally:
            self._executor = None
            executor.shutdown(wait=True)

    async def _store_messages(self, conversation_id: str, messages: list[ChatMessage]) -> int:
        db = self._database()
        item = PendingAppend(conversation_id, [self._encode(m) for m in messages])
        self._pending.append(item)
        # Usually writes this append together with any others queued meanwhile; if an
        # earlier call has already taken it, it returns at once, after that commit.
        await self._run(db.append, self._pending)
        if item.error is not None:
            raise item.error
        assert item.total is not None
        return item.total

    async def _load_messages(self, conversation_id: str) -> Sequence[ChatMessage]:
        return await self._run(self._database().load, conversation_id)

    async def _forget(self, conversation_id: str) -> int:
        return await self._run(self._database().forget, conversation_id)

    async def _store_note(self, conversation_id: str, key: str, value: str) -> dict[str, str]:
        return await self._run(self._database().set_note, conversation_id, key, value)

    async def _load_notes(self, conversation_id: str, key: str | None) -> dict[str, str]:
        return await self._run(self._database().notes, conversation_id, key)

    def _sizes(self) -> tuple[int, int]:
        db = self._db
        return (0, 0) if db is None else (db.conversations, db.messages)

    def _database(self) -> Database:
        if self._db is None or self._executor is None:
            raise RuntimeError(f"store {self.name!r} is not started")
        return self._db

    async def _run(self, function: Callable[..., T], *args: object) -> T:
        """Run ``function`` on the store's thread. Cancelling the caller does not stop it:
        a statement once queued runs to its commit (or rollback)."""
        if self._executor is None:
            raise RuntimeError(f"store {self.name!r} is not started")
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, partial(function, *args))
