"""Transports that carry a bus beyond one process (``Bus(transport="nats://...")``)."""

from ._wire import NatsStats, PayloadTooLarge, TransportUnavailable, is_nats_url

__all__ = ["NatsStats", "PayloadTooLarge", "TransportUnavailable", "is_nats_url"]
