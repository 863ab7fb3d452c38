"""The in-process bus: publish, subscribe, request/reply, backpressure, accounting, lifecycle."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine, Mapping
from typing import TYPE_CHECKING, Any, TypeVar

import anyio
import anyio.abc
import anyio.lowlevel
from anyio.abc import TaskGroup

from ._core import Core
from ._message import Envelope, Topic
from ._observe import notify_started
from ._routing import Tap, TapCallback
from ._stats import (
    POLICIES,
    BusStats,
    CloseReport,
    Policy,
    SubjectStats,
)
from ._stream import Stream
from ._subscription import Handler, Subscription
from .errors import (
    BusClosed,
    DrainTimeout,
    InvalidSubject,
)
from .transport._wire import NatsStats, is_nats_url

if TYPE_CHECKING:
    from ._actor import Actor

T = TypeVar("T")
R = TypeVar("R")

log = logging.getLogger("hivebus.bus")

STOP_GRACE = 5.0  # seconds for cancelled handlers and actors' on_stop at close

_COUNTERS = ("received", "delivered", "dropped", "failed", "cancelled", "unprocessed")


class Bus(Core):
    """A message bus with NATS semantics, in one process or over a NATS server.

    Use it as ``async with Bus() as bus:``; leaving the block closes it (drains in-flight
    work up to ``close_timeout`` seconds, then cancels what is left and reports it in
    ``bus.close_report``).

    ``name`` is the sender of messages published from outside a handler;
    ``request_timeout`` the default deadline of ``request()`` in seconds; ``transport`` is
    ``"local"`` (in-process) or a NATS server's URL (``"nats://127.0.0.1:4222"``, several
    comma-separated): the same API over the server (see :mod:`bus.transport.nats`).
    """

    def __init__(
        self,
        name: str = "bus",
        *,
        transport: str = "local",
        request_timeout: float = 30.0,
        close_timeout: float = 10.0,
    ) -> None:
        if transport != "local" and not is_nats_url(transport):
            raise ValueError(
                f"unknown transport {transport!r}: 'local', or a NATS server's URL "
                "('nats://host:port')"
            )
        if request_timeout <= 0 or close_timeout < 0:
            raise ValueError("request_timeout must be > 0 and close_timeout >= 0")
        self.name = name
        self.transport = transport
        self.request_timeout = request_timeout
        self.close_timeout = close_timeout
        super().__init__()
        self._tg: TaskGroup | None = None
        self._workers: TaskGroup | None = None
        self._close_report: CloseReport | None = None
        self._closing: asyncio.Future[CloseReport] | None = None
        self._workers_done = anyio.Event()
        self._actors: list[Actor] = []
        self._unstarted: list[Subscription] = []
        self._retired = dict.fromkeys(_COUNTERS, 0)
        self._retired_subs: list[Subscription] = []
        self._sub_names = 0
        if transport != "local":
            from .transport.nats import NatsBridge

            self._bridge = NatsBridge(self, transport)
            self._router.mirror = self._bridge

    @property
    def close_report(self) -> CloseReport | None:
        """What closing found (see :class:`CloseReport`); None until the bus has closed."""
        return self._close_report

    def __repr__(self) -> str:
        state = "running" if self._accepting else ("closed" if self._started else "new")
        return f"Bus({self.name!r}, {state}, in_flight={self._in_flight})"

    # -- lifecycle ---------------------------------------------------------------------------

    async def __aenter__(self) -> Bus:
        if self._started:
            raise RuntimeError("a Bus can be started only once")
        notify_started(self)
        self._started = True
        if self._bridge is not None:
            await self._bridge.start()  # (fails fast, TransportUnavailable, if it cannot)
        self._tg = anyio.create_task_group()
        await self._tg.__aenter__()
        try:
            await self._tg.start(self._serve)
        except BaseException:
            await self._tg.__aexit__(None, None, None)
            raise
        self._accepting = self._running = True
        for sub in self._unstarted:
            self._start_workers(sub)
        self._unstarted.clear()
        try:
            for actor in list(self._actors):
                await actor._start(self)
        except BaseException:
            await self._shutdown(0)
            await self._tg.__aexit__(None, None, None)
            raise
        return self

    async def _serve(self, *, task_status: anyio.abc.TaskStatus[None]) -> None:
        """Own the workers in a task group of their own, so that closing the bus cancels
        them and never the code running inside ``async with Bus()``."""
        try:
            async with anyio.create_task_group() as workers:
                self._workers = workers
                task_status.started()
                await anyio.sleep_forever()
        finally:
            self._workers_done.set()

    async def __aexit__(self, exc_type: object, exc: object, tb: object) -> bool | None:
        assert self._tg is not None
        try:
            # On an error in the body, do not wait for a drain: cancel and report.
            await self._shutdown(self.close_timeout if exc_type is None else 0)
        finally:
            # The body's own exception is not the task group's business: it propagates as
            # is, not wrapped in an ExceptionGroup. The group only reports worker crashes.
            await self._tg.__aexit__(None, None, None)
        return None

    async def close(self, timeout: float | None = None) -> CloseReport:
        """Stop taking publishes, drain in-flight work for up to ``timeout`` seconds (default
        ``close_timeout``), cancel what is left, stop the actors, and report it all.

        Idempotent: later and concurrent calls return the same report. Do not call it from a
        handler (it would wait for that handler to finish).
        """
        return await self._shutdown(self.close_timeout if timeout is None else timeout)

    async def _shutdown(self, timeout: float) -> CloseReport:
        if self._closing is not None:
            return await asyncio.shield(self._closing)
        if not self._started:
            raise BusClosed("bus was never started")
        self._closing = asyncio.get_running_loop().create_future()
        self._accepting = False
        drained = False
        try:
            await self.drain(timeout)
            drained = True
        except DrainTimeout:
            pass
        finally:
            # Runs even if the closer is cancelled: a half-closed bus would hang its owner.
            self.stop_receiving()  # over NATS: peers take new work, and what we give back
            unprocessed, interrupted, by_sub = self._stop_subscriptions()
            failed_requests = self._fail_requests()
            assert self._workers is not None
            self._workers.cancel_scope.cancel()
            actor_errors: dict[str, str] = {}
            with anyio.move_on_after(STOP_GRACE, shield=True):
                await self._workers_done.wait()  # no handler runs while actors stop
                if self._inline:  # nor one in a requester's task (cancelled just above)
                    self._inline_idle = asyncio.Event()
                    await self._inline_idle.wait()
                actor_errors = await self._stop_actors()
            if self._bridge is not None:
                with anyio.CancelScope(shield=True):
                    await self._bridge.close()
            report = CloseReport(
                drained=drained,
                unprocessed=unprocessed,
                interrupted=interrupted,
                failed_requests=failed_requests,
                by_subscription=by_sub,
                actor_errors=actor_errors,
            )
            self._close_report = report
            self._closing.set_result(report)
        if not drained and timeout > 0:
            log.warning("bus %r closed before draining: %s", self.name, report)
        return report

    def _stop_subscriptions(self) -> tuple[int, int, dict[str, int]]:
        """Close every subscription; count what was still buffered or running."""
        by_sub: dict[str, int] = {}
        unprocessed = interrupted = 0
        for sub in [*self._router.subscriptions.values(), *self._retired_subs]:
            # Publishers still waiting for room get BusClosed; their messages count here too.
            left = len(sub._buffer)
            waiting = sub.waiting_publishers
            interrupted += sub.running
            if left or sub.running or waiting:
                by_sub[sub.name] = left + sub.running + waiting
            unprocessed += left + waiting
            sub.unprocessed += left
            self._in_flight -= left
            sub._buffer.clear()
            sub._closed = True
            sub._wake_all()
        self._running = False
        self._abandoned.clear()
        if not self._in_flight:
            self._wake_idle()
        return unprocessed, interrupted, by_sub

    def _fail_requests(self) -> int:
        self._deadlines.clear()
        failed = 0
        for pending in self._requests.values():
            if not pending.settled():
                failed += 1
                pending.fail(BusClosed("bus closed before a reply arrived"))
        return failed

    async def _stop_actors(self) -> dict[str, str]:
        errors: dict[str, str] = {}
        for actor in reversed(self._actors):
            try:
                await actor._stop()
            except Exception as exc:  # one actor must not keep the others up
                log.exception("actor %r failed to stop", actor.name)
                errors[actor.name] = f"{type(exc).__qualname__}: {exc}"
        return errors

    async def drain(self, timeout: float | None = None) -> None:
        """Return once every delivered message has been handled (the bus is quiescent).

        Raises :class:`DrainTimeout` if that takes longer than ``timeout`` seconds. Do not
        call it from a handler (it would wait for that handler to finish).
        """
        bridge = self._bridge
        if not self._in_flight and bridge is None:
            return
        try:
            with anyio.fail_after(timeout):
                # over NATS: what was sent must also have come back (and been handled); a
                # flush's round trip also brings what the server had for us before it
                while bridge is not None:
                    sent = bridge.commands
                    await bridge.flush(timeout if timeout is not None else 30.0)
                    await anyio.lowlevel.checkpoint()  # (nats-py hands arrivals to callbacks)
                    await self._wait_idle()
                    if bridge.commands == sent and bridge.idle() and not self._in_flight:
                        break  # nothing new was sent meanwhile (a handler's publish, say)
                await self._wait_idle()
        except TimeoutError:
            busy = {
                sub.name: len(sub._buffer) + sub.running
                for sub in self._router.subscriptions.values()
                if sub._buffer or sub.running
            }
            raise DrainTimeout(timeout or 0.0, self._in_flight, busy) from None

    # -- subscribing -------------------------------------------------------------------------

    def subscribe(
        self,
        topic: Topic[T, Any],
        handler: Handler,
        *,
        queue: str | None = None,
        buffer: int = 1024,
        policy: Policy = "block",
        concurrency: int = 1,
        name: str | None = None,
    ) -> Subscription:
        """Call ``handler(message[, ctx])`` for every message on subjects matching ``topic``.

        With ``queue``, each message goes to one member of that queue group. ``buffer``
        bounds the messages waiting; ``policy`` says what a publish does when it is full.
        ``concurrency`` handlers run at once (order is kept only with 1). A handler's return
        value answers a request.
        """
        if not callable(handler):
            raise TypeError(f"handler must be callable, got {handler!r}")
        sub = self._make_subscription(topic, handler, queue, buffer, policy, concurrency, name)
        if self._running:
            self._start_workers(sub)
        elif self._started:
            raise BusClosed("cannot subscribe: the bus is closed")
        else:
            self._unstarted.append(sub)
        self._router.add_subscription(sub)
        return sub

    def _make_subscription(
        self,
        topic: Topic[Any, Any],
        handler: Handler | None,
        queue: str | None,
        buffer: int,
        policy: Policy,
        concurrency: int,
        name: str | None,
        **extra: Any,
    ) -> Subscription:
        if not isinstance(topic, Topic):
            raise TypeError(f"expected a Topic, got {topic!r}")
        if policy not in POLICIES:
            raise ValueError(f"unknown policy {policy!r}; expected one of {POLICIES}")
        if buffer < 1:
            raise ValueError(f"buffer must be >= 1, got {buffer}")
        if concurrency < 1:
            raise ValueError(f"concurrency must be >= 1, got {concurrency}")
        if queue is not None and (not queue or "." in queue or any(c.isspace() for c in queue)):
            raise ValueError(
                f"invalid queue group name {queue!r}: a queue group is one non-empty token "
                "without dots or spaces"
            )
        self._sub_names += 1
        if name is None:
            owner = getattr(handler, "__qualname__", "stream" if handler is None else "handler")
            name = f"{owner}#{self._sub_names}"
        return Subscription(
            self,
            topic,
            handler,
            name=name,
            queue=queue,
            buffer=buffer,
            policy=policy,
            concurrency=concurrency,
            **extra,
        )

    def _start_workers(self, sub: Subscription) -> None:
        """One worker to begin with; more are added while messages wait (``_add_worker``)."""
        if sub.max_workers:
            self._add_worker(sub)

    def _supervise(self, sub: Subscription, env: Envelope, failure: BaseException) -> None:
        if self._running:
            assert self._workers is not None
            self._workers.start_soon(sub._failed, env, failure, name=f"hivebus:{sub.name}")
            return
        sub.failed += 1  # closing: the reply and the dead letter, no supervision
        sub._settle(limiter=sub._limiter)
        self._handler_failed(sub, env, failure)

    def _add_worker(self, sub: Subscription) -> None:
        if not self._running or sub._closed:
            return
        assert self._workers is not None
        sub.workers += 1
        self._workers.start_soon(sub._run, name=f"hivebus:{sub.name}")

    def _remove_subscription(self, sub: Subscription) -> None:
        self._router.remove_subscription(sub)
        sub._closed = True
        for env in sub._buffer:
            sub.dropped += 1
            if env.reply_to is not None:
                self._release_copy(env)
            self._dead_letter(sub, env, "unsubscribed")
        self._in_flight -= len(sub._buffer)
        sub._buffer.clear()
        sub._wake_all()
        self._retired_subs.append(sub)  # counted until its last handler has finished
        if not self._in_flight:
            self._wake_idle()

    def stream(
        self,
        topic: Topic[T, Any],
        *,
        queue: str | None = None,
        buffer: int = 1024,
        policy: Policy = "block",
        name: str | None = None,
    ) -> Stream[T]:
        """Messages on ``topic`` as an async iterator: ``async with bus.stream(T) as msgs``."""
        sub = self._make_subscription(topic, None, queue, buffer, policy, 1, name)
        return Stream(self, sub)

    def tap(self, pattern: str, callback: TapCallback) -> Tap:
        """Call ``callback(envelope)`` for every envelope on subjects matching ``pattern``,
        replies included. It never changes delivery; an exception in it is counted and logged.
        """
        from ._subjects import validate_subject

        validate_subject(pattern, pattern=True)
        return self._router.add_tap(pattern, callback)

    def listening(self, topic: Topic[Any, Any]) -> bool:
        """Whether a publish to ``topic`` now would reach anyone: a subscriber or a tap.
        For a publisher whose messages cost something to build (a trace of events, say)
        and are worth nothing unheard; what a publish nobody hears costs is counted only."""
        route = self._routes.get(topic.subject)
        if route is None:
            if topic.is_pattern:
                raise InvalidSubject(topic.subject, "a wildcard pattern is not published to")
            route = self._router.route(topic.subject)
        if self._bridge is not None and self._bridge.carries(topic.subject):
            return True  # (other processes may listen: only the server knows)
        return not route.silent

    async def add(self, actor: Actor) -> Actor:
        """Attach an actor: its handlers are subscribed and it is started and stopped with the
        bus (at once if the bus is already running)."""
        if self._started and not self._running:
            raise BusClosed(f"cannot add actor {actor.name!r}: the bus is closed")
        if actor in self._actors:
            raise RuntimeError(f"actor {actor.name!r} was already added to this bus")
        if self._running:
            await actor._start(self)
        self._actors.append(actor)
        return actor

    # -- publishing --------------------------------------------------------------------------

    async def publish(
        self,
        topic: Topic[T, Any],
        message: T,
        *,
        headers: Mapping[str, str] | None = None,
        sender: str | None = None,
    ) -> None:
        """Deliver ``message`` to every subscriber of ``topic`` and one member per queue
        group. Waits only while a ``block`` subscriber's buffer is full."""
        blocked = self._send(topic, message, sender or self.name, None, headers, False)
        if blocked is not None:
            await self._overflow(blocked, None)

    def publish_nowait(
        self,
        topic: Topic[T, Any],
        message: T,
        *,
        headers: Mapping[str, str] | None = None,
        sender: str | None = None,
    ) -> None:
        """Publish without waiting (from sync code). A full ``block`` subscriber is treated
        like ``error``: the delivery is dropped, dead-lettered, and :class:`BufferFull` raised."""
        blocked = self._send(topic, message, sender or self.name, None, headers, False)
        if blocked is not None:
            self._no_room(blocked)

    # -- request/reply -----------------------------------------------------------------------

    def request(
        self,
        topic: Topic[T, R],
        message: T,
        *,
        timeout: float | None = None,
        headers: Mapping[str, str] | None = None,
        sender: str | None = None,
    ) -> Coroutine[Any, Any, R]:
        """Send ``message`` to ``topic``'s subscribers and return the first reply.

        Raises :class:`NoResponders` at once if nothing subscribes, :class:`RequestTimeout`
        after ``timeout`` seconds (default ``request_timeout``), :class:`RemoteError` if the
        handler raised. Giving up (timeout or cancellation) cancels the handler.
        (A plain function returning the coroutine to await: one frame less per call.)
        """
        return self._request(topic, message, timeout, sender or self.name, None, headers, None)

    # -- observation -------------------------------------------------------------------------

    @property
    def actors(self) -> tuple[Actor, ...]:
        """The actors on this bus, in the order they were added."""
        return tuple(self._actors)

    def stop_receiving(self) -> None:
        """Over NATS: leave every subscription on the server (replies to this process's
        own requests still arrive), so that queue-group peers take new work while this
        bus drains what it holds. Locally: nothing to do (close() stops publishes)."""
        if self._bridge is not None:
            self._bridge.unsubscribe_all()

    def transport_stats(self) -> NatsStats | None:
        """The NATS transport's counters (None on the local transport)."""
        return None if self._bridge is None else self._bridge.stats()

    def stats(self) -> BusStats:
        """A consistent snapshot of every counter (see :class:`BusStats`)."""
        subs = [sub.stats() for sub in self._router.subscriptions.values()]
        still_running = []
        for sub in self._retired_subs:
            if sub.running or sub.waiting_publishers:  # their counters may still move
                still_running.append(sub)
            else:
                for counter in _COUNTERS:
                    self._retired[counter] += getattr(sub, counter)
        self._retired_subs = still_running
        totals = dict(self._retired)
        for s in [*subs, *(sub.stats() for sub in still_running)]:
            for counter in _COUNTERS:
                totals[counter] += getattr(s, counter)
        subjects = {
            subject: SubjectStats(published=c.published, fanout=c.fanout, unrouted=c.unrouted)
            for subject, c in self._router.counters.items()
            if c.published
        }
        return BusStats(
            published=sum(c.published for c in subjects.values()),
            fanout=totals["received"],
            delivered=totals["delivered"],
            dropped=totals["dropped"],
            failed=totals["failed"],
            cancelled=totals["cancelled"],
            unprocessed=totals["unprocessed"],
            in_flight=self._in_flight,
            dead_lettered=self._dead_lettered,
            unrouted=sum(c.unrouted for c in subjects.values()),
            requests=self._requests_sent,
            replies=self._replies,
            timeouts=self._timeouts,
            no_responders=self._no_responders,
            late_replies=self._late_replies,
            tap_errors=self._tap_errors,
            subjects=subjects,
            subscriptions=tuple(sorted(subs, key=lambda s: s.name)),
        )
