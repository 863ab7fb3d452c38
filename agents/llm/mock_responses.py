"""The mock LLM's responses as the OpenAI spec shapes them: a policy's ``Reply`` becomes an
:class:`Answer`, sent as a ``chat.completion`` object or as SSE ``chat.completion.chunk``s."""

from __future__ import annotations

import re
import time
from collections.abc import Sequence
from typing import Any

import msgspec
import orjson

from .mock_specs import RateLimit
from .policy import FaultKind, Reply, message_text, offered_tools
from .wire import AssistantMessage, ChatCompletionRequest, FunctionCall, ToolCall

DONE_EVENT = b"data: [DONE]\n\n"
_WORDS = re.compile(r"\S+\s*|\s+")
_ARGUMENT_FRAGMENT = 8  # characters of tool-call arguments per stream chunk


class Answer(msgspec.Struct, frozen=True, kw_only=True):
    """One completion ready to be sent as JSON or as SSE chunks."""

    id: str
    created: int
    model: str
    content: str | None
    tool_calls: list[ToolCall]
    finish_reason: str
    prompt_tokens: int
    completion_tokens: int


def count_prompt_tokens(chat: ChatCompletionRequest) -> int:
    """The request's prompt tokens, estimated as one per four characters."""
    chars = 0
    for message in chat.messages:
        chars += len(message_text(message))
        if isinstance(message, AssistantMessage):
            for call in message.tool_calls or ():
                if isinstance(call, ToolCall):
                    chars += len(call.function.arguments)
    return max(1, (chars + 3) // 4)


def build_answer(
    chat: ChatCompletionRequest, reply: Reply, *, prompt_tokens: int, sequence: int
) -> Answer:
    """The answer to ``chat``: ``reply`` cut at ``stop`` and at ``max_tokens`` (four
    characters a token), its tool calls given ids from ``sequence``, its tokens counted."""
    content, finish_reason = reply.content, "stop"
    if content is not None and chat.stop:
        content = _cut_at_stop(content, [chat.stop] if isinstance(chat.stop, str) else chat.stop)
    limit = chat.max_completion_tokens or chat.max_tokens
    if content is not None and limit is not None and len(content) > limit * 4:
        content, finish_reason = content[: limit * 4], "length"
    calls = [
        ToolCall(id=f"call_{sequence:06d}_{i}", function=call)
        for i, call in enumerate(reply.tool_calls)
    ]
    if calls:
        finish_reason = "tool_calls"
    chars = len(content or "") + sum(len(c.name) + len(c.arguments) for c in reply.tool_calls)
    return Answer(
        id=f"chatcmpl-mock{sequence:012d}",
        created=int(time.time()),
        model=chat.model,
        content=content,
        tool_calls=calls,
        finish_reason=finish_reason,
        prompt_tokens=prompt_tokens,
        completion_tokens=max(1, (chars + 3) // 4),
    )


def _cut_at_stop(content: str, stops: Sequence[str]) -> str:
    cuts = [i for i in (content.find(s) for s in stops if s) if i >= 0]
    return content[: min(cuts)] if cuts else content


def break_arguments(reply: Reply, chat: ChatCompletionRequest) -> tuple[FaultKind | None, Reply]:
    """The reply with tool-call arguments cut mid-JSON; with no call to break, a call of
    the first offered tool; with no tools at all, the reply as it was (no fault)."""
    calls = reply.tool_calls
    if not calls:
        tools = offered_tools(chat)
        if not tools:
            return None, reply
        calls = [FunctionCall(name=tools[0].name, arguments="{}")]
    broken = [
        FunctionCall(name=c.name, arguments=c.arguments[: max(1, len(c.arguments) // 2)])
        for c in calls
    ]
    return "badargs", Reply(content=reply.content, tool_calls=broken, rule=reply.rule)


def _tool_call(call: ToolCall) -> dict[str, Any]:
    function = {"name": call.function.name, "arguments": call.function.arguments}
    return {"id": call.id, "type": "function", "function": function}


def _usage(answer: Answer) -> dict[str, int]:
    return {
        "prompt_tokens": answer.prompt_tokens,
        "completion_tokens": answer.completion_tokens,
        "total_tokens": answer.prompt_tokens + answer.completion_tokens,
    }


def completion_object(answer: Answer, n: int) -> dict[str, Any]:
    """The ``chat.completion`` object of ``answer``, repeated in ``n`` choices."""
    # dicts, not the wire Structs: those leave out nulls the spec requires (refusal, logprobs)
    message: dict[str, Any] = {"role": "assistant", "content": answer.content, "refusal": None}
    if answer.tool_calls:
        message["tool_calls"] = [_tool_call(call) for call in answer.tool_calls]
    choice = {"message": message, "finish_reason": answer.finish_reason, "logprobs": None}
    return {
        "id": answer.id,
        "object": "chat.completion",
        "created": answer.created,
        "model": answer.model,
        "choices": [{"index": i, **choice} for i in range(n)],
        "usage": _usage(answer),
    }


def chunk_events(answer: Answer, n: int, include_usage: bool) -> list[bytes]:
    """The SSE ``data:`` lines of a streamed answer, without ``[DONE]``."""
    head: dict[str, Any] = {
        "id": answer.id,
        "object": "chat.completion.chunk",
        "created": answer.created,
        "model": answer.model,
    }
    if include_usage:
        head["usage"] = None

    def event(index: int, delta: dict[str, Any], finish_reason: str | None = None) -> bytes:
        choice = {"index": index, "delta": delta, "finish_reason": finish_reason, "logprobs": None}
        return b"data: " + orjson.dumps({**head, "choices": [choice]}) + b"\n\n"

    events = []
    for index in range(n):
        events.append(event(index, {"role": "assistant", "content": "", "refusal": None}))
        events.extend(
            event(index, {"content": word}) for word in _WORDS.findall(answer.content or "")
        )
        for position, call in enumerate(answer.tool_calls):
            arguments = call.function.arguments
            function = {"name": call.function.name, "arguments": ""}
            opening = {"index": position, "id": call.id, "type": "function", "function": function}
            events.append(event(index, {"tool_calls": [opening]}))
            for start in range(0, len(arguments), _ARGUMENT_FRAGMENT):
                fragment = {"arguments": arguments[start : start + _ARGUMENT_FRAGMENT]}
                events.append(
                    event(index, {"tool_calls": [{"index": position, "function": fragment}]})
                )
        events.append(event(index, {}, answer.finish_reason))
    if include_usage:
        events.append(
            b"data: " + orjson.dumps({**head, "choices": [], "usage": _usage(answer)}) + b"\n\n"
        )
    return events


def model_object(name: str) -> dict[str, Any]:
    """The ``model`` object ``GET /v1/models`` lists."""
    return {"id": name, "object": "model", "created": 1_700_000_000, "owned_by": "hivebus"}


def error_body(
    message: str, kind: str, *, param: str | None = None, code: str | None = None
) -> bytes:
    """The JSON body of an error response: ``{"error": {...}}``."""
    error = {"message": message, "type": kind, "param": param, "code": code}
    return orjson.dumps({"error": error})


def ratelimit_headers(limit: RateLimit, requests: int, tokens: int, reset: float) -> dict[str, str]:
    """OpenAI's ``x-ratelimit-*`` headers with ``requests`` and ``tokens`` of ``limit`` used
    in a window that ends in ``reset`` seconds."""
    return {
        "x-ratelimit-limit-requests": str(limit.requests),
        "x-ratelimit-limit-tokens": str(limit.tokens),
        "x-ratelimit-remaining-requests": str(max(0, limit.requests - requests)),
        "x-ratelimit-remaining-tokens": str(max(0, limit.tokens - tokens)),
        "x-ratelimit-reset-requests": _duration_text(reset),
        "x-ratelimit-reset-tokens": _duration_text(reset),
    }


def _duration_text(seconds: float) -> str:
    """OpenAI's reset format: ``6ms``, ``1.5s``, ``1m30s``."""
    if seconds < 1:
        return f"{round(seconds * 1000)}ms"
    minutes, rest = divmod(round(seconds, 3), 60)
    return f"{int(minutes)}m{rest:g}s" if minutes else f"{rest:g}s"
