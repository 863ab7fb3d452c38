"""The LLM gateway: the actor that answers every ``llm.chat`` request on the bus.

For each call it walks the fallback chain of endpoints (skipping those cooling down),
and on each endpoint retries retryable failures with full-jitter backoff, honouring
Retry-After (which pauses the whole endpoint), within the call's retry budget and
overall deadline. Admission (concurrency cap, RPM/TPM) is per endpoint.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import anyio
import msgspec

from bus import Actor, Context, handler

from ..config import DEFAULT_BASE_URL, LLMConfig
from .cassette import Cassette
from .endpoint import Endpoint
from .errors import (
    AllEndpointsFailed,
    BadRequest,
    CassetteMiss,
    DeadlineExceeded,
    LLMError,
    RateLimited,
    RetriesExhausted,
)
from .limits import LimitStats, estimate_tokens
from .messages import LLM_CHAT, ChatDelta, ChatRequest, ChatResult, stream_topic
from .retry import Backoff
from .wire import (
    ChatCompletionRequest,
    StreamOptions,
    TextPart,
    ToolCallChunk,
    Usage,
)

DEFAULT_MAX_TOKENS = 1024  # reserved at admission when a request sets none


class UsageTotals(msgspec.Struct, frozen=True, kw_only=True):
    calls: int
    prompt_tokens: int
    completion_tokens: int
    cost: float


class EndpointStats(msgspec.Struct, frozen=True, kw_only=True):
    name: str
    model: str
    cooling_for: float
    limits: LimitStats


class GatewayStats(msgspec.Struct, frozen=True, kw_only=True):
    """Calls, tokens and cost per model, per agent and in total; retries by cause; calls
    queued on the bus for a free slot (``queued``, most at once: ``max_queued``); and per
    endpoint what admission is doing (in flight, waiting, time spent waiting)."""

    calls: int
    succeeded: int
    failed: int
    in_flight: int
    queued: int
    max_queued: int
    fallbacks: int
    retries: dict[str, int]
    failures: dict[str, int]
    total: UsageTotals
    by_model: dict[str, UsageTotals]
    by_agent: dict[str, UsageTotals]
    endpoints: tuple[EndpointStats, ...]


class _Tally:
    __slots__ = ("calls", "completion_tokens", "cost", "prompt_tokens")

    def __init__(self) -> None:
        self.calls = self.prompt_tokens = self.completion_tokens = 0
        self.cost = 0.0

    def merge(self, other: _Tally) -> None:
        self.calls += other.calls
        self.prompt_tokens += other.prompt_tokens
        self.completion_tokens += other.completion_tokens
        self.cost += other.cost

    def freeze(self) -> UsageTotals:
        return UsageTotals(
            calls=self.calls,
            prompt_tokens=self.prompt_tokens,
            completion_tokens=self.completion_tokens,
            cost=self.cost,
        )


def _prompt_chars(request: ChatRequest) -> int:
    total = 0
    for message in request.messages:
        content = getattr(message, "content", None)
        if isinstance(content, str):
            total += len(content)
        elif isinstance(content, list):
            total += sum(len(p.text) for p in content if isinstance(p, TextPart))
    return total


class LLMGateway(Actor):
    """Answers ``llm.chat`` (queue group ``llm-gateway``, so several gateways share the load).

    ``endpoints`` is the fallback chain, primary first. A request's ``model`` overrides
    the primary's model only; fallbacks answer with their own.
    """

    def __init__(
        self,
        endpoints: Sequence[Endpoint],
        *,
        name: str = "llm-gateway",
        concurrency: int | None = None,
        retry: Backoff | None = None,
        deadline: float = 300.0,
        seed: int | None = None,
        cassette: Cassette | None = None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        super().__init__(name)
        if not endpoints:
            raise ValueError("the gateway needs at least one endpoint")
        self.endpoints = list(endpoints)
        # Calls beyond the endpoints' caps wait in the bus buffer (a deque), not as tasks
        # parked on a semaphore: thousands of queued calls then cost next to nothing.
        self.concurrency = concurrency or sum(e.admission.max_concurrency for e in endpoints)
        self.retry = retry or Backoff()
        self.deadline = deadline
        self.cassette = cassette  # record every answer, or replay them with no network
        self._rng = random.Random(seed)
        self._clock = clock
        self._sleep = sleep
        self._calls = self._succeeded = self._failed = self._in_flight = self._fallbacks = 0
        self._retries: dict[str, int] = {}
        self._failures: dict[str, int] = {}
        # One tally per (model, agent): a call adds to one; stats() sums them up.
        self._tallies: dict[tuple[str, str], _Tally] = {}
        self._sole: Endpoint | None = None  # the only endpoint, when there is no chain

    @classmethod
    def from_config(cls, llm: LLMConfig, **options: Any) -> LLMGateway:
        """A gateway for the endpoints of a configuration (primary, then fallbacks).

        With no base URL configured (the mock), start a :class:`~agents.llm.mock.MockLLM`
        and pass ``llm.with_base_url(url)``.
        """
        if llm.uses_mock:
            raise ValueError(
                "the configuration names no endpoint (no api_key, no base_url): start the "
                "mock LLM and pass config.llm.with_base_url(url)"
            )
        endpoints = []
        for e in llm.endpoints():
            price = llm.price_of(e.model)
            endpoints.append(
                Endpoint(
                    name=e.name,
                    base_url=e.base_url or DEFAULT_BASE_URL,
                    model=e.model,
                    api_key=e.api_key.reveal() if e.api_key is not None else None,
                    max_concurrency=e.max_concurrency,
                    rpm=e.rpm,
                    tpm=e.tpm,
                    request_timeout=e.request_timeout,
                    connect_timeout=e.connect_timeout,
                    cooldown=llm.retry.cooldown,
                    cooldown_after=llm.retry.cooldown_after,
                    temperature=e.temperature,
                    max_tokens=e.max_tokens,
                    prices=None if price is None else (price.input, price.output),
                )
            )
        retry = Backoff(
            max_attempts=llm.retry.max_attempts,
            base=llm.retry.backoff_base,
            cap=llm.retry.backoff_max,
        )
        if llm.mode != "live" and "cassette" not in options:
            assert llm.cassette is not None  # the configuration checks it
            options["cassette"] = Cassette(llm.cassette, llm.mode)
        return cls(endpoints, retry=retry, deadline=llm.deadline, **options)

    async def on_start(self) -> None:
        replaying = self.cassette is not None and self.cassette.mode == "replay"
        self._sole = self.endpoints[0] if len(self.endpoints) == 1 and not replaying else None
        for endpoint in self.endpoints:
            await endpoint.start()

    async def on_stop(self) -> None:
        for endpoint in self.endpoints:
            await endpoint.close()

    @handler(LLM_CHAT, queue="llm-gateway", buffer=65_536)
    async def chat(self, request: ChatRequest, ctx: Context) -> ChatResult:
        """Answer one chat request, or raise the :class:`LLMError` that says why not."""
        self._calls += 1
        self._in_flight += 1
        # The deadline runs from when the call was sent: time queued on the bus counts.
        started = self._clock()
        sent = ctx.envelope.timestamp
        if sent > 0:
            queued = time.time() - sent
            if queued > 0:  # (not a clock that stepped back)
                started -= queued
        deadline = started + (request.timeout or self.deadline)
        try:
            endpoint = self._sole
            if endpoint is not None:
                # the chain of one, without its frame: the same outcome, on every call's path
                result = await self._on_endpoint(
                    endpoint, request.model or endpoint.model, request, ctx, started, deadline
                )
            else:
                result = await self._through_chain(request, ctx, started, deadline)
        except LLMError as exc:
            self._failed += 1
            name = type(exc).__name__
            self._failures[name] = self._failures.get(name, 0) + 1
            raise
        finally:
            self._in_flight -= 1
        self._succeeded += 1
        key = (result.model, request.agent)
        tally = self._tallies.get(key)
        if tally is None:
            tally = self._tallies[key] = _Tally()
        usage = result.usage  # (_Tally.add, inlined: every call ends here)
        tally.calls += 1
        tally.prompt_tokens += usage.prompt_tokens
        tally.completion_tokens += usage.completion_tokens
        if result.cost:
            tally.cost += result.cost
        return result

    async def _through_chain(
        self, request: ChatRequest, ctx: Context, started: float, deadline: float
    ) -> ChatResult:
        if self.cassette is not None and self.cassette.mode == "replay":
            return await self._replay(request, ctx, started)
        causes: dict[str, str] = {}
        last: LLMError | None = None
        tried = 0
        attempts = [0]  # across the whole chain: streamed deltas and the result count them
        # Endpoints cooling down are skipped while another can answer; when all of them
        # cool down, they are tried anyway (a probe), rather than failing every call.
        all_cooling = all(e.cooling_until and e.cooling_for > 0 for e in self.endpoints)
        for position, endpoint in enumerate(self.endpoints):
            if endpoint.cooling_until and endpoint.cooling_for > 0 and not all_cooling:
                causes[endpoint.name] = f"cooling down for {endpoint.cooling_for:.1f}s more"
                continue
            model = request.model if position == 0 and request.model else endpoint.model
            if causes:
                self._fallbacks += 1
            tried += 1
            try:
                is_last = position == len(self.endpoints) - 1
                return await self._on_endpoint(
                    endpoint, model, request, ctx, started, deadline, is_last, attempts
                )
            except (BadRequest, DeadlineExceeded):
                raise  # the request itself, or the caller's time: another endpoint won't help
            except LLMError as exc:
                causes[endpoint.name] = str(exc)
                last = exc
        if last is not None and len(causes) == 1:
            raise last  # one endpoint tried and nothing else: its own error says it best
        raise AllEndpointsFailed(
            "every endpoint failed: " + "; ".join(f"{k}: {v}" for k, v in causes.items()),
            causes=causes,
        )

    async def _on_endpoint(
        self,
        endpoint: Endpoint,
        model: str,
        request: ChatRequest,
        ctx: Context,
        started: float,
        deadline: float,
        is_last: bool = True,
        attempts_so_far: list[int] | None = None,
    ) -> ChatResult:
        wire = self._wire_request(endpoint, model, request)
        reserve = 0  # tokens reserved at admission: only a TPM budget needs the estimate
        if endpoint.admission.counts_tokens:
            reserve = estimate_tokens(_prompt_chars(request)) + (
                wire.max_tokens or DEFAULT_MAX_TOKENS
            )
        attempts = request.max_attempts or self.retry.max_attempts
        counter = attempts_so_far if attempts_so_far is not None else [0]
        failures = 0
        while True:
            now = self._clock()
            remaining = deadline - now
            if remaining <= 0:
                raise DeadlineExceeded(
                    f"deadline of {deadline - started:g}s passed",
                    endpoint=endpoint.name,
                    model=model,
                )
            admitted = endpoint.admission.try_acquire(reserve)  # no waiting: no deadline
            if not admitted and not is_last and endpoint.admission.paused_for > 0:
                raise RateLimited(  # paused by a Retry-After: a fallback may answer now
                    f"endpoint paused for {endpoint.admission.paused_for:.1f}s more",
                    retry_after=endpoint.admission.paused_for,
                    endpoint=endpoint.name,
                    model=model,
                )
            if not admitted:
                with anyio.move_on_after(remaining) as waited:
                    await endpoint.admission.acquire(reserve)
                admitted = not waited.cancelled_caught
                now = self._clock()  # (waiting for admission used some of the time)
            if not admitted:
                raise DeadlineExceeded(
                    f"deadline passed waiting for the endpoint's cap or rate limit "
                    f"({deadline - started:g}s)",
                    endpoint=endpoint.name,
                    model=model,
                )
            counter[0] += 1
            used = 0  # a failed attempt gives its whole reservation back
            retry_in: float | None = None  # set when another attempt follows
            try:
                left = deadline - now
                completion = await endpoint.attempt(
                    wire,
                    endpoint.request_timeout if endpoint.request_timeout < left else left,
                    self._delta_sink(request, ctx, counter[0]) if request.stream else None,
                )
                usage = completion.usage or Usage()
                used = usage.total_tokens or reserve  # no usage reported: keep it all
            except LLMError as exc:
                failures += 1
                if not isinstance(exc, BadRequest):  # a malformed request is not the
                    endpoint.failed()  # endpoint's failure: it must not cool it down
                cause = type(exc).__name__
                if not exc.retryable:
                    raise
                if endpoint.cooling_for > 0 and len(self.endpoints) > 1:
                    raise RetriesExhausted(
                        f"endpoint cooling down after repeated failures; last: {exc}",
                        last=exc,
                        endpoint=endpoint.name,
                        model=model,
                        status=exc.status,
                    ) from exc  # on to the next endpoint of the chain
                wait = self.retry.backoff(failures, self._rng)
                if isinstance(exc, RateLimited) and exc.retry_after is not None:
                    endpoint.admission.pause(exc.retry_after)  # the whole endpoint waits
                    if exc.retry_after > deadline - self._clock():
                        if not is_last:
                            raise  # a fallback may answer in time
                        raise DeadlineExceeded(
                            f"Retry-After {exc.retry_after:g}s is past the call's deadline "
                            f"({deadline - self._clock():.1f}s left)",
                            endpoint=endpoint.name,
                            model=model,
                            status=429,
                        ) from exc
                    wait = 0.0
                if failures >= attempts:
                    raise RetriesExhausted(
                        f"{failures} attempt{'s' if failures != 1 else ''} failed; last: {exc}",
                        last=exc,
                        endpoint=endpoint.name,
                        model=model,
                        status=exc.status,
                    ) from exc
                if self._clock() + wait > deadline:
                    raise DeadlineExceeded(
                        f"no time left for another attempt after {exc}",
                        endpoint=endpoint.name,
                        model=model,
                    ) from exc
                self._retries[cause] = self._retries.get(cause, 0) + 1
                retry_in = wait
            finally:
                endpoint.admission.release(reserve, used)
            if retry_in is not None:
                if retry_in:
                    await self._sleep(retry_in)  # after the release: a backoff holds no slot
                continue
            if endpoint.consecutive_failures or endpoint.cooling_until:
                endpoint.succeeded()
            if self.cassette is not None:
                self.cassette.record(wire, completion)
            choice = completion.choices[0]
            return ChatResult(
                message=choice.message,
                finish_reason=choice.finish_reason,
                usage=usage,
                model=completion.model or model,
                endpoint=endpoint.name,
                attempts=counter[0],
                latency=self._clock() - started,
                cost=None if endpoint.prices is None else endpoint.cost(usage),
            )

    async def _replay(self, request: ChatRequest, ctx: Context, started: float) -> ChatResult:
        """Answer from the cassette: no admission, no network. The endpoints are tried in
        chain order, so a recording in which a fallback answered replays the same way; a
        request no endpoint recorded raises the primary's :class:`CassetteMiss`."""
        assert self.cassette is not None
        first_miss: CassetteMiss | None = None
        for position, endpoint in enumerate(self.endpoints):
            model = request.model if position == 0 and request.model else endpoint.model
            try:
                completion = self.cassette.lookup(self._wire_request(endpoint, model, request))
            except CassetteMiss as miss:
                first_miss = first_miss or miss
                continue
            choice = completion.choices[0]
            if request.stream:  # one delta with the whole answer, as a stream ends up
                await self._delta_sink(request, ctx)(
                    choice.message.content, None, choice.finish_reason
                )
            usage = completion.usage or Usage()
            return ChatResult(
                message=choice.message,
                finish_reason=choice.finish_reason,
                usage=usage,
                model=completion.model or model,
                endpoint=endpoint.name,
                attempts=1,
                latency=self._clock() - started,
                cost=endpoint.cost(usage),
            )
        assert first_miss is not None
        raise first_miss

    def _wire_request(
        self, endpoint: Endpoint, model: str, request: ChatRequest
    ) -> ChatCompletionRequest:
        return ChatCompletionRequest(
            model=model,
            messages=request.messages,
            tools=request.tools,
            tool_choice=request.tool_choice,
            response_format=request.response_format,
            temperature=(
                request.temperature if request.temperature is not None else endpoint.temperature
            ),
            max_tokens=request.max_tokens or endpoint.max_tokens,
            stream=True if request.stream else None,
            stream_options=StreamOptions(include_usage=True) if request.stream else None,
        )

    def _delta_sink(
        self, request: ChatRequest, ctx: Context, attempt: int = 1
    ) -> Callable[[str | None, list[ToolCallChunk] | None, Any], Awaitable[None]]:
        topic = stream_topic(request.stream_id or ctx.id)

        async def publish(content: str | None, tool_calls: Any, finish_reason: Any) -> None:
            await ctx.publish(
                topic,
                ChatDelta(
                    content=content,
                    tool_calls=tool_calls,
                    finish_reason=finish_reason,
                    attempt=attempt,
                ),
            )

        return publish

    def stats(self) -> GatewayStats:
        total, by_model, by_agent = _Tally(), dict[str, _Tally](), dict[str, _Tally]()
        for (model, agent), tally in self._tallies.items():  # one pass over the calls' keys
            total.merge(tally)
            by_model.setdefault(model, _Tally()).merge(tally)
            by_agent.setdefault(agent, _Tally()).merge(tally)
        return GatewayStats(
            calls=self._calls,
            succeeded=self._succeeded,
            failed=self._failed,
            in_flight=self._in_flight,
            queued=sum(sub.pending for sub in self.subscriptions),
            max_queued=max((sub.max_pending for sub in self.subscriptions), default=0),
            fallbacks=self._fallbacks,
            retries=dict(self._retries),
            failures=dict(self._failures),
            total=total.freeze(),
            by_model={k: v.freeze() for k, v in by_model.items()},
            by_agent={k: v.freeze() for k, v in by_agent.items()},
            endpoints=tuple(
                EndpointStats(
                    name=e.name,
                    model=e.model,
                    cooling_for=e.cooling_for,
                    limits=e.admission.stats(),
                )
                for e in self.endpoints
            ),
        )
