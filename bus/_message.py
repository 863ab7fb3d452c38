"""Messages, topics and the envelope that carries a message across the bus."""

from __future__ import annotations

import builtins
import itertools
import os
from collections.abc import Mapping
from typing import Any, Generic, TypeVar, overload

import msgspec

from ._subjects import is_pattern, validate_subject

T = TypeVar("T")
R = TypeVar("R")


class Message(msgspec.Struct, frozen=True, kw_only=True, gc=False):
    """Base class for everything published on the bus: a frozen, keyword-only msgspec Struct.

    Messages are values, so they are not tracked by the garbage collector (``gc=False``):
    with thousands of loops in flight, the collector walking every message was a fifth of
    the CPU. Never make a message part of a reference cycle (a mutable field holding the
    message itself): such a cycle would not be collected.
    """


class Durability(msgspec.Struct, frozen=True, kw_only=True):
    """How a durable topic's messages are kept over NATS (JetStream), for publishers and
    subscribers alike (declare the topic the same on both sides).

    ``ack_wait``: seconds a taken message may go unacknowledged before it is delivered
    again (a running handler extends it); ``max_deliver``: deliveries before it is given up
    (and dead-lettered); ``max_age``/``max_bytes``: the stream's retention;
    ``duplicate_window``: seconds in which a message id sent twice is stored once.
    """

    ack_wait: float = 30.0
    max_deliver: int = 5
    max_age: float = 86_400.0
    max_bytes: int = 1 << 30
    duplicate_window: float = 120.0

    def __post_init__(self) -> None:
        # (here, where the topic is declared, not as a stream the server refuses later)
        for field in ("ack_wait", "max_deliver", "max_age", "max_bytes", "duplicate_window"):
            value = getattr(self, field)
            if not value > 0:
                raise ValueError(f"Durability: {field} must be > 0, got {value!r}")


class Topic(Generic[T, R]):
    """A subject bound to a message type (and, for requests, the reply type).

    ``Topic("llm.chat", ChatRequest, reply=ChatResult)``. The subject may hold
    ``*``/``>`` wildcards when the topic is only used to subscribe.
    """

    __slots__ = ("durable", "is_pattern", "reply", "subject", "tokens", "type")

    @overload
    def __init__(
        self: Topic[T, Any],
        subject: str,
        type: type[T],
        *,
        durable: bool | Durability = False,
    ) -> None: ...
    @overload
    def __init__(
        self,
        subject: str,
        type: type[T],
        *,
        reply: type[R],
        durable: bool | Durability = False,
    ) -> None: ...

    def __init__(
        self,
        subject: str,
        type: type[T],
        *,
        reply: type[R] | None = None,
        durable: bool | Durability = False,
    ) -> None:
        self.tokens = validate_subject(subject, pattern=True)
        if not isinstance(type, builtins.type):
            raise TypeError(f"Topic {subject!r}: type must be a class, got {type!r}")
        if reply is not None and not isinstance(reply, builtins.type):
            raise TypeError(f"Topic {subject!r}: reply must be a class, got {reply!r}")
        self.subject = subject
        self.type = type
        self.reply = reply
        self.is_pattern = is_pattern(subject)
        # Over NATS, kept by JetStream (at least once, redelivered after a crash); in
        # one process, the same as any topic.
        self.durable = Durability() if durable is True else durable or None

    def __repr__(self) -> str:
        reply = f", reply={self.reply.__name__}" if self.reply is not None else ""
        return f"Topic({self.subject!r}, {self.type.__name__}{reply})"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Topic):
            return NotImplemented
        return (self.subject, self.type, self.reply) == (other.subject, other.type, other.reply)

    def __hash__(self) -> int:
        return hash((self.subject, self.type, self.reply))


class Envelope(msgspec.Struct, frozen=True, kw_only=True, gc=False):
    """What travels on the bus: the payload plus the ids that place it in a conversation.

    ``causation_id`` is the id of the message whose handler published this one, so a
    run forms a tree; ``correlation_id`` ties a reply to its request.
    """

    id: str
    subject: str
    payload: Any
    sender: str = ""
    timestamp: float = 0.0
    correlation_id: str | None = None
    causation_id: str | None = None
    reply_to: str | None = None
    headers: Mapping[str, str] | None = None


class IdSource:
    """Cheap ids, unique across processes: a random prefix plus a counter (no uuid4 per message)."""

    __slots__ = ("_counter", "prefix")

    def __init__(self) -> None:
        self.prefix = os.urandom(5).hex()
        self._counter = itertools.count(1)

    def next(self) -> str:
        return f"{self.prefix}-{next(self._counter)}"
