"""A ``Tool`` on its own: still the function it wraps, and invoked with a model's JSON."""

from __future__ import annotations

import dataclasses
import threading

import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st

from tools import (
    ArgumentsError,
    InvalidArguments,
    MalformedArguments,
    Tool,
    ToolContext,
    ToolError,
    tool,
)

from .test_schema import Color, Node, Point

pytestmark = pytest.mark.anyio


@tool
def add(a: int, b: int = 0) -> int:
    """Add two integers."""
    return a + b


@tool
async def shout(text: str) -> str:
    return text.upper()


@dataclasses.dataclass
class Area:
    width: int
    height: int


def test_the_decorated_function_is_still_callable_as_before() -> None:
    assert isinstance(add, Tool)
    assert add(2, 3) == 5
    assert add(a=2) == 2
    assert add.func(1, 1) == 2
    assert repr(add) == "<Tool 'add'>"


async def test_an_async_tool_is_still_awaitable_as_before() -> None:
    assert await shout("hi") == "HI"


async def test_invoke_decodes_json_runs_a_sync_tool_and_encodes_its_output() -> None:
    assert await add.invoke('{"a": 2, "b": 40}') == "42"
    assert await add.invoke(b'{"a": 1}') == "1"


async def test_invoke_awaits_an_async_tool_and_returns_a_string_unchanged() -> None:
    assert await shout.invoke('{"text": "quiet \\"please\\""}') == 'QUIET "PLEASE"'


async def test_a_sync_tool_runs_in_a_worker_thread() -> None:
    @tool
    def where() -> str:
        return threading.current_thread().name

    assert await where.invoke("{}") != threading.current_thread().name


async def test_an_empty_argument_string_counts_as_an_empty_object() -> None:
    @tool
    def nothing() -> str:
        return "ok"

    assert await nothing.invoke("") == "ok"
    assert await nothing.invoke("  \n") == "ok"


async def test_arguments_arrive_as_typed_python_values() -> None:
    seen: list[object] = []

    @tool
    def typed(point: Point, color: Color, tree: Node, tags: list[str] | None = None) -> str:
        seen.extend([point, color, tree, tags])
        return "ok"

    arguments = (
        '{"point": {"x": 1}, "color": "blue", "tree": {"value": 1, "children": [{"value": 2}]}}'
    )
    await typed.invoke(arguments)
    assert seen == [Point(1, 0), Color.BLUE, Node(1, [Node(2)]), None]


@pytest.mark.parametrize(
    ("result", "content"),
    [
        ("plain text", "plain text"),
        (3.5, "3.5"),
        (None, "null"),
        (True, "true"),
        ([1, "a"], '[1,"a"]'),
        ({"k": [Point(1, 2)]}, '{"k":[{"x":1,"y":2}]}'),
        (Area(2, 3), '{"width":2,"height":3}'),
        (Color.RED, '"red"'),
    ],
)
async def test_outputs_other_than_strings_are_encoded_as_json(result: object, content: str) -> None:
    @tool
    def give() -> object:
        return result

    assert await give.invoke("{}") == content


async def test_an_output_with_no_json_form_is_a_type_error_naming_the_tool() -> None:
    @tool
    def leaky() -> object:
        return threading.Lock()

    with pytest.raises(TypeError, match=r"tool 'leaky' returned a .*lock with no JSON form"):
        await leaky.invoke("{}")


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ('{"a": "1"}', r"Expected `int`, got `str` - at `\$.a`"),
        ('{"a": 1.5}', r"Expected `int`, got `float` - at `\$.a`"),
        ("{}", r"Object missing required field `a`"),
        ('{"a": 1, "c": 2}', r"Object contains unknown field `c`"),
        ("[1, 2]", r"Expected `object`, got `array`"),
        ('{"a": null}', r"Expected `int`, got `null` - at `\$.a`"),
    ],
)
async def test_arguments_that_break_the_schema_say_what_and_where(
    arguments: str, message: str
) -> None:
    with pytest.raises(InvalidArguments, match=rf"invalid arguments for tool 'add': {message}"):
        await add.invoke(arguments)


async def test_nested_schema_errors_give_the_path() -> None:
    @tool
    def place(points: list[Point]) -> str:
        return "ok"

    with pytest.raises(InvalidArguments, match=r"at `\$.points\[1\].x`"):
        await place.invoke('{"points": [{"x": 1}, {"x": "two"}]}')


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ('{"a": 1', r"truncated"),
        ('{"a": 1} trailing', r"trailing characters \(byte \d+\)"),
        ("{a: 1}", r"malformed"),
        ("not json", r"malformed"),
    ],
)
async def test_arguments_that_are_not_json_say_so(arguments: str, message: str) -> None:
    with pytest.raises(
        MalformedArguments, match=rf"arguments for tool 'add' are not valid JSON: .*{message}"
    ):
        await add.invoke(arguments)


def test_argument_errors_are_hivebus_errors_carrying_the_tool() -> None:
    error = InvalidArguments("add", "bad")
    assert isinstance(error, ArgumentsError)
    assert isinstance(error, ToolError)
    assert isinstance(error, ValueError)
    assert error.tool == "add"


async def test_exceptions_from_the_function_propagate_from_invoke() -> None:
    @tool
    def broken(x: int) -> int:
        raise KeyError(x)

    with pytest.raises(KeyError):
        await broken.invoke('{"x": 1}')


async def test_decoding_is_strict_no_string_to_number_coercion() -> None:
    with pytest.raises(InvalidArguments):
        await add.invoke('{"a": "42"}')


async def test_a_tool_invoked_directly_gets_an_empty_context() -> None:
    @tool
    async def who(ctx: ToolContext) -> str:
        return f"{ctx.call_id!r} {ctx.conversation_id!r} {ctx.context}"

    assert await who.invoke("{}") == "'' '' None"


async def test_a_given_context_is_injected_into_its_parameter() -> None:
    @tool
    def who(name: str, ctx: ToolContext) -> str:
        return f"{name} in {ctx.conversation_id} for {ctx.agent}"

    ctx = ToolContext(call_id="c1", conversation_id="conv", agent="alice")
    assert await who.invoke('{"name": "bob"}', ctx) == "bob in conv for alice"


async def test_sending_on_the_bus_without_one_is_a_clear_error() -> None:
    from tools import NOTE_GET, NoteGet

    with pytest.raises(RuntimeError, match=r"did not come over the bus"):
        await ToolContext().request(NOTE_GET, NoteGet(conversation_id="c"))
    with pytest.raises(RuntimeError, match=r"did not come over the bus"):
        await ToolContext().publish(NOTE_GET, NoteGet(conversation_id="c"))


@given(a=st.integers(), b=st.integers())
def test_invoke_agrees_with_calling_the_function(a: int, b: int) -> None:
    arguments = msgspec.json.encode({"a": a, "b": b})
    # msgspec decodes ints up to 64 bits; beyond that the arguments are refused, not wrapped
    try:
        decoded = add.decode(arguments)
    except InvalidArguments:
        assert not (-(2**63) <= a < 2**64 and -(2**63) <= b < 2**64)
        return
    assert decoded == {"a": a, "b": b}
    assert add(**decoded) == a + b
