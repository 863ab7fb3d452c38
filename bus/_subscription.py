"""A subscription: a bounded buffer of envelopes and the workers that hand them to a handler.

The buffer is a plain deque. A worker drains it in a loop and only suspends when it is
empty, so a burst is handled in one wake-up instead of one event-loop round trip per
message; that is what lets the bus keep up with a raw ``asyncio.Queue``.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
from collections import deque
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from ._context import Context
from ._deadlines import current_task
from ._message import Envelope, Topic
from ._request import SETTLED
from ._slots import Slots
from ._stats import Policy, SubscriptionStats

if TYPE_CHECKING:
    from ._bus import Bus
    from ._request import PendingRequest
    from ._routing import Route

Handler = Callable[..., Any]
FailureHook = Callable[[BaseException], Awaitable[None]]


def _wake_first(futures: deque[asyncio.Future[None]]) -> None:
    """Wake the first future still waiting (earlier ones may have been cancelled)."""
    while futures:
        future = futures.popleft()
        if not future.done():
            future.set_result(None)
            return


def _wants_context(handler: Handler) -> bool:
    """True if the handler takes ``(message, ctx)``, False if it takes ``(message)`` only."""
    try:
        params = list(inspect.signature(handler).parameters.values())
    except (TypeError, ValueError):  # builtins without a signature: pass both
        return True
    positional = [
        p
        for p in params
        if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD) and p.default is p.empty
    ]
    if any(p.kind is p.VAR_POSITIONAL for p in params):
        return True
    if len(positional) not in (1, 2):
        raise TypeError(
            f"handler {getattr(handler, '__qualname__', handler)!r} must take "
            f"(message) or (message, ctx), it takes {len(positional)} positional arguments"
        )
    return len(positional) == 2


def _is_async(handler: Handler) -> bool:
    call = getattr(handler, "__call__", None)  # noqa: B004 - callable objects with async __call__
    return inspect.iscoroutinefunction(handler) or inspect.iscoroutinefunction(call)


class Subscription:
    """One subscriber: its pattern, queue group, buffer, policy, workers and counters.

    Made by ``Bus.subscribe`` (and ``Bus.stream``, ``Bus.add``), not directly;
    ``unsubscribe()`` stops it (messages still buffered are dead-lettered as
    ``unsubscribed``).
    """

    __slots__ = (
        "_buffer",
        "_bus",
        "_closed",
        "_handler",
        "_is_async",
        "_limiter",
        "_on_failure",
        "_putters",
        "_tasks",
        "_waiters",
        "_wants_ctx",
        "blocked_publishes",
        "cancelled",
        "concurrency",
        "delivered",
        "dropped",
        "failed",
        "held",
        "max_pending",
        "max_workers",
        "maxsize",
        "name",
        "pattern",
        "policy",
        "queue",
        "received",
        "running",
        "topic",
        "unprocessed",
        "waiting_publishers",
        "workers",
    )

    def __init__(
        self,
        bus: Bus,
        topic: Topic[Any, Any],
        handler: Handler | None,
        *,
        name: str,
        queue: str | None,
        buffer: int,
        policy: Policy,
        concurrency: int,
        limiter: Slots | None = None,
        on_failure: FailureHook | None = None,
        tasks: set[asyncio.Task[Any]] | None = None,
    ) -> None:
        self._bus = bus
        self.topic = topic
        self.pattern = topic.subject
        self.name = name
        self.queue = queue
        self.maxsize = buffer
        self.policy = policy
        self.concurrency = concurrency
        self._handler = handler
        self._wants_ctx = handler is not None and _wants_context(handler)
        self._is_async = handler is not None and _is_async(handler)
        self._limiter = limiter
        self._on_failure = on_failure
        self._buffer: deque[Envelope] = deque()
        self._waiters: deque[asyncio.Future[None]] = deque()
        self._putters: deque[asyncio.Future[None]] = deque()
        # The worker tasks; an actor's subscriptions share one set, so that a handler
        # publishing into a sibling's full buffer is let in instead of deadlocking.
        self._tasks: set[asyncio.Task[Any]] = set() if tasks is None else tasks
        self._closed = False
        self.received = 0
        self.delivered = 0
        self.dropped = 0
        self.failed = 0
        self.cancelled = 0
        self.unprocessed = 0
        self.running = 0
        self.max_pending = 0
        self.blocked_publishes = 0
        self.waiting_publishers = 0  # publishers waiting for room right now
        # Worker tasks are started as the buffer needs them, up to ``concurrency``: most
        # requests are handled in their requester's task, so most slots never need one.
        self.workers = 0
        self.held = 0  # > 0 while its actor's supervision runs: no handler may start
        self.max_workers = concurrency if handler is not None else 0

    def __repr__(self) -> str:
        queue = f", queue={self.queue!r}" if self.queue else ""
        return f"Subscription({self.name!r}, {self.pattern!r}{queue}, pending={len(self._buffer)})"

    @property
    def pending(self) -> int:
        """Messages buffered and not yet taken by a worker."""
        return len(self._buffer)

    @property
    def closed(self) -> bool:
        return self._closed

    def unsubscribe(self) -> None:
        """Stop receiving. Handlers already running finish; buffered messages are dead-lettered."""
        if not self._closed:
            self._bus._remove_subscription(self)

    def stats(self) -> SubscriptionStats:
        """A snapshot of this subscription's counters."""
        return SubscriptionStats(
            name=self.name,
            pattern=self.pattern,
            queue=self.queue,
            policy=self.policy,
            buffer=self.maxsize,
            concurrency=self.concurrency,
            received=self.received,
            delivered=self.delivered,
            dropped=self.dropped,
            failed=self.failed,
            cancelled=self.cancelled,
            unprocessed=self.unprocessed,
            pending=len(self._buffer),
            running=self.running,
            max_pending=self.max_pending,
            blocked_publishes=self.blocked_publishes,
        )

    # -- waking --------------------------------------------------------------------------

    def _wake_worker(self) -> None:
        _wake_first(self._waiters)

    def _wake_putter(self) -> None:
        _wake_first(self._putters)

    def _wake_all(self) -> None:
        for waiter in (*self._waiters, *self._putters):
            if not waiter.done():
                waiter.set_result(None)
        self._waiters.clear()
        self._putters.clear()

    async def _wait_for_room(self, done: asyncio.Future[Any] | None = None) -> None:
        """Wait until a worker frees a slot (``block`` policy), or ``done`` completes.

        Publishers are woken in the order they started waiting; one arriving just as a slot
        frees may take it first. A woken publisher that is cancelled hands its slot on.
        """
        putter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._putters.append(putter)
        self.blocked_publishes += 1
        woken_by_slot = True

        def settled(_: object) -> None:  # the request settled: stop waiting (no slot taken)
            nonlocal woken_by_slot
            if not putter.done():
                woken_by_slot = False
                putter.set_result(None)
                with contextlib.suppress(ValueError):
                    self._putters.remove(putter)

        if done is not None:
            done.add_done_callback(settled)
        self.waiting_publishers += 1
        try:
            await putter
        except BaseException:
            if woken_by_slot and putter.done() and not putter.cancelled():
                self._wake_putter()  # woken, but leaving: the slot goes to the next one
            raise
        finally:
            self.waiting_publishers -= 1
            if done is not None:
                done.remove_done_callback(settled)
            if not putter.done():
                putter.cancel()
            if putter.cancelled():  # (a cancelled publisher's putter is cancelled with it)
                with contextlib.suppress(ValueError):
                    self._putters.remove(putter)

    # -- the worker -------------------------------------------------------------------------

    async def _run(self) -> None:
        """Take envelopes from the buffer and handle them until the subscription closes."""
        loop = asyncio.get_running_loop()
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        bus = self._bus
        buffer = self._buffer
        handler = self._handler
        assert handler is not None
        wants_ctx = self._wants_ctx
        is_async = self._is_async
        limiter = self._limiter
        requests = bus._requests
        reply_type = self.topic.reply
        msg_type = self.topic.type
        abandoned = bus._abandoned
        try:
            while True:
                # (running reaches concurrency only with requests handled inline; held: an
                # actor restarting)
                if not buffer or self.running >= self.concurrency or self.held:
                    if self._closed:
                        return
                    waiter: asyncio.Future[None] = loop.create_future()
                    self._waiters.append(waiter)
                    try:
                        await waiter
                    finally:
                        if not waiter.done():
                            waiter.cancel()
                    continue
                env = buffer.popleft()
                if self._putters:
                    self._wake_putter()
                payload = env.payload
                if payload.__class__ is not msg_type and not isinstance(payload, msg_type):
                    self._refuse_type(env)  # another topic's type on a subject we match
                    continue
                pending = None
                if env.reply_to is not None:
                    correlation_id = env.correlation_id
                    pending = requests.get(correlation_id) or abandoned.get(correlation_id)  # type: ignore[arg-type]
                    if pending is not None:
                        pending.queued -= 1
                        if pending.abandoned:  # our requester gave up while this waited
                            if not pending.queued:
                                abandoned.pop(correlation_id, None)  # type: ignore[arg-type]
                            self.cancelled += 1
                            bus._settle()
                            if bus._bridge is not None:  # (a durable copy: done with)
                                bus._bridge.skipped(self, env)
                            continue
                self.running += 1
                if limiter is not None:
                    try:
                        await limiter.acquire()
                    except asyncio.CancelledError:
                        self._settle(cancelled=True)
                        raise
                failure: BaseException | None = None
                try:
                    if pending is not None:
                        if pending.abandoned:  # given up while we waited for the limiter
                            raise _Abandoned
                        pending.serving(task)
                    try:
                        if wants_ctx:
                            result = handler(payload, Context(bus, env, self))
                        else:
                            result = handler(payload)
                        if is_async or (result is not None and inspect.isawaitable(result)):
                            result = await result
                        if (
                            reply_type is not None
                            and env.reply_to is not None
                            and not isinstance(result, reply_type)
                        ):
                            raise TypeError(
                                f"{self.topic!r} replies with {reply_type.__qualname__}, "
                                f"handler returned {type(result).__qualname__}"
                            )
                    finally:
                        if pending is not None:
                            pending.served(task)
                            if pending.abandoned:
                                raise _Abandoned
                except _Abandoned:
                    self._settle(cancelled=True, limiter=limiter)
                    assert pending is not None
                    if task in pending.cancelled and task.uncancel():
                        raise asyncio.CancelledError from None  # shutdown as well: go on with it
                    continue
                except asyncio.CancelledError as exc:
                    if task.cancelling():  # we are being cancelled (the bus is closing)
                        self._settle(cancelled=True, limiter=limiter)
                        raise
                    failure = exc  # the handler's own business (a future it awaited)
                except Exception as exc:  # noqa: BLE001 - counted, dead-lettered, replied
                    failure = exc
                if failure is None:  # the hot path: _settle() inlined
                    self.delivered += 1
                    self.running -= 1
                    if limiter is not None:
                        limiter.release()
                    bus._in_flight -= 1
                    if not bus._in_flight and bus._idle_waiters:
                        bus._wake_idle()
                    if env.reply_to is not None:
                        bus._reply(env, result, None, self)
                    continue
                await self._failed(env, failure)
        finally:
            self._tasks.discard(task)
            self.workers -= 1

    async def _handle_inline(self, env: Envelope, pending: PendingRequest, route: Route) -> Any:
        """Handle the request ``env`` in the requester's task, as a worker would: this
        subscription is the only responder and is idle, so handing it to a worker would
        only add two trips through the event loop. Counted, traced, answered and failed
        the same way; the request's deadline (or the bus closing) cancels it; supervision
        after a failure runs in a task of the bus, not the requester's.

        Returns the reply, or :data:`SETTLED` when the outcome is in the request's future
        (a failure, the deadline or the close, a reply that taps must see)."""
        bus = self._bus
        counter = route.counter
        counter.published += 1
        counter.fanout += 1
        if route.taps:
            bus._run_taps(route.taps, env)
        self.received += 1
        bus._in_flight += 1
        self.running += 1
        bus._inline += 1
        try:
            limiter = self._limiter
            if limiter is not None:
                limiter.take()  # free (checked by the caller)
            task = current_task(asyncio.get_running_loop())
            assert task is not None
            pending.inline = task
            tasks = self._tasks
            added = task not in tasks  # a handler feeding its own full buffer is let in
            if added:
                tasks.add(task)
            failure: BaseException | None = None
            handler = self._handler
            assert handler is not None
            try:
                if self._wants_ctx:
                    result = handler(env.payload, Context(bus, env, self))
                else:
                    result = handler(env.payload)
                if self._is_async or (result is not None and inspect.isawaitable(result)):
                    result = await result
                reply_type = self.topic.reply
                if reply_type is not None and not isinstance(result, reply_type):
                    raise TypeError(
                        f"{self.topic!r} replies with {reply_type.__qualname__}, "
                        f"handler returned {type(result).__qualname__}"
                    )
            except asyncio.CancelledError as exc:
                if not task.cancelling():
                    failure = exc  # the handler's own business (a future it awaited)
                else:  # the requester was cancelled, or the bus cancelled it
                    self._settle(cancelled=True, limiter=limiter)
                    if pending.interrupted and not task.uncancel():
                        return SETTLED  # the deadline or the close: the future says which
                    raise
            except Exception as exc:  # noqa: BLE001 - counted, dead-lettered, replied
                failure = exc
            finally:
                pending.inline = None
                if added:
                    tasks.discard(task)
            if pending.interrupted:  # the handler swallowed the cancellation meant for it
                task.uncancel()
                self._settle(cancelled=True, limiter=limiter)
            elif failure is not None:
                if self._on_failure is None:
                    self.failed += 1
                    self._settle(limiter=limiter)
                    bus._handler_failed(self, env, failure)
                else:  # the slot stays taken until supervision is done, in a task of the bus
                    bus._supervise(self, env, failure)
            else:
                self.delivered += 1
                self.running -= 1
                if limiter is not None:
                    limiter.release()
                bus._in_flight -= 1
                if not bus._in_flight and bus._idle_waiters:
                    bus._wake_idle()
                replies = bus._routes.get(env.reply_to)  # type: ignore[arg-type]
                # (a future made already holds an outcome: the deadline passed meanwhile)
                if replies is not None and not replies.taps and pending.future is None:
                    bus._replies += 1  # _reply() without its look-ups or a future
                    return result
                bus._reply(env, result, None, self)
            return SETTLED
        finally:
            bus._inline -= 1
            if not bus._inline and bus._inline_idle is not None:
                bus._inline_idle.set()
            if self._buffer:  # buffered while the slot was taken here
                bus._wake_or_add_worker(self)

    async def _failed(self, env: Envelope, failure: BaseException) -> None:
        """A handler raised: count it, dead-letter it, answer a request with it, and let an
        actor's supervision act — while it still holds the actor's limiter, so that no
        other handler of the actor runs in between a restart's on_stop and on_start."""
        self.failed += 1
        limiter = self._limiter
        if self._on_failure is None:
            self._settle(limiter=limiter)
            self._bus._handler_failed(self, env, failure)
            return
        self._settle()
        try:
            self._bus._handler_failed(self, env, failure)
            await self._on_failure(failure)
        finally:
            if limiter is not None:
                limiter.release()

    def _refuse_type(self, env: Envelope) -> None:
        """A message of another type than this subscription's topic: never handed over."""
        self.dropped += 1
        bus = self._bus
        bus._in_flight -= 1
        if env.reply_to is not None and env.correlation_id in bus._requests:
            error = TypeError(
                f"subscription {self.name!r} takes {self.topic.type.__qualname__}, "
                f"got {type(env.payload).__qualname__}"
            )
            bus._reply(env, None, error, self)
        bus._dead_letter(self, env, "wrong_type")
        if not bus._in_flight and bus._idle_waiters:
            bus._wake_idle()

    def _settle(self, *, cancelled: bool = False, limiter: Slots | None = None) -> None:
        """A message's outcome is counted: take it out of the in-flight figures at once, so
        that the accounting identity holds for whatever runs next (taps, replies, restarts)."""
        if cancelled:
            self.cancelled += 1
        self.running -= 1
        if limiter is not None:
            limiter.release()
        bus = self._bus
        bus._in_flight -= 1
        if not bus._in_flight and bus._idle_waiters:
            bus._wake_idle()


class _Abandoned(Exception):
    """Internal: the request this handler served was abandoned while it ran."""
