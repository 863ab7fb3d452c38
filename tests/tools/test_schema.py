"""The JSON schema ``@tool`` derives from type hints: what a model is told it may send."""

from __future__ import annotations

import datetime
import enum
from typing import Annotated, Any, Literal

import msgspec
import pytest

from tools import ToolContext, tool


class Color(enum.Enum):
    RED = "red"
    BLUE = "blue"


class Point(msgspec.Struct, frozen=True):
    """A point on the grid."""

    x: int
    y: int = 0


class Shape(msgspec.Struct, frozen=True):
    name: str
    corners: list[Point]
    color: Color = Color.RED


class Node(msgspec.Struct, frozen=True):
    """A tree: a value and its children."""

    value: int
    children: list[Node] = []


class Opaque:
    """A class msgspec cannot describe."""


def _refs(node: Any) -> list[str]:
    if isinstance(node, dict):
        own = [node["$ref"]] if "$ref" in node else []
        return own + [
            ref for key, value in node.items() if key != "default" for ref in _refs(value)
        ]
    if isinstance(node, list):
        return [ref for item in node for ref in _refs(item)]
    return []


def test_a_function_with_scalars_gets_an_object_schema_with_required_and_no_extras() -> None:
    @tool
    def add(a: int, b: float, label: str, exact: bool) -> str:
        return ""

    assert add.parameters == {
        "type": "object",
        "properties": {
            "a": {"type": "integer"},
            "b": {"type": "number"},
            "label": {"type": "string"},
            "exact": {"type": "boolean"},
        },
        "required": ["a", "b", "label", "exact"],
        "additionalProperties": False,
    }


def test_defaults_make_a_parameter_optional_and_are_shown() -> None:
    @tool
    def search(query: str, limit: int = 10, exact: bool = False) -> str:
        return ""

    assert search.parameters["required"] == ["query"]
    assert search.parameters["properties"]["limit"] == {"type": "integer", "default": 10}
    assert search.parameters["properties"]["exact"] == {"type": "boolean", "default": False}


def test_optional_parameters_accept_null() -> None:
    @tool
    def find(limit: int | None = None) -> str:
        return ""

    assert find.parameters["properties"]["limit"] == {
        "anyOf": [{"type": "integer"}, {"type": "null"}],
        "default": None,
    }
    assert find.parameters["required"] == []


def test_literals_and_enums_become_enums() -> None:
    @tool
    def paint(mode: Literal["fill", "stroke"], color: Color = Color.BLUE) -> str:
        return ""

    props = paint.parameters["properties"]
    assert props["mode"] == {"enum": ["fill", "stroke"]}
    assert props["color"]["enum"] == ["blue", "red"]
    assert props["color"]["default"] == "blue"


def test_nested_structs_are_inlined_with_their_docstrings() -> None:
    @tool
    def draw(shape: Shape) -> str:
        return ""

    shape = draw.parameters["properties"]["shape"]
    assert "$defs" not in draw.parameters
    assert _refs(draw.parameters) == []
    assert shape["required"] == ["name", "corners"]
    point = shape["properties"]["corners"]["items"]
    assert point["description"] == "A point on the grid."
    assert point["properties"] == {"x": {"type": "integer"}, "y": {"type": "integer", "default": 0}}
    assert shape["properties"]["color"]["enum"] == ["blue", "red"]
    assert shape["properties"]["color"]["default"] == "red"


def test_a_recursive_struct_keeps_one_definition_that_every_ref_resolves_to() -> None:
    @tool
    def sum_tree(tree: Node) -> int:
        return 0

    schema = sum_tree.parameters
    assert set(schema["$defs"]) == {"Node"}
    assert schema["properties"]["tree"]["description"] == "A tree: a value and its children."
    refs = _refs(schema)
    assert refs and set(refs) == {"#/$defs/Node"}


def test_annotated_meta_gives_bounds_and_descriptions() -> None:
    @tool
    def wait(
        seconds: Annotated[float, msgspec.Meta(ge=0, le=60, description="How long to wait")],
    ) -> str:
        return ""

    assert wait.parameters["properties"]["seconds"] == {
        "type": "number",
        "minimum": 0,
        "maximum": 60,
        "description": "How long to wait",
    }


def test_containers_and_dates_are_described() -> None:
    @tool
    def plan(tags: list[str], scores: dict[str, int], when: datetime.date) -> str:
        return ""

    props = plan.parameters["properties"]
    assert props["tags"] == {"type": "array", "items": {"type": "string"}}
    assert props["scores"] == {"type": "object", "additionalProperties": {"type": "integer"}}
    assert props["when"] == {"type": "string", "format": "date"}


def test_the_tool_context_parameter_is_not_shown_to_the_model() -> None:
    @tool
    async def whoami(ctx: ToolContext, loud: bool = False) -> str:
        return ctx.agent

    assert list(whoami.parameters["properties"]) == ["loud"]
    assert whoami.parameters["required"] == []


def test_a_function_without_parameters_takes_an_empty_object() -> None:
    @tool
    def ping() -> str:
        return "pong"

    assert ping.parameters == {
        "type": "object",
        "properties": {},
        "required": [],
        "additionalProperties": False,
    }


def test_the_schema_has_no_title_of_the_internal_arguments_type() -> None:
    @tool
    def named(x: int) -> str:
        return ""

    assert "title" not in named.parameters
    assert "named_arguments" not in msgspec.json.encode(named.definition()).decode()


def test_the_definition_is_the_openai_function_tool_shape() -> None:
    @tool
    def lookup(word: str) -> str:
        """Look a word up in the dictionary.

        Returns the first definition found.
        """
        return ""

    definition = lookup.definition()
    assert definition == {
        "type": "function",
        "function": {
            "name": "lookup",
            "description": (
                "Look a word up in the dictionary.\n\nReturns the first definition found."
            ),
            "parameters": lookup.parameters,
        },
    }
    assert msgspec.json.decode(msgspec.json.encode(definition)) == definition


def test_a_function_without_docstring_has_no_description_in_its_definition() -> None:
    @tool
    def bare(x: int) -> str:
        return ""

    assert bare.description == ""
    assert "description" not in bare.definition()["function"]


def test_name_and_description_can_be_given() -> None:
    @tool(name="web-search", description="Search the web.")
    def search(query: str) -> str:
        """Not this."""
        return ""

    assert (search.name, search.description) == ("web-search", "Search the web.")
    assert search.definition()["function"]["name"] == "web-search"


@pytest.mark.parametrize(
    "make",
    [
        pytest.param(lambda: tool(_untyped), id="no hints"),
        pytest.param(lambda: tool(_star_args), id="*args"),
        pytest.param(lambda: tool(_star_kwargs), id="**kwargs"),
        pytest.param(lambda: tool(_positional_only), id="positional-only"),
    ],
)
def test_functions_that_cannot_be_described_are_refused_at_decoration(make: Any) -> None:
    with pytest.raises(TypeError, match=r"tool '.*': parameter"):
        make()


def _untyped(x):  # type: ignore[no-untyped-def]
    return x


def _star_args(*values: int) -> int:
    return sum(values)


def _star_kwargs(**values: int) -> int:
    return sum(values.values())


def _positional_only(x: int, /) -> int:
    return x


def test_a_missing_hint_is_named_in_the_error() -> None:
    def half_typed(a: int, b) -> int:  # type: ignore[no-untyped-def]
        return a

    with pytest.raises(TypeError, match=r"parameter 'b' has no type hint"):
        tool(half_typed)


def test_an_unresolvable_hint_is_refused_with_the_name() -> None:
    def uses_missing(x: NotDefinedAnywhere) -> int:  # type: ignore[name-defined]  # noqa: F821
        return 0

    with pytest.raises(TypeError, match=r"cannot resolve its type hints .*NotDefinedAnywhere"):
        tool(uses_missing)


def test_a_type_without_a_json_form_is_refused() -> None:
    def opaque(thing: Opaque) -> int:
        return 0

    with pytest.raises(TypeError, match=r"tool 'opaque'"):
        tool(opaque)


def test_two_context_parameters_are_refused() -> None:
    def twice(a: ToolContext, b: ToolContext) -> int:
        return 0

    with pytest.raises(TypeError, match=r"only one parameter may take the ToolContext"):
        tool(twice)


@pytest.mark.parametrize("name", ["", "has space", "x" * 65, "dots.not.allowed"])
def test_a_name_a_model_api_would_reject_is_refused(name: str) -> None:
    with pytest.raises(ValueError, match=r"must match"):
        tool(name=name)(_one)


def _one(x: int) -> int:
    return x


def test_limits_must_be_positive() -> None:
    with pytest.raises(ValueError, match=r"timeout must be > 0, got 0"):
        tool(timeout=0)(_one)
    with pytest.raises(ValueError, match=r"concurrency must be >= 1, got 0"):
        tool(concurrency=0)(_one)
