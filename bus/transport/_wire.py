"""What the NATS transport puts on the wire, its errors and its counters."""

from __future__ import annotations

from typing import Generic, TypeVar

import msgspec

from .._request import ErrorReply
from ..errors import HivebusError

P = TypeVar("P")

_STATUS = "Status"
_NO_RESPONDERS = "503"


class Frame(msgspec.Struct, Generic[P], array_like=True, gc=False):
    """What goes on the wire: the envelope's fields, then the payload (one msgpack array,
    decoded straight into ``Frame[TheTopicsType]``)."""

    id: str
    sender: str
    timestamp: float
    causation_id: str | None
    correlation_id: str | None
    kind: str  # the payload's type name (to say what arrived when it is not ours)
    error: bool  # the payload is an ErrorReply (a handler raised)
    headers: dict[str, str] | None
    payload: P
    reply_to: str | None = None  # (JetStream delivers with its ack subject as the reply)
    untyped: bool = False  # a request on a topic with no reply type: any handler answers


_ENCODER = msgspec.msgpack.Encoder()
_RAW_DECODER = msgspec.msgpack.Decoder(Frame[msgspec.Raw])
_PAYLOAD_ANY = msgspec.msgpack.Decoder()  # a request on a topic without a reply type
_ERROR_DECODER = msgspec.msgpack.Decoder(ErrorReply)


class TransportUnavailable(HivebusError):
    """The transport cannot be reached (at start: the server is down or refused us)."""


class PayloadTooLarge(HivebusError, ValueError):
    """A message, encoded, is larger than the server accepts (its ``max_payload``)."""

    def __init__(self, subject: str, size: int, limit: int) -> None:
        super().__init__(
            f"message on {subject!r} is {size:,} bytes encoded; the server accepts at most "
            f"{limit:,} (max_payload): send a reference to the data instead"
        )
        self.subject = subject
        self.size = size
        self.limit = limit


class NatsStats(msgspec.Struct, frozen=True, kw_only=True):
    """What the NATS transport has done: messages sent and received, the connection's
    outages, messages lost to slow consumers, and errors the client reported."""

    url: str
    connected: bool
    sent: int
    received: int
    outbox: int
    disconnects: int
    reconnects: int
    slow_consumer_drops: int
    errors: int
    refused_too_large: int
    waited_for_room: int  # publishes that waited for the outbox (bursts, outages)
    redelivered: int = 0  # durable messages delivered again (a worker died holding them)
    given_up: int = 0  # durable messages past max_deliver, dead-lettered (max_deliveries)


def is_nats_url(transport: str) -> bool:
    return transport.startswith(("nats://", "tls://"))


def _redact(url: str) -> str:
    """The URL(s) without credentials (``nats://user:pass@host`` → ``nats://***@host``)."""
    shown = []
    for one in url.split(","):
        scheme, sep, rest = one.strip().partition("://")
        if "@" in rest:
            rest = "***@" + rest.rpartition("@")[2]
        shown.append(f"{scheme}{sep}{rest}")
    return ",".join(shown)
