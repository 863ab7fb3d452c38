"""The NATS transport: the same bus, its messages carried by a nats-server.

``Bus(transport="nats://127.0.0.1:4222")`` keeps every local mechanism (buffers and their
policies, workers, actors, stats) and puts the server between publisher and subscribers:

- every subscription (wildcards, queue groups) is mirrored by a NATS subscription on the
  same subject and queue group; what arrives is decoded straight into the topic's type
  (msgspec msgpack) and enters the subscription's buffer as a local publish would;
- a publish or a request is encoded and sent to the server, which fans it out to every
  process, this one included. **When does a message skip the server?** Only when no other
  process can take part in it: the bus's own subjects (``_bus.*``: dead letters) and the
  reply to a request this process sent itself. A process cannot know who else subscribes
  on a server, so any other message takes the round trip — that is what keeps fan-out and
  queue groups the same across processes;
- requests carry a reply subject of their own (``_INBOX.<bus>.<id>``), so the server's
  no-responders status (503) fails the request at once with :class:`NoResponders`;
- the envelope (id, sender, causation and correlation ids, timestamp, headers, the payload's
  type name) travels in front of the payload in one msgpack frame, so causation trees and
  traces span processes. Not as NATS headers: nats-py encodes and parses headers in
  Python, about 2.8 µs per header per message (measured), which with five of them tripled
  the transport's CPU per message.

Core NATS has no backpressure: a subscriber that falls behind by more than its pending
limits loses messages (counted as ``slow_consumer_drops``). Subjects whose messages must
not be lost belong on JetStream (durable topics, not in this version).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import time
import urllib.parse
from collections import deque
from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any

import anyio
import msgspec

from .._message import Durability, Envelope
from .._request import ErrorReply, error_reply
from .._routing import Route
from ._direct import DirectPublisher
from ._durable import FETCH_EXPIRY, Durable, permanent
from ._replies import ReplyReader
from ._wire import (
    _ENCODER,
    Frame,
    NatsStats,
    PayloadTooLarge,
    TransportUnavailable,
    _redact,
)

if TYPE_CHECKING:
    from .._core import Core
    from .._subscription import Subscription

# A subject a reply can be sent to: no whitespace or control characters (the PUB line).
_REPLY_SUBJECT = re.compile(r"[^\s\x00-\x1f\x7f]+")

log = logging.getLogger("hivebus.bus.nats")


def _no_reply_subject(env: Envelope) -> bool:
    """Whether ``env`` asks for its reply at no subject at all (a foreign or broken peer's
    request): the server would drop the connection over that PUB, so it is logged and
    never sent."""
    if _REPLY_SUBJECT.fullmatch(env.reply_to or ""):
        return False
    log.warning("a request on %s asks for its reply at %r: not answered", env.subject, env.reply_to)
    return True


LOCAL_PREFIX = "_bus."  # subjects that never leave the process
OUTBOX_HIGH = 8192  # commands queued for the server before publishers wait ...
OUTBOX_LOW = 4096  # ... until the writer has brought them down to this
CLOSE_GRACE = 5.0  # seconds closing waits for the writer, then for the client


class NatsBridge(ReplyReader):
    """Mirrors one bus's subscriptions on a NATS connection and carries its messages.

    Commands (subscribe, unsubscribe, publish) go through one outbox in call order, so a
    subscription made before a publish is on the server before that publish is.
    """

    def __init__(
        self,
        core: Core,
        url: str,
        *,
        connect_timeout: float = 5.0,
        reconnect_wait: float = 0.5,
        pending_msgs_limit: int = 65_536,
        outage_timeout: float = 30.0,
    ) -> None:
        self._core = core
        self.url = url
        self.servers = [part.strip() for part in url.split(",") if part.strip()]
        self.connect_timeout = connect_timeout
        self.reconnect_wait = reconnect_wait
        self.pending_msgs_limit = pending_msgs_limit
        self._nc: Any = None
        self._max_payload = 1024 * 1024
        self._outbox: deque[tuple[str, Any]] = deque()
        self._wake: asyncio.Event | None = None
        self._emptied: asyncio.Event | None = None  # set by the writer when it has sent all
        self._writer: asyncio.Task[None] | None = None
        self._subs: dict[Subscription, Any] = {}  # ours -> nats-py's
        self._decoders: dict[type, msgspec.msgpack.Decoder[Any]] = {}
        self._reply_types: dict[str, type] = {}  # correlation id -> the reply's type
        self._untyped: set[str] = set()  # requests received on topics with no reply type
        self._markers: dict[str, asyncio.Future[None]] = {}  # flush markers on their way
        self._flushes = 0
        self._sent = self._received = self._disconnects = self._reconnects = 0
        self._slow = self._errors = self._too_large = 0
        self._admitting = 0  # arrivals waiting for room in a full buffer (not yet in the bus)
        self._direct: DirectPublisher | None = None  # PUBs without the writer, when it may
        self._connected = False
        self._closing = False
        self.commands = 0  # every command ever queued (drain compares it across a flush)
        self._durable = Durable(self)
        self.receiving = True  # until stop_receiving()
        self.outage_timeout = outage_timeout
        self._up = asyncio.Event()  # connected
        self._room = asyncio.Event()  # the outbox is below its low-water mark
        self._room.set()
        self._waited = 0

    def __repr__(self) -> str:
        return f"NatsBridge({_redact(self.url)!r}, connected={self._connected})"

    @staticmethod
    def carries(subject: str) -> bool:
        """Whether messages on ``subject`` go through the server."""
        return not subject.startswith(LOCAL_PREFIX)

    # -- connection --------------------------------------------------------------------------

    async def start(self) -> None:
        """Connect (bounded by ``connect_timeout``: a server that is down fails fast with
        :class:`TransportUnavailable`), then subscribe this bus's inbox."""
        try:
            import nats
        except ImportError as exc:  # the optional extra is missing
            raise TransportUnavailable(
                "the NATS transport needs nats-py: pip install 'hivebus[nats]'"
            ) from exc
        where = _redact(self.url)
        try:
            # A server that is down is found out at once: nats-py would otherwise keep
            # retrying (it has one retry policy for the first connect and later outages).
            await self._probe()
            with anyio.fail_after(self.connect_timeout):
                self._nc = await nats.connect(
                    servers=self.servers,
                    name=self._core.name,
                    connect_timeout=self.connect_timeout,
                    allow_reconnect=True,
                    max_reconnect_attempts=-1,  # once up, an outage is waited out
                    reconnect_time_wait=self.reconnect_wait,
                    skip_subject_validation=True,  # (the bus validates every subject itself)
                    flush_timeout=self.connect_timeout,  # (a frozen server: no endless wait)
                    error_cb=self._on_error,
                    disconnected_cb=self._on_disconnected,
                    reconnected_cb=self._on_reconnected,
                )
        except (TimeoutError, OSError, nats.errors.Error) as exc:
            raise TransportUnavailable(
                f"cannot connect to NATS at {where} within {self.connect_timeout:g}s: "
                f"{type(exc).__name__}: {exc}"
            ) from None
        self._connected = True
        self._up.set()
        self._max_payload = self._nc.max_payload
        self._wake = asyncio.Event()
        self._emptied = asyncio.Event()
        loop = asyncio.get_running_loop()
        self._writer = loop.create_task(self._write())
        if DirectPublisher.fits(self._nc):
            self._direct = DirectPublisher(self._nc, loop)
        await self._nc.subscribe(
            f"{self._core._inbox}.>",
            cb=self._on_reply,
            pending_msgs_limit=self.pending_msgs_limit,
        )
        log.debug("bus %r connected to NATS at %s", self._core.name, where)

    async def _probe(self) -> None:
        """Raise unless one of the servers (``url`` may list several, comma-separated)
        accepts a TCP connection."""
        failure: Exception | None = None
        for url in self.servers:
            parsed = urllib.parse.urlsplit(url)
            host, port = parsed.hostname or "127.0.0.1", parsed.port or 4222
            try:
                with anyio.fail_after(self.connect_timeout):
                    stream = await anyio.connect_tcp(host, port)
            except (OSError, TimeoutError) as exc:
                failure = exc
                continue
            await stream.aclose()
            return
        assert failure is not None
        raise failure

    async def flush(self, timeout: float) -> None:
        """Wait until the server has processed every command so far, and delivered to us
        what they sent us: a marker published to our own inbox comes back after them.
        (Not nats-py's flush(): its PING overtakes publishes not yet written, and a flush
        cancelled while waiting for its PONG stops the client's read loop for good.)"""
        if self._nc is None:
            return
        if not self._connected:  # an outage: wait for it to end (bounded), not spin
            with anyio.fail_after(timeout):
                await self._up.wait()
        with self._marker() as (token, waiter):
            self._outbox.append(("mark", token))  # (not counted as a command)
            assert self._wake is not None
            self._wake.set()
            with anyio.fail_after(timeout):
                await waiter

    @contextlib.contextmanager
    def _marker(self) -> Iterator[tuple[str, asyncio.Future[None]]]:
        """A subject of our inbox, and the future set when a message to it comes back."""
        self._flushes += 1
        token = f"{self._core._inbox}.f{self._flushes}"
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._markers[token] = waiter
        try:
            yield token, waiter
        finally:
            self._markers.pop(token, None)

    def full(self) -> bool:
        """Publishers should wait: the outbox or nats-py's buffer is past its mark."""
        direct = self._direct
        return len(self._outbox) >= OUTBOX_HIGH or (direct is not None and direct.over())

    async def room(self) -> None:
        """Wait until the outbox is below its low-water mark and nats-py has written what
        it holds past its limit; :class:`TransportUnavailable` after ``outage_timeout``
        seconds (the messages already queued stay queued)."""
        self._waited += 1
        try:
            with anyio.fail_after(self.outage_timeout):
                if self._direct is not None and self._direct.over():
                    await self._direct.flushed()
                if len(self._outbox) >= OUTBOX_HIGH:
                    self._room.clear()
                    await self._room.wait()
        except TimeoutError:
            raise TransportUnavailable(
                f"NATS at {_redact(self.url)}: {len(self._outbox):,} messages have waited "
                f"{self.outage_timeout:g}s to be sent ("
                + ("connected" if self._connected else "disconnected")
                + "); they, this one included, are sent once the server takes them"
            ) from None

    def idle(self) -> bool:
        """Nothing waiting to be sent, nor received and not yet admitted."""
        if self._outbox or self._admitting:
            return False
        return not any(s.pending_msgs for s in self._subs.values())

    async def close(self) -> None:
        self._durable.stop()
        for message in self._durable.held.values():  # taken, never handled: given back
            self._command("nak", message)
        self._durable.held.clear()
        writer, self._writer = self._writer, None
        if writer is not None:
            with anyio.move_on_after(2):
                await self.flush(2)
            if self._outbox:  # (a server gone for good: said, not silently dropped)
                log.error(
                    "bus %r closed with %d commands never sent to NATS at %s",
                    self._core.name,
                    len(self._outbox),
                    _redact(self.url),
                )
            writer.cancel()
            await asyncio.wait([writer], timeout=CLOSE_GRACE)  # (nats-py may hold on)
        nc, self._nc = self._nc, None
        self._closing = True  # (the client reports its own close as a disconnection)
        if nc is not None:
            with anyio.move_on_after(CLOSE_GRACE, shield=True):
                await nc.close()
        self._connected = False

    async def _on_error(self, exc: Exception) -> None:
        import nats

        if isinstance(exc, nats.errors.SlowConsumerError):
            self._slow += 1  # (one call per message dropped)
            return
        self._errors += 1
        log.warning("NATS (%s): %s: %s", _redact(self.url), type(exc).__name__, exc)

    async def _on_disconnected(self) -> None:
        if self._closing:
            return
        if self._connected:
            self._disconnects += 1
        self._connected = False
        self._up.clear()
        log.warning("bus %r lost its NATS connection; reconnecting", self._core.name)

    async def _on_reconnected(self) -> None:
        self._reconnects += 1
        if self._nc is not None:  # (another server of a cluster may take less)
            self._max_payload = self._nc.max_payload
        self._connected = True
        self._up.set()
        log.warning("bus %r reconnected to NATS", self._core.name)

    def stats(self) -> NatsStats:
        return NatsStats(
            url=_redact(self.url),
            connected=self._connected,
            sent=self._sent,
            received=self._received,
            outbox=len(self._outbox),
            disconnects=self._disconnects,
            reconnects=self._reconnects,
            slow_consumer_drops=self._slow,
            errors=self._errors,
            refused_too_large=self._too_large,
            waited_for_room=self._waited,
            redelivered=self._durable.redelivered,
            given_up=self._durable.given_up,
        )

    # -- outbound ----------------------------------------------------------------------------

    def _command(self, kind: str, arg: Any) -> None:
        self.commands += 1
        direct = self._direct  # nothing queued before it: handed to nats-py at once
        if kind == "pub" and direct and not self._outbox and self._connected and direct(*arg):
            self._sent += 1
            return
        self._outbox.append((kind, arg))
        if self._wake is not None:
            self._wake.set()

    async def _write(self) -> None:
        """Carry out the outbox's commands in order (nats-py's calls are coroutines)."""
        assert self._wake is not None
        nc = self._nc
        outbox = self._outbox
        emptied = self._emptied
        assert emptied is not None
        retries = 0
        while True:
            while not outbox:
                emptied.set()
                self._wake.clear()
                await self._wake.wait()
            if not self._connected:  # an outage: commands wait here, in order, not lost
                await self._up.wait()
            kind, arg = outbox[0]
            try:
                if kind == "pub":
                    subject, reply, data = arg
                    await nc.publish(subject, data, reply=reply)
                    self._sent += 1
                elif kind == "mark":
                    await nc.publish(arg, b"")
                elif kind == "sub":
                    await self._subscribe_now(arg)
                elif kind == "ack":
                    await arg.ack()
                elif kind == "nak":  # (not to a fetch the closing bus left on the server)
                    await arg.nak(delay=FETCH_EXPIRY)
                elif kind == "progress":
                    await arg.in_progress()
                elif kind == "jspub":
                    await self._durable.publish(*arg)
                    self._sent += 1
                elif kind == "jsub":
                    if not arg._closed and self.receiving:
                        await self._durable.consume(arg)
                else:  # unsub (a pull subscription's pending fetches end with it)
                    core_handle = self._subs.get(arg)
                    if core_handle is not None and not self.receiving:
                        await self._leave(core_handle)  # what the server sent us: kept
                    elif core_handle is not None:
                        await core_handle.unsubscribe()
                    self._subs.pop(arg, None)  # (after: idle() counts what it still holds)
                    pull = self._durable.consumers.pop(arg, None)
                    if pull is not None:
                        await pull.unsubscribe()
            except Exception as exc:  # noqa: BLE001 - counted and logged; the writer goes on
                if not self._connected and not self._closing:
                    continue  # the connection dropped under it: again once it is back
                if kind == "jspub" and retries * 0.5 < self.outage_timeout and not permanent(exc):
                    retries += 1  # (the id dedupes a stored retry)
                    await asyncio.sleep(0.5)
                    continue
                if kind == "jspub":  # a durable message not stored: said loudly
                    log.error("durable publish to %s not stored: %s", arg[0], exc)
                self._errors += 1
                log.warning("NATS %s failed: %s: %s", kind, type(exc).__name__, exc)
            outbox.popleft()
            retries = 0
            if len(outbox) < OUTBOX_LOW and not self._room.is_set():
                self._room.set()

    def send(
        self,
        env: Envelope,
        reply_type: type | None = None,
        error: bool = False,
        durable: Durability | None = None,
    ) -> None:
        """Encode ``env`` and queue it for the server; raises :class:`PayloadTooLarge` at
        once (nothing is sent) when the server would refuse it."""
        data = self._encode(
            env.subject,
            Frame(
                id=env.id,
                sender=env.sender,
                timestamp=env.timestamp,
                causation_id=env.causation_id,
                correlation_id=env.correlation_id,
                kind=type(env.payload).__qualname__,
                error=error,
                headers=dict(env.headers) if env.headers else None,
                payload=env.payload,
                reply_to=env.reply_to,
                untyped=env.reply_to is not None and reply_type is None and not error,
            ),
        )
        if reply_type is not None and env.correlation_id is not None:
            self._reply_types[env.correlation_id] = reply_type
        if durable is not None:
            self._command("jspub", (env.subject, durable, data, env.id))
        else:
            self._command("pub", (env.subject, env.reply_to or "", data))

    def _encode(self, subject: str, frame: Frame[Any]) -> bytes:
        data = _ENCODER.encode(frame)
        if len(data) > self._max_payload:
            self._too_large += 1
            raise PayloadTooLarge(subject, len(data), self._max_payload)
        return data

    def publish(
        self,
        route: Route,
        subject: str,
        message: Any,
        sender: str,
        causation_id: str | None,
        headers: Mapping[str, str] | None,
        durable: Durability | None = None,
    ) -> None:
        """A publish through the server: subscribers here get it back from there."""
        core = self._core
        env_id = f"{core._id_prefix}{next(core._id_counter)}"
        timestamp = time.time()
        kind = type(message).__qualname__
        extra = dict(headers) if headers else None
        # (positional: the fields in order; the hot path of a publish over NATS)
        frame = Frame(env_id, sender, timestamp, causation_id, None, kind, False, extra, message)
        data = self._encode(subject, frame)  # (refused before anything is counted)
        if durable is not None:
            self._command("jspub", (subject, durable, data, env_id))
        else:
            self._command("pub", (subject, "", data))
        route.counter.published += 1
        if route.taps:  # (the envelope is built only for them)
            env = Envelope(
                id=env_id,
                subject=subject,
                payload=message,
                sender=sender,
                timestamp=timestamp,
                causation_id=causation_id,
                headers=headers,
            )
            core._run_taps(route.taps, env)

    def reply(
        self, env: Envelope, result: Any, error: BaseException | None, sub: Subscription
    ) -> None:
        """Answer a request from another process. A subscriber with no reply type only
        watches: it does not answer."""
        untyped = self._untyped
        if sub.topic.reply is None and error is None and env.correlation_id not in untyped:
            return  # (a watcher's return value is no answer to a typed request)
        untyped.discard(env.correlation_id)
        self._core._replies += 1
        if error is None:
            self.send_reply(env, result, sub.name, error=False)
        else:
            self.send_reply(env, error_reply(error), sub.name, error=True)

    def forget(self, correlation_id: str) -> None:
        """The request is over (answered, timed out, given up)."""
        self._reply_types.pop(correlation_id, None)

    def send_reply(self, env: Envelope, payload: Any, sender: str, error: bool) -> None:
        """Answer a request that came from another process."""
        if _no_reply_subject(env):
            self._errors += 1
            return
        reply = Envelope(
            id=f"{self._core._id_prefix}{next(self._core._id_counter)}",
            subject=env.reply_to or "",
            payload=payload,
            sender=sender,
            timestamp=time.time(),
            correlation_id=env.correlation_id,
            causation_id=env.id,
        )
        try:
            self.send(reply, error=error)
        except PayloadTooLarge as exc:  # the requester hears why rather than waiting
            message = ErrorReply(remote_type="PayloadTooLarge", message=str(exc))
            self.send_reply(env, message, sender, error=True)

    # -- inbound -----------------------------------------------------------------------------

    def subscribe(self, sub: Subscription) -> None:
        if not self.carries(sub.topic.subject):
            return
        if sub.topic.durable is not None:
            self._durable.wrap(sub)  # (now: before its workers read the handler)
            self._command("jsub", sub)
        else:
            self._command("sub", sub)

    def unsubscribe(self, sub: Subscription) -> None:
        puller = self._durable.pullers.pop(sub, None)
        if puller is not None:
            puller.cancel()
            for env in sub._buffer:  # taken but never to be handled here: given back
                message = self._durable.held.pop((sub, env.id), None)
                if message is not None:
                    self._command("nak", message)
        self._command("unsub", sub)

    def skipped(self, sub: Subscription, env: Envelope) -> None:
        """``sub`` dropped ``env`` unhandled because its requester gave up: a durable
        copy is acknowledged (nobody waits for it), not held until the bus closes."""
        message = self._durable.held.pop((sub, env.id), None)
        if message is not None:
            self._command("ack", message)

    def unsubscribe_all(self) -> None:
        """Leave the server's subscriptions, in order after what was sent before."""
        self.receiving = False
        for sub in [*self._subs, *self._durable.pullers]:
            self.unsubscribe(sub)

    async def _subscribe_now(self, sub: Subscription) -> None:
        if sub._closed or not self.receiving:
            return
        self._subs[sub] = await self._nc.subscribe(
            sub.topic.subject,
            queue=sub.queue or "",
            cb=self._admitter(sub),
            pending_msgs_limit=self.pending_msgs_limit,
        )

    async def _leave(self, handle: Any) -> None:
        """Unsubscribe without losing what the server routed to us before it took note:
        UNSUB, then a marker through our inbox in order after it (nats-py's own drain()
        flushes with a PING that can overtake its UNSUB), then let the client hand over
        what it holds (drain: that UNSUB again is a no-op)."""
        nc = self._nc
        await nc._send_unsubscribe(handle._id)
        with self._marker() as (token, waiter):
            await nc.publish(token, b"")
            with anyio.move_on_after(self.connect_timeout):
                await waiter
        await handle.drain()
