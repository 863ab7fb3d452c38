"""Policies: rules matched on the conversation, scripted runs, the built-in default answer."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Annotated, Any, Literal

import msgspec
import orjson
import pytest

from agents.llm.policy import (
    Policy,
    PolicyError,
    PolicyIncomplete,
    Rule,
    ScriptedCall,
    Turn,
    agent_name,
    default_reply,
    synthesize,
)
from agents.llm.wire import (
    AllowedTools,
    AllowedToolsChoice,
    AssistantMessage,
    ChatCompletionRequest,
    ChatMessage,
    CustomTool,
    CustomToolDefinition,
    DeveloperMessage,
    FunctionCall,
    FunctionDefinition,
    FunctionTool,
    JsonSchema,
    NamedFunction,
    NamedToolChoice,
    ResponseFormatJsonObject,
    ResponseFormatJsonSchema,
    SystemMessage,
    TextPart,
    Tool,
    ToolCall,
    ToolMessage,
    UserMessage,
)

pytestmark = pytest.mark.anyio

SEARCH_PARAMETERS = {
    "type": "object",
    "properties": {
        "query": {"type": "string"},
        "limit": {"type": "integer", "minimum": 3, "maximum": 10},
        "units": {"enum": ["metric", "imperial"]},
    },
    "required": ["query", "limit", "units"],
}


def tool(name: str, parameters: dict[str, Any] | None = None) -> FunctionTool:
    return FunctionTool(function=FunctionDefinition(name=name, parameters=parameters))


def request(
    *messages: ChatMessage, tools: Sequence[Tool] = (), model: str = "mock-1", **kw: Any
) -> ChatCompletionRequest:
    return ChatCompletionRequest(
        model=model, messages=list(messages), tools=list(tools) or None, **kw
    )


def user(text: str) -> UserMessage:
    return UserMessage(content=text)


def called(name: str, arguments: str = "{}", id: str = "call_1") -> AssistantMessage:
    return AssistantMessage(
        tool_calls=[ToolCall(id=id, function=FunctionCall(name=name, arguments=arguments))]
    )


def result(text: str, id: str = "call_1") -> ToolMessage:
    return ToolMessage(content=text, tool_call_id=id)


# -- matching ------------------------------------------------------------------------------


def test_a_rule_without_conditions_matches_anything() -> None:
    policy = Policy([Rule(text="always")])
    assert policy.respond(request(user("anything"))).content == "always"


def test_a_rule_matches_on_the_role_of_the_last_message() -> None:
    policy = Policy([Rule(role="tool", text="after a tool")])
    assert policy.respond(request(user("hi"))).content != "after a tool"
    conversation = request(user("hi"), called("search"), result("42"))
    assert policy.respond(conversation).content == "after a tool"


def test_a_rule_matches_a_substring_of_the_last_message() -> None:
    policy = Policy([Rule(contains="weather", text="sunny")])
    assert policy.respond(request(user("what is the weather?"))).content == "sunny"
    assert policy.respond(request(user("what is the Weather?"))).content != "sunny"


def test_a_rule_matches_a_regex_on_the_last_message() -> None:
    policy = Policy([Rule(regex=r"(?i)\border\s+#\d+", text="found it")])
    assert policy.respond(request(user("Where is ORDER #123?"))).content == "found it"
    assert policy.respond(request(user("where is my order?"))).content != "found it"


def test_a_rule_matches_the_text_parts_of_a_message() -> None:
    policy = Policy([Rule(contains="b c", text="parts")])
    message = UserMessage(content=[TextPart(text="a b"), TextPart(text=" c")])
    assert policy.respond(request(message)).content == "parts"


def test_a_rule_matches_when_every_named_tool_is_offered() -> None:
    policy = Policy([Rule(tools=["search", "fetch"], text="both")])
    assert policy.respond(request(user("x"), tools=[tool("search")])).content != "both"
    offered = [tool("fetch"), tool("search"), tool("other")]
    assert policy.respond(request(user("x"), tools=offered)).content == "both"


def test_a_rule_matches_the_agent_named_by_the_system_prompt() -> None:
    policy = Policy([Rule(agent="researcher", text="research")])
    mine = request(SystemMessage(content="You are Researcher, a careful agent."), user("x"))
    theirs = request(SystemMessage(content="You are writer."), user("x"))
    assert policy.respond(mine).content == "research"
    assert policy.respond(theirs).content != "research"


def test_a_rule_matches_the_step_counted_in_assistant_messages() -> None:
    policy = Policy([Rule(step=1, text="second step")])
    assert policy.respond(request(user("x"))).content != "second step"
    assert policy.respond(request(user("x"), called("a"), result("r"))).content == "second step"


def test_a_rule_matches_the_model() -> None:
    policy = Policy([Rule(model="big", text="big answer")])
    assert policy.respond(request(user("x"), model="big")).content == "big answer"
    assert policy.respond(request(user("x"), model="small")).content != "big answer"


def test_every_condition_of_a_rule_must_hold() -> None:
    policy = Policy([Rule(contains="hello", step=0, model="m", text="all")])
    assert policy.respond(request(user("hello"), model="m")).content == "all"
    assert policy.respond(request(user("hello"), model="n")).content != "all"


def test_the_first_matching_rule_answers() -> None:
    policy = Policy([Rule(contains="a", text="first"), Rule(contains="a", text="second")])
    assert policy.respond(request(user("a"))).content == "first"


def test_a_turn_reads_what_rules_match_on() -> None:
    conversation = request(
        SystemMessage(content="You are the planner."),
        user("plan"),
        called("search"),
        result("done"),
        tools=[tool("search")],
        model="m",
    )
    assert Turn.of(conversation) == Turn(
        role="tool", text="done", tools=frozenset({"search"}), agent="planner", step=1, model="m"
    )


def test_the_agent_name_needs_a_leading_system_message() -> None:
    assert agent_name([user("You are bob")]) is None
    assert agent_name([SystemMessage(content="Be brief.")]) is None
    assert agent_name([SystemMessage(content="You are an analyst-2.")]) == "analyst-2"


# -- answers -------------------------------------------------------------------------------


def test_a_rule_answers_with_tool_calls_from_objects_and_raw_strings() -> None:
    calls = [
        ScriptedCall(name="search", arguments={"query": "cats"}),
        ScriptedCall(name="fetch", arguments='{"url": '),
    ]
    reply = Policy([Rule(tool_calls=calls)]).respond(request(user("x")))
    assert reply.tool_calls == [
        FunctionCall(name="search", arguments='{"query":"cats"}'),
        FunctionCall(name="fetch", arguments='{"url": '),
    ]
    assert reply.content is None


def test_a_rule_answers_with_a_json_value_as_text() -> None:
    reply = Policy([Rule(json={"score": 3, "ok": True})]).respond(request(user("x")))
    assert orjson.loads(reply.content or "") == {"score": 3, "ok": True}


def test_a_reply_names_the_rule_that_gave_it() -> None:
    policy = Policy([Rule(contains="a", text="1"), Rule(name="fallback", text="2")])
    assert policy.respond(request(user("a"))).rule == "rules[0]"
    assert policy.respond(request(user("b"))).rule == "fallback"


def test_a_rule_with_only_a_fault_carries_it_on_the_default_answer() -> None:
    reply = Policy([Rule(fault="badargs")]).respond(request(user("x"), tools=[tool("search")]))
    assert reply.fault == "badargs"
    assert [call.name for call in reply.tool_calls] == ["search"]


def test_a_rule_needs_an_answer_or_a_fault() -> None:
    with pytest.raises(ValueError, match="needs text, tool_calls, json or fault"):
        Rule(contains="x")


def test_a_rule_answers_with_text_or_json_not_both() -> None:
    with pytest.raises(ValueError, match="not both"):
        Rule(text="a", json=1)


def test_a_rule_with_a_broken_regex_is_refused() -> None:
    with pytest.raises(ValueError, match=r"regex '\(unclosed'"):
        Rule(regex="(unclosed", text="x")


def test_the_policy_default_answers_what_no_rule_matched() -> None:
    policy = Policy([Rule(contains="a", text="rule")], default=Rule(text="default"))
    reply = policy.respond(request(user("b")))
    assert (reply.content, reply.rule) == ("default", "default")


def test_a_default_with_conditions_is_refused() -> None:
    with pytest.raises(PolicyError, match="default has no conditions"):
        Policy(default=Rule(step=0, text="x"))


# -- scripted runs -------------------------------------------------------------------------


def test_a_once_rule_answers_once_then_the_next_rule_does() -> None:
    policy = Policy([Rule(text="first time", once=True), Rule(text="after")])
    assert policy.respond(request(user("x"))).content == "first time"
    assert policy.respond(request(user("x"))).content == "after"


def test_looking_without_recording_leaves_a_once_rule_unused() -> None:
    policy = Policy([Rule(text="scripted", once=True)])
    assert policy.respond(request(user("x")), record=False).content == "scripted"
    assert policy.uses == {"rules[0]": 0}
    assert policy.respond(request(user("x"))).content == "scripted"
    assert policy.uses == {"rules[0]": 1}


def test_uses_count_each_rule_by_name() -> None:
    policy = Policy([Rule(name="greet", contains="hi", text="hello"), Rule(text="other")])
    for text in ("hi", "hi", "bye"):
        policy.respond(request(user(text)))
    assert policy.uses == {"greet": 2, "rules[1]": 1}


def test_assert_complete_lists_the_scripted_rules_never_used() -> None:
    policy = Policy(
        [
            Rule(agent="planner", step=0, text="plan", once=True),
            Rule(name="write", agent="writer", step=0, text="draft", once=True),
            Rule(text="anything else"),
        ]
    )
    policy.respond(request(SystemMessage(content="You are planner."), user("go")))
    with pytest.raises(PolicyIncomplete) as info:
        policy.assert_complete()
    assert info.value.unused == ["write (agent='writer', step=0)"]
    assert "1 scripted rule(s) never used" in str(info.value)
    assert isinstance(info.value, AssertionError)


def test_assert_complete_passes_when_every_scripted_rule_was_used() -> None:
    policy = Policy([Rule(text="a", once=True), Rule(text="b")])
    policy.respond(request(user("x")))
    policy.respond(request(user("x")))
    policy.assert_complete()


# -- policy files --------------------------------------------------------------------------


def test_a_toml_policy_file_loads_rules_in_order(tmp_path: Path) -> None:
    path = tmp_path / "policy.toml"
    path.write_text(
        """
        [[rules]]
        agent = "researcher"
        step = 0
        once = true
        tool_calls = [{name = "search", arguments = {query = "bees"}}]

        [[rules]]
        role = "tool"
        fault = "429"

        [default]
        text = "fine"
        """
    )
    policy = Policy.load(path)
    assert [rule.fault for rule in policy.rules] == [None, "429"]
    assert policy.rules[0].tool_calls == [ScriptedCall(name="search", arguments={"query": "bees"})]
    assert policy.respond(request(user("x"))).content == "fine"


def test_a_json_policy_file_loads(tmp_path: Path) -> None:
    path = tmp_path / "policy.json"
    path.write_text('{"rules": [{"contains": "hi", "json": {"answer": 1}}]}')
    reply = Policy.load(path).respond(request(user("hi")))
    assert reply.content == '{"answer":1}'


def test_a_policy_file_error_names_the_file_and_field(tmp_path: Path) -> None:
    path = tmp_path / "bad.toml"
    path.write_text('[[rules]]\ntext = "a"\n\n[[rules]]\nstep = "two"\ntext = "b"\n')
    with pytest.raises(
        PolicyError, match=r"bad\.toml: rules\[1\]\.step: expected int \| null, got str"
    ):
        Policy.load(path)


def test_a_policy_file_with_an_unknown_field_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "typo.json"
    path.write_text('{"rules": [{"contians": "x", "text": "y"}]}')
    with pytest.raises(PolicyError, match=r"rules\[0\]: object contains unknown field contians"):
        Policy.load(path)


def test_a_policy_file_rule_without_an_answer_names_the_rule(tmp_path: Path) -> None:
    path = tmp_path / "empty.json"
    path.write_text('{"rules": [{"text": "ok"}, {"step": 1}]}')
    with pytest.raises(PolicyError, match=r"rules\[1\]: a rule needs text"):
        Policy.load(path)


def test_a_policy_file_with_an_unknown_fault_names_it(tmp_path: Path) -> None:
    path = tmp_path / "fault.json"
    path.write_text('{"rules": [{"fault": "418"}]}')
    with pytest.raises(PolicyError, match=r"rules\[0\]\.fault: invalid enum value '418'"):
        Policy.load(path)


def test_a_policy_file_that_does_not_parse_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "broken.toml"
    path.write_text("[[rules]\n")
    with pytest.raises(PolicyError, match=r"broken\.toml: "):
        Policy.load(path)


def test_a_policy_file_of_another_kind_is_refused(tmp_path: Path) -> None:
    with pytest.raises(PolicyError, match=r"\.json or \.toml, not \.yaml"):
        Policy.load(tmp_path / "policy.yaml")


def test_a_missing_policy_file_is_a_policy_error(tmp_path: Path) -> None:
    with pytest.raises(PolicyError, match="cannot read"):
        Policy.load(tmp_path / "absent.toml")


# -- the built-in default ------------------------------------------------------------------


def test_the_default_calls_the_first_offered_tool_with_schema_arguments() -> None:
    conversation = request(
        user("weather in Paris"), tools=[tool("search", SEARCH_PARAMETERS), tool("other")]
    )
    reply = default_reply(conversation)
    assert reply.content is None
    [call] = reply.tool_calls
    assert call.name == "search"
    assert orjson.loads(call.arguments) == {
        "query": "weather in Paris",
        "limit": 3,
        "units": "metric",
    }


def test_the_default_answers_with_the_tool_results_once_there_are_some() -> None:
    conversation = request(
        user("weather in Paris"),
        called("search", id="c1"),
        result("18 degrees and sunny", id="c1"),
        tools=[tool("search", SEARCH_PARAMETERS)],
    )
    reply = default_reply(conversation)
    assert reply.tool_calls == []
    assert reply.content == "Based on search: 18 degrees and sunny."


def test_the_default_calls_a_tool_again_after_a_new_user_message() -> None:
    conversation = request(
        user("first"),
        called("search"),
        result("r"),
        AssistantMessage(content="ok"),
        user("more"),
        tools=[tool("search")],
    )
    assert [c.name for c in default_reply(conversation).tool_calls] == ["search"]


def test_the_default_respects_tool_choice_none() -> None:
    conversation = request(user("x"), tools=[tool("search")], tool_choice="none")
    assert default_reply(conversation).tool_calls == []


def test_the_default_calls_the_named_tool_choice() -> None:
    choice = NamedToolChoice(function=NamedFunction(name="fetch"))
    conversation = request(user("x"), tools=[tool("search"), tool("fetch")], tool_choice=choice)
    assert [c.name for c in default_reply(conversation).tool_calls] == ["fetch"]


def test_the_default_calls_a_tool_when_one_is_required_even_after_results() -> None:
    conversation = request(
        user("x"), called("search"), result("r"), tools=[tool("search")], tool_choice="required"
    )
    assert [c.name for c in default_reply(conversation).tool_calls] == ["search"]


def test_the_default_text_is_deterministic_and_about_the_last_user_message() -> None:
    conversation = request(user("Tell me   about\nbees"))
    first, second = default_reply(conversation), default_reply(conversation)
    assert first == second
    assert 'You asked: "Tell me about bees"' in (first.content or "")


def test_the_default_answers_json_object_requests_with_an_object() -> None:
    conversation = request(user("hi"), response_format=ResponseFormatJsonObject())
    assert set(orjson.loads(default_reply(conversation).content or "")) == {"answer"}


class Address(msgspec.Struct, kw_only=True):
    city: str
    postcode: Annotated[str, msgspec.Meta(min_length=5, max_length=5)]


class Report(msgspec.Struct, kw_only=True):
    title: str
    rating: Annotated[int, msgspec.Meta(ge=1, le=5)]
    confidence: Annotated[float, msgspec.Meta(gt=0.0, lt=1.0)]
    verdict: Literal["accept", "reject"]
    tags: Annotated[list[str], msgspec.Meta(min_length=2)]
    address: Address
    history: list[Address]
    is_final: bool
    note: str | None = None
    pair: tuple[int, str] = (0, "")


def test_the_default_answers_a_json_schema_with_a_value_that_validates() -> None:
    schema = msgspec.json.schema(Report)
    fmt = ResponseFormatJsonSchema(json_schema=JsonSchema(name="report", schema=schema))
    reply = default_reply(request(user("review it"), response_format=fmt))
    report = msgspec.json.decode(reply.content or "", type=Report)
    assert report.verdict == "accept"
    assert len(report.tags) == 2
    assert 0 < report.confidence < 1


def test_the_default_calls_tools_before_answering_in_json() -> None:
    fmt = ResponseFormatJsonSchema(json_schema=JsonSchema(name="r", schema={"type": "object"}))
    conversation = request(user("x"), tools=[tool("search")], response_format=fmt)
    assert [c.name for c in default_reply(conversation).tool_calls] == ["search"]


def test_synthesize_includes_every_property_when_none_is_marked_required() -> None:
    schema = {"properties": {"a": {"type": "integer"}, "b": {"type": ["null", "boolean"]}}}
    assert synthesize(schema) == {"a": 1, "b": True}


def test_synthesize_uses_const_default_and_formats() -> None:
    schema = {
        "type": "object",
        "properties": {
            "kind": {"const": "fixed"},
            "size": {"type": "integer", "default": 7},
            "site": {"type": "string", "format": "uri"},
            "when": {"type": "string", "format": "date"},
        },
    }
    assert synthesize(schema) == {
        "kind": "fixed",
        "size": 7,
        "site": "https://example.com",
        "when": "2024-01-01",
    }


def test_synthesize_merges_all_of_and_picks_a_non_null_any_of() -> None:
    schema = {
        "allOf": [
            {"type": "object", "properties": {"a": {"type": "string"}}, "required": ["a"]},
            {
                "properties": {"b": {"anyOf": [{"type": "null"}, {"type": "number"}]}},
                "required": ["b"],
            },
        ]
    }
    assert synthesize(schema) == {"a": "example a", "b": 1.0}


def test_synthesize_stops_at_a_recursive_schema() -> None:
    schema = {
        "$ref": "#/$defs/Node",
        "$defs": {
            "Node": {
                "type": "object",
                "properties": {"child": {"$ref": "#/$defs/Node"}},
                "required": ["child"],
            }
        },
    }
    value = synthesize(schema)
    depth = 0
    while value:
        value, depth = value["child"], depth + 1
    assert depth < 12


def test_a_developer_message_names_the_agent_too() -> None:
    assert agent_name([DeveloperMessage(content="You are the critic.")]) == "critic"


def test_the_default_leaves_custom_tools_alone() -> None:
    custom = CustomTool(custom=CustomToolDefinition(name="shell"))
    conversation = request(user("x"), tools=[custom])
    reply = default_reply(conversation)
    assert reply.tool_calls == []
    assert reply.content


def test_the_default_calls_only_allowed_tools() -> None:
    choice = AllowedToolsChoice(
        allowed_tools=AllowedTools(
            mode="auto", tools=[{"type": "function", "function": {"name": "fetch"}}]
        )
    )
    conversation = request(user("x"), tools=[tool("search"), tool("fetch")], tool_choice=choice)
    assert [c.name for c in default_reply(conversation).tool_calls] == ["fetch"]


def test_the_default_without_a_user_message_still_answers() -> None:
    reply = default_reply(request(SystemMessage(content="You are alone.")))
    assert reply.content == "Hello from the mock model."


def test_synthesize_honours_string_lengths_and_array_sizes() -> None:
    schema = {
        "type": "array",
        "minItems": 3,
        "items": {"type": "string", "minLength": 12, "maxLength": 12},
    }
    value = synthesize(schema)
    assert len(value) == 3
    assert all(len(item) == 12 for item in value)


def test_synthesize_fills_text_like_fields_with_the_hint() -> None:
    schema = {
        "type": "object",
        "properties": {"question": {"type": "string"}, "file_path": {"type": "string"}},
    }
    assert synthesize(schema, hint="why is the sky blue") == {
        "question": "why is the sky blue",
        "file_path": "README.md",
    }


def test_synthesize_keeps_numbers_inside_exclusive_bounds() -> None:
    schema = {
        "type": "object",
        "properties": {
            "small": {"type": "integer", "exclusiveMaximum": 0},
            "ratio": {"type": "number", "exclusiveMinimum": 2.0},
        },
    }
    assert synthesize(schema) == {"small": -1, "ratio": 2.5}


@pytest.mark.parametrize(
    ("hint", "expected"),
    [
        ("What is (2+3)*4?", "(2+3)*4"),
        ("Compute 1.5 * 8 then 2 - 1, please", "1.5 * 8"),
        ("How many people per km² in Lyon?", "1 + 1"),  # no arithmetic written: a stand-in
        ("it costs 12 dollars", "1 + 1"),  # a number alone is not a sum
    ],
)
def test_synthesize_gives_a_calculator_the_arithmetic_the_user_wrote(
    hint: str, expected: str
) -> None:
    schema = {"type": "object", "properties": {"expression": {"type": "string"}}}
    assert synthesize(schema, hint=hint) == {"expression": expected}
