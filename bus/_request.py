"""Book-keeping for requests awaiting a reply."""

from __future__ import annotations

import asyncio
import traceback
from typing import Any

from ._message import Message
from .errors import RequestTimeout


class ErrorReply(Message, frozen=True, kw_only=True):
    """The reply sent when a handler raised: what a requester turns into ``RemoteError``."""

    remote_type: str
    message: str
    traceback: str = ""
    details: dict[str, Any] | None = None  # from the exception's remote_details(), if any


def error_reply(error: BaseException) -> ErrorReply:
    """What answers a request whose handler raised ``error``."""
    describe = getattr(error, "remote_details", None)
    return ErrorReply(
        remote_type=type(error).__qualname__,
        message=str(error),
        traceback="".join(traceback.format_exception(error)),
        details=describe() if callable(describe) else None,
    )


SETTLED: Any = object()
"""What a request handled in the requester's task returns when its outcome is in the
future instead (a failure, the deadline, the bus closing, supervision)."""


class PendingRequest:
    """A request in flight: the caller's future and the tasks currently serving it.

    The future is made when first needed: a request handled in the requester's own task
    that succeeds returns its result directly and never makes one.
    """

    __slots__ = (
        "abandoned",
        "cancelled",
        "expects_reply",
        "future",
        "inline",
        "interrupted",
        "queued",
        "subject",
        "tasks",
        "timeout",
    )

    def __init__(self, subject: str, timeout: float, expects_reply: bool) -> None:
        self.future: asyncio.Future[Any] | None = None
        self.subject = subject
        self.timeout = timeout
        # The topic names a reply type: only subscriptions whose topic names one answer
        # (a catch-all watcher gets the request too, but its return value is no reply).
        self.expects_reply = expects_reply
        # the workers' tasks serving it now, and those it cancelled (lists made on demand:
        # most requests are handled inline and never need them)
        self.tasks: list[asyncio.Task[Any]] | None = None
        self.cancelled: list[asyncio.Task[Any]] | tuple[()] = ()
        self.abandoned = False
        self.queued = 0  # copies of the request waiting in buffers
        # Handled in the requester's own task (an idle responder): that task, and whether
        # the bus cancelled it (deadline, close) — then the future says why.
        self.inline: asyncio.Task[Any] | None = None
        self.interrupted = False

    def result_future(self) -> asyncio.Future[Any]:
        """The future the requester awaits (made now if it is not yet)."""
        future = self.future
        if future is None:
            future = self.future = asyncio.get_running_loop().create_future()
        return future

    def settled(self) -> bool:
        """A reply or an error is in the future already."""
        return self.future is not None and self.future.done()

    def serving(self, task: asyncio.Task[Any]) -> None:
        """A worker's ``task`` starts handling this request."""
        if self.tasks is None:
            self.tasks = [task]
        else:
            self.tasks.append(task)

    def served(self, task: asyncio.Task[Any]) -> None:
        assert self.tasks is not None
        self.tasks.remove(task)

    def fail(self, error: BaseException) -> None:
        """Settle the request with ``error`` and stop a handler running in the requester's
        task (handlers in workers are stopped through ``abandon`` by the requester)."""
        self.result_future().set_exception(error)
        if self.inline is not None:
            self.interrupted = True
            self.inline.cancel()

    def expire(self) -> None:
        """Its deadline passed (the bus's deadline grid calls this)."""
        if not self.settled():
            self.fail(RequestTimeout(self.subject, self.timeout))

    def abandon(self) -> None:
        """The caller gave up: cancel the handlers serving it; queued copies will be skipped."""
        if self.abandoned:
            return
        self.abandoned = True
        if self.tasks:
            self.cancelled = list(self.tasks)
            for task in self.cancelled:
                task.cancel()
