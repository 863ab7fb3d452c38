"""The context a handler receives next to its message."""

from __future__ import annotations

from collections.abc import Awaitable, Coroutine, Generator, Mapping
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, TypeVar

from ._message import Envelope, Topic

if TYPE_CHECKING:
    from ._bus import Bus
    from ._subscription import Subscription

T = TypeVar("T")
R = TypeVar("R")

_NO_HEADERS: Mapping[str, str] = MappingProxyType({})


class _Done:
    """An awaitable that is already done (a publish that had nothing to wait for)."""

    __slots__ = ()

    def __await__(self) -> Generator[None, None, None]:
        return
        yield  # (a generator that is finished at once)


DONE = _Done()  # (public: what a function returning "an awaitable" returns when done)


class Context:
    """The envelope of the message being handled, and a way to answer it with more messages.

    ``ctx.publish`` and ``ctx.request`` set ``causation_id`` to this message's id and
    ``sender`` to the handling subscription, so the messages of a run form a tree.
    """

    __slots__ = ("_bus", "envelope", "subscription")

    def __init__(self, bus: Bus, envelope: Envelope, subscription: Subscription) -> None:
        self._bus = bus
        self.envelope = envelope
        self.subscription = subscription  # the one handling this message

    @property
    def bus(self) -> Bus:
        """The bus this message travels on."""
        return self._bus

    @property
    def id(self) -> str:
        """This message's id (unique across processes)."""
        return self.envelope.id

    @property
    def subject(self) -> str:
        """The concrete subject it was published to."""
        return self.envelope.subject

    @property
    def sender(self) -> str:
        """Who published it: a subscription's name, or the publisher given to the bus."""
        return self.envelope.sender

    @property
    def correlation_id(self) -> str | None:
        """For a request, the id its reply will carry; else None."""
        return self.envelope.correlation_id

    @property
    def causation_id(self) -> str | None:
        """The id of the message whose handler published this one (None at a root)."""
        return self.envelope.causation_id

    @property
    def reply_to(self) -> str | None:
        """Where the reply goes when this is a request; else None."""
        return self.envelope.reply_to

    @property
    def timestamp(self) -> float:
        """When it was published (seconds since the epoch)."""
        return self.envelope.timestamp

    @property
    def headers(self) -> Mapping[str, str]:
        """Headers given at publish (empty if none)."""
        headers = self.envelope.headers
        return _NO_HEADERS if headers is None else headers

    def publish(
        self, topic: Topic[T, Any], message: T, *, headers: Mapping[str, str] | None = None
    ) -> Awaitable[None]:
        """Publish ``message`` as a consequence of the message being handled; await it.

        The message is routed at the call (errors such as :class:`BusClosed` are raised
        there); what is awaited is only the wait for room in full ``block`` buffers, so a
        publish that needs none costs no coroutine at all.
        """
        sub = self.subscription
        blocked = self._bus._send(topic, message, sub.name, self.envelope.id, headers, True)
        if blocked is None:
            return DONE
        return self._bus._overflow(blocked, origin=sub)

    def publish_nowait(
        self, topic: Topic[T, Any], message: T, *, headers: Mapping[str, str] | None = None
    ) -> None:
        """Publish as :meth:`publish` does, without ever waiting (from sync code, or while
        the handler is being cancelled): a full ``block`` buffer is treated like ``error``,
        the delivery dead-lettered and :class:`BufferFull` raised."""
        sub = self.subscription
        blocked = self._bus._send(topic, message, sub.name, self.envelope.id, headers, True)
        if blocked is not None:
            self._bus._no_room(blocked)

    def request(
        self,
        topic: Topic[T, R],
        message: T,
        *,
        timeout: float | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> Coroutine[Any, Any, R]:
        """Send a request caused by the message being handled; await it for the reply.

        If the request this handler serves is abandoned, this request is cancelled too.
        (A plain function returning the coroutine: one frame less on every call.)
        """
        return self._bus._request(
            topic,
            message,
            timeout,
            self.subscription.name,
            self.envelope.id,
            headers,
            self.subscription,
        )

    def __repr__(self) -> str:
        env = self.envelope
        return f"Context(id={env.id!r}, subject={env.subject!r}, sender={env.sender!r})"
