"""Admission to an endpoint: a concurrency cap, requests- and tokens-per-minute budgets,
and pauses (a 429's Retry-After, the provider's own remaining-quota headers).

Tokens are reserved at admission (a prompt estimate plus ``max_tokens``) and reconciled
with the response's ``usage``, so a burst of long prompts cannot overrun the TPM budget.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Awaitable, Callable, Mapping

import msgspec

from .retry import reset_after

Clock = Callable[[], float]
_QUOTA_HEADERS = (  # (remaining, reset) of each quota a provider may report
    ("x-ratelimit-remaining-requests", "x-ratelimit-reset-requests"),
    ("x-ratelimit-remaining-tokens", "x-ratelimit-reset-tokens"),
)


class LimitStats(msgspec.Struct, frozen=True, kw_only=True):
    """What admission did: calls waiting now, and seconds spent waiting in total."""

    waiting: int
    in_flight: int
    wait_seconds_cap: float
    wait_seconds_rate: float
    paused_seconds: float


class _Bucket:
    """A token bucket refilled continuously at ``per_minute / 60`` units per second."""

    __slots__ = ("capacity", "level", "rate", "stamp")

    def __init__(self, per_minute: int, now: float) -> None:
        self.capacity = float(per_minute)
        self.level = float(per_minute)
        self.rate = per_minute / 60.0
        self.stamp = now

    def refill(self, now: float) -> None:
        self.level = min(self.capacity, self.level + (now - self.stamp) * self.rate)
        self.stamp = now

    def wait_for(self, amount: float) -> float:
        """Seconds until ``amount`` is available (0 if it is)."""
        needed = min(amount, self.capacity) - self.level
        return 0.0 if needed <= 0 else needed / self.rate


class Admission:
    """Limits of one endpoint: ``try_acquire(tokens)`` (no waiting) or ``await
    acquire(tokens)``, then ``release(reserved, used)``.

    ``clock`` and ``sleep`` are injectable so that tests of pauses and budgets are fast
    and exact.
    """

    def __init__(
        self,
        *,
        max_concurrency: int,
        rpm: int | None = None,
        tpm: int | None = None,
        clock: Clock = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        if max_concurrency < 1:
            raise ValueError(f"max_concurrency must be >= 1, got {max_concurrency}")
        self.max_concurrency = max_concurrency
        self._clock = clock
        self._sleep = sleep
        self._free = max_concurrency  # concurrency slots not taken
        self._slot_waiters: deque[asyncio.Future[None]] = deque()
        now = clock()
        self._requests = _Bucket(rpm, now) if rpm else None
        self._tokens = _Bucket(tpm, now) if tpm else None
        self._cap_only = self._requests is None and self._tokens is None
        # A TPM budget is set: calls reserve their estimated tokens at admission.
        self.counts_tokens = self._tokens is not None
        self._paused_until = 0.0
        self.waiting = 0
        self.in_flight = 0
        self.wait_seconds_cap = 0.0
        self.wait_seconds_rate = 0.0
        self.paused_seconds = 0.0

    def pause(self, seconds: float) -> None:
        """Hold every new call to this endpoint for ``seconds`` (a 429's Retry-After)."""
        self._paused_until = max(self._paused_until, self._clock() + seconds)

    @property
    def paused_for(self) -> float:
        return max(0.0, self._paused_until - self._clock())

    def observe(self, headers: Mapping[str, str]) -> None:
        """Follow ``x-ratelimit-remaining-*`` / ``-reset-*``: out of quota → pause to reset."""
        for remaining_header, reset_header in _QUOTA_HEADERS:
            remaining = headers.get(remaining_header)
            if remaining is None:
                continue
            reset = headers.get(reset_header)
            if reset is None:
                continue
            try:
                left = int(float(remaining))
            except ValueError:
                continue
            wait = reset_after(reset)
            if left <= 0 and wait:
                self.pause(wait)

    def ready(self, tokens: int) -> bool:
        """True if :meth:`try_acquire` would succeed now."""
        if self._free <= 0 or self._slot_waiters:
            return False
        if self._requests is None and self._tokens is None and not self._paused_until:
            return True  # no rate limits, no pause: the cap is all there is
        now = self._clock()
        if self._paused_until > now:
            return False
        for bucket, amount in ((self._requests, 1.0), (self._tokens, float(tokens))):
            if bucket is not None:
                bucket.refill(now)
                if bucket.wait_for(amount) > 0:
                    return False
        return True

    def try_acquire(self, tokens: int) -> bool:
        """Take a slot and the budgets now if that needs no waiting (the common case: no
        coroutine, no deadline scope); False leaves everything as it was."""
        if self._cap_only and not self._paused_until and self._free > 0 and not self._slot_waiters:
            self._free -= 1  # (the cap is all there is: what ready() and _take() come to)
            self.in_flight += 1
            return True
        if not self.ready(tokens):
            return False
        self._free -= 1
        self._take(tokens)
        self.in_flight += 1
        return True

    def _take(self, tokens: int) -> None:
        if self._requests is not None:
            self._requests.level -= 1.0
        if self._tokens is not None:
            self._tokens.level -= min(float(tokens), self._tokens.capacity)

    async def acquire(self, tokens: int) -> None:
        """Wait for a concurrency slot, the pause to end, and the RPM/TPM budgets."""
        self.waiting += 1
        try:
            started = self._clock()
            await self._slot()
            self.wait_seconds_cap += self._clock() - started
            try:
                await self._admit(tokens)
            except BaseException:
                self._give_back_slot()
                raise
        finally:
            self.waiting -= 1
        self.in_flight += 1

    async def _slot(self) -> None:
        """Take a concurrency slot, waiting in arrival order while none is free."""
        while self._free <= 0 or self._slot_waiters:
            waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            self._slot_waiters.append(waiter)
            try:
                await waiter
            except BaseException:
                if waiter in self._slot_waiters:
                    self._slot_waiters.remove(waiter)
                elif not waiter.cancelled():
                    self._wake_next()  # woken but leaving: the slot goes to the next one
                raise
            if self._free > 0:
                break
        self._free -= 1

    def _wake_next(self) -> None:
        while self._slot_waiters:
            waiter = self._slot_waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                return

    def _give_back_slot(self) -> None:
        self._free += 1
        self._wake_next()

    async def _admit(self, tokens: int) -> None:
        while True:
            now = self._clock()
            wait = self._paused_until - now
            if wait > 0:
                self.paused_seconds += wait
                await self._sleep(wait)
                continue
            wait = 0.0
            for bucket, amount in ((self._requests, 1.0), (self._tokens, float(tokens))):
                if bucket is not None:
                    bucket.refill(now)
                    wait = max(wait, bucket.wait_for(amount))
            if wait <= 0:
                self._take(tokens)
                return
            self.wait_seconds_rate += wait
            await self._sleep(wait)

    def release(self, reserved: int, used: int | None) -> None:
        """End a call: give back the unused part of the token reservation (or charge more
        when it used more). ``used=None`` keeps the reservation as it was charged."""
        self.in_flight -= 1
        self._free += 1  # (_give_back_slot(), inlined: every call ends here)
        if self._slot_waiters:
            self._wake_next()
        bucket = self._tokens
        if bucket is not None and used is not None:
            taken = min(float(reserved), bucket.capacity)  # what acquire() actually took
            bucket.refill(self._clock())
            bucket.level = min(bucket.capacity, bucket.level + taken - float(used))

    def stats(self) -> LimitStats:
        return LimitStats(
            waiting=self.waiting,
            in_flight=self.in_flight,
            wait_seconds_cap=self.wait_seconds_cap,
            wait_seconds_rate=self.wait_seconds_rate,
            paused_seconds=self.paused_seconds,
        )


def estimate_tokens(text_chars: int) -> int:
    """A fast prompt-size estimate: about four characters a token (documented as such)."""
    return text_chars // 4 + 1
