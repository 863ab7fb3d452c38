"""The SQLite store: the file outlives the store, WAL mode, one thread, failures answered."""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path

import anyio
import pytest

from agents.llm.wire import ChatMessage, SystemMessage, UserMessage
from agents.memory import (
    MEMORY_APPEND,
    MEMORY_WINDOW,
    MemoryAppend,
    MemoryWindow,
    SQLiteStore,
    Window,
)
from agents.memory._sqlite import SCHEMA_VERSION, Database
from bus import Bus, RemoteError
from tools.messages import NOTE_GET, NOTE_SET, NoteGet, NoteSet

pytestmark = pytest.mark.anyio


async def append(bus: Bus, conversation: str, *messages: ChatMessage) -> int:
    request = MemoryAppend(conversation_id=conversation, messages=list(messages))
    return (await bus.request(MEMORY_APPEND, request, timeout=5)).total


async def window(bus: Bus, conversation: str) -> Window:
    request = MemoryWindow(conversation_id=conversation)
    return await bus.request(MEMORY_WINDOW, request, timeout=5)


def user(text: str) -> UserMessage:
    return UserMessage(content=text)


def store_threads() -> list[str]:
    return [t.name for t in threading.enumerate() if t.name.startswith("hivebus-memory")]


async def test_a_new_store_on_the_same_file_finds_everything(tmp_path: Path) -> None:
    path = tmp_path / "memory.db"
    async with Bus() as bus:
        await bus.add(SQLiteStore(path))
        await append(bus, "c1", SystemMessage(content="sys"), user("a"))
        await append(bus, "c2", user("b"))
        await bus.request(NOTE_SET, NoteSet(conversation_id="c1", key="k", value="v"), timeout=5)
    reopened = SQLiteStore(path)
    async with Bus() as bus:
        await bus.add(reopened)
        w = await window(bus, "c1")
        notes = await bus.request(NOTE_GET, NoteGet(conversation_id="c1"), timeout=5)
        total = await append(bus, "c1", user("c"))
    assert w.messages == [SystemMessage(content="sys"), user("a")]
    assert notes.notes == {"k": "v"}
    assert total == 3  # numbering goes on where it stopped
    stats = reopened.stats()
    assert (stats.conversations, stats.messages) == (2, 4)


async def test_the_file_is_in_wal_mode_with_the_asked_synchronous(tmp_path: Path) -> None:
    path = tmp_path / "memory.db"
    store = SQLiteStore(path, synchronous="FULL")
    async with Bus() as bus:
        await bus.add(store)
        await append(bus, "c1", user("a"))
        assert store.stats().messages == 1
    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone() == ("wal",)
        assert conn.execute("PRAGMA user_version").fetchone() == (SCHEMA_VERSION,)
    conn.close()


def test_an_unknown_synchronous_mode_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"synchronous must be 'NORMAL' or 'FULL'"):
        SQLiteStore(tmp_path / "m.db", synchronous="OFF")  # type: ignore[arg-type]


async def test_the_connection_and_its_thread_go_with_the_bus(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "memory.db")
    async with Bus() as bus:
        await bus.add(store)
        await append(bus, "c1", user("a"))
        assert len(store_threads()) == 1
    assert store_threads() == []
    assert store.stats().messages == 1  # the last counts stay readable


async def test_a_file_from_a_newer_hivebus_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "memory.db"
    with sqlite3.connect(path) as conn:
        conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    conn.close()
    async with Bus() as bus:
        with pytest.raises(RuntimeError, match=r"schema version 2 is newer"):
            await bus.add(SQLiteStore(path))
    assert store_threads() == []


async def test_a_path_that_cannot_be_opened_fails_the_start(tmp_path: Path) -> None:
    async with Bus() as bus:
        with pytest.raises(sqlite3.OperationalError):
            await bus.add(SQLiteStore(tmp_path / "no-such-dir" / "memory.db"))
    assert store_threads() == []


async def test_a_failed_write_is_answered_with_the_error_and_stores_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = SQLiteStore(tmp_path / "memory.db")
    async with Bus() as bus:
        await bus.add(store)
        await append(bus, "c1", user("kept"))
        real_write = Database._write

        def full_disk(self: Database, batch: list[object]) -> None:
            raise sqlite3.OperationalError("database or disk is full")

        monkeypatch.setattr(Database, "_write", full_disk)
        with pytest.raises(RemoteError, match=r"disk is full") as caught:
            await append(bus, "c1", user("lost"))
        assert caught.value.remote_type == "OperationalError"
        monkeypatch.setattr(Database, "_write", real_write)
        assert await append(bus, "c1", user("after")) == 2
        assert [m.content for m in (await window(bus, "c1")).messages] == ["kept", "after"]
    assert store.stats().appends == 2


async def test_a_write_that_fails_midway_is_rolled_back(tmp_path: Path) -> None:
    path = tmp_path / "memory.db"
    async with Bus() as bus:
        await bus.add(SQLiteStore(path))
        await append(bus, "c1", user("kept"))
        with sqlite3.connect(path) as vandal:  # another process breaks the file under us
            vandal.execute("DROP TABLE messages")
        vandal.close()
        with pytest.raises(RemoteError, match=r"no such table"):
            await append(bus, "c2", user("lost"))
    with sqlite3.connect(path) as conn:
        rows = conn.execute("SELECT id, length FROM conversations ORDER BY id").fetchall()
    conn.close()
    assert rows == [("c1", 1)]  # c2's row, written first in the transaction, is gone


async def test_concurrent_appends_are_committed_in_few_transactions(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "memory.db", synchronous="FULL")
    async with Bus() as bus:
        await bus.add(store)
        transactions = 0
        original = Database._write

        def counting(self: Database, batch: list[object]) -> None:
            nonlocal transactions
            transactions += 1
            original(self, batch)  # type: ignore[arg-type]

        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(Database, "_write", counting)
            async with anyio.create_task_group() as tg:
                for n in range(200):
                    tg.start_soon(append, bus, f"c{n}", user(str(n)))
    assert store.stats().messages == 200
    assert transactions < 200  # group commit: appends waiting on a commit share the next


async def test_a_restart_reopens_the_file(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "memory.db")
    async with Bus() as bus:
        await bus.add(store)
        await append(bus, "c1", user("a"))
        await store.on_stop()
        await store.on_start()
        assert len(store_threads()) == 1
        assert await append(bus, "c1", user("b")) == 2
