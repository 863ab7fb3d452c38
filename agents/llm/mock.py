"""The embedded OpenAI-compatible mock LLM, for tests, benchmarks and runs without an API key.

    async with MockLLM(policy, latency="50ms,lognormal", faults="429:0.05") as url:
        ...  # url is "http://127.0.0.1:<port>/v1"

It serves ``POST /v1/chat/completions`` (JSON, or SSE with ``stream: true``) and
``GET /v1/models`` shaped exactly as the OpenAI spec says, answers from a
:class:`~agents.llm.policy.Policy`, and injects latency and faults drawn from one seeded
``random.Random`` (reproducible when requests arrive in the same order).
:meth:`MockLLM.stats` counts what it served, including the peak of concurrent requests.
Standalone: ``await run_standalone(["--port", "8000"])`` serves until cancelled.
The specs live in :mod:`~agents.llm.mock_specs` (re-exported here); the response bodies
are built in :mod:`~agents.llm.mock_responses`.
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

import msgspec
import orjson
from aiohttp import web

from bus import HivebusError

from .mock_responses import (
    DONE_EVENT,
    Answer,
    break_arguments,
    build_answer,
    chunk_events,
    completion_object,
    count_prompt_tokens,
    error_body,
    model_object,
    ratelimit_headers,
)
from .mock_specs import FAULT_KINDS, Faults, Latency, MockConfigError, RateLimit, parse_duration
from .policy import FaultKind, Policy, Reply
from .wire import ChatCompletionRequest, request_decoder

_ERROR_FAULTS = frozenset({"429", "500", "503", "reset", "timeout"})


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
        return self._json(status, error_body(message, kind, param=param, code=code), headers)

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
        data = [model_object(name) for name in self.models]
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
        return self._json(200, orjson.dumps(model_object(name)))

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
        prompt_tokens = count_prompt_tokens(chat)
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
            fault, reply = break_arguments(reply, chat)
        if fault is not None and fault not in _ERROR_FAULTS:
            self._counters.faults[fault] += 1
        answer = self._answer(chat, reply, prompt_tokens)
        if chat.stream:
            return await self._stream(request, chat, answer, fault, headers)
        body = orjson.dumps(completion_object(answer, chat.n or 1))
        if fault == "badjson":
            body = body[:-1] + b",}"
        elif fault == "truncated":
            body = body[: len(body) // 2]
        return self._json(200, body, headers)

    def _answer(self, chat: ChatCompletionRequest, reply: Reply, prompt_tokens: int) -> Answer:
        self._sequence += 1
        answer = build_answer(chat, reply, prompt_tokens=prompt_tokens, sequence=self._sequence)
        counters = self._counters
        counters.prompt_tokens += prompt_tokens
        counters.completion_tokens += answer.completion_tokens
        if self.ratelimit is not None:
            self._window_tokens += answer.completion_tokens
        return answer

    async def _stream(
        self,
        request: web.Request,
        chat: ChatCompletionRequest,
        answer: Answer,
        fault: FaultKind | None,
        headers: Mapping[str, str] | None,
    ) -> web.StreamResponse:
        include_usage = chat.stream_options is not None and bool(chat.stream_options.include_usage)
        events = chunk_events(answer, chat.n or 1, include_usage)
        if fault == "truncated":
            events = events[: max(1, len(events) // 2)]
        else:
            if fault == "badjson":
                events[len(events) // 2] = b'data: {"id": "' + answer.id.encode() + b'", "choi\n\n'
            events.append(DONE_EVENT)
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
        headers = ratelimit_headers(limit, self._window_requests, self._window_tokens, reset)
        return headers, limited, reset


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


async def serve_args(
    args: argparse.Namespace, *, on_ready: Callable[[str], object] | None = None
) -> None:
    """Serve with options parsed by :func:`add_arguments`; a bad spec raises
    :class:`MockConfigError` (or the policy's error) before anything listens."""
    latency, faults = Latency.parse(args.latency), Faults.parse(args.faults)
    policy = Policy.load(args.policy) if args.policy else None
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


async def run_standalone(
    argv: Sequence[str] | None = None, *, on_ready: Callable[[str], object] | None = None
) -> int:
    """``hivebus mock-llm`` as a coroutine: parse ``argv`` (see :func:`add_arguments`) and
    serve until cancelled; 2 for a bad spec."""
    parser = argparse.ArgumentParser(prog="hivebus mock-llm", description="Serve the mock LLM.")
    add_arguments(parser)
    try:
        await serve_args(parser.parse_args(argv), on_ready=on_ready)
    except HivebusError as error:
        print(f"hivebus mock-llm: error: {error}", file=sys.stderr)
        return 2
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
    "serve_args",
]
