"""hivebus tools: ``@tool``, the tool executor actor and the built-in tools.

Built on :mod:`bus` only.
"""

from ._tool import Tool, ToolContext, tool
from .builtin import DirListing, HttpResponse, calculator, clock, file_tools, http_get_tool, notes
from .errors import ArgumentsError, InvalidArguments, MalformedArguments, ToolError
from .executor import ErrorKind, ToolExecutor, ToolExecutorStats, ToolStats
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
    "ArgumentsError",
    "DirListing",
    "ErrorKind",
    "HttpResponse",
    "InvalidArguments",
    "MalformedArguments",
    "NoteGet",
    "NoteSet",
    "Notes",
    "Tool",
    "ToolCallRequest",
    "ToolContext",
    "ToolError",
    "ToolExecutor",
    "ToolExecutorStats",
    "ToolResult",
    "ToolStats",
    "calculator",
    "clock",
    "file_tools",
    "http_get_tool",
    "notes",
    "tool",
]
