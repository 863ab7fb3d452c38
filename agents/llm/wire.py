"""The OpenAI chat-completions wire format as msgspec Structs.

Field names, types and values follow the official OpenAPI spec
(``CreateChatCompletionRequest``, ``CreateChatCompletionResponse``,
``CreateChatCompletionStreamResponse``, ``ErrorResponse``, ``ListModelsResponse``).
Decoding is lenient where OpenAI-compatible servers differ from OpenAI: unknown fields are
ignored, ``choices: null`` on a usage chunk is accepted, an ``error`` object inside a
stream chunk is decoded so the caller can raise it, and nullable keys may be absent.
Requests are encoded without unset (None) fields.
"""

from __future__ import annotations

from typing import Any, Literal

import msgspec

FinishReason = Literal["stop", "length", "tool_calls", "content_filter", "function_call"]


class _Wire(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True, gc=False):
    """Base of the wire Structs: frozen, keyword-only, unset fields left out when encoded;
    values, not tracked by the garbage collector (see :class:`bus.Message`)."""


# -- content parts ------------------------------------------------------------------------


class TextPart(_Wire, frozen=True, kw_only=True, tag="text", tag_field="type"):
    text: str


class ImageURL(_Wire, frozen=True, kw_only=True):
    url: str
    detail: Literal["auto", "low", "high"] | None = None


class ImagePart(_Wire, frozen=True, kw_only=True, tag="image_url", tag_field="type"):
    image_url: ImageURL


class InputAudio(_Wire, frozen=True, kw_only=True):
    data: str
    format: Literal["wav", "mp3"]


class AudioPart(_Wire, frozen=True, kw_only=True, tag="input_audio", tag_field="type"):
    input_audio: InputAudio


class FileRef(_Wire, frozen=True, kw_only=True):
    filename: str | None = None
    file_data: str | None = None
    file_id: str | None = None


class FilePart(_Wire, frozen=True, kw_only=True, tag="file", tag_field="type"):
    file: FileRef


class RefusalPart(_Wire, frozen=True, kw_only=True, tag="refusal", tag_field="type"):
    refusal: str


UserContentPart = TextPart | ImagePart | AudioPart | FilePart

# -- tool calls ---------------------------------------------------------------------------


class FunctionCall(_Wire, frozen=True, kw_only=True):
    """The function a model calls: ``arguments`` is a JSON *string*, possibly invalid."""

    name: str
    arguments: str


class ToolCall(_Wire, frozen=True, kw_only=True, tag="function", tag_field="type"):
    """``{"id", "type": "function", "function": {"name", "arguments"}}``."""

    id: str
    function: FunctionCall


class CustomToolInput(_Wire, frozen=True, kw_only=True):
    name: str
    input: str


class CustomToolCall(_Wire, frozen=True, kw_only=True, tag="custom", tag_field="type"):
    id: str
    custom: CustomToolInput


AnyToolCall = ToolCall | CustomToolCall

# -- request messages ---------------------------------------------------------------------


class SystemMessage(_Wire, frozen=True, kw_only=True, tag="system", tag_field="role"):
    content: str | list[TextPart]
    name: str | None = None


class DeveloperMessage(_Wire, frozen=True, kw_only=True, tag="developer", tag_field="role"):
    content: str | list[TextPart]
    name: str | None = None


class UserMessage(_Wire, frozen=True, kw_only=True, tag="user", tag_field="role"):
    content: str | list[UserContentPart]
    name: str | None = None


class AssistantMessage(_Wire, frozen=True, kw_only=True, tag="assistant", tag_field="role"):
    """A model turn in the history; ``content`` may be None when it made tool calls."""

    content: str | list[TextPart | RefusalPart] | None = None
    refusal: str | None = None
    name: str | None = None
    tool_calls: list[AnyToolCall] | None = None


class ToolMessage(_Wire, frozen=True, kw_only=True, tag="tool", tag_field="role"):
    """The result of the tool call ``tool_call_id``."""

    content: str | list[TextPart]
    tool_call_id: str


class FunctionMessage(_Wire, frozen=True, kw_only=True, tag="function", tag_field="role"):
    """Deprecated by OpenAI in favour of ``tool`` messages; still accepted."""

    content: str | None
    name: str


ChatMessage = (
    SystemMessage
    | DeveloperMessage
    | UserMessage
    | AssistantMessage
    | ToolMessage
    | FunctionMessage
)

# -- tools, tool choice, response format ---------------------------------------------------


class FunctionDefinition(_Wire, frozen=True, kw_only=True):
    """A function the model may call; ``parameters`` is a JSON Schema object."""

    name: str
    description: str | None = None
    parameters: dict[str, Any] | None = None
    strict: bool | None = None


class FunctionTool(_Wire, frozen=True, kw_only=True, tag="function", tag_field="type"):
    function: FunctionDefinition


class CustomToolDefinition(_Wire, frozen=True, kw_only=True):
    name: str
    description: str | None = None
    format: dict[str, Any] | None = None


class CustomTool(_Wire, frozen=True, kw_only=True, tag="custom", tag_field="type"):
    custom: CustomToolDefinition


Tool = FunctionTool | CustomTool


class NamedFunction(_Wire, frozen=True, kw_only=True):
    name: str


class NamedToolChoice(_Wire, frozen=True, kw_only=True, tag="function", tag_field="type"):
    """Force a call of this function."""

    function: NamedFunction


class AllowedTools(_Wire, frozen=True, kw_only=True):
    mode: Literal["auto", "required"]
    tools: list[dict[str, Any]]


class AllowedToolsChoice(_Wire, frozen=True, kw_only=True, tag="allowed_tools", tag_field="type"):
    allowed_tools: AllowedTools


ToolChoice = Literal["none", "auto", "required"] | NamedToolChoice | AllowedToolsChoice


class ResponseFormatText(_Wire, frozen=True, kw_only=True, tag="text", tag_field="type"):
    pass


class ResponseFormatJsonObject(
    _Wire, frozen=True, kw_only=True, tag="json_object", tag_field="type"
):
    pass


class JsonSchema(_Wire, frozen=True, kw_only=True):
    name: str
    description: str | None = None
    schema: dict[str, Any] | None = None
    strict: bool | None = None


class ResponseFormatJsonSchema(
    _Wire, frozen=True, kw_only=True, tag="json_schema", tag_field="type"
):
    json_schema: JsonSchema


ResponseFormat = ResponseFormatText | ResponseFormatJsonObject | ResponseFormatJsonSchema


class StreamOptions(_Wire, frozen=True, kw_only=True):
    include_usage: bool | None = None
    include_obfuscation: bool | None = None


class ChatCompletionRequest(_Wire, frozen=True, kw_only=True):
    """``POST /v1/chat/completions`` body (the commonly used fields of the spec)."""

    model: str
    messages: list[ChatMessage]
    temperature: float | None = None
    top_p: float | None = None
    max_tokens: int | None = None
    max_completion_tokens: int | None = None
    n: int | None = None
    stop: str | list[str] | None = None
    seed: int | None = None
    stream: bool | None = None
    stream_options: StreamOptions | None = None
    tools: list[Tool] | None = None
    tool_choice: ToolChoice | None = None
    parallel_tool_calls: bool | None = None
    response_format: ResponseFormat | None = None
    frequency_penalty: float | None = None
    presence_penalty: float | None = None
    logit_bias: dict[str, int] | None = None
    logprobs: bool | None = None
    top_logprobs: int | None = None
    reasoning_effort: str | None = None
    service_tier: str | None = None
    user: str | None = None
    metadata: dict[str, str] | None = None


# -- responses ------------------------------------------------------------------------------


class CompletionTokensDetails(_Wire, frozen=True, kw_only=True):
    accepted_prediction_tokens: int = 0
    audio_tokens: int = 0
    reasoning_tokens: int = 0
    rejected_prediction_tokens: int = 0


class PromptTokensDetails(_Wire, frozen=True, kw_only=True):
    audio_tokens: int = 0
    cached_tokens: int = 0


class Usage(_Wire, frozen=True, kw_only=True):
    prompt_tokens: int = 0
    completion_tokens: int = 0
    total_tokens: int = 0
    completion_tokens_details: CompletionTokensDetails | None = None
    prompt_tokens_details: PromptTokensDetails | None = None


class ResponseMessage(_Wire, frozen=True, kw_only=True):
    """The assistant's message in a completion: text, a refusal, or tool calls."""

    role: Literal["assistant"] = "assistant"
    content: str | None = None
    refusal: str | None = None
    tool_calls: list[AnyToolCall] | None = None
    annotations: list[dict[str, Any]] | None = None


class Choice(_Wire, frozen=True, kw_only=True):
    index: int = 0
    message: ResponseMessage
    finish_reason: FinishReason | None = None  # required by the spec; absent on some servers
    logprobs: dict[str, Any] | None = None


class ChatCompletion(_Wire, frozen=True, kw_only=True):
    """``CreateChatCompletionResponse``."""

    id: str
    object: str = "chat.completion"
    created: int = 0
    model: str
    choices: list[Choice]
    usage: Usage | None = None
    service_tier: str | None = None
    system_fingerprint: str | None = None


class ToolCallChunkFunction(_Wire, frozen=True, kw_only=True):
    name: str | None = None
    arguments: str | None = None


class ToolCallChunk(_Wire, frozen=True, kw_only=True):
    """A fragment of a tool call in a stream; fragments with the same ``index`` add up."""

    index: int
    id: str | None = None
    type: str | None = None
    function: ToolCallChunkFunction | None = None


class Delta(_Wire, frozen=True, kw_only=True):
    role: str | None = None
    content: str | None = None
    refusal: str | None = None
    tool_calls: list[ToolCallChunk] | None = None


class ChunkChoice(_Wire, frozen=True, kw_only=True):
    index: int = 0
    delta: Delta = Delta()
    finish_reason: FinishReason | None = None
    logprobs: dict[str, Any] | None = None


class ErrorBody(_Wire, frozen=True, kw_only=True):
    """``Error``: ``code`` is a string per the spec; some servers send numbers."""

    message: str = ""
    type: str | None = None
    param: str | None = None
    code: str | int | None = None


class ChatCompletionChunk(_Wire, frozen=True, kw_only=True):
    """``CreateChatCompletionStreamResponse``, one SSE ``data:`` line; ``error`` is set
    when a server reports a failure inside the stream."""

    id: str = ""
    object: str = "chat.completion.chunk"
    created: int = 0
    model: str = ""
    choices: list[ChunkChoice] | None = None
    usage: Usage | None = None
    error: ErrorBody | None = None


class ErrorResponse(_Wire, frozen=True, kw_only=True):
    error: ErrorBody


class Model(_Wire, frozen=True, kw_only=True):
    id: str
    object: str = "model"
    created: int = 0
    owned_by: str = ""


class ModelList(_Wire, frozen=True, kw_only=True):
    object: str = "list"
    data: list[Model]


request_encoder = msgspec.json.Encoder()
completion_decoder = msgspec.json.Decoder(ChatCompletion)
chunk_decoder = msgspec.json.Decoder(ChatCompletionChunk)
error_decoder = msgspec.json.Decoder(ErrorResponse)
request_decoder = msgspec.json.Decoder(ChatCompletionRequest)
