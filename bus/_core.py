"""The delivery engine under :class:`bus.Bus`: routing a message into buffers, the slow path
of full buffers, request/reply book-keeping, dead letters. The hot path lives here."""

from __future__ import annotations

import asyncio
import itertools
import logging
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, TypeVar

from ._deadlines import DeadlineGrid
from ._message import Envelope, IdSource, Topic
from ._request import SETTLED, PendingRequest, error_reply
from ._routing import Route, Router, SubjectCounter, TapCallback
from ._stats import DEAD_LETTERS, DeadLetter, DeadLetterReason
from ._subscription import Subscription
from .errors import (
    BufferFull,
    BusClosed,
    InvalidSubject,
    NoResponders,
    RemoteError,
    RequestTimeout,
)

if TYPE_CHECKING:
    from .transport.nats import NatsBridge

R = TypeVar("R")

log = logging.getLogger("hivebus.bus")


class _Blocked:
    """A publish that found full ``block``/``error`` buffers: those subscriptions, the envelope."""

    __slots__ = ("counter", "envelope", "subs")

    def __init__(
        self, subs: list[Subscription], envelope: Envelope, counter: SubjectCounter
    ) -> None:
        self.subs = subs
        self.envelope = envelope
        self.counter = counter


BACKLOG = _Blocked([], None, None)  # type: ignore[arg-type]  # the NATS outbox is full


class Core:
    """State and delivery shared by everything that publishes: the bus, contexts, actors."""

    name: str
    request_timeout: float

    def __init__(self) -> None:
        ids = IdSource()
        self._id_prefix = f"{ids.prefix}-"
        self._id_counter = itertools.count(1)
        self._inbox = f"_INBOX.{ids.prefix}"
        self._router = Router()
        self._routes = self._router.cache
        self._requests: dict[str, PendingRequest] = {}
        self._deadlines = DeadlineGrid()
        # Abandoned requests with copies still buffered (skipped when a worker takes them).
        self._abandoned: dict[str, PendingRequest] = {}
        self._appended = 0  # how many buffers the last _enqueue appended to
        self._inline = 0  # requests being handled in their requesters' tasks
        self._inline_idle: asyncio.Event | None = None  # set when _inline drops to 0
        self._started = False
        self._accepting = False  # external publishes allowed
        self._running = False  # workers alive: handlers may still publish while draining
        self._idle_waiters: list[asyncio.Future[None]] = []
        self._in_flight = 0
        self._dead_lettered = 0
        self._requests_sent = 0
        self._replies = 0
        self._timeouts = 0
        self._no_responders = 0
        self._late_replies = 0
        self._tap_errors = 0
        self._bridge: NatsBridge | None = None  # the NATS transport, when the bus has one

    def _settle(self) -> None:
        self._in_flight -= 1
        if not self._in_flight and self._idle_waiters:
            self._wake_idle()

    async def _wait_idle(self) -> None:
        """Until nothing is in flight (drain's wait)."""
        while self._in_flight:
            waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            self._idle_waiters.append(waiter)
            try:
                await waiter
            finally:
                if waiter in self._idle_waiters:
                    self._idle_waiters.remove(waiter)

    def _add_worker(self, sub: Subscription) -> None:
        """Start one more worker for ``sub`` (the bus owns the task group)."""
        raise NotImplementedError

    def _supervise(self, sub: Subscription, env: Envelope, failure: BaseException) -> None:
        """Settle a failed inline request and run its supervision in a task of the bus."""
        raise NotImplementedError

    def _wake_or_add_worker(self, sub: Subscription) -> None:
        if sub._waiters:
            sub._wake_worker()
        elif sub.workers < sub.max_workers:
            self._add_worker(sub)

    def _wake_idle(self) -> None:
        for waiter in self._idle_waiters:
            if not waiter.done():
                waiter.set_result(None)
        self._idle_waiters.clear()

    def _send(
        self,
        topic: Topic[Any, Any],
        message: Any,
        sender: str,
        causation_id: str | None,
        headers: Mapping[str, str] | None,
        internal: bool,
    ) -> _Blocked | None:
        """The publish hot path, synchronous: check, wrap, route, enqueue."""
        if not self._accepting and not (internal and self._running):
            raise self._refusal()
        if message.__class__ is not topic.type and not isinstance(message, topic.type):
            raise self._wrong_type(topic, message)
        subject = topic.subject
        route = self._routes.get(subject)
        if route is None:
            if topic.is_pattern:
                raise InvalidSubject(subject, "cannot publish to a wildcard pattern")
            route = self._router.route(subject)
        if self._bridge is not None and self._bridge.carries(subject):
            self._bridge.publish(
                route, subject, message, sender, causation_id, headers, topic.durable
            )
            return BACKLOG if self._bridge.full() else None
        if route.silent:  # nobody subscribes or taps: count it, build nothing
            counter = route.counter
            counter.published += 1
            counter.unrouted += 1
            return None
        env = Envelope(
            id=f"{self._id_prefix}{next(self._id_counter)}",
            subject=subject,
            payload=message,
            sender=sender,
            timestamp=time.time(),
            causation_id=causation_id,
            headers=headers,
        )
        sub = route.single
        if sub is not None:  # one plain subscriber: the common case, inlined
            buffer = sub._buffer
            size = len(buffer)
            if size < sub.maxsize:
                counter = route.counter
                counter.published += 1
                counter.fanout += 1
                buffer.append(env)
                sub.received += 1
                self._in_flight += 1
                if size >= sub.max_pending:
                    sub.max_pending = size + 1
                if sub._waiters:
                    sub._wake_worker()
                elif sub.workers < sub.max_workers:
                    self._add_worker(sub)
                if route.taps:
                    self._run_taps(route.taps, env)
                return None
        return self._enqueue(route, env)

    def _refusal(self) -> BusClosed:
        if self._started:
            return BusClosed("bus is closed")
        return BusClosed("bus is not started: use 'async with Bus() as bus'")

    @staticmethod
    def _wrong_type(topic: Topic[Any, Any], message: Any) -> TypeError:
        return TypeError(
            f"{topic!r} carries {topic.type.__qualname__}, got {type(message).__qualname__}"
        )

    def _enqueue(
        self, route: Route, env: Envelope, evict: bool = True, published: bool = True
    ) -> _Blocked | None:
        """Put ``env`` in every target buffer with room; return the full ones that block/error.

        ``evict=False`` (dead letters) never pushes an older message out of a full buffer:
        a dead letter evicting a message would make another dead letter, and so on.
        """
        counter = route.counter
        if published:  # (not for a delivery from the NATS server: counted where sent)
            counter.published += 1
        if route.taps:
            self._run_taps(route.taps, env)
        targets = route.subs
        if route.groups:
            targets = targets + tuple(group.pick() for group in route.groups)
        elif not targets:
            counter.unrouted += 1
            return None
        counter.fanout += len(targets)
        blocked = None
        appended = 0
        for sub in targets:
            buffer = sub._buffer
            size = len(buffer)
            if size < sub.maxsize:
                buffer.append(env)
                appended += 1
                sub.received += 1
                self._in_flight += 1
                if size >= sub.max_pending:
                    sub.max_pending = size + 1
                if sub._waiters:
                    sub._wake_worker()
                elif sub.workers < sub.max_workers:
                    self._add_worker(sub)
            elif sub.policy == "drop_oldest" and evict:
                oldest = buffer.popleft()
                buffer.append(env)
                appended += 1
                sub.received += 1
                sub.dropped += 1
                if oldest.reply_to is not None:
                    self._release_copy(oldest)
                self._dead_letter(sub, oldest, "dropped_oldest")
            elif sub.policy == "drop_newest" or sub.policy == "drop_oldest":
                sub.received += 1
                sub.dropped += 1
                self._dead_letter(sub, env, "dropped_newest")
            elif blocked is None:
                blocked = _Blocked([sub], env, counter)
            else:
                blocked.subs.append(sub)
        self._appended = appended
        return blocked

    def _refuse(self, subs: list[Subscription], env: Envelope) -> None:
        """Count and dead-letter deliveries refused for want of room."""
        for sub in subs:
            sub.received += 1
            sub.dropped += 1
            self._dead_letter(sub, env, "buffer_full")

    def _no_room(self, blocked: _Blocked) -> None:
        """A publish that may not wait met full buffers: each ``block`` one is treated like
        ``error`` (dead-lettered, :class:`BufferFull` raised), unless it is the publishing
        handler's own subscription, which is let in past its bound (it cannot make room)."""
        if blocked is BACKLOG:
            return  # (a publish that may not wait goes past the outbox's soft bound)
        me = asyncio.current_task()
        refused = []
        for sub in blocked.subs:
            if sub.policy == "block" and me is not None and me in sub._tasks:
                self._admit(sub, blocked.envelope)
            else:
                refused.append(sub)
        if refused:
            self._refuse(refused, blocked.envelope)
            raise BufferFull(blocked.envelope.subject, refused[0].name, refused[0].maxsize)

    def _admit(
        self, sub: Subscription, env: Envelope, pending: PendingRequest | None = None
    ) -> None:
        """Append ``env`` for a publisher that waited for room (or was let in past the bound)."""
        sub.received += 1
        if sub._closed:  # it went away while the publisher waited
            if self._running:  # unsubscribed: like the messages it had buffered
                sub.dropped += 1
                self._dead_letter(sub, env, "unsubscribed")
                return
            sub.unprocessed += 1
            raise BusClosed("the bus closed while the publish waited for room")
        sub._buffer.append(env)
        if pending is not None:
            pending.queued += 1
        self._in_flight += 1
        sub.max_pending = max(sub.max_pending, len(sub._buffer))
        self._wake_or_add_worker(sub)

    def _release_copy(self, env: Envelope) -> None:
        """A buffered copy of one of our requests left its buffer without being handled."""
        correlation_id = env.correlation_id
        assert correlation_id is not None
        pending = self._requests.get(correlation_id) or self._abandoned.get(correlation_id)
        if pending is not None:
            pending.queued -= 1
            if pending.abandoned and not pending.queued:
                self._abandoned.pop(correlation_id, None)

    async def _overflow(
        self,
        blocked: _Blocked,
        pending: PendingRequest | None = None,
        origin: Subscription | None = None,
    ) -> None:
        """Slow path of a publish: wait for room in full ``block`` buffers; refuse for
        ``error`` ones (:class:`BufferFull`). For a request (``pending``), waiting for room
        stops once the request is settled (a reply, a timeout)."""
        if blocked is BACKLOG:
            assert self._bridge is not None
            await self._bridge.room()
            return
        env = blocked.envelope
        refused = [sub for sub in blocked.subs if sub.policy == "error"]
        self._refuse(refused, env)
        waiting = [sub for sub in blocked.subs if sub.policy != "error"]
        me = asyncio.current_task()
        done = None if pending is None else pending.future
        received = 0
        try:
            for sub in waiting:
                # A handler publishing into its own (or its actor's) subscription would wait
                # for itself: it is let in past the bound instead.
                feeds_itself = me in sub._tasks or (
                    origin is not None and origin._tasks is sub._tasks
                )
                while len(sub._buffer) >= sub.maxsize and not sub._closed and not feeds_itself:
                    if done is not None and done.done():
                        return
                    await sub._wait_for_room(done)
                received += 1
                self._admit(sub, env, pending)
        finally:
            if received < len(waiting):  # cancelled, or the request settled meanwhile
                blocked.counter.fanout -= len(waiting) - received
        if refused:
            raise BufferFull(env.subject, refused[0].name, refused[0].maxsize)

    def _run_taps(self, taps: tuple[TapCallback, ...], env: Envelope) -> None:
        for tap in taps:
            try:
                tap(env)
            except Exception:
                self._tap_errors += 1
                log.exception("tap %r failed on %s", tap, env.subject)

    async def _request(
        self,
        topic: Topic[Any, R],
        message: Any,
        timeout: float | None,
        sender: str,
        causation_id: str | None,
        headers: Mapping[str, str] | None,
        origin: Subscription | None,
    ) -> R:
        if not self._accepting and not (origin is not None and self._running):
            raise self._refusal()
        if message.__class__ is not topic.type and not isinstance(message, topic.type):
            raise self._wrong_type(topic, message)
        route = self._routes.get(topic.subject)
        if route is None:
            if topic.is_pattern:
                raise InvalidSubject(topic.subject, "cannot request a wildcard pattern")
            route = self._router.route(topic.subject)
        bridge = self._bridge
        if bridge is not None and not bridge.carries(topic.subject):
            bridge = None  # a subject of this process only
        if bridge is None and not (route.answers if topic.reply is not None else route.has_targets):
            self._no_responders += 1
            route.counter.published += 1
            route.counter.unrouted += 1
            raise NoResponders(topic.subject)
        if timeout is None:
            timeout = self.request_timeout
        elif not timeout > 0:  # (math.inf: no deadline)
            raise ValueError(f"request timeout must be > 0 seconds, got {timeout!r}")
        env_id = f"{self._id_prefix}{next(self._id_counter)}"
        env = Envelope(
            id=env_id,
            subject=topic.subject,
            payload=message,
            sender=sender,
            timestamp=time.time(),
            correlation_id=env_id,
            causation_id=causation_id,
            # over NATS, a reply subject of its own: the server's no-responders status says
            # which request it is about
            reply_to=self._inbox if bridge is None else f"{self._inbox}.{env_id}",
            headers=headers,
        )
        loop = asyncio.get_running_loop()
        pending = PendingRequest(topic.subject, timeout, topic.reply is not None)
        self._requests[env_id] = pending
        self._requests_sent += 1
        tick = self._deadlines.watch(loop, timeout, pending)
        try:
            if bridge is not None:
                future: asyncio.Future[R] = loop.create_future()
                pending.future = future
                bridge.send(env, topic.reply, durable=topic.durable)
                if bridge.full():
                    await bridge.room()
                route.counter.published += 1
                if route.taps:
                    self._run_taps(route.taps, env)
                return await future
            sub = route.direct
            if (  # an idle sole responder: handle it right here, no hand-over to a worker
                sub is not None
                and not sub._buffer
                and sub.running < sub.concurrency
                and message.__class__ is sub.topic.type
                and not sub.held
                and (sub._limiter is None or not sub._limiter.locked())
            ):
                result: R = await sub._handle_inline(env, pending, route)
                if result is not SETTLED:
                    return result  # (no future made: the common case)
                settled: asyncio.Future[R] = pending.result_future()
                return await settled  # no suspension, unless supervised
            future = loop.create_future()
            pending.future = future
            blocked = self._enqueue(route, env)
            pending.queued = self._appended
            if blocked is not None:
                await self._overflow(blocked, pending, origin)
            return await future
        except BaseException as exc:
            if isinstance(exc, RequestTimeout):
                self._timeouts += 1
            if not isinstance(exc, RemoteError):  # the caller gave up: stop work done for it
                pending.abandon()
                if pending.queued:  # copies still buffered are skipped when taken
                    self._abandoned[env_id] = pending
            raise
        finally:
            if tick is not None:  # (DeadlineGrid.forget, inlined: every request ends here)
                watched = self._deadlines.buckets.get(tick)
                if watched is not None:
                    watched[1].discard(pending)
            del self._requests[env_id]
            if bridge is not None:
                bridge.forget(env_id)
            outcome = pending.future
            if outcome is not None:
                if not outcome.done():
                    outcome.cancel()
                elif not outcome.cancelled():
                    outcome.exception()  # retrieved: asyncio must not warn about it

    def _reply(
        self, env: Envelope, result: Any, error: BaseException | None, sub: Subscription
    ) -> None:
        """Answer the request ``env`` with ``result`` (or ``error``)."""
        reply_to = env.reply_to
        assert reply_to is not None
        bridge = self._bridge
        if bridge is not None and not reply_to.startswith(self._inbox):
            bridge.reply(env, result, error, sub)
            return
        if sub.topic.reply is None:  # a subscriber with no reply type may only watch
            watched = self._requests.get(env.correlation_id)  # type: ignore[arg-type]
            if watched is not None and watched.expects_reply:
                return
        payload = result if error is None else error_reply(error)
        route = self._routes.get(reply_to) or self._router.route(
            reply_to if bridge is None else self._inbox  # (not a route per request id)
        )
        if route.taps:
            reply = Envelope(
                id=f"{self._id_prefix}{next(self._id_counter)}",
                subject=reply_to,
                payload=payload,
                sender=sub.name,
                timestamp=time.time(),
                correlation_id=env.correlation_id,
                causation_id=env.id,
            )
            self._run_taps(route.taps, reply)
        pending = self._requests.get(env.correlation_id)  # type: ignore[arg-type]
        if pending is None or pending.settled():
            self._late_replies += 1
            return
        self._replies += 1
        future = pending.result_future()
        if error is None:
            future.set_result(result)
        else:
            future.set_exception(
                RemoteError(
                    env.subject,
                    payload.remote_type,
                    payload.message,
                    payload.traceback,
                    payload.details,
                )
            )

    # -- failures ----------------------------------------------------------------------------

    def _handler_failed(self, sub: Subscription, env: Envelope, exc: BaseException) -> None:
        log.warning(
            "handler of %s failed on %s (id %s): %s: %s",
            sub.name,
            env.subject,
            env.id,
            type(exc).__qualname__,
            exc,
        )
        self._dead_letter(sub, env, "handler_error", exc)
        if env.reply_to is not None:
            self._reply(env, None, exc, sub)

    def _dead_letter(
        self,
        sub: Subscription,
        env: Envelope,
        reason: DeadLetterReason,
        exc: BaseException | None = None,
    ) -> None:
        """Publish a :class:`DeadLetter` on ``_bus.dead`` without ever waiting.

        Deliveries of dead letters themselves are never dead-lettered again (no loops).
        """
        if env.subject == DEAD_LETTERS.subject or not self._running:
            return
        self._dead_lettered += 1
        letter = DeadLetter(
            reason=reason,
            subscription=sub.name,
            envelope=env,
            error_type=None if exc is None else type(exc).__qualname__,
            error_message=None if exc is None else str(exc),
        )
        dead = Envelope(
            id=f"{self._id_prefix}{next(self._id_counter)}",
            subject=DEAD_LETTERS.subject,
            payload=letter,
            sender=sub.name,
            timestamp=time.time(),
            causation_id=env.id,
        )
        route = self._routes.get(dead.subject) or self._router.route(dead.subject)
        blocked = self._enqueue(route, dead, evict=False)
        for full in blocked.subs if blocked is not None else ():
            full.received += 1
            full.dropped += 1
