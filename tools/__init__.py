"""hivebus tools: ``@tool``, the tool executor actor and the built-in tools.

Built on :mod:`bus` only.
"""

from .messages import (
    NOTE_GET,
    NOTE_SET,
    TOOL_CALL,
    NoteGet,
    Notes,
    NoteSet,
    ToolCallRequest,
    ToolResult,
)

__all__ = [
    "NOTE_GET",
    "NOTE_SET",
    "TOOL_CALL",
    "NoteGet",
    "NoteSet",
    "Notes",
    "ToolCallRequest",
    "ToolResult",
]
