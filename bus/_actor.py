"""Actors: a name, handlers bound to topics, private state, a concurrency limit and a
supervision policy, started and stopped with the bus."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Literal, TypeVar

from ._message import Topic
from ._slots import Slots
from ._stats import Policy
from ._subscription import Subscription

if TYPE_CHECKING:
    from ._bus import Bus

log = logging.getLogger("hivebus.bus")

Supervision = Literal["resume", "restart", "stop"]
SUPERVISION: tuple[Supervision, ...] = ("resume", "restart", "stop")
TopicSpec = Topic[Any, Any] | Callable[[Any], Topic[Any, Any]]
F = TypeVar("F", bound=Callable[..., Any])

_SPEC = "__hivebus_handler__"


class _HandlerSpec:
    __slots__ = ("buffer", "policy", "queue", "topic")

    def __init__(self, topic: TopicSpec, queue: str | None, buffer: int, policy: Policy) -> None:
        self.topic = topic
        self.queue = queue
        self.buffer = buffer
        self.policy = policy


def handler(
    topic: TopicSpec,
    *,
    queue: str | None = None,
    buffer: int = 1024,
    policy: Policy = "block",
) -> Callable[[F], F]:
    """Mark an actor method as the handler of ``topic``.

    ``topic`` may be a callable taking the actor and returning its Topic, for subjects that
    depend on the instance: ``@handler(lambda self: self.inbox)``.
    """

    def mark(method: F) -> F:
        setattr(method, _SPEC, _HandlerSpec(topic, queue, buffer, policy))
        return method

    return mark


class Actor:
    """Base class of actors. Subclass it, mark methods with ``@handler``, ``await bus.add()``.

    ``concurrency`` bounds how many of this actor's handlers run at once, across all of its
    topics (1: one message at a time, in order). ``supervision`` is what a handler failure
    does beyond the error reply and the dead letter every failure gets: ``resume`` (keep
    going), ``restart`` (``on_stop`` then ``on_start`` before the next message) or ``stop``
    (unsubscribe every handler of this actor).
    """

    name: str = ""
    concurrency: int = 1
    supervision: Supervision = "resume"

    def __init__(self, name: str | None = None) -> None:
        if name is not None:
            self.name = name
        if not self.name:
            self.name = type(self).__name__
        self.subscriptions: list[Subscription] = []
        self.restarts = 0
        self._bus: Bus | None = None

    @property
    def bus(self) -> Bus:
        """The bus the actor runs on (only while started)."""
        if self._bus is None:
            raise RuntimeError(f"actor {self.name!r} is not started")
        return self._bus

    async def on_start(self) -> None:
        """Called before the actor's handlers receive anything; set up state here."""

    async def on_stop(self) -> None:
        """Called when the bus closes, after its handlers have stopped, and before ``on_start``
        on a restart. Not called if ``on_start`` failed, nor by ``stop()``."""

    async def _start(self, bus: Bus) -> None:
        if self.supervision not in SUPERVISION:
            raise ValueError(
                f"actor {self.name!r}: unknown supervision {self.supervision!r}; "
                f"expected one of {SUPERVISION}"
            )
        if self._bus is not None or self.subscriptions:
            raise RuntimeError(f"actor {self.name!r} is already started")
        specs = [
            (getattr(self, attr), getattr(getattr(type(self), attr), _SPEC))
            for attr in dir(type(self))
            if hasattr(getattr(type(self), attr, None), _SPEC)
        ]
        if not specs:
            raise TypeError(f"actor {self.name!r} has no @handler methods")
        topics = [
            spec.topic if isinstance(spec.topic, Topic) else spec.topic(self) for _, spec in specs
        ]
        self._bus = bus
        try:
            await self.on_start()
        except BaseException:
            self._bus = None  # never started: on_stop will not run
            raise
        shared = Slots(self.concurrency) if len(specs) > 1 else None
        tasks: set[asyncio.Task[Any]] = set()  # one set: siblings may feed each other
        for (method, spec), topic in zip(specs, topics, strict=True):
            sub = bus._make_subscription(
                topic,
                method,
                spec.queue,
                spec.buffer,
                spec.policy,
                self.concurrency,
                f"{self.name}.{method.__name__}",
                limiter=shared,
                on_failure=self._on_failure,
                tasks=tasks,
            )
            bus._router.add_subscription(sub)
            bus._start_workers(sub)
            self.subscriptions.append(sub)

    async def _stop(self) -> None:
        if self._bus is None:
            return
        try:
            await self.on_stop()
        finally:
            self._bus = None

    def stop(self) -> None:
        """Unsubscribe every handler; messages still buffered are dead-lettered. The actor
        keeps its state; ``on_stop`` still runs when the bus closes."""
        for sub in self.subscriptions:
            sub.unsubscribe()

    async def _on_failure(self, error: BaseException) -> None:
        if self.supervision == "resume":
            return
        for sub in self.subscriptions:  # no handler of this actor starts meanwhile
            sub.held += 1
        try:
            await self._supervise(error)
        finally:
            for sub in self.subscriptions:
                sub.held -= 1
                if sub._buffer and self._bus is not None:
                    self._bus._wake_or_add_worker(sub)

    async def _supervise(self, error: BaseException) -> None:
        if self.supervision == "restart":
            self.restarts += 1
            log.warning("actor %r restarting after %s", self.name, type(error).__qualname__)
            try:
                await self.on_stop()
                await self.on_start()
            except Exception:  # escalate: an actor that cannot restart stops
                log.exception("actor %r failed to restart; stopping it", self.name)
                self.stop()
        elif self.supervision == "stop":
            log.warning("actor %r stopping after %s", self.name, type(error).__qualname__)
            self.stop()

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name!r}>"
