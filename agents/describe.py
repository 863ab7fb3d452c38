"""How a recorded message of an agent run reads to a person: one short line of text.

Works on :class:`bus.trace.TraceRecord` (payloads as plain data, secrets already
redacted), so the live view of ``hivebus run`` and the tree of ``hivebus trace`` say the
same thing. The agent side's messages (tasks, LLM calls, tool calls, agent events) are
recognised by their subject and type; anything else is shown as clipped JSON. What the
models and programs said is shown with its control characters as escapes (``\\x1b``), so
that it cannot drive the terminal (:func:`bus.trace.visible`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import orjson

from bus.trace import TraceNode, TraceRecord, payload_summary, visible

TEXT_CHARS = 80  # how much of a task, an answer or a tool result a line shows
ARGUMENT_CHARS = 60


def _cut(flat: str, width: int) -> str:
    return flat if len(flat) <= width else flat[: width - 1] + "…"


def _fold(text: str | None) -> str:
    return " ".join((text or "").split())


def clip(text: str | None, width: int = TEXT_CHARS) -> str:
    """``text`` on one line, at most ``width`` characters, its control characters as
    escapes (``\\x1b``: see :func:`bus.trace.visible`)."""
    return _cut(visible(_fold(text)), width)


def quoted(text: str | None, width: int = TEXT_CHARS) -> str:
    """``text`` on one line, clipped, as a JSON string (control characters as JSON
    escapes: ``\\u001b``)."""
    return visible(orjson.dumps(_cut(_fold(text), width)).decode(), json=True)


def actor(sender: str) -> str:
    """The actor part of a sender (``researcher.work`` → ``researcher``)."""
    return visible(sender.split(".", 1)[0]) if sender else "?"


def agent_of_subject(subject: str) -> str | None:
    """``researcher`` for ``agent.researcher.inbox`` and ``agent.researcher.events``."""
    parts = subject.split(".")
    if len(parts) == 3 and parts[0] == "agent" and parts[2] in ("inbox", "events"):
        return parts[1]
    return None


def target(record: TraceRecord) -> str:
    """Whom a request or event is for, in a word: an agent, ``llm``, ``tools``, ``memory``."""
    agent = agent_of_subject(record.subject)
    if agent is not None:
        return visible(agent)
    if record.subject == "llm.chat":
        return "llm"
    if record.subject == "tool.call":
        return "tools"
    if record.subject.startswith("memory."):
        return "memory"
    return visible(record.subject)


def is_error(record: TraceRecord) -> bool:
    """Whether the record reports a failure (an error reply, a dead letter, an error event
    or tool result)."""
    if record.type in ("ErrorReply", "DeadLetter"):
        return True
    payload = record.payload
    return isinstance(payload, dict) and payload.get("is_error") is True


def tokens_of(payload: Any) -> int:
    usage = payload.get("usage") if isinstance(payload, dict) else None
    return int(usage.get("total_tokens") or 0) if isinstance(usage, dict) else 0


def _count(number: int, word: str) -> str:
    return f"{number} {word}" if number == 1 else f"{number} {word}s"


def _seconds(value: Any) -> str:
    if not isinstance(value, int | float):
        return "?"
    return f"{value * 1000:.0f}ms" if value < 1 else f"{value:.2f}s"


def _call(name: Any, arguments: Any) -> str:
    return f"{name}({clip(str(arguments or ''), ARGUMENT_CHARS)})"


def _task(p: dict[str, Any]) -> str:
    text = f"task {quoted(p.get('content'))}"
    handoffs = p.get("handoffs") or []
    return text + (f" (handed on by {' → '.join(map(str, handoffs))})" if handoffs else "")


def _result(p: dict[str, Any]) -> str:
    parts = [
        f"answer {quoted(p.get('text'))}",
        _count(int(p.get("steps") or 0), "step"),
        _count(int(p.get("tool_calls") or 0), "tool call"),
        f"{tokens_of(p)} tok",
        _seconds(p.get("duration")),
    ]
    return " · ".join(parts)


def _chat_request(p: dict[str, Any], model: str) -> str:
    parts = [
        str(p.get("model") or model),
        _count(len(p.get("messages") or []), "message"),
    ]
    tools = [
        t.get("function", {}).get("name", "?") for t in p.get("tools") or [] if isinstance(t, dict)
    ]
    if tools:
        parts.append("tools: " + ", ".join(tools))
    if p.get("stream"):
        parts.append("streamed")
    return " · ".join(parts)


def _chat_result(p: dict[str, Any]) -> str:
    message = p.get("message") or {}
    calls = [c.get("function", {}) for c in message.get("tool_calls") or [] if isinstance(c, dict)]
    if calls:
        said = "calls " + ", ".join(_call(c.get("name"), c.get("arguments")) for c in calls)
    else:
        said = quoted(message.get("content"))
    parts = [said, f"{tokens_of(p)} tok"]
    if p.get("cost"):
        parts.append(f"${p['cost']:.4f}")
    parts.append(_seconds(p.get("latency")))
    if (p.get("attempts") or 1) > 1:
        parts.append(f"{p['attempts']} attempts")
    return " · ".join(parts)


def _tool_request(p: dict[str, Any]) -> str:
    return _call(p.get("name"), p.get("arguments"))


def _tool_result(p: dict[str, Any]) -> str:
    verb = "failed:" if p.get("is_error") else "="
    return f"{p.get('name')} {verb} {quoted(p.get('content'))}"


_EVENT_TEXT = {
    "step_started": "step {step}",
    "llm_answered": "LLM answered {quoted}",
    "tool_called": "calls {tool}",
    "tool_answered": "{tool} answered {quoted}",
    "output_invalid": "invalid output: {text}",
    "handed_off": "handed off {text}",
    "finished": "finished {quoted}",
    "failed": "FAILED: {text}",
}


def _event(p: dict[str, Any]) -> str:
    kind = str(p.get("kind"))
    template = _EVENT_TEXT.get(kind, kind + " {quoted}")
    tool = p.get("tool") or "?"
    if kind == "tool_called":
        tool = _call(tool, p.get("text"))
    return template.format(
        step=p.get("step"), tool=tool, text=clip(p.get("text")), quoted=quoted(p.get("text"))
    )


def _error(p: dict[str, Any]) -> str:
    return f"error {p.get('remote_type')}: {clip(p.get('message'))}"


def _dead_letter(p: dict[str, Any]) -> str:
    envelope = p.get("envelope") or {}
    why = f": {p.get('error_type')}: {clip(p.get('error_message'))}" if p.get("error_type") else ""
    return f"dead letter ({p.get('reason')}) from {envelope.get('subject', '?')}{why}"


Renderer = Callable[[dict[str, Any]], str]


def _appended(messages: Any) -> str:
    roles = [str(m.get("role")) for m in messages or [] if isinstance(m, dict)]
    return f"append {_count(len(roles), 'message')} ({', '.join(roles)})"


def _append(p: dict[str, Any]) -> str:
    return _appended(p.get("messages"))


def _window(p: dict[str, Any]) -> str:
    limit = p.get("max_tokens") or p.get("max_messages")
    text = "window" + (f" of at most {limit}" if limit else "")
    return f"{_appended(p['append'])}, then {text}" if p.get("append") else text


def _window_reply(p: dict[str, Any]) -> str:
    text = f"{_count(len(p.get('messages') or []), 'message')}, {p.get('tokens')} tokens"
    return text + (f", {p['dropped']} dropped" if p.get("dropped") else "")


_BY_TYPE: dict[str, Renderer] = {
    "MemoryAppend": _append,
    "Appended": lambda p: f"{p.get('total')} messages stored",
    "MemoryWindow": _window,
    "Window": _window_reply,
    "AgentEvent": _event,
    "ChatResult": _chat_result,
    "ToolCallRequest": _tool_request,
    "ToolResult": _tool_result,
    "AgentResult": _result,
    "ErrorReply": _error,
    "DeadLetter": _dead_letter,
}


def describe(record: TraceRecord, *, model: str = "default model") -> str:
    """The payload of ``record`` as a short line (clipped JSON for unknown messages);
    ``model`` names the model of LLM calls that leave it to the gateway. Control and
    format characters (escape sequences...) are shown as escapes, never sent as they are."""
    return visible(_describe(record, model))


def _describe(record: TraceRecord, model: str) -> str:
    payload = record.payload
    if not isinstance(payload, dict):
        return payload_summary(payload, TEXT_CHARS)
    try:
        if record.type == "Task" and agent_of_subject(record.subject):
            return _task(payload)
        if record.type == "ChatRequest":
            return _chat_request(payload, model)
        render = _BY_TYPE.get(record.type)
        return payload_summary(payload, TEXT_CHARS) if render is None else render(payload)
    except (AttributeError, KeyError, TypeError, ValueError):  # a look-alike of another shape
        return payload_summary(payload, TEXT_CHARS)


def describe_node(node: TraceNode) -> str:
    """A tree line's text: the message, and for an answered request ``⇒`` its reply."""
    reply = node.reply
    model = "default model"
    if reply is not None and reply.type == "ChatResult" and isinstance(reply.payload, dict):
        model = str(reply.payload.get("model") or model)
    text = describe(node.record, model=model)
    if reply is not None:
        text += f"  ⇒ {describe(reply)}"
    return text
