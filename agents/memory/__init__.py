"""Memory stores: actors answering ``memory.append``, ``memory.window`` and ``memory.clear``."""

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

__all__ = [
    "MEMORY_APPEND",
    "MEMORY_CLEAR",
    "MEMORY_WINDOW",
    "Appended",
    "Cleared",
    "MemoryAppend",
    "MemoryClear",
    "MemoryWindow",
    "Window",
]
