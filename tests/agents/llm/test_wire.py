"""The OpenAI wire format: exact field names out, lenient decoding in."""

from __future__ import annotations

import msgspec
import pytest

from agents.llm import wire

pytestmark = pytest.mark.anyio


def test_every_message_role_round_trips_with_openai_field_names() -> None:
    messages: list[wire.ChatMessage] = [
        wire.SystemMessage(content="be brief", name="ops"),
        wire.DeveloperMessage(content=[wire.TextPart(text="rules")]),
        wire.UserMessage(
            content=[
                wire.TextPart(text="look"),
                wire.ImagePart(image_url=wire.ImageURL(url="data:image/png;base64,AA")),
            ]
        ),
        wire.AssistantMessage(
            tool_calls=[
                wire.ToolCall(id="c1", function=wire.FunctionCall(name="f", arguments="{}"))
            ]
        ),
        wire.ToolMessage(content="42", tool_call_id="c1"),
    ]
    request = wire.ChatCompletionRequest(model="m", messages=messages, temperature=0.2)
    raw = msgspec.json.decode(wire.request_encoder.encode(request))
    assert [m["role"] for m in raw["messages"]] == [
        "system",
        "developer",
        "user",
        "assistant",
        "tool",
    ]
    assert raw["messages"][2]["content"][1] == {
        "type": "image_url",
        "image_url": {"url": "data:image/png;base64,AA"},
    }
    assert raw["messages"][3]["tool_calls"][0] == {
        "type": "function",
        "id": "c1",
        "function": {"name": "f", "arguments": "{}"},
    }
    assert "max_tokens" not in raw and "tools" not in raw  # unset fields are left out
    assert wire.request_decoder.decode(wire.request_encoder.encode(request)) == request


def test_tools_tool_choice_and_response_formats_encode_as_the_spec_says() -> None:
    request = wire.ChatCompletionRequest(
        model="m",
        messages=[wire.UserMessage(content="hi")],
        tools=[wire.FunctionTool(function=wire.FunctionDefinition(name="f", strict=True))],
        tool_choice=wire.NamedToolChoice(function=wire.NamedFunction(name="f")),
        response_format=wire.ResponseFormatJsonSchema(
            json_schema=wire.JsonSchema(name="Report", schema={"type": "object"})
        ),
        stream=True,
        stream_options=wire.StreamOptions(include_usage=True),
    )
    raw = msgspec.json.decode(wire.request_encoder.encode(request))
    assert raw["tools"] == [{"type": "function", "function": {"name": "f", "strict": True}}]
    assert raw["tool_choice"] == {"type": "function", "function": {"name": "f"}}
    assert raw["response_format"]["type"] == "json_schema"
    assert raw["stream_options"] == {"include_usage": True}
    auto = wire.ChatCompletionRequest(model="m", messages=[], tool_choice="required")
    assert msgspec.json.decode(wire.request_encoder.encode(auto))["tool_choice"] == "required"


def test_a_completion_decodes_with_unknown_fields_and_missing_nullables() -> None:
    body = (
        b'{"id":"c","object":"chat.completion","created":1,"model":"m","provider":"x",'
        b'"choices":[{"index":0,"message":{"role":"assistant","content":"hi"},'
        b'"finish_reason":"stop"}],"usage":{"prompt_tokens":2,"completion_tokens":1,'
        b'"total_tokens":3,"prompt_tokens_details":{"cached_tokens":1}}}'
    )
    completion = wire.completion_decoder.decode(body)
    assert completion.choices[0].message.content == "hi"
    assert completion.choices[0].message.refusal is None
    assert completion.usage is not None and completion.usage.prompt_tokens_details is not None
    assert completion.usage.prompt_tokens_details.cached_tokens == 1


def test_stream_chunks_tolerate_null_choices_and_carry_errors() -> None:
    usage_chunk = wire.chunk_decoder.decode(
        b'{"id":"c","choices":null,"usage":{"prompt_tokens":1,"completion_tokens":2,'
        b'"total_tokens":3}}'
    )
    assert usage_chunk.choices is None and usage_chunk.usage is not None
    error_chunk = wire.chunk_decoder.decode(b'{"error":{"message":"overloaded","code":529}}')
    assert error_chunk.error is not None and error_chunk.error.code == 529
    delta = wire.chunk_decoder.decode(
        b'{"id":"c","choices":[{"index":0,"delta":{"tool_calls":[{"index":1,'
        b'"function":{"arguments":"{\\"a"}}]},"finish_reason":null}]}'
    )
    assert delta.choices is not None
    (part,) = delta.choices[0].delta.tool_calls or []
    assert (part.index, part.function and part.function.arguments) == (1, '{"a')


def test_an_error_body_decodes_and_a_wrong_completion_does_not() -> None:
    error = wire.error_decoder.decode(
        b'{"error":{"message":"bad model","type":"invalid_request_error",'
        b'"param":"model","code":"model_not_found"}}'
    )
    assert (error.error.param, error.error.code) == ("model", "model_not_found")
    with pytest.raises(msgspec.ValidationError, match="choices"):
        wire.completion_decoder.decode(b'{"id":"c","model":"m"}')
