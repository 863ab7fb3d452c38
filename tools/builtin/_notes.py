"""``notes``: a key-value scratchpad per conversation, kept by the memory store.

The tool holds nothing itself: it asks whichever actor answers ``memory.note.set`` and
``memory.note.get`` on the bus, through the call's context, so the notes outlive the call
and live where the rest of the conversation does.
"""

from __future__ import annotations

from typing import Literal

from .._tool import ToolContext, tool
from ..messages import NOTE_GET, NOTE_SET, NoteGet, NoteSet


@tool
async def notes(
    ctx: ToolContext, action: Literal["set", "get", "list"], key: str = "", value: str = ""
) -> str | dict[str, str]:
    """Keep notes for this conversation: "set" stores value under key, "get" reads one key,
    "list" returns every note."""
    if not ctx.conversation_id:
        raise ValueError("this call belongs to no conversation, so it has no notes")
    if action == "list":
        return (await ctx.request(NOTE_GET, NoteGet(conversation_id=ctx.conversation_id))).notes
    if not key:
        raise ValueError(f'"{action}" needs a key')
    if action == "set":
        await ctx.request(
            NOTE_SET, NoteSet(conversation_id=ctx.conversation_id, key=key, value=value)
        )
        return f"noted {key!r}"
    found = await ctx.request(NOTE_GET, NoteGet(conversation_id=ctx.conversation_id, key=key))
    if key not in found.notes:
        raise LookupError(f"no note named {key!r} in this conversation")
    return found.notes[key]
