"""What travels on the bus for tools: ``tool.call`` requests, their results, and notes.

The notes messages live here (not in ``agents``) because the built-in ``notes`` tool
sends them and ``tools`` may import only ``bus``; the memory stores in ``agents.memory``
answer them.
"""

from __future__ import annotations

from bus import Message, Topic


class ToolCallRequest(Message, frozen=True, kw_only=True):
    """Run tool ``name`` with the model's raw JSON ``arguments`` (decoded by the executor)."""

    call_id: str
    name: str
    arguments: str = "{}"
    conversation_id: str = ""
    agent: str = ""


class ToolResult(Message, frozen=True, kw_only=True):
    """What goes back to the model: the tool's output, or a precise error it can act on."""

    call_id: str
    name: str
    content: str
    is_error: bool = False


class NoteSet(Message, frozen=True, kw_only=True):
    """Store ``value`` under ``key`` in one conversation's notes (replacing any old value)."""

    conversation_id: str
    key: str
    value: str


class NoteGet(Message, frozen=True, kw_only=True):
    """Read one conversation's notes: one ``key``, or all of them when ``key`` is None."""

    conversation_id: str
    key: str | None = None


class Notes(Message, frozen=True, kw_only=True):
    """A conversation's notes (only the asked key, if one was asked and exists)."""

    conversation_id: str
    notes: dict[str, str]


TOOL_CALL: Topic[ToolCallRequest, ToolResult] = Topic(
    "tool.call", ToolCallRequest, reply=ToolResult
)
NOTE_SET: Topic[NoteSet, Notes] = Topic("memory.note.set", NoteSet, reply=Notes)
NOTE_GET: Topic[NoteGet, Notes] = Topic("memory.note.get", NoteGet, reply=Notes)
