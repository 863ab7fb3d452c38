"""The in-memory store's bounds: idle conversations evicted by age and count, long ones trimmed."""

from __future__ import annotations

import pytest

from agents.llm.wire import (
    AssistantMessage,
    ChatMessage,
    FunctionCall,
    SystemMessage,
    ToolCall,
    ToolMessage,
    UserMessage,
)
from agents.memory import (
    MEMORY_APPEND,
    MEMORY_CLEAR,
    MEMORY_WINDOW,
    InMemoryStore,
    MemoryAppend,
    MemoryClear,
    MemoryWindow,
    Window,
)
from bus import Bus, RemoteError
from tools.messages import NOTE_GET, NOTE_SET, NoteGet, NoteSet

pytestmark = pytest.mark.anyio

SYSTEM = SystemMessage(content="You are terse.")


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


async def append(bus: Bus, conversation: str, *messages: ChatMessage) -> int:
    request = MemoryAppend(conversation_id=conversation, messages=list(messages))
    return (await bus.request(MEMORY_APPEND, request, timeout=5)).total


async def window(bus: Bus, conversation: str) -> Window:
    request = MemoryWindow(conversation_id=conversation)
    return await bus.request(MEMORY_WINDOW, request, timeout=5)


def user(text: str) -> UserMessage:
    return UserMessage(content=text)


# -- eviction by age -------------------------------------------------------------------------


async def test_an_idle_conversation_is_evicted_when_another_is_touched() -> None:
    clock = FakeClock()
    store = InMemoryStore(ttl=60, clock=clock)
    async with Bus() as bus:
        await bus.add(store)
        await append(bus, "idle", user("a"), user("b"))
        clock.now += 30
        await append(bus, "busy", user("x"))
        clock.now += 30  # "idle" is 60 s old, "busy" 30 s
        await window(bus, "busy")
        stats = store.stats()
        assert (stats.conversations, stats.messages, stats.evicted_ttl) == (1, 1, 1)
        assert (await window(bus, "idle")).messages == []


async def test_any_request_keeps_a_conversation_alive() -> None:
    clock = FakeClock()
    store = InMemoryStore(ttl=60, clock=clock)
    async with Bus() as bus:
        await bus.add(store)
        await append(bus, "c1", user("a"))
        for _ in range(3):
            clock.now += 59
            await window(bus, "c1")
        clock.now += 59
        await bus.request(NOTE_SET, NoteSet(conversation_id="c1", key="k", value="v"), timeout=5)
        clock.now += 59
        await bus.request(NOTE_GET, NoteGet(conversation_id="c1"), timeout=5)
        clock.now += 59
        assert [m.content for m in (await window(bus, "c1")).messages] == ["a"]
    assert store.stats().evicted_ttl == 0


async def test_an_evicted_conversation_takes_its_notes_with_it() -> None:
    clock = FakeClock()
    store = InMemoryStore(ttl=10, clock=clock)
    async with Bus() as bus:
        await bus.add(store)
        await bus.request(NOTE_SET, NoteSet(conversation_id="c1", key="k", value="v"), timeout=5)
        clock.now += 10
        notes = await bus.request(NOTE_GET, NoteGet(conversation_id="c1"), timeout=5)
    assert notes.notes == {}
    assert store.stats().evicted_ttl == 1


async def test_clearing_evicts_the_idle_ones_too() -> None:
    clock = FakeClock()
    store = InMemoryStore(ttl=10, clock=clock)
    async with Bus() as bus:
        await bus.add(store)
        await append(bus, "old", user("a"))
        clock.now += 11
        await bus.request(MEMORY_CLEAR, MemoryClear(conversation_id="other"), timeout=5)
    assert (store.stats().conversations, store.stats().evicted_ttl) == (0, 1)


async def test_with_no_ttl_nothing_ages_out() -> None:
    clock = FakeClock()
    store = InMemoryStore(ttl=None, clock=clock)
    async with Bus() as bus:
        await bus.add(store)
        await append(bus, "c1", user("a"))
        clock.now += 10**9
        assert len((await window(bus, "c1")).messages) == 1


# -- eviction by count -------------------------------------------------------------------------


async def test_past_max_conversations_the_least_recently_touched_goes() -> None:
    clock = FakeClock()
    store = InMemoryStore(max_conversations=2, clock=clock)
    async with Bus() as bus:
        await bus.add(store)
        await append(bus, "c1", user("1"))
        await append(bus, "c2", user("2"))
        await window(bus, "c1")  # c2 is now the least recently touched
        await append(bus, "c3", user("3"))
        kept = [bool((await window(bus, c)).messages) for c in ("c1", "c2", "c3")]
    assert kept == [True, False, True]
    stats = store.stats()
    assert (stats.conversations, stats.messages, stats.evicted_capacity) == (2, 2, 1)


async def test_a_thousand_conversations_in_a_store_of_a_hundred() -> None:
    store = InMemoryStore(max_conversations=100)
    async with Bus() as bus:
        await bus.add(store)
        for n in range(1000):
            await append(bus, f"c{n}", user(str(n)))
    stats = store.stats()
    assert (stats.conversations, stats.messages, stats.evicted_capacity) == (100, 100, 900)


async def test_reading_an_unknown_conversation_evicts_nothing() -> None:
    store = InMemoryStore(max_conversations=1)
    async with Bus() as bus:
        await bus.add(store)
        await append(bus, "c1", user("a"))
        await window(bus, "ghost")
        await bus.request(NOTE_GET, NoteGet(conversation_id="ghost"), timeout=5)
        assert len((await window(bus, "c1")).messages) == 1
    assert store.stats().evicted_capacity == 0


# -- the cap on a conversation's length ----------------------------------------------------------


async def test_past_max_stored_the_oldest_turns_go_and_the_system_prompt_stays() -> None:
    store = InMemoryStore(max_stored=4)
    async with Bus() as bus:
        await bus.add(store)
        await append(bus, "c1", SYSTEM, user("0"), user("1"), user("2"))
        total = await append(bus, "c1", user("3"), user("4"))
        w = await window(bus, "c1")
    assert total == 4
    assert w.messages == [SYSTEM, user("2"), user("3"), user("4")]
    assert w.dropped == 0  # the window counts against what is stored
    stats = store.stats()
    assert (stats.messages, stats.trimmed) == (4, 2)


async def test_a_trim_never_cuts_a_tool_call_from_its_results() -> None:
    call = AssistantMessage(
        tool_calls=[ToolCall(id="t", function=FunctionCall(name="f", arguments="{}"))]
    )
    result = ToolMessage(tool_call_id="t", content="ok")
    store = InMemoryStore(max_stored=3)
    async with Bus() as bus:
        await bus.add(store)
        await append(bus, "c1", user("go"), call, result)
        await append(bus, "c1", AssistantMessage(content="done"))
        w = await window(bus, "c1")
    assert w.messages == [call, result, AssistantMessage(content="done")]


# -- configuration -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("options", "error"),
    [
        ({"ttl": 0}, r"ttl must be > 0"),
        ({"max_conversations": 0}, r"max_conversations must be >= 1"),
        ({"max_stored": 0}, r"max_stored must be >= 1"),
        ({"max_messages": -1}, r"window limits must be >= 0"),
        ({"max_tokens": -1}, r"window limits must be >= 0"),
    ],
)
def test_bad_bounds_are_refused(options: dict[str, int], error: str) -> None:
    with pytest.raises(ValueError, match=error):
        InMemoryStore(**options)  # type: ignore[arg-type]


def test_the_store_has_a_name_and_bounds_by_default() -> None:
    store = InMemoryStore()
    assert store.name == "memory"
    assert store.ttl is not None and store.max_conversations is not None
    assert store.max_stored is None


async def test_each_message_is_counted_once_however_many_windows_read_it() -> None:
    counted: list[ChatMessage] = []

    def count(message: ChatMessage) -> int:
        counted.append(message)
        return 10

    store = InMemoryStore(count_tokens=count, max_stored=3)
    async with Bus() as bus:
        await bus.add(store)
        await append(bus, "c", SYSTEM, user("one"))
        for _ in range(3):
            assert (await window(bus, "c")).tokens == 20
        assert len(counted) == 2  # at the append, not at each window
        await append(bus, "c", user("two"), user("three"))  # past max_stored: trimmed
        got = await window(bus, "c")
        assert [m.content for m in got.messages] == ["You are terse.", "two", "three"]
        assert got.tokens == 30


async def test_a_token_counter_that_fails_stores_nothing_and_breaks_nothing() -> None:
    fail = [True]

    def count(message: ChatMessage) -> int:
        if fail[0]:
            fail[0] = False
            raise ValueError("tokenizer down")
        return 7

    async with Bus() as bus:
        await bus.add(InMemoryStore(count_tokens=count))
        with pytest.raises(RemoteError, match="tokenizer down"):
            await append(bus, "c", user("lost"))
        assert await append(bus, "c", user("kept")) == 1
        got = await window(bus, "c")
        assert [m.content for m in got.messages] == ["kept"] and got.tokens == 7
