"""The SQLite side of :class:`~agents.memory.SQLiteStore`: blocking calls for its one thread.

Every method runs on the store's worker thread; nothing here touches the event loop.
Writes are explicit ``BEGIN IMMEDIATE`` … ``COMMIT`` transactions (autocommit mode
otherwise), so a method returns only once its change is committed.
"""

from __future__ import annotations

import sqlite3
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Literal

import msgspec

from ..llm.wire import ChatMessage

SCHEMA_VERSION = 1

_SCHEMA = """
CREATE TABLE IF NOT EXISTS conversations (
    id TEXT PRIMARY KEY,
    length INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS messages (
    conversation_id TEXT NOT NULL,
    seq INTEGER NOT NULL,
    body BLOB NOT NULL,  -- the ChatMessage as JSON (msgspec), UTF-8
    PRIMARY KEY (conversation_id, seq)
);
CREATE TABLE IF NOT EXISTS notes (
    conversation_id TEXT NOT NULL,
    key TEXT NOT NULL,
    value TEXT NOT NULL,
    PRIMARY KEY (conversation_id, key)
);
"""

Synchronous = Literal["NORMAL", "FULL"]


class PendingAppend:
    """One append waiting for the writer; the writer fills in ``total`` or ``error``."""

    __slots__ = ("bodies", "conversation_id", "error", "total")

    def __init__(self, conversation_id: str, bodies: list[bytes]) -> None:
        self.conversation_id = conversation_id
        self.bodies = bodies
        self.total: int | None = None
        self.error: Exception | None = None


class Database:
    """One connection in WAL mode, with the counts the store reports kept up to date."""

    def __init__(self, path: str | Path, synchronous: Synchronous, busy_timeout: float) -> None:
        self._decode = msgspec.json.Decoder(ChatMessage).decode
        conn = sqlite3.connect(path, timeout=busy_timeout, isolation_level=None)
        try:
            version = conn.execute("PRAGMA user_version").fetchone()[0]
            if version > SCHEMA_VERSION:
                raise RuntimeError(
                    f"{path}: memory schema version {version} is newer than this "
                    f"hivebus understands ({SCHEMA_VERSION})"
                )
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute(f"PRAGMA synchronous={synchronous}")
            with _transaction(conn):
                _create(conn)
            (self.conversations,) = conn.execute("SELECT count(*) FROM conversations").fetchone()
            (self.messages,) = conn.execute("SELECT count(*) FROM messages").fetchone()
        except BaseException:
            conn.close()
            raise
        self._conn = conn

    def append(self, pending: deque[PendingAppend]) -> None:
        """Write every append waiting in ``pending`` in one transaction (group commit)."""
        batch: list[PendingAppend] = []
        while pending:  # the loop only appends; this thread alone pops
            batch.append(pending.popleft())
        if not batch:
            return  # an earlier call wrote ours
        try:
            self._write(batch)
        except Exception as exc:  # noqa: BLE001 - each waiting append raises it
            for item in batch:
                item.error = exc

    def _write(self, batch: list[PendingAppend]) -> None:
        conn = self._conn
        created = added = 0
        with _transaction(conn):
            for item in batch:
                row = conn.execute(
                    "SELECT length FROM conversations WHERE id = ?", (item.conversation_id,)
                ).fetchone()
                start = 0 if row is None else row[0]
                if row is None:
                    conn.execute(
                        "INSERT INTO conversations (id) VALUES (?)", (item.conversation_id,)
                    )
                    created += 1
                conn.executemany(
                    "INSERT INTO messages (conversation_id, seq, body) VALUES (?, ?, ?)",
                    [(item.conversation_id, start + i, b) for i, b in enumerate(item.bodies)],
                )
                item.total = start + len(item.bodies)
                conn.execute(
                    "UPDATE conversations SET length = ? WHERE id = ?",
                    (item.total, item.conversation_id),
                )
                added += len(item.bodies)
        self.conversations += created
        self.messages += added

    def load(self, conversation_id: str) -> list[ChatMessage]:
        """The whole conversation, oldest first."""
        rows = self._conn.execute(
            "SELECT body FROM messages WHERE conversation_id = ? ORDER BY seq",
            (conversation_id,),
        )
        decode = self._decode
        return [decode(body) for (body,) in rows]

    def forget(self, conversation_id: str) -> int:
        """Delete the conversation, its messages and notes; how many messages it held."""
        conn = self._conn
        with _transaction(conn):
            rows = conn.execute(
                "DELETE FROM conversations WHERE id = ? RETURNING length", (conversation_id,)
            ).fetchall()
            conn.execute("DELETE FROM messages WHERE conversation_id = ?", (conversation_id,))
            conn.execute("DELETE FROM notes WHERE conversation_id = ?", (conversation_id,))
        if not rows:
            return 0
        (removed,) = rows[0]
        self.conversations -= 1
        self.messages -= removed
        return int(removed)

    def set_note(self, conversation_id: str, key: str, value: str) -> dict[str, str]:
        """Set one note (creating the conversation); all of its notes after."""
        conn = self._conn
        with _transaction(conn):
            created = conn.execute(
                "INSERT INTO conversations (id) VALUES (?) ON CONFLICT (id) DO NOTHING",
                (conversation_id,),
            ).rowcount
            conn.execute(
                "INSERT INTO notes (conversation_id, key, value) VALUES (?, ?, ?) "
                "ON CONFLICT (conversation_id, key) DO UPDATE SET value = excluded.value",
                (conversation_id, key, value),
            )
        self.conversations += created
        return self.notes(conversation_id, None)

    def notes(self, conversation_id: str, key: str | None) -> dict[str, str]:
        """All of the conversation's notes, or just ``key``."""
        if key is None:
            rows = self._conn.execute(
                "SELECT key, value FROM notes WHERE conversation_id = ? ORDER BY key",
                (conversation_id,),
            )
        else:
            rows = self._conn.execute(
                "SELECT key, value FROM notes WHERE conversation_id = ? AND key = ?",
                (conversation_id, key),
            )
        return dict(rows.fetchall())

    def close(self) -> None:
        self._conn.close()


def _create(conn: sqlite3.Connection) -> None:
    for statement in _SCHEMA.split(";"):
        if statement.strip():
            conn.execute(statement)
    conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")


@contextmanager
def _transaction(conn: sqlite3.Connection) -> Iterator[None]:
    """A write transaction: taken at once (no lock upgrade to deadlock on), committed on
    success, rolled back on any exception."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")
