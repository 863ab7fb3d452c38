"""What travels on the bus for LLM calls: ``llm.chat`` requests and their results."""

from __future__ import annotations

from typing import Any

from bus import Message, Topic

from .wire import (
    AnyToolCall,
    ChatMessage,
    FinishReason,
    ResponseFormat,
    ResponseMessage,
    Tool,
    ToolCall,
    ToolCallChunk,
    ToolChoice,
    Usage,
)


class ChatRequest(Message, frozen=True, kw_only=True):
    """Ask the LLM gateway for one chat completion.

    ``model`` None means the gateway's configured model; ``agent`` names the asker for
    accounting; ``timeout`` is this call's overall deadline in seconds (retries included)
    and ``max_attempts`` its retry budget (both default to the gateway's settings).
    With ``stream`` the deltas are published as they arrive on ``llm.stream.<stream_id>``,
    or ``llm.stream.<request id>`` without one: a caller that wants to subscribe before
    it asks chooses ``stream_id`` (it cannot know the request's id in advance).
    """

    messages: list[ChatMessage]
    model: str | None = None
    tools: list[Tool] | None = None
    tool_choice: ToolChoice | None = None
    response_format: ResponseFormat | None = None
    temperature: float | None = None
    max_tokens: int | None = None
    stream: bool = False
    stream_id: str | None = None
    agent: str = ""
    timeout: float | None = None
    max_attempts: int | None = None


class ChatResult(Message, frozen=True, kw_only=True):
    """The assembled answer: the message, why it finished, tokens, and how it was got."""

    message: ResponseMessage
    finish_reason: FinishReason | None
    usage: Usage
    model: str
    endpoint: str
    attempts: int
    latency: float
    cost: float | None = None

    @property
    def text(self) -> str | None:
        return self.message.content

    @property
    def tool_calls(self) -> list[ToolCall]:
        """The function tool calls the model made (custom tool calls excluded)."""
        calls: list[AnyToolCall] = self.message.tool_calls or []
        return [call for call in calls if isinstance(call, ToolCall)]


class ChatDelta(Message, frozen=True, kw_only=True):
    """One streamed fragment, published on ``llm.stream.<stream id>``.

    ``attempt`` counts from 1: when an attempt fails mid-stream and the gateway retries,
    the next attempt's deltas carry a higher number, so a consumer drops what it showed
    of the failed one and starts over.
    """

    content: str | None = None
    tool_calls: list[ToolCallChunk] | None = None
    finish_reason: FinishReason | None = None
    attempt: int = 1


LLM_CHAT: Topic[ChatRequest, ChatResult] = Topic("llm.chat", ChatRequest, reply=ChatResult)


def stream_topic(stream_id: str) -> Topic[ChatDelta, Any]:
    """The subject a streamed call's deltas go to."""
    return Topic(f"llm.stream.{stream_id}", ChatDelta)
