"""The contract every memory store keeps, run against each store through a real bus."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import anyio
import pytest

from agents.llm.wire import (
    AssistantMessage,
    ChatMessage,
    DeveloperMessage,
    FunctionCall,
    FunctionMessage,
    ImagePart,
    ImageURL,
    SystemMessage,
    TextPart,
    ToolCall,
    ToolMessage,
    UserMessage,
)
from agents.memory import (
    MEMORY_APPEND,
    MEMORY_CLEAR,
    MEMORY_WINDOW,
    Appended,
    InMemoryStore,
    MemoryAppend,
    MemoryClear,
    MemoryStore,
    MemoryWindow,
    SQLiteStore,
    Window,
)
from bus import Bus, RemoteError
from tools.messages import NOTE_GET, NOTE_SET, NoteGet, NoteSet

pytestmark = pytest.mark.anyio

MakeStore = Callable[..., MemoryStore]
SYSTEM = SystemMessage(content="You are terse.")


@pytest.fixture(params=["in-memory", "sqlite"])
def make_store(request: pytest.FixtureRequest, tmp_path: Path) -> MakeStore:
    def make(**options: object) -> MemoryStore:
        if request.param == "in-memory":
            return InMemoryStore(**options)  # type: ignore[arg-type]
        return SQLiteStore(tmp_path / "memory.db", **options)  # type: ignore[arg-type]

    return make


async def append(bus: Bus, conversation: str, *messages: ChatMessage) -> Appended:
    request = MemoryAppend(conversation_id=conversation, messages=list(messages))
    return await bus.request(MEMORY_APPEND, request, timeout=5)


async def window(bus: Bus, conversation: str, **limits: int) -> Window:
    request = MemoryWindow(conversation_id=conversation, **limits)
    return await bus.request(MEMORY_WINDOW, request, timeout=5)


def user(text: str) -> UserMessage:
    return UserMessage(content=text)


def texts(w: Window) -> list[str]:
    return [m.content for m in w.messages if isinstance(m.content, str)]


async def test_an_append_is_answered_with_the_new_total(make_store: MakeStore) -> None:
    async with Bus() as bus:
        await bus.add(make_store())
        first = await append(bus, "c1", SYSTEM, user("hi"))
        second = await append(bus, "c1", AssistantMessage(content="hello"))
    assert (first.conversation_id, first.total) == ("c1", 2)
    assert second.total == 3


async def test_every_kind_of_message_comes_back_as_it_was_stored(make_store: MakeStore) -> None:
    history: list[ChatMessage] = [
        SYSTEM,
        DeveloperMessage(content=[TextPart(text="be brief")], name="ops"),
        UserMessage(
            content=[TextPart(text="what is this?"), ImagePart(image_url=ImageURL(url="u"))]
        ),
        AssistantMessage(
            tool_calls=[ToolCall(id="t1", function=FunctionCall(name="calc", arguments='{"x":1}'))]
        ),
        ToolMessage(tool_call_id="t1", content="2"),
        AssistantMessage(content="2, é 🐝", refusal=None),
        FunctionMessage(content=None, name="legacy"),
    ]
    async with Bus() as bus:
        await bus.add(make_store())
        await append(bus, "c1", *history)
        w = await window(bus, "c1")
    assert w.messages == history
    assert (w.conversation_id, w.dropped) == ("c1", 0)
    assert w.tokens > 0


async def test_an_unknown_conversation_has_an_empty_window(make_store: MakeStore) -> None:
    store = make_store()
    async with Bus() as bus:
        await bus.add(store)
        w = await window(bus, "nobody")
    assert (w.messages, w.tokens, w.dropped) == ([], 0, 0)
    assert store.stats().conversations == 0  # reading does not create it


async def test_the_store_limits_apply_when_a_request_gives_none(make_store: MakeStore) -> None:
    async with Bus() as bus:
        await bus.add(make_store(max_messages=3))
        await append(bus, "c1", SYSTEM, *(user(str(i)) for i in range(10)))
        by_default = await window(bus, "c1")
        asked = await window(bus, "c1", max_messages=5)
    assert by_default.messages == [SYSTEM, user("8"), user("9")]
    assert by_default.dropped == 8
    assert texts(asked)[1:] == ["6", "7", "8", "9"]


async def test_the_token_budget_keeps_the_system_prompt_and_the_newest_turns(
    make_store: MakeStore,
) -> None:
    async with Bus() as bus:
        await bus.add(make_store(count_tokens=lambda m: 10))
        await append(bus, "c1", SYSTEM, *(user(str(i)) for i in range(10)))
        w = await window(bus, "c1", max_tokens=35)
    assert w.messages == [SYSTEM, user("8"), user("9")]
    assert w.tokens == 30


async def test_a_tool_call_and_its_results_come_and_go_together(make_store: MakeStore) -> None:
    call = AssistantMessage(
        tool_calls=[
            ToolCall(id=i, function=FunctionCall(name="calc", arguments="{}")) for i in "ab"
        ]
    )
    results = [ToolMessage(tool_call_id=i, content="1") for i in "ab"]
    async with Bus() as bus:
        await bus.add(make_store())
        await append(bus, "c1", SYSTEM, user("add"), call)
        unfinished = await window(bus, "c1")
        await append(bus, "c1", *results)
        await append(bus, "c1", AssistantMessage(content="2"))
        narrow = await window(bus, "c1", max_messages=4)
        wide = await window(bus, "c1", max_messages=5)
    assert unfinished.messages == [SYSTEM, user("add")]  # a call is never sent unanswered
    assert narrow.messages == [SYSTEM, AssistantMessage(content="2")]
    assert wide.messages == [SYSTEM, call, *results, AssistantMessage(content="2")]


async def test_a_bad_limit_is_answered_with_an_error_and_the_store_goes_on(
    make_store: MakeStore,
) -> None:
    async with Bus() as bus:
        await bus.add(make_store())
        with pytest.raises(RemoteError, match=r"window limits must be >= 0") as caught:
            await window(bus, "c1", max_messages=-1)
        assert caught.value.remote_type == "ValueError"
        assert (await append(bus, "c1", user("still here"))).total == 1


async def test_clear_forgets_the_messages_and_the_notes(make_store: MakeStore) -> None:
    store = make_store()
    async with Bus() as bus:
        await bus.add(store)
        await append(bus, "c1", user("a"), user("b"))
        await bus.request(NOTE_SET, NoteSet(conversation_id="c1", key="k", value="v"), timeout=5)
        cleared = await bus.request(MEMORY_CLEAR, MemoryClear(conversation_id="c1"), timeout=5)
        after = await window(bus, "c1")
        notes = await bus.request(NOTE_GET, NoteGet(conversation_id="c1"), timeout=5)
        again = await append(bus, "c1", user("fresh"))
    assert (cleared.conversation_id, cleared.removed) == ("c1", 2)
    assert after.messages == []
    assert notes.notes == {}
    assert again.total == 1
    assert store.stats().clears == 1


async def test_clearing_an_unknown_conversation_removes_nothing(make_store: MakeStore) -> None:
    async with Bus() as bus:
        await bus.add(make_store())
        cleared = await bus.request(MEMORY_CLEAR, MemoryClear(conversation_id="x"), timeout=5)
    assert cleared.removed == 0


async def test_clearing_one_conversation_leaves_the_others(make_store: MakeStore) -> None:
    async with Bus() as bus:
        await bus.add(make_store())
        await append(bus, "c1", user("one"))
        await append(bus, "c2", user("two"))
        await bus.request(MEMORY_CLEAR, MemoryClear(conversation_id="c1"), timeout=5)
        w = await window(bus, "c2")
    assert texts(w) == ["two"]


async def test_many_conversations_appended_concurrently_stay_apart(make_store: MakeStore) -> None:
    conversations = 500

    async def converse(n: int) -> None:
        for step in range(3):
            total = await append(bus, f"c{n}", user(f"{n}:{step}"))
            assert total.total == step + 1

    store = make_store()
    async with Bus() as bus:
        await bus.add(store)
        async with anyio.create_task_group() as tg:
            for n in range(conversations):
                tg.start_soon(converse, n)
        windows = [await window(bus, f"c{n}") for n in range(conversations)]
    for n, w in enumerate(windows):
        assert texts(w) == [f"{n}:0", f"{n}:1", f"{n}:2"]
    stats = store.stats()
    assert (stats.conversations, stats.messages) == (conversations, 3 * conversations)
    assert (stats.appends, stats.windows) == (3 * conversations, conversations)


async def test_concurrent_appends_to_one_conversation_each_get_their_own_total(
    make_store: MakeStore,
) -> None:
    async with Bus() as bus:
        await bus.add(make_store())
        totals: list[int] = []

        async def add(n: int) -> None:
            totals.append((await append(bus, "shared", user(str(n)), user(str(n)))).total)

        async with anyio.create_task_group() as tg:
            for n in range(100):
                tg.start_soon(add, n)
        w = await window(bus, "shared")
    assert sorted(totals) == list(range(2, 201, 2))
    pairs = texts(w)
    assert all(pairs[i] == pairs[i + 1] for i in range(0, 200, 2))  # no append interleaved


# -- notes ---------------------------------------------------------------------------------


async def set_note(bus: Bus, conversation: str, key: str, value: str) -> dict[str, str]:
    request = NoteSet(conversation_id=conversation, key=key, value=value)
    return (await bus.request(NOTE_SET, request, timeout=5)).notes


async def get_notes(bus: Bus, conversation: str, key: str | None = None) -> dict[str, str]:
    request = NoteGet(conversation_id=conversation, key=key)
    return (await bus.request(NOTE_GET, request, timeout=5)).notes


async def test_setting_a_note_answers_with_all_the_notes(make_store: MakeStore) -> None:
    async with Bus() as bus:
        await bus.add(make_store())
        assert await set_note(bus, "c1", "city", "Lyon") == {"city": "Lyon"}
        assert await set_note(bus, "c1", "unit", "metric") == {"city": "Lyon", "unit": "metric"}
        assert await set_note(bus, "c1", "city", "Paris") == {"city": "Paris", "unit": "metric"}


async def test_getting_notes_gives_one_key_or_all(make_store: MakeStore) -> None:
    async with Bus() as bus:
        await bus.add(make_store())
        await set_note(bus, "c1", "a", "1")
        await set_note(bus, "c1", "b", "2")
        assert await get_notes(bus, "c1") == {"a": "1", "b": "2"}
        assert await get_notes(bus, "c1", "b") == {"b": "2"}
        assert await get_notes(bus, "c1", "missing") == {}
        assert await get_notes(bus, "nobody") == {}


async def test_notes_are_kept_per_conversation(make_store: MakeStore) -> None:
    store = make_store()
    async with Bus() as bus:
        await bus.add(store)
        await set_note(bus, "c1", "k", "one")
        await set_note(bus, "c2", "k", "two")
        await append(bus, "c1", user("messages do not touch notes"))
        assert await get_notes(bus, "c1") == {"k": "one"}
        assert await get_notes(bus, "c2") == {"k": "two"}
    stats = store.stats()
    assert (stats.conversations, stats.note_writes, stats.note_reads) == (2, 2, 2)


async def test_a_window_request_can_store_messages_first(make_store: MakeStore) -> None:
    store = make_store()
    async with Bus() as bus:
        await bus.add(store)
        await append(bus, "c", user("one"))
        request = MemoryWindow(conversation_id="c", append=[user("two"), user("three")])
        got = await bus.request(MEMORY_WINDOW, request, timeout=5)
        assert texts(got) == ["one", "two", "three"]  # stored, then the window
        assert texts(await window(bus, "c")) == ["one", "two", "three"]  # and kept
        empty = MemoryWindow(conversation_id="c", append=[])
        assert texts(await bus.request(MEMORY_WINDOW, empty, timeout=5)) == ["one", "two", "three"]
    assert store.stats().appends == 2
