"""The exceptions the bus raises; every one derives from :class:`HivebusError`."""

from __future__ import annotations

from typing import Any


class HivebusError(Exception):
    """Base of every error hivebus raises on purpose."""


class InvalidSubject(HivebusError, ValueError):
    """A subject or subscription pattern is malformed."""

    def __init__(self, subject: str, reason: str) -> None:
        super().__init__(f"invalid subject {subject!r}: {reason}")
        self.subject = subject
        self.reason = reason


class BusClosed(HivebusError):
    """The bus is closing or closed and takes no new work."""


class NoResponders(HivebusError):
    """A request was sent to a subject that no subscription matches."""

    def __init__(self, subject: str) -> None:
        super().__init__(f"no responders for {subject!r}")
        self.subject = subject


class RequestTimeout(HivebusError, TimeoutError):
    """No reply arrived before the request's deadline."""

    def __init__(self, subject: str, timeout: float) -> None:
        super().__init__(f"request to {subject!r} got no reply within {timeout:g}s")
        self.subject = subject
        self.timeout = timeout


class RemoteError(HivebusError):
    """The handler that served a request raised; this carries what it raised.

    ``remote_type`` is the exception's class name, ``remote_message`` its text,
    ``remote_traceback`` the formatted traceback from the handler's side, and
    ``remote_details`` the plain data its ``remote_details()`` method gave, if it has one
    (so a caller can rebuild a typed error with its fields, e.g. ``retry_after``).
    """

    def __init__(
        self,
        subject: str,
        remote_type: str,
        remote_message: str,
        remote_traceback: str = "",
        remote_details: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(f"handler for {subject!r} raised {remote_type}: {remote_message}")
        self.subject = subject
        self.remote_type = remote_type
        self.remote_message = remote_message
        self.remote_traceback = remote_traceback
        self.remote_details = remote_details or {}


class BufferFull(HivebusError):
    """A subscription with the ``error`` policy had no room for a message."""

    def __init__(self, subject: str, subscription: str, size: int) -> None:
        super().__init__(
            f"buffer of subscription {subscription!r} is full "
            f"({size} {'message' if size == 1 else 'messages'}) while publishing to {subject!r}"
        )
        self.subject = subject
        self.subscription = subscription
        self.size = size


class DrainTimeout(HivebusError, TimeoutError):
    """``drain()`` did not reach quiescence before its deadline; ``busy`` maps each
    subscription still holding work to its buffered plus running messages."""

    def __init__(self, timeout: float, pending: int, busy: dict[str, int] | None = None) -> None:
        where = ", ".join(f"{name}: {count}" for name, count in (busy or {}).items())
        super().__init__(
            f"bus not quiescent after {timeout:g}s: {pending} "
            f"{'delivery' if pending == 1 else 'deliveries'} pending"
            + (f" ({where})" if where else "")
        )
        self.timeout = timeout
        self.pending = pending
        self.busy = busy or {}


class DurableConflict(HivebusError):
    """Over NATS, a durable topic's subject overlaps a JetStream stream that does not keep
    all of it (JetStream keeps a subject in one stream only): ``subject`` cannot be kept
    as its own stream, nor in ``stream``, whose subjects are ``kept``."""

    def __init__(self, subject: str, stream: str, kept: list[str]) -> None:
        super().__init__(
            f"durable topic {subject!r} overlaps stream {stream!r} (subjects "
            f"{', '.join(map(repr, kept))}), which does not keep all of it: JetStream keeps a "
            "subject in one stream only. A wider durable topic's stream must be made before "
            "any narrower one's (subscribe to it before anything is published to the "
            "narrower subjects; its stream then keeps them too), or the narrower streams "
            "removed (`nats stream rm`); or make them one topic"
        )
        self.subject = subject
        self.stream = stream
        self.kept = kept
