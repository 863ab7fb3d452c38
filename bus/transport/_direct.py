"""Handing a PUB to nats-py without a coroutine per message.

nats-py's ``publish()`` is a coroutine three frames deep that appends the PUB command to
the client's pending buffer and kicks its flusher task. When the bridge has nothing queued
before a message (its outbox is empty and the connection up), it can do the same thing
synchronously, from the publisher's own call: the order of commands is unchanged, and the
writer task's hop and nats-py's frames are saved on every message.

That reaches into nats-py's private state (``_pending``, ``_pending_data_size``,
``_max_pending_size``, ``_max_payload``, ``_flush_queue``, ``_flusher_task``, ``stats``),
so it is checked when the connection is made. A client without them of the expected
types falls back to the writer task and ``await nc.publish()``, and so does any message
nats-py itself would refuse or wait over: an empty subject, a payload over the server's
``max_payload`` (the server would drop the connection; nats-py raises instead), while the
flusher is not running or the client not connected, or past twice nats-py's pending limit
(publishers that wait, wait for its flusher from its limit on: see ``over()``). The PUB
command itself is the NATS protocol's (``PUB <subject> [reply-to] <#bytes>``).
"""

from __future__ import annotations

import asyncio
from typing import Any

ENABLED = True  # (tests turn it off to run the suite through the writer task alone)


class DirectPublisher:
    """``publisher(subject, reply, data)`` -> True when handed over, False: use the writer."""

    __slots__ = ("_loop", "_nc")

    def __init__(self, nc: Any, loop: asyncio.AbstractEventLoop) -> None:
        self._nc = nc
        self._loop = loop

    @staticmethod
    def fits(nc: Any) -> bool:
        """Whether ``nc`` has the private state this relies on, of the expected types."""
        return (
            ENABLED
            and isinstance(getattr(nc, "_pending", None), list)
            and isinstance(getattr(nc, "_pending_data_size", None), int)
            and isinstance(getattr(nc, "_max_pending_size", None), int)
            and isinstance(getattr(nc, "_max_payload", None), int)
            and isinstance(getattr(nc, "_flush_queue", None), asyncio.Queue)
            and hasattr(nc, "_flusher_task")
            and isinstance(getattr(nc, "stats", None), dict)
            and isinstance(getattr(type(nc), "is_connected", None), property)
        )

    def __call__(self, subject: str, reply: str, data: bytes) -> bool:
        nc = self._nc
        flusher = nc._flusher_task
        if flusher is None or flusher.done() or not nc.is_connected:
            return False
        if not subject or len(data) > nc._max_payload:
            return False  # (nats-py refuses these itself, the connection kept)
        to = subject.encode() + b" " + reply.encode() if reply else subject.encode()
        command = b"PUB %s %d\r\n%s\r\n" % (to, len(data), data)
        size = nc._pending_data_size + len(command)
        if 0 < 2 * nc._max_pending_size < size:
            return False  # (publishers that do not wait for room() queue in the outbox)
        nc._pending.append(command)
        nc._pending_data_size = size
        stats = nc.stats
        stats["out_msgs"] += 1
        stats["out_bytes"] += len(data)
        queue = nc._flush_queue
        if queue.empty():  # kick the flusher (it writes everything pending at once)
            queue.put_nowait(self._loop.create_future())
        return True

    def over(self) -> bool:
        """More is pending than nats-py's own limit: publishers should wait (flushed())."""
        nc = self._nc
        limit: int = nc._max_pending_size
        pending: int = nc._pending_data_size
        return 0 < limit <= pending

    async def flushed(self) -> None:
        """Wait until what is pending now has been written to the socket (and the socket
        has taken it): nats-py's flusher answers the futures of its queue in order."""
        done = self._loop.create_future()
        try:
            self._nc._flush_queue.put_nowait(done)
        except asyncio.QueueFull:  # (its flusher is far behind: let it run, then look again)
            await asyncio.sleep(0)
            return
        await done
