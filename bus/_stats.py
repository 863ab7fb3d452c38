"""Typed snapshots of the bus's counters, and the dead-letter record."""

from __future__ import annotations

from typing import Literal

import msgspec

from ._message import Envelope, Message, Topic

Policy = Literal["block", "drop_oldest", "drop_newest", "error"]
POLICIES: tuple[Policy, ...] = ("block", "drop_oldest", "drop_newest", "error")

DeadLetterReason = Literal[
    "dropped_oldest",
    "dropped_newest",
    "buffer_full",
    "handler_error",
    "unsubscribed",
    "wrong_type",
    "max_deliveries",  # a durable message delivered max_deliver times, never acknowledged
]


class DeadLetter(Message, frozen=True, kw_only=True):
    """A delivery that did not end in a handled message: why, where, and the original envelope."""

    reason: DeadLetterReason
    subscription: str
    envelope: Envelope
    error_type: str | None = None
    error_message: str | None = None


DEAD_LETTERS: Topic[DeadLetter, None] = Topic("_bus.dead", DeadLetter)


class SubscriptionStats(msgspec.Struct, frozen=True, kw_only=True):
    """Counters of one subscription.

    ``received`` counts deliveries targeted at it; once quiescent,
    ``received == delivered + dropped + failed + cancelled + unprocessed``.
    """

    name: str
    pattern: str
    queue: str | None
    policy: Policy
    buffer: int
    concurrency: int
    received: int
    delivered: int
    dropped: int
    failed: int
    cancelled: int
    unprocessed: int
    pending: int
    running: int
    max_pending: int
    blocked_publishes: int


class SubjectStats(msgspec.Struct, frozen=True, kw_only=True):
    """Counters of one concrete subject: messages published, deliveries fanned out, and
    publishes no subscription matched."""

    published: int
    fanout: int
    unrouted: int


class BusStats(msgspec.Struct, frozen=True, kw_only=True):
    """A snapshot of every counter of the bus.

    The accounting identity, which holds at every instant:
    ``fanout == delivered + dropped + failed + cancelled + unprocessed + in_flight``.
    Once quiescent (after ``drain()``), ``in_flight`` is 0.
    """

    published: int
    fanout: int
    delivered: int
    dropped: int
    failed: int
    cancelled: int
    unprocessed: int
    in_flight: int
    dead_lettered: int
    unrouted: int
    requests: int
    replies: int
    timeouts: int
    no_responders: int
    late_replies: int
    tap_errors: int
    subjects: dict[str, SubjectStats]
    subscriptions: tuple[SubscriptionStats, ...]

    @property
    def balanced(self) -> bool:
        """True when every delivery is accounted for (see the class docstring)."""
        settled = self.delivered + self.dropped + self.failed + self.cancelled
        return self.fanout == settled + self.unprocessed + self.in_flight


class CloseReport(msgspec.Struct, frozen=True, kw_only=True):
    """What ``Bus.close()`` found: whether it drained in time, and what it had to abandon.

    ``unprocessed`` messages were still buffered; ``interrupted`` handlers were running and
    were cancelled; ``failed_requests`` were callers still waiting for a reply;
    ``actor_errors`` names the actors whose ``on_stop`` raised, and what it raised.
    """

    drained: bool
    unprocessed: int
    interrupted: int
    failed_requests: int
    by_subscription: dict[str, int]
    actor_errors: dict[str, str] = {}
