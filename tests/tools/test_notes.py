"""``notes``: a per-conversation scratchpad, kept by whichever actor answers the notes topics."""

from __future__ import annotations

import pytest

from bus import Actor, Bus, Context, handler
from tools import (
    NOTE_GET,
    NOTE_SET,
    TOOL_CALL,
    NoteGet,
    Notes,
    NoteSet,
    ToolCallRequest,
    ToolContext,
    ToolExecutor,
    ToolResult,
    notes,
)

pytestmark = pytest.mark.anyio


class NoteStore(Actor):
    """The memory store's side of the contract, in a dict; records who asked."""

    def __init__(self) -> None:
        super().__init__("notes")
        self.notes: dict[str, dict[str, str]] = {}
        self.causes: list[str | None] = []

    @handler(NOTE_SET)
    async def set(self, msg: NoteSet, ctx: Context) -> Notes:
        self.causes.append(ctx.causation_id)
        kept = self.notes.setdefault(msg.conversation_id, {})
        kept[msg.key] = msg.value
        return Notes(conversation_id=msg.conversation_id, notes=dict(kept))

    @handler(NOTE_GET)
    async def get(self, msg: NoteGet, ctx: Context) -> Notes:
        self.causes.append(ctx.causation_id)
        kept = self.notes.get(msg.conversation_id, {})
        if msg.key is not None:
            kept = {msg.key: kept[msg.key]} if msg.key in kept else {}
        return Notes(conversation_id=msg.conversation_id, notes=dict(kept))


@pytest.fixture
async def store(bus: Bus) -> NoteStore:
    await bus.add(ToolExecutor([notes]))
    return await bus.add(NoteStore())  # type: ignore[return-value]


async def note(bus: Bus, arguments: str, conversation: str = "conv-1") -> ToolResult:
    request = ToolCallRequest(
        call_id="n1", name="notes", arguments=arguments, conversation_id=conversation
    )
    return await bus.request(TOOL_CALL, request)


async def test_a_note_set_can_be_read_back(bus: Bus, store: NoteStore) -> None:
    saved = await note(bus, '{"action": "set", "key": "city", "value": "Lyon"}')
    assert (saved.content, saved.is_error) == ("noted 'city'", False)
    assert store.notes == {"conv-1": {"city": "Lyon"}}
    assert (await note(bus, '{"action": "get", "key": "city"}')).content == "Lyon"


async def test_list_returns_every_note_as_json(bus: Bus, store: NoteStore) -> None:
    assert (await note(bus, '{"action": "list"}')).content == "{}"
    await note(bus, '{"action": "set", "key": "a", "value": "1"}')
    await note(bus, '{"action": "set", "key": "b", "value": "2"}')
    await note(bus, '{"action": "set", "key": "a", "value": "3"}')
    assert (await note(bus, '{"action": "list"}')).content == '{"a":"3","b":"2"}'


async def test_conversations_keep_their_own_notes(bus: Bus, store: NoteStore) -> None:
    await note(bus, '{"action": "set", "key": "k", "value": "one"}', conversation="c1")
    await note(bus, '{"action": "set", "key": "k", "value": "two"}', conversation="c2")
    assert (await note(bus, '{"action": "get", "key": "k"}', conversation="c1")).content == "one"
    assert (await note(bus, '{"action": "get", "key": "k"}', conversation="c2")).content == "two"
    assert (await note(bus, '{"action": "list"}', conversation="c3")).content == "{}"


async def test_a_missing_note_is_an_error_result_naming_it(bus: Bus, store: NoteStore) -> None:
    result = await note(bus, '{"action": "get", "key": "ghost"}')
    assert result.is_error
    assert result.content == (
        "tool 'notes' raised LookupError: no note named 'ghost' in this conversation"
    )


@pytest.mark.parametrize("action", ["set", "get"])
async def test_set_and_get_need_a_key(bus: Bus, store: NoteStore, action: str) -> None:
    result = await note(bus, f'{{"action": "{action}"}}')
    assert result.content == f"tool 'notes' raised ValueError: \"{action}\" needs a key"


async def test_an_unknown_action_is_refused_by_the_schema(bus: Bus, store: NoteStore) -> None:
    result = await note(bus, '{"action": "delete", "key": "k"}')
    assert result.is_error
    assert result.content == (
        "invalid arguments for tool 'notes': Invalid enum value 'delete' - at `$.action`"
    )


async def test_a_call_outside_any_conversation_has_no_notes(bus: Bus, store: NoteStore) -> None:
    result = await note(bus, '{"action": "list"}', conversation="")
    assert result.content == (
        "tool 'notes' raised ValueError: this call belongs to no conversation, so it has no notes"
    )
    assert store.causes == []


async def test_the_store_is_asked_as_a_consequence_of_the_tool_call(
    bus: Bus, store: NoteStore
) -> None:
    await note(bus, '{"action": "list"}')
    assert len(store.causes) == 1
    assert store.causes[0] is not None


async def test_without_a_store_the_error_says_nobody_answers(bus: Bus) -> None:
    await bus.add(ToolExecutor([notes]))
    result = await note(bus, '{"action": "list"}')
    assert result.is_error
    assert result.content.startswith("tool 'notes' raised NoResponders:")
    assert "memory.note.get" in result.content


async def test_invoked_directly_without_a_bus_it_says_so() -> None:
    with pytest.raises(RuntimeError, match=r"did not come over the bus"):
        await notes.invoke('{"action": "list"}', ToolContext(conversation_id="c"))
