"""One provider endpoint: its HTTP session and pool, its limits and cooldown, and one
attempt at a chat completion, with every HTTP failure translated into an :class:`LLMError`.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import msgspec

from bus import DeadlineGrid, TaskDeadline

from .errors import (
    AuthenticationFailed,
    BadRequest,
    ConnectionFailed,
    LLMError,
    LLMTimeout,
    MalformedResponse,
    ModelNotFound,
    ProviderError,
    RateLimited,
    StreamError,
)
from .limits import Admission
from .retry import retry_after
from .wire import (
    AnyToolCall,
    ChatCompletion,
    ChatCompletionRequest,
    Choice,
    FunctionCall,
    ResponseMessage,
    ToolCall,
    ToolCallChunk,
    Usage,
    chunk_decoder,
    completion_decoder,
    error_decoder,
    request_encoder,
)

DeltaSink = Callable[[str | None, list[ToolCallChunk] | None, str | None], Awaitable[None]]


@dataclass
class _ToolCallParts:
    id: str = ""
    name: str = ""
    arguments: list[str] = field(default_factory=list)


class Endpoint:
    """An OpenAI-compatible endpoint (``base_url`` ends in ``/v1``) and one model on it.

    One ``aiohttp.ClientSession`` per endpoint, its keep-alive pool sized to the
    concurrency cap. ``start()`` before use, ``close()`` after (the gateway does both).
    """

    def __init__(
        self,
        *,
        name: str,
        base_url: str,
        model: str,
        api_key: str | None = None,
        max_concurrency: int = 64,
        rpm: int | None = None,
        tpm: int | None = None,
        request_timeout: float = 60.0,
        connect_timeout: float = 10.0,
        cooldown: float = 30.0,
        cooldown_after: int = 5,
        temperature: float | None = None,
        max_tokens: int | None = None,
        prices: tuple[float, float] | None = None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self.name = name
        self.url = base_url.rstrip("/") + "/chat/completions"
        self.base_url = base_url
        self.model = model
        self._api_key = api_key
        self.request_timeout = request_timeout
        self.connect_timeout = connect_timeout
        self.cooldown = cooldown
        self.cooldown_after = cooldown_after
        self.temperature = temperature
        self.max_tokens = max_tokens
        self.prices = prices  # USD per 1M (input, output) tokens
        self.admission = Admission(
            max_concurrency=max_concurrency, rpm=rpm, tpm=tpm, clock=clock, sleep=sleep
        )
        self._clock = clock
        self._session: aiohttp.ClientSession | None = None
        self._headers = {"Content-Type": "application/json"}
        if api_key:
            self._headers["Authorization"] = f"Bearer {api_key}"
        self.consecutive_failures = 0
        self.cooling_until = 0.0
        # The attempt's whole deadline is watched on a coarse grid (one loop timer for many
        # calls, not aiohttp's timer per request); aiohttp keeps only the connect timeout.
        self._timeout = aiohttp.ClientTimeout(total=None, sock_connect=connect_timeout)
        self._deadlines = DeadlineGrid()

    def __repr__(self) -> str:
        key = ", api_key='***'" if self._api_key else ""
        return f"Endpoint({self.name!r}, {self.base_url!r}, model={self.model!r}{key})"

    # -- lifecycle ---------------------------------------------------------------------------

    async def start(self) -> None:
        if self._session is None:
            connector = aiohttp.TCPConnector(
                limit=self.admission.max_concurrency, limit_per_host=0, ttl_dns_cache=300
            )
            # the headers are the session's own: merged once, not on every request
            self._session = aiohttp.ClientSession(
                connector=connector, headers=self._headers, raise_for_status=False
            )

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None
        self._deadlines.clear()

    # -- health ------------------------------------------------------------------------------

    @property
    def cooling_for(self) -> float:
        """Seconds this endpoint still cools down after repeated failures (0 if not)."""
        return max(0.0, self.cooling_until - self._clock())

    def succeeded(self) -> None:
        """An answer: the failure count and any cooldown end (the endpoint works)."""
        self.consecutive_failures = 0
        self.cooling_until = 0.0

    def failed(self) -> None:
        self.consecutive_failures += 1
        if self.consecutive_failures >= self.cooldown_after:
            self.cooling_until = self._clock() + self.cooldown
            self.consecutive_failures = 0

    def cost(self, usage: Usage) -> float | None:
        if self.prices is None:
            return None
        per_input, per_output = self.prices
        return (usage.prompt_tokens * per_input + usage.completion_tokens * per_output) / 1e6

    # -- one attempt -------------------------------------------------------------------------

    async def attempt(
        self, request: ChatCompletionRequest, timeout: float, on_delta: DeltaSink | None = None
    ) -> ChatCompletion:
        """POST the request once; return the completion or raise a typed :class:`LLMError`."""
        session = self._session
        if session is None:
            raise RuntimeError(f"endpoint {self.name!r} is not started")
        if timeout <= 0:  # aiohttp reads 0 as "no timeout": the deadline has passed already
            raise LLMTimeout("no time left for an attempt", endpoint=self.name, model=request.model)
        body = request_encoder.encode(request)
        deadline = TaskDeadline(self._deadlines, timeout)
        try:
            # (not `async with`: a read to the end gives the connection back by itself, and
            # the context manager's two extra awaits cost more than its release)
            response = await session.post(self.url, data=body, timeout=self._timeout)
            try:
                if response.status != 200:
                    raise self._http_error(response.status, await response.read(), response)
                self.admission.observe(response.headers)
                if request.stream:
                    try:
                        return await self._read_stream(response, request.model, on_delta)
                    finally:
                        response.release()  # (a stream may be left before its end)
                # read() returns once the connection is back in the pool: nothing to release
                raw = await response.read()
            except BaseException:
                response.release()
                raise
        except LLMError:
            raise
        except asyncio.CancelledError:
            if deadline.expired():  # (not when cancelled from outside as well: that wins)
                raise LLMTimeout(
                    f"no complete answer within {timeout:g}s",
                    endpoint=self.name,
                    model=request.model,
                ) from None
            raise
        except TimeoutError:  # aiohttp's connect timeout
            raise LLMTimeout(
                f"could not connect within {self.connect_timeout:g}s",
                endpoint=self.name,
                model=request.model,
            ) from None
        except (aiohttp.ClientError, OSError) as exc:
            raise ConnectionFailed(
                f"connection failed: {type(exc).__name__}: {exc}",
                endpoint=self.name,
                model=request.model,
            ) from None
        finally:
            deadline.stop()
        try:
            completion = completion_decoder.decode(raw)
        except (msgspec.DecodeError, msgspec.ValidationError) as exc:
            raise MalformedResponse(
                f"200 with a body that is not a chat completion: {exc}",
                endpoint=self.name,
                model=request.model,
                status=200,
            ) from None
        if not completion.choices:
            raise MalformedResponse(
                "completion has no choices", endpoint=self.name, model=request.model, status=200
            )
        return completion

    def _http_error(self, status: int, raw: bytes, response: aiohttp.ClientResponse) -> LLMError:
        detail = ""
        try:
            body = error_decoder.decode(raw).error
            detail = body.message
            if body.code:
                detail = f"{detail} ({body.code})"
        except (msgspec.DecodeError, msgspec.ValidationError):
            detail = raw[:200].decode("utf-8", "replace")
        where: dict[str, Any] = {"endpoint": self.name, "model": self.model, "status": status}
        if status == 429:
            wait = retry_after(response.headers)
            return RateLimited(f"429 rate limited: {detail}", retry_after=wait, **where)
        if status in (401, 403):
            return AuthenticationFailed(
                f"{status}: the API key was refused ({detail})",
                **where,  # never the key
            )
        if status == 404:
            return ModelNotFound(f"404 not found: {detail}", **where)
        if status in (400, 409, 413, 422):
            return BadRequest(f"{status} bad request: {detail}", **where)
        if status >= 500:
            return ProviderError(f"{status} provider error: {detail}", **where)
        return BadRequest(f"unexpected HTTP {status}: {detail}", **where)

    async def _read_stream(
        self, response: aiohttp.ClientResponse, model: str, on_delta: DeltaSink | None
    ) -> ChatCompletion:
        """Assemble an SSE stream into a completion, passing each delta to ``on_delta``."""
        content: list[str] = []
        calls: dict[int, _ToolCallParts] = {}
        finish: str | None = None
        usage: Usage | None = None
        completion_id, created, answered_by = "", 0, model
        done = False
        async for line in response.content:
            if not line.startswith(b"data:"):
                continue  # comments, event names, blank separators
            data = line[5:].strip()
            if data == b"[DONE]":
                done = True
                break
            try:
                chunk = chunk_decoder.decode(data)
            except (msgspec.DecodeError, msgspec.ValidationError) as exc:
                raise MalformedResponse(
                    f"bad SSE chunk: {exc}", endpoint=self.name, model=model, status=200
                ) from None
            if chunk.error is not None:
                raise StreamError(
                    f"error inside the stream: {chunk.error.message}",
                    endpoint=self.name,
                    model=model,
                    status=200,
                )
            completion_id = chunk.id or completion_id
            created = chunk.created or created
            answered_by = chunk.model or answered_by
            if chunk.usage is not None:
                usage = chunk.usage
            for choice in chunk.choices or ():
                if choice.index != 0:
                    continue
                delta = choice.delta
                if delta.content:
                    content.append(delta.content)
                for part in delta.tool_calls or ():
                    entry = calls.setdefault(part.index, _ToolCallParts())
                    entry.id = part.id or entry.id
                    if part.function is not None:
                        entry.name = part.function.name or entry.name
                        if part.function.arguments:
                            entry.arguments.append(part.function.arguments)
                if choice.finish_reason is not None:
                    finish = choice.finish_reason
                if on_delta is not None and (
                    delta.content or delta.tool_calls or choice.finish_reason
                ):
                    await on_delta(delta.content, delta.tool_calls, choice.finish_reason)
        if not done:
            raise MalformedResponse(
                "stream ended before [DONE]", endpoint=self.name, model=model, status=200
            )
        tool_calls: list[AnyToolCall] = [
            ToolCall(id=p.id, function=FunctionCall(name=p.name, arguments="".join(p.arguments)))
            for _, p in sorted(calls.items())
        ]
        message = ResponseMessage(
            content="".join(content) if content else None, tool_calls=tool_calls or None
        )
        return ChatCompletion(
            id=completion_id,
            created=created,
            model=answered_by,
            choices=[Choice(message=message, finish_reason=finish)],  # type: ignore[arg-type]
            usage=usage,
        )
