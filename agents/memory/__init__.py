"""Memory stores: actors answering ``memory.append``, ``memory.window`` and ``memory.clear``.

:class:`InMemoryStore` keeps conversations in the process (bounded by age, count and
length); :class:`SQLiteStore` keeps them in a file. Both answer the notes requests of the
``notes`` tool too, and pick windows with :func:`select_window`.
"""

from .in_memory import InMemoryStore
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
from .sqlite import SQLiteStore
from .store import MemoryStats, MemoryStore
from .window import TokenCounter, estimate_tokens, select_window, trim_history

__all__ = [
    "MEMORY_APPEND",
    "MEMORY_CLEAR",
    "MEMORY_WINDOW",
    "Appended",
    "Cleared",
    "InMemoryStore",
    "MemoryAppend",
    "MemoryClear",
    "MemoryStats",
    "MemoryStore",
    "MemoryWindow",
    "SQLiteStore",
    "TokenCounter",
    "Window",
    "estimate_tokens",
    "select_window",
    "trim_history",
]
