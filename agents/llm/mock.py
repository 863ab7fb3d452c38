"""The embedded OpenAI-compatible mock LLM, for tests, benchmarks and runs without an API key.

    async with MockLLM(policy, latency="50ms,lognormal", faults="429:0.05") as url:
        ...  # url is "http://127.0.0.1:<port>/v1"

It serves ``POST /v1/chat/completions`` (JSON, or SSE with ``stream: true``) and
``GET /v1/models`` shaped exactly as the OpenAI spec says, answers from a
:class:`~agents.llm.policy.Policy`, and injects latency and faults drawn from one seeded
``random.Random`` (reproducible when requests arrive in the same order).
:meth:`MockLLM.stats` counts what it served, including the peak of concurrent requests.
Standalone: ``await run_standalone(["--port", "8000"])`` serves until cancelled.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hmac
import math
import os
import random
import re
import socket
import struct
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Literal, get_args

import msgspec
import orjson
from aiohttp import web

from bus import HivebusError

from .policy import FaultKind, Policy, Reply, message_text, offered_tools
from .wire import AssistantMessage, ChatCompletionRequest, FunctionCall, ToolCall, request_decoder

FAULT_KINDS: tuple[FaultKind, ...] = get_args(FaultKind)
_ERROR_FAULTS = frozenset({"429", "500", "503", "reset", "timeout"})
_DURATION = re.compile(r"([0-9]*\.?[0-9]+(?:[eE][-+]?[0-9]+)?)\s*(ms|s)?")
_WORDS = re.compile(r"\S+\s*|\s+")
_ARGUMENT_FRAGMENT = 8  # characters of tool-call arguments per stream chunk
_DONE = b"data: [DONE]\n\n"


class MockConfigError(HivebusError, ValueError):
    """A latency, fault or rate-limit spec for the mock is malformed; names the spec."""


def _number(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise MockConfigError(f"{text!r} is not a number") from None


def parse_duration(text: str) -> float:
    """Seconds from ``"0.05"``, ``"50ms"`` or ``"2s"``."""
    match = _DURATION.fullmatch(text.strip())
    if match is None:
        raise MockConfigError(f"{text!r} is not a duration (like 0.05, 50ms or 2s)")
    value = float(match[1])
    return value / 1000 if match[2] == "ms" else value


class Latency(msgspec.Struct, frozen=True, kw_only=True):
    """The delay before each response, plus ``per_token`` between stream chunks.

    ``fixed``: ``seconds``; ``uniform``: between ``seconds`` and ``high``; ``lognormal``:
    median ``seconds``, shape ``sigma``. :meth:`parse` reads ``"50ms"``, ``"0.05"``,
    ``"uniform:10ms,50ms"``, ``"lognormal:50ms,0.5"`` and ``"50ms,lognormal"`` (sigma
    0.5), each optionally followed by ``";per_token=2ms"``.
    """

    distribution: Literal["fixed", "uniform", "lognormal"] = "fixed"
    seconds: float = 0.0
    high: float = 0.0
    sigma: float = 0.5
    per_token: float = 0.0

    def __post_init__(self) -> None:
        if min(self.seconds, self.high, self.sigma, self.per_token) < 0:
            raise MockConfigError(f"latency: durations cannot be negative: {self}")
        if self.distribution == "uniform" and self.high < self.seconds:
            raise MockConfigError(f"latency: uniform high {self.high} < low {self.seconds}")

    @property
    def is_zero(self) -> bool:
        """Whether responses go out at once (no sleep at all on the hot path)."""
        return self.seconds == 0 and (self.distribution != "uniform" or self.high == 0)

    def sample(self, rng: random.Random) -> float:
        """One delay in seconds."""
        if self.distribution == "uniform":
            return rng.uniform(self.seconds, self.high)
        if self.distribution == "lognormal" and self.seconds > 0:
            return rng.lognormvariate(math.log(self.seconds), self.sigma)
        return self.seconds

    @classmethod
    def parse(cls, spec: Latency | str | float | None) -> Latency:
        """A Latency from a spec string, a number of seconds, or None (no delay)."""
        if spec is None:
            return cls()
        if isinstance(spec, Latency):
            return spec
        if isinstance(spec, int | float):
            return cls(seconds=float(spec))
        try:
            return cls._parse(spec)
        except MockConfigError as error:
            raise MockConfigError(f"latency {spec!r}: {error}") from None

    @classmethod
    def _parse(cls, spec: str) -> Latency:
        main, *options = spec.split(";")
        per_token = 0.0
        for option in options:
            key, _, value = option.partition("=")
            if key.strip() not in ("per_token", "token") or not value:
                raise MockConfigError(f"unknown option {option.strip()!r} (want per_token=2ms)")
            per_token = parse_duration(value)
        kind, colon, rest = main.partition(":")
        if colon:
            kind, values = kind.strip(), [v.strip() for v in rest.split(",")]
            if kind == "uniform" and len(values) == 2:
                low, high = map(parse_duration, values)
                return cls(distribution="uniform", seconds=low, high=high, per_token=per_token)
            if kind == "lognormal" and len(values) in (1, 2):
                sigma = _number(values[1]) if len(values) == 2 else 0.5
                median = parse_duration(values[0])
                return cls(
                    distribution="lognormal", seconds=median, sigma=sigma, per_token=per_token
                )
            raise MockConfigError("want uniform:LOW,HIGH or lognormal:MEDIAN[,SIGMA]")
        first, *shape = (part.strip() for part in main.split(","))
        seconds = parse_duration(first) if first else 0.0
        if shape not in ([], ["lognormal"]):
            raise MockConfigError(f"unknown distribution {','.join(shape)!r} (want lognormal)")
        return cls(
            distribution="lognormal" if shape else "fixed", seconds=seconds, per_token=per_token
        )


class Faults(msgspec.Struct, frozen=True, kw_only=True):
    """The chance of each fault per chat request (the rates add up to at most 1).

    ``429`` (with ``Retry-After`` = ``retry_after`` and ``retry-after-ms``), ``500``,
    ``503``, ``reset`` (the connection is dropped with a TCP RST, no response),
    ``timeout`` (no answer for ``hang_seconds``, cut short when the server stops),
    ``badjson`` (200 with a malformed body, or a malformed chunk mid-stream),
    ``truncated`` (a stream that stops halfway without ``[DONE]``; a JSON body cut in
    half) and ``badargs`` (tool calls whose ``arguments`` are not valid JSON).
    :meth:`parse` reads ``"429:0.05,500:0.02,reset:0.01,retry_after=0.5,hang=2s"``.
    """

    rates: dict[FaultKind, float] = {}
    retry_after: float = 1.0
    hang_seconds: float = 30.0

    def __post_init__(self) -> None:
        for kind, rate in self.rates.items():
            if kind not in FAULT_KINDS:
                raise MockConfigError(
                    f"faults: unknown kind {kind!r} (one of {', '.join(FAULT_KINDS)})"
                )
            if not 0 <= rate <= 1:
                raise MockConfigError(f"faults: {kind}: rate {rate} is not between 0 and 1")
        if sum(self.rates.values()) > 1 + 1e-9:
            raise MockConfigError(f"faults: the rates add up to {sum(self.rates.values()):g} > 1")

    def sample(self, rng: random.Random) -> FaultKind | None:
        """The fault for one request, or None."""
        if not self.rates:
            return None
        draw = rng.random()
        for kind, rate in self.rates.items():
            if draw < rate:
                return kind
            draw -= rate
        return None

    @classmethod
    def parse(cls, spec: Faults | str | Mapping[str, float] | None) -> Faults:
        """Faults from a spec string, a mapping of kind to rate, or None (no faults)."""
        if spec is None:
            return cls()
        if isinstance(spec, Faults):
            return spec
        if isinstance(spec, Mapping):
            return cls(rates=dict(spec))  # type: ignore[arg-type]
        rates: dict[str, float] = {}
        options: dict[str, float] = {}
        for item in filter(None, (part.strip() for part in spec.split(","))):
            key, sep, value = item.partition("=")
            try:
                if sep and key.strip() in ("retry_after", "hang", "hang_seconds"):
                    options[key.strip()] = parse_duration(value)
                    continue
                kind, colon, rate = item.partition(":")
                if not colon:
                    raise MockConfigError(f"{item!r}: want KIND:RATE, retry_after=S or hang=S")
                rates[kind.strip()] = float(rate)
            except ValueError as error:
                raise MockConfigError(f"faults {spec!r}: {error}") from None
        return cls(
            rates=rates,  # type: ignore[arg-type]
            retry_after=options.get("retry_after", 1.0),
            hang_seconds=options.get("hang", options.get("hang_seconds", 30.0)),
        )


class RateLimit(msgspec.Struct, frozen=True, kw_only=True):
    """Send OpenAI's ``x-ratelimit-*`` headers from counters over a fixed ``window`` of
    seconds; when ``is_enforced``, a request past a limit gets 429 until the window ends."""

    requests: int = 10_000
    tokens: int = 2_000_000
    window: float = 60.0
    is_enforced: bool = False


class MockStats(msgspec.Struct, frozen=True, kw_only=True):
    """What the mock served so far. ``responses`` counts by HTTP status (resets and
    hangs cut short send none); ``peak_in_flight`` is the most requests at once."""

    requests: int
    responses: dict[int, int]
    faults: dict[str, int]
    streams: int
    in_flight: int
    peak_in_flight: int
    prompt_tokens: int
    completion_tokens: int


class _Counters(msgspec.Struct, kw_only=True):
    requests: int = 0
    responses: dict[int, int] = {}
    faults: dict[str, int] = {}
    streams: int = 0
    in_flight: int = 0
    peak_in_flight: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0


class _Answer(msgspec.Struct, frozen=True, kw_only=True):
    """One completion ready to be sent as JSON or as SSE chunks."""

    id: str
    created: int
    model: str
    content: str | None
    tool_calls: list[ToolCall]
    finish_reason: str
    prompt_tokens: int
    completion_tokens: int


class MockLLM:
    """An OpenAI-compatible server on loopback: ``async with MockLLM() as url``.

    ``policy`` answers (the built-in default when None), ``latency`` and ``faults`` take
    a spec object or string (see :class:`Latency`, :class:`Faults`), ``seed`` seeds
    their draws, ``api_key`` makes ``Authorization: Bearer <key>`` required and
    ``ratelimit`` (True or a :class:`RateLimit`) adds ``x-ratelimit-*`` headers. Any
    model name is accepted; ``models`` is what ``GET /v1/models`` lists.
    """

    def __init__(
        self,
        policy: Policy | None = None,
        *,
        latency: Latency | str | float | None = None,
        faults: Faults | str | Mapping[str, float] | None = None,
        seed: int = 0,
        api_key: str | None = None,
        ratelimit: RateLimit | bool | None = None,
        models: Sequence[str] = ("mock-1",),
        host: str = "127.0.0.1",
        port: int = 0,
        backlog: int = 2048,
        shutdown_timeout: float = 1.0,
    ) -> None:
        self.policy = policy if policy is not None else Policy()
        self.latency = Latency.parse(latency)
        self.faults = Faults.parse(faults)
        self.ratelimit = RateLimit() if ratelimit is True else ratelimit or None
        self.models = tuple(models)
        self.host, self.port, self.backlog = host, port, backlog
        self.url = ""
        self._shutdown_timeout = shutdown_timeout
        self._rng = random.Random(seed)
        self._authorization = f"Bearer {api_key}".encode() if api_key is not None else None
        self._counters = _Counters(faults=dict.fromkeys(FAULT_KINDS, 0))
        self._sequence = 0
        self._window_start = 0.0
        self._window_requests = self._window_tokens = 0
        self._runner: web.AppRunner | None = None
        self._stopping = asyncio.Event()

    async def __aenter__(self) -> str:
        return await self.start()

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()

    async def start(self) -> str:
        """Listen and return the base URL (``http://host:port/v1``)."""
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_post("/v1/chat/completions", self._chat)
        app.router.add_get("/v1/models", self._models)
        app.router.add_get("/v1/models/{model}", self._model)
        app.router.add_route("*", "/{path:.*}", self._unknown)
        runner = web.AppRunner(
            app,
            access_log=None,
            handle_signals=False,
            handler_cancellation=True,  # a client that hangs up stops its handler
            shutdown_timeout=self._shutdown_timeout,
        )
        await runner.setup()
        try:
            site = web.TCPSite(runner, self.host, self.port, backlog=self.backlog)
            await site.start()
        except BaseException:
            await runner.cleanup()
            raise
        self._runner = runner
        self._stopping.clear()
        self.port = runner.addresses[0][1]
        host = f"[{self.host}]" if ":" in self.host else self.host
        self.url = f"http://{host}:{self.port}/v1"
        return self.url

    async def stop(self) -> None:
        """Stop listening; hangs end at once, other requests get ``shutdown_timeout``."""
        if self._runner is None:
            return
        self._stopping.set()
        runner, self._runner = self._runner, None
        await runner.cleanup()

    def stats(self) -> MockStats:
        """A snapshot of the counters."""
        counters = msgspec.structs.asdict(self._counters)
        counters.update(
            responses=dict(self._counters.responses), faults=dict(self._counters.faults)
        )
        return MockStats(**counters)

    # -- responses ----------------------------------------------------------------------

    def _json(
        self, status: int, body: bytes, headers: Mapping[str, str] | None = None
    ) -> web.Response:
        responses = self._counters.responses
        responses[status] = responses.get(status, 0) + 1
        return web.Response(
            status=status, body=body, content_type="application/json", headers=headers
        )

    def _error(
        self,
        status: int,
        message: str,
        kind: str,
        *,
        param: str | None = None,
        code: str | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> web.Response:
        error = {"message": message, "type": kind, "param": param, "code": code}
        return self._json(status, orjson.dumps({"error": error}), headers)

    def _refuse_key(self, request: web.Request) -> web.Response | None:
        expected = self._authorization
        if expected is None:
            return None
        given = request.headers.get("Authorization")
        if given is None:
            message = "You didn't provide an API key (Authorization: Bearer YOUR_KEY)."
            return self._error(401, message, "invalid_request_error")
        if hmac.compare_digest(given.encode(), expected):
            return None
        return self._error(
            401, "Incorrect API key provided.", "invalid_request_error", code="invalid_api_key"
        )

    def _bad_request(self, error: msgspec.MsgspecError) -> web.Response:
        text = str(error)
        what, _, where = text.partition(" - at `$")
        param = where.rstrip("`").lstrip(".") or None
        missing = re.fullmatch(r"Object missing required field `(\w+)`", what)
        if missing:
            param = f"{param}.{missing[1]}" if param else missing[1]
        if isinstance(error, msgspec.ValidationError):
            message = f"Invalid request body: {what.replace('`', '')}" + (
                f" at {param!r}" if param else ""
            )
        else:
            message = f"We could not parse the JSON body of your request: {text}"
        return self._error(400, message, "invalid_request_error", param=param)

    async def _unknown(self, request: web.Request) -> web.Response:
        self._counters.requests += 1
        message = f"Invalid URL ({request.method} {request.path})"
        return self._error(404, message, "invalid_request_error")

    async def _models(self, request: web.Request) -> web.Response:
        self._counters.requests += 1
        refused = self._refuse_key(request)
        if refused is not None:
            return refused
        data = [_model(name) for name in self.models]
        return self._json(200, orjson.dumps({"object": "list", "data": data}))

    async def _model(self, request: web.Request) -> web.Response:
        self._counters.requests += 1
        refused = self._refuse_key(request)
        if refused is not None:
            return refused
        name = request.match_info["model"]
        if name not in self.models:
            message = f"The model '{name}' does not exist"
            return self._error(404, message, "invalid_request_error", code="model_not_found")
        return self._json(200, orjson.dumps(_model(name)))

    # -- chat completions ---------------------------------------------------------------

    async def _chat(self, request: web.Request) -> web.StreamResponse:
        counters = self._counters
        counters.requests += 1
        counters.in_flight += 1
        if counters.in_flight > counters.peak_in_flight:
            counters.peak_in_flight = counters.in_flight
        try:
            return await self._complete(request)
        finally:
            counters.in_flight -= 1

    async def _complete(self, request: web.Request) -> web.StreamResponse:
        refused = self._refuse_key(request)
        if refused is not None:
            return refused
        try:
            chat = request_decoder.decode(await request.read())
        except msgspec.MsgspecError as error:
            return self._bad_request(error)
        if not chat.messages:
            message = "Invalid request body: messages must hold at least one message"
            return self._error(400, message, "invalid_request_error", param="messages")
        prompt_tokens = _prompt_tokens(chat)
        headers: dict[str, str] | None = None
        if self.ratelimit is not None:
            headers, limited, reset = self._admit(self.ratelimit, prompt_tokens)
            if limited is not None:
                return self._rate_limited(limited, reset, headers)
        fault = self.faults.sample(self._rng)
        if not self.latency.is_zero:
            await asyncio.sleep(self.latency.sample(self._rng))
        reply: Reply | None = None
        if fault is None:
            reply = self.policy.respond(chat)
            fault = reply.fault
        if fault is not None and fault in _ERROR_FAULTS:
            self._counters.faults[fault] += 1
            if fault != "timeout":
                return self._inject(request, fault, headers)
            if await self._hang():
                return self._reset(request)
        if reply is None:  # a drawn fault: look at the answer without using up a rule
            reply = self.policy.respond(chat, record=False)
        if fault == "badargs":
            fault, reply = _break_arguments(reply, chat)
        if fault is not None and fault not in _ERROR_FAULTS:
            self._counters.faults[fault] += 1
        answer = self._answer(chat, reply, prompt_tokens)
        if chat.stream:
            return await self._stream(request, chat, answer, fault, headers)
        body = orjson.dumps(_completion(answer, chat.n or 1))
        if fault == "badjson":
            body = body[:-1] + b",}"
        elif fault == "truncated":
            body = body[: len(body) // 2]
        return self._json(200, body, headers)

    def _answer(self, chat: ChatCompletionRequest, reply: Reply, prompt_tokens: int) -> _Answer:
        self._sequence += 1
        sequence = self._sequence
        content, finish_reason = reply.content, "stop"
        if content is not None and chat.stop:
            content = _cut_at_stop(
                content, [chat.stop] if isinstance(chat.stop, str) else chat.stop
            )
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
        completion_tokens = max(1, (chars + 3) // 4)
        counters = self._counters
        counters.prompt_tokens += prompt_tokens
        counters.completion_tokens += completion_tokens
        if self.ratelimit is not None:
            self._window_tokens += completion_tokens
        return _Answer(
            id=f"chatcmpl-mock{sequence:012d}",
            created=int(time.time()),
            model=chat.model,
            content=content,
            tool_calls=calls,
            finish_reason=finish_reason,
            prompt_tokens=prompt_tokens,
            completion_tokens=completion_tokens,
        )

    async def _stream(
        self,
        request: web.Request,
        chat: ChatCompletionRequest,
        answer: _Answer,
        fault: FaultKind | None,
        headers: Mapping[str, str] | None,
    ) -> web.StreamResponse:
        include_usage = chat.stream_options is not None and bool(chat.stream_options.include_usage)
        events = _events(answer, chat.n or 1, include_usage)
        if fault == "truncated":
            events = events[: max(1, len(events) // 2)]
        else:
            if fault == "badjson":
                events[len(events) // 2] = b'data: {"id": "' + answer.id.encode() + b'", "choi\n\n'
            events.append(_DONE)
        response = web.StreamResponse(headers=headers)
        response.content_type = "text/event-stream"
        response.headers["Cache-Control"] = "no-cache"
        self._counters.streams += 1
        responses = self._counters.responses
        responses[200] = responses.get(200, 0) + 1
        await response.prepare(request)
        per_token = self.latency.per_token
        if per_token > 0:
            for i, event in enumerate(events):
                if i:
                    await asyncio.sleep(per_token)
                if self._stopping.is_set():
                    break
                await response.write(event)
        else:
            await response.write(b"".join(events))
        await response.write_eof()
        return response

    # -- faults and limits --------------------------------------------------------------

    def _inject(
        self, request: web.Request, fault: FaultKind, headers: Mapping[str, str] | None
    ) -> web.Response:
        if fault == "429":
            return self._rate_limited("requests", self.faults.retry_after, headers)
        if fault == "500":
            message = "The server had an error while processing your request. (mock)"
            return self._error(500, message, "server_error", headers=headers)
        if fault == "503":
            message = "The server is overloaded or not ready yet. (mock)"
            return self._error(503, message, "server_error", headers=headers)
        return self._reset(request)

    def _rate_limited(
        self, limit: str, retry_after: float, headers: Mapping[str, str] | None
    ) -> web.Response:
        waits = {
            **(headers or {}),
            "Retry-After": str(math.ceil(retry_after)),
            "retry-after-ms": str(round(retry_after * 1000)),
        }
        message = f"Rate limit reached for {limit} (mock). Please try again in {retry_after:g}s."
        return self._error(429, message, limit, code="rate_limit_exceeded", headers=waits)

    def _reset(self, request: web.Request) -> web.Response:
        transport = request.transport
        if transport is not None:
            sock = transport.get_extra_info("socket")
            if sock is not None:  # linger 0: close with a RST, as a crashed peer would
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            transport.abort()
        return web.Response()  # never sent: aiohttp finds the connection gone

    async def _hang(self) -> bool:
        """Wait ``hang_seconds``, or until the server stops (then True)."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stopping.wait(), self.faults.hang_seconds)
        return self._stopping.is_set()

    def _admit(
        self, limit: RateLimit, prompt_tokens: int
    ) -> tuple[dict[str, str], str | None, float]:
        """Count a request in the window: its headers, the limit it broke (if enforced),
        and the seconds until the window resets."""
        now = time.monotonic()
        if now - self._window_start >= limit.window:
            self._window_start, self._window_requests, self._window_tokens = now, 0, 0
        limited = None
        if self._window_requests >= limit.requests:
            limited = "requests"
        elif self._window_tokens >= limit.tokens:
            limited = "tokens"
        if limited is None or not limit.is_enforced:
            limited = None
            self._window_requests += 1
            self._window_tokens += prompt_tokens
        reset = max(0.0, self._window_start + limit.window - now)
        headers = {
            "x-ratelimit-limit-requests": str(limit.requests),
            "x-ratelimit-limit-tokens": str(limit.tokens),
            "x-ratelimit-remaining-requests": str(max(0, limit.requests - self._window_requests)),
            "x-ratelimit-remaining-tokens": str(max(0, limit.tokens - self._window_tokens)),
            "x-ratelimit-reset-requests": _duration_text(reset),
            "x-ratelimit-reset-tokens": _duration_text(reset),
        }
        return headers, limited, reset


# -- the wire shapes ---------------------------------------------------------------------


def _model(name: str) -> dict[str, Any]:
    return {"id": name, "object": "model", "created": 1_700_000_000, "owned_by": "hivebus"}


def _prompt_tokens(chat: ChatCompletionRequest) -> int:
    chars = 0
    for message in chat.messages:
        chars += len(message_text(message))
        if isinstance(message, AssistantMessage):
            for call in message.tool_calls or ():
                if isinstance(call, ToolCall):
                    chars += len(call.function.arguments)
    return max(1, (chars + 3) // 4)


def _cut_at_stop(content: str, stops: Sequence[str]) -> str:
    cuts = [i for i in (content.find(s) for s in stops if s) if i >= 0]
    return content[: min(cuts)] if cuts else content


def _break_arguments(reply: Reply, chat: ChatCompletionRequest) -> tuple[FaultKind | None, Reply]:
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


def _usage(answer: _Answer) -> dict[str, int]:
    return {
        "prompt_tokens": answer.prompt_tokens,
        "completion_tokens": answer.completion_tokens,
        "total_tokens": answer.prompt_tokens + answer.completion_tokens,
    }


def _completion(answer: _Answer, n: int) -> dict[str, Any]:
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


def _events(answer: _Answer, n: int, include_usage: bool) -> list[bytes]:
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


def _duration_text(seconds: float) -> str:
    """OpenAI's reset format: ``6ms``, ``1.5s``, ``1m30s``."""
    if seconds < 1:
        return f"{round(seconds * 1000)}ms"
    minutes, rest = divmod(round(seconds, 3), 60)
    return f"{int(minutes)}m{rest:g}s" if minutes else f"{rest:g}s"


# -- standalone --------------------------------------------------------------------------


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the mock's options to ``parser`` (the ``hivebus mock-llm`` subcommand's)."""
    parser.add_argument(
        "--host", default="127.0.0.1", help="address to bind (default: %(default)s)"
    )
    parser.add_argument(
        "--port", type=int, default=8000, help="0 picks a free port (default: %(default)s)"
    )
    parser.add_argument("--policy", metavar="FILE", help="rules file, .json or .toml")
    parser.add_argument(
        "--latency",
        default=None,
        help='e.g. "50ms", "uniform:10ms,50ms", "lognormal:50ms,0.5;per_token=2ms"',
    )
    parser.add_argument(
        "--faults", default=None, help='e.g. "429:0.05,500:0.02,reset:0.01,retry_after=1"'
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--api-key", default=None, help="require Authorization: Bearer KEY")
    parser.add_argument("--ratelimit", action="store_true", help="send x-ratelimit-* headers")


async def serve(
    host: str = "127.0.0.1",
    port: int = 8000,
    policy: Policy | str | os.PathLike[str] | None = None,
    *,
    latency: Latency | str | float | None = None,
    faults: Faults | str | None = None,
    seed: int = 0,
    api_key: str | None = None,
    ratelimit: RateLimit | bool | None = None,
    on_ready: Callable[[str], object] | None = None,
) -> None:
    """Serve the mock until cancelled; ``policy`` may be a policy file's path;
    ``on_ready`` gets the URL (default: print it)."""
    mock = MockLLM(
        Policy.load(policy) if isinstance(policy, str | os.PathLike) else policy,
        latency=latency,
        faults=faults,
        seed=seed,
        api_key=api_key,
        ratelimit=ratelimit,
        host=host,
        port=port,
    )
    async with mock as url:
        if on_ready is None:
            print(f"mock LLM listening on {url}", flush=True)
        else:
            on_ready(url)
        await asyncio.Event().wait()  # until cancelled: serving is the whole job


async def run_standalone(
    argv: Sequence[str] | None = None, *, on_ready: Callable[[str], object] | None = None
) -> int:
    """``hivebus mock-llm`` as a coroutine: parse ``argv`` (see :func:`add_arguments`) and
    serve until cancelled; 2 for a bad spec. The CLI's entry point runs it in its loop."""
    parser = argparse.ArgumentParser(prog="hivebus mock-llm", description="Serve the mock LLM.")
    add_arguments(parser)
    args = parser.parse_args(argv)
    try:
        latency, faults = Latency.parse(args.latency), Faults.parse(args.faults)
        policy = Policy.load(args.policy) if args.policy else None
    except HivebusError as error:
        print(f"hivebus mock-llm: error: {error}", file=sys.stderr)
        return 2
    await serve(
        args.host,
        args.port,
        policy,
        latency=latency,
        faults=faults,
        seed=args.seed,
        api_key=args.api_key,
        ratelimit=args.ratelimit or None,
        on_ready=on_ready,
    )
    return 0


__all__ = [
    "FAULT_KINDS",
    "Faults",
    "Latency",
    "MockConfigError",
    "MockLLM",
    "MockStats",
    "RateLimit",
    "add_arguments",
    "parse_duration",
    "run_standalone",
    "serve",
]
