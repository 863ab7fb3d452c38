"""What the mock LLM answers: scripted rules matched against the conversation, and a default.

A :class:`Rule` says *when* (the last message, the tools offered, the agent, the step, the
model) and *what* (text, tool calls, a JSON value, or a fault). A :class:`Policy` tries its
rules in order and the first that matches answers; otherwise its default does, and without
one :func:`default_reply` does: it calls an offered tool with arguments made up from the
tool's JSON schema, then answers with text about the results, so an agent loop on it takes
real steps. Rules marked ``once`` answer at most once and must all be used by the end of a
scripted run (:meth:`Policy.assert_complete`).
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from typing import Any, Literal

import msgspec
import orjson

from bus import HivebusError

from .wire import (
    AllowedToolsChoice,
    AssistantMessage,
    ChatCompletionRequest,
    ChatMessage,
    DeveloperMessage,
    FunctionCall,
    FunctionDefinition,
    FunctionMessage,
    FunctionTool,
    NamedToolChoice,
    ResponseFormatJsonObject,
    ResponseFormatJsonSchema,
    SystemMessage,
    TextPart,
    ToolCall,
    ToolMessage,
    UserMessage,
)

Role = Literal["system", "developer", "user", "assistant", "tool", "function"]
FaultKind = Literal["429", "500", "503", "reset", "timeout", "badjson", "truncated", "badargs"]

_ROLES: dict[type, Role] = {
    SystemMessage: "system",
    DeveloperMessage: "developer",
    UserMessage: "user",
    AssistantMessage: "assistant",
    ToolMessage: "tool",
    FunctionMessage: "function",
}
_AGENT = re.compile(r"\s*You are\s+(?:an?\s+|the\s+)?([\w.-]*\w)", re.IGNORECASE)
_VALIDATION = re.compile(r"(?P<what>.*?)(?: - at `\$\.?(?P<path>[^`]*)`)?", re.DOTALL)


class PolicyError(HivebusError, ValueError):
    """A policy file or rule is invalid; the message names the file and the field."""


class PolicyIncomplete(HivebusError, AssertionError):
    """Scripted (``once``) rules were never used: the run stopped before the script did."""

    def __init__(self, message: str, *, unused: list[str]) -> None:
        super().__init__(message)
        self.unused = unused


class ScriptedCall(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """A tool call a rule makes: ``arguments`` is an object, or a raw (maybe invalid) string."""

    name: str
    arguments: dict[str, Any] | str = {}


class Reply(msgspec.Struct, frozen=True, kw_only=True):
    """The policy's answer to one request; ``rule`` names the rule that gave it."""

    content: str | None = None
    tool_calls: list[FunctionCall] = []
    fault: FaultKind | None = None
    rule: str | None = None


class Turn(msgspec.Struct, frozen=True, kw_only=True):
    """What rules match on, read once from a request."""

    role: Role | None
    text: str
    tools: frozenset[str]
    agent: str | None
    step: int
    model: str

    @classmethod
    def of(cls, request: ChatCompletionRequest) -> Turn:
        """The turn ``request`` asks the model to take."""
        messages = request.messages
        last = messages[-1] if messages else None
        return cls(
            role=_ROLES[type(last)] if last is not None else None,
            text=message_text(last) if last is not None else "",
            tools=frozenset(t.name for t in offered_tools(request)),
            agent=agent_name(messages),
            step=sum(1 for m in messages if isinstance(m, AssistantMessage)),
            model=request.model,
        )


class Rule(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """When a request matches every condition given, answer it this way.

    Conditions (all optional; an unset one matches anything): ``role`` of the last message,
    ``contains`` (case-sensitive substring) and ``regex`` (``re.search``) on its text,
    ``tools`` (all offered), ``agent`` (from a first system message "You are <agent>..."),
    ``step`` (assistant messages so far) and ``model``. Answer: ``text``, ``tool_calls``,
    ``json`` (a value sent as JSON text, for ``response_format`` requests) and/or a
    ``fault`` the mock injects instead of (or, for badjson/truncated/badargs, into) the
    answer. A rule with only a fault corrupts the default answer. ``once`` rules answer
    at most once and are expected to be used.
    """

    name: str | None = None
    role: Role | None = None
    contains: str | None = None
    regex: str | None = None
    tools: list[str] | None = None
    agent: str | None = None
    step: int | None = None
    model: str | None = None
    text: str | None = None
    tool_calls: list[ScriptedCall] | None = None
    json: Any = None
    fault: FaultKind | None = None
    once: bool = False

    def __post_init__(self) -> None:
        if self.fault is None and not self.has_answer:
            raise ValueError("a rule needs text, tool_calls, json or fault")
        if self.text is not None and self.json is not None:
            raise ValueError("a rule answers with text or json, not both")
        if self.regex is not None:
            try:
                re.compile(self.regex)
            except re.error as error:
                raise ValueError(f"regex {self.regex!r}: {error}") from None

    @property
    def has_answer(self) -> bool:
        """Whether the rule gives text, tool calls or JSON (not only a fault)."""
        return self.text is not None or self.tool_calls is not None or self.json is not None

    @property
    def conditions(self) -> dict[str, object]:
        """The conditions set on this rule, by field name (for messages)."""
        fields = ("role", "contains", "regex", "tools", "agent", "step", "model")
        return {f: getattr(self, f) for f in fields if getattr(self, f) is not None}

    def matches(self, turn: Turn) -> bool:
        """Whether every condition of this rule holds for ``turn``."""
        return (
            (self.role is None or self.role == turn.role)
            and (self.step is None or self.step == turn.step)
            and (self.agent is None or self.agent.lower() == (turn.agent or "").lower())
            and (self.model is None or self.model == turn.model)
            and (self.tools is None or turn.tools.issuperset(self.tools))
            and (self.contains is None or self.contains in turn.text)
            and (self.regex is None or re.search(self.regex, turn.text) is not None)
        )

    def reply(self, request: ChatCompletionRequest, label: str) -> Reply:
        """This rule's answer to ``request``."""
        if not self.has_answer:
            base = default_reply(request)
            return Reply(
                content=base.content, tool_calls=base.tool_calls, fault=self.fault, rule=label
            )
        content = self.text
        if self.json is not None:
            content = orjson.dumps(self.json).decode()
        calls = [
            FunctionCall(
                name=call.name,
                arguments=(
                    call.arguments
                    if isinstance(call.arguments, str)
                    else orjson.dumps(call.arguments).decode()
                ),
            )
            for call in self.tool_calls or ()
        ]
        return Reply(content=content, tool_calls=calls, fault=self.fault, rule=label)


class PolicyFile(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """The contents of a policy file: ``rules`` in order and an optional ``default`` rule."""

    rules: list[Rule] = []
    default: Rule | None = None


class Policy:
    """Ordered rules, the first match answers; then ``default`` (a Rule without
    conditions), or the built-in :func:`default_reply` when there is none.

    A policy keeps how often each rule answered, so one instance belongs to one run.
    """

    def __init__(self, rules: Sequence[Rule] = (), *, default: Rule | None = None) -> None:
        if default is not None and default.conditions:
            names = ", ".join(default.conditions)
            raise PolicyError(f"policy: default: a default has no conditions (got {names})")
        self.rules = tuple(rules)
        self.default = default
        self._labels = [rule.name or f"rules[{i}]" for i, rule in enumerate(self.rules)]
        self._uses = [0] * len(self.rules)

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> Policy:
        """Read a policy from a ``.json`` or ``.toml`` file (see :class:`PolicyFile`)."""
        name = os.fspath(path)
        suffix = os.path.splitext(name)[1].lower()
        if suffix not in (".json", ".toml"):
            raise PolicyError(f"{name}: a policy file is .json or .toml, not {suffix or 'bare'}")
        try:
            with open(name, "rb") as file:
                data = file.read()
            if suffix == ".toml":
                parsed = msgspec.toml.decode(data, type=PolicyFile)
            else:
                parsed = msgspec.json.decode(data, type=PolicyFile)
        except OSError as error:
            raise PolicyError(f"{name}: cannot read: {error.strerror}") from None
        except msgspec.MsgspecError as error:
            raise PolicyError(f"{name}: {_describe(error)}") from None
        return cls(parsed.rules, default=parsed.default)

    @property
    def uses(self) -> dict[str, int]:
        """How many requests each rule answered, by rule name (or ``rules[i]``)."""
        return dict(zip(self._labels, self._uses, strict=True))

    def respond(self, request: ChatCompletionRequest, *, record: bool = True) -> Reply:
        """The answer to ``request``; ``record=False`` looks without using up a rule."""
        if self.rules:
            turn = Turn.of(request)
            for i, rule in enumerate(self.rules):
                if rule.once and self._uses[i]:
                    continue
                if rule.matches(turn):
                    if record:
                        self._uses[i] += 1
                    return rule.reply(request, self._labels[i])
        if self.default is not None:
            return self.default.reply(request, "default")
        return default_reply(request)

    def assert_complete(self) -> None:
        """Raise :class:`PolicyIncomplete` listing the ``once`` rules never used."""
        unused = [
            f"{self._labels[i]} {_format_conditions(rule)}"
            for i, rule in enumerate(self.rules)
            if rule.once and not self._uses[i]
        ]
        if unused:
            raise PolicyIncomplete(
                f"policy: {len(unused)} scripted rule(s) never used: {'; '.join(unused)}",
                unused=unused,
            )


def _format_conditions(rule: Rule) -> str:
    return "(" + ", ".join(f"{k}={v!r}" for k, v in rule.conditions.items()) + ")"


def _describe(error: msgspec.MsgspecError) -> str:
    """msgspec's "Expected `int`, got `str` - at `$.rules[0].step`" as
    "rules[0].step: expected int, got str"."""
    match = _VALIDATION.fullmatch(str(error))
    assert match is not None  # the pattern matches any text
    what = match["what"].replace("`", "")
    what = what[:1].lower() + what[1:]
    return f"{match['path']}: {what}" if match["path"] else what


# -- reading a conversation -------------------------------------------------------------


def message_text(message: ChatMessage) -> str:
    """The text of a message: its string content, or its text parts joined."""
    content = message.content
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    return "".join(part.text for part in content if isinstance(part, TextPart))


def agent_name(messages: Sequence[ChatMessage]) -> str | None:
    """The name in a first system message "You are <name>...", if there is one."""
    for message in messages:
        if isinstance(message, SystemMessage | DeveloperMessage):
            match = _AGENT.match(message_text(message))
            return match[1] if match else None
        break
    return None


def offered_tools(request: ChatCompletionRequest) -> list[FunctionDefinition]:
    """The function tools the request offers (custom tools are left out)."""
    return [t.function for t in request.tools or () if isinstance(t, FunctionTool)]


def _results_since_last_user(messages: Sequence[ChatMessage]) -> list[tuple[str, str]]:
    """(tool name, result text) for the tool results after the last user message."""
    names: dict[str, str] = {}
    results: list[tuple[str, str]] = []
    for message in messages:
        if isinstance(message, UserMessage):
            results.clear()
        elif isinstance(message, AssistantMessage):
            for call in message.tool_calls or ():
                if isinstance(call, ToolCall):
                    names[call.id] = call.function.name
        elif isinstance(message, ToolMessage):
            results.append((names.get(message.tool_call_id, "tool"), message_text(message)))
    return results


def _last_user_text(messages: Sequence[ChatMessage]) -> str:
    for message in reversed(messages):
        if isinstance(message, UserMessage):
            return " ".join(message_text(message).split())
    return ""


# -- the built-in default ---------------------------------------------------------------


def _tool_to_call(request: ChatCompletionRequest, has_results: bool) -> FunctionDefinition | None:
    tools = offered_tools(request)
    choice = request.tool_choice
    if not tools or choice == "none":
        return None
    required = choice == "required"
    if isinstance(choice, NamedToolChoice):
        tools = [t for t in tools if t.name == choice.function.name]
        required = True
    elif isinstance(choice, AllowedToolsChoice):
        allowed = {(tool.get("function") or {}).get("name") for tool in choice.allowed_tools.tools}
        tools = [t for t in tools if t.name in allowed]
        required = choice.allowed_tools.mode == "required"
    if not tools or (has_results and not required):
        return None
    return tools[0]


def default_reply(request: ChatCompletionRequest) -> Reply:
    """The built-in answer: call the first offered tool until a tool result is in the
    conversation (since the last user message), then answer; a ``json_schema`` response
    format is answered with JSON made up from the schema, any other answer is a short
    deterministic text about the last user message."""
    hint = _last_user_text(request.messages)
    results = _results_since_last_user(request.messages)
    tool = _tool_to_call(request, has_results=bool(results))
    if tool is not None:
        arguments = synthesize(tool.parameters or {"type": "object"}, hint=hint)
        return Reply(
            tool_calls=[FunctionCall(name=tool.name, arguments=orjson.dumps(arguments).decode())]
        )
    fmt = request.response_format
    if isinstance(fmt, ResponseFormatJsonSchema):
        value = synthesize(fmt.json_schema.schema or {"type": "object"}, hint=hint)
        return Reply(content=orjson.dumps(value).decode())
    if results:
        text = " ".join(
            f"Based on {name}: {_clip(result, 200).rstrip('.')}." for name, result in results
        )
    elif hint:
        text = f'You asked: "{_clip(hint, 80)}". This is the mock model\'s answer.'
    else:
        text = "Hello from the mock model."
    if isinstance(fmt, ResponseFormatJsonObject):
        return Reply(content=orjson.dumps({"answer": text}).decode())
    return Reply(content=text)


def _clip(text: str, limit: int) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


# -- values from a JSON schema ----------------------------------------------------------

_FORMATS = {
    "date-time": "2024-01-01T00:00:00Z",
    "date": "2024-01-01",
    "time": "12:00:00",
    "email": "user@example.com",
    "uri": "https://example.com",
    "url": "https://example.com",
    "uuid": "00000000-0000-4000-8000-000000000000",
}
_HINTED = {"query", "q", "question", "text", "input", "prompt", "topic", "task", "message"}
_ARITHMETIC = {"expression", "expr", "formula", "equation", "calculation"}
_EXPRESSION = re.compile(r"[\d.(][\d.\s()+\-*/%]*[\d)]")


def arithmetic_in(text: str) -> str | None:
    """The longest arithmetic expression written in ``text`` (one with an operator)."""
    found = [m.strip() for m in _EXPRESSION.findall(text) if any(op in m for op in "+-*/%")]
    return max(found, key=len) if found else None


def synthesize(schema: dict[str, Any], *, hint: str = "") -> Any:
    """A value satisfying ``schema`` (the subset LLM tools and msgspec use): ``type``,
    ``enum``/``const``, ``$ref`` to ``$defs``, ``anyOf``/``oneOf``/``allOf``, required
    properties (all when ``required`` is absent), ``items``/``prefixItems``/``minItems``,
    and string ``format``/``minLength``/``maxLength`` and number bounds. Text-like
    string properties (``query``, ``text``...) take ``hint``; an ``expression`` (or
    ``formula``...) takes the arithmetic written in ``hint``."""
    return _Synthesizer(schema, hint).value(schema, "", 0)


class _Synthesizer:
    def __init__(self, root: dict[str, Any], hint: str) -> None:
        self.root = root
        self.hint = _clip(hint, 100) if hint else ""

    def value(self, schema: dict[str, Any], name: str, depth: int) -> Any:
        schema = self.resolve(schema)
        if "const" in schema:
            return schema["const"]
        if schema.get("enum"):
            return schema["enum"][0]
        if "default" in schema:
            return schema["default"]
        for key in ("anyOf", "oneOf"):
            if schema.get(key):
                options = [self.resolve(s) for s in schema[key]]
                usable = [s for s in options if s.get("type") != "null"] or options
                return self.value(usable[0], name, depth)
        if schema.get("allOf"):
            merged: dict[str, Any] = {}
            for part in schema["allOf"]:
                for key, value in self.resolve(part).items():
                    if isinstance(value, dict) and isinstance(merged.get(key), dict):
                        merged[key] = {**merged[key], **value}
                    elif isinstance(value, list) and isinstance(merged.get(key), list):
                        merged[key] = merged[key] + value
                    else:
                        merged[key] = value
            return self.value(merged, name, depth)
        kind = schema.get("type")
        if isinstance(kind, list):
            kind = next((k for k in kind if k != "null"), "null")
        if kind is None:
            kind = (
                "object" if "properties" in schema else "array" if "items" in schema else "string"
            )
        if depth > 8:
            return {"object": {}, "array": []}.get(kind)
        return self.by_type(schema, kind, name, depth)

    def by_type(self, schema: dict[str, Any], kind: str, name: str, depth: int) -> Any:
        if kind == "object":
            properties: dict[str, Any] = schema.get("properties") or {}
            wanted = schema.get("required", list(properties))
            return {key: self.value(properties.get(key, {}), key, depth + 1) for key in wanted}
        if kind == "array":
            if schema.get("prefixItems"):
                return [self.value(s, name, depth + 1) for s in schema["prefixItems"]]
            items = schema.get("items")
            items = items if isinstance(items, dict) else {}
            count = max(1, int(schema.get("minItems", 1)))
            return [self.value(items, name, depth + 1) for _ in range(count)]
        if kind in ("integer", "number"):
            return self.number(schema, kind == "integer")
        if kind == "boolean":
            return True
        if kind == "null":
            return None
        return self.string(schema, name)

    def number(self, schema: dict[str, Any], is_integer: bool) -> int | float:
        value: float = 1
        if "minimum" in schema:
            value = max(value, schema["minimum"])
        if "exclusiveMinimum" in schema:
            value = max(value, schema["exclusiveMinimum"] + (1 if is_integer else 0.5))
        if "maximum" in schema:
            value = min(value, schema["maximum"])
        if "exclusiveMaximum" in schema:
            value = min(value, schema["exclusiveMaximum"] - (1 if is_integer else 0.5))
        return int(value) if is_integer else float(value)

    def string(self, schema: dict[str, Any], name: str) -> str:
        if schema.get("format") in _FORMATS:
            return _FORMATS[schema["format"]]
        lowered = name.lower()
        if lowered in _HINTED and self.hint:
            text = self.hint
        elif lowered in _ARITHMETIC:  # a calculator: the sum the user wrote, if any
            text = arithmetic_in(self.hint) or "1 + 1"
        elif "url" in lowered:
            text = "https://example.com"
        elif "path" in lowered or "file" in lowered:
            text = "README.md"
        else:
            text = f"example {name}".strip() if name else "example"
        text = text.ljust(int(schema.get("minLength", 0)), "x")
        if "maxLength" in schema:
            text = text[: int(schema["maxLength"])]
        return text

    def resolve(self, schema: dict[str, Any]) -> dict[str, Any]:
        for _ in range(32):
            ref = schema.get("$ref")
            if not isinstance(ref, str) or not ref.startswith("#/"):
                return schema
            target: Any = self.root
            for part in ref[2:].split("/"):
                target = target.get(part, {}) if isinstance(target, dict) else {}
            schema = {**target, **{k: v for k, v in schema.items() if k != "$ref"}}
        return schema


__all__ = [
    "FaultKind",
    "Policy",
    "PolicyError",
    "PolicyFile",
    "PolicyIncomplete",
    "Reply",
    "Role",
    "Rule",
    "ScriptedCall",
    "Turn",
    "default_reply",
    "message_text",
    "synthesize",
]
