"""hivebus's message bus: typed topics, fan-out, queue groups, request/reply, backpressure.

It knows nothing of LLMs or agents; those are actors built on it (``agents``, ``tools``).
"""

from ._actor import Actor, Supervision, handler
from ._bus import Bus
from ._context import DONE, Context
from ._deadlines import DeadlineGrid, TaskDeadline
from ._message import Durability, Envelope, Message, Topic
from ._observe import observe_buses
from ._request import ErrorReply
from ._routing import Tap
from ._stats import (
    DEAD_LETTERS,
    BusStats,
    CloseReport,
    DeadLetter,
    Policy,
    SubjectStats,
    SubscriptionStats,
)
from ._stream import Stream
from ._subjects import matches, validate_subject
from ._subscription import Subscription
from .errors import (
    BufferFull,
    BusClosed,
    DrainTimeout,
    DurableConflict,
    HivebusError,
    InvalidSubject,
    NoResponders,
    RemoteError,
    RequestTimeout,
)
from .trace import TraceRecorder, read_trace

__all__ = [
    "DEAD_LETTERS",
    "DONE",
    "Actor",
    "BufferFull",
    "Bus",
    "BusClosed",
    "BusStats",
    "CloseReport",
    "Context",
    "DeadLetter",
    "DeadlineGrid",
    "DrainTimeout",
    "Durability",
    "DurableConflict",
    "Envelope",
    "ErrorReply",
    "HivebusError",
    "InvalidSubject",
    "Message",
    "NoResponders",
    "Policy",
    "RemoteError",
    "RequestTimeout",
    "Stream",
    "SubjectStats",
    "Subscription",
    "SubscriptionStats",
    "Supervision",
    "Tap",
    "TaskDeadline",
    "Topic",
    "TraceRecorder",
    "handler",
    "matches",
    "observe_buses",
    "read_trace",
    "validate_subject",
]
