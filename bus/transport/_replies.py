"""The inbox side of the NATS bridge: replies to this process's requests (and the server's
no-responders status), flush markers coming back; and the decoding both sides share."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import msgspec

from .._message import Envelope
from .._request import PendingRequest, error_reply
from .._routing import Route
from .._stats import DeadLetterReason
from ..errors import BufferFull, BusClosed, NoResponders, RemoteError
from ._wire import _ERROR_DECODER, _NO_RESPONDERS, _PAYLOAD_ANY, _RAW_DECODER, _STATUS, Frame

if TYPE_CHECKING:
    from .._core import Core
    from .._subscription import Subscription
    from ._durable import Durable

log = logging.getLogger("hivebus.bus.nats")


class ReplyReader:
    """Mixed into :class:`~bus.transport.nats.NatsBridge`: what arrives from the server."""

    _core: Core
    _decoders: dict[type, msgspec.msgpack.Decoder[Any]]
    _reply_types: dict[str, type]  # correlation id -> the reply's type
    _markers: dict[str, asyncio.Future[None]]  # flush markers on their way
    _received: int
    _admitting: int
    _errors: int
    _untyped: set[str]

    def _command(self, kind: str, arg: Any) -> None:
        raise NotImplementedError

    def send_reply(self, env: Envelope, payload: Any, sender: str, error: bool) -> None:
        raise NotImplementedError

    def _decoder(self, kind: type) -> msgspec.msgpack.Decoder[Any]:
        decoder = self._decoders.get(kind)
        if decoder is None:
            decoder = self._decoders[kind] = msgspec.msgpack.Decoder(Frame[kind])  # type: ignore[valid-type]
        return decoder

    @staticmethod
    def _envelope(msg: Any, frame: Frame[Any], payload: Any) -> Envelope:
        return Envelope(
            id=frame.id,
            subject=msg.subject,
            payload=payload,
            sender=frame.sender,
            timestamp=frame.timestamp,
            correlation_id=frame.correlation_id,
            causation_id=frame.causation_id,
            reply_to=frame.reply_to,  # (in the frame: JetStream's reply is its ack subject)
            headers=frame.headers,
        )

    def _tap_reply(self, msg: Any, frame: Frame[Any], result: Any) -> None:
        """Taps on our inbox see replies from other processes as they see local ones."""
        core = self._core
        route = core._routes.get(core._inbox) or core._router.route(core._inbox)
        if route.taps:
            core._run_taps(route.taps, self._envelope(msg, frame, result))

    async def _on_reply(self, msg: Any) -> None:
        """A reply (or the server's no-responders status) to one of our requests, or one
        of our flush markers coming back."""
        marker = self._markers.pop(msg.subject, None)
        if marker is not None:
            if not marker.done():
                marker.set_result(None)
            return
        correlation_id = msg.subject.rsplit(".", 1)[-1]
        pending: PendingRequest | None = self._core._requests.get(correlation_id)
        reply_type = self._reply_types.pop(correlation_id, None)
        if pending is None or pending.settled():
            self._core._late_replies += 1
            return
        future = pending.result_future()
        if msg.headers and msg.headers.get(_STATUS) == _NO_RESPONDERS:
            self._core._no_responders += 1
            future.set_exception(NoResponders(pending.subject))
            return
        self._received += 1
        try:
            frame = _RAW_DECODER.decode(msg.data)
            if frame.error:
                error = _ERROR_DECODER.decode(frame.payload)
                future.set_exception(
                    RemoteError(
                        pending.subject,
                        error.remote_type,
                        error.message,
                        error.traceback,
                        error.details,
                    )
                )
                return
            if reply_type is None:
                result = _PAYLOAD_ANY.decode(frame.payload)
            else:
                result = self._decoder(reply_type).decode(msg.data).payload
        except (msgspec.DecodeError, msgspec.ValidationError) as exc:
            future.set_exception(
                RemoteError(pending.subject, "DecodeError", f"undecodable reply: {exc}", "", None)
            )
            return
        self._core._replies += 1
        self._tap_reply(msg, frame, result)
        future.set_result(result)

    def _admitter(self, sub: Subscription, durable: Durable | None = None) -> Callable[[Any], Any]:
        core = self._core
        decoder = self._decoder(sub.topic.type)
        counter = core._router._counter(sub.topic.subject)
        route = Route((sub,), (), (), counter)  # where what arrives for ``sub`` goes

        async def admit(msg: Any) -> None:
            self._received += 1
            try:
                frame = decoder.decode(msg.data)
            except (msgspec.DecodeError, msgspec.ValidationError):
                self._refuse(sub, counter, msg)  # another type on a subject we match
                if durable is not None:
                    self._command("ack", msg)  # (dead-lettered: not to come back forever)
                return
            env = self._envelope(msg, frame, frame.payload)
            if frame.untyped and env.correlation_id is not None:
                if len(self._untyped) > 65_536:  # (requests never answered: bounded)
                    self._untyped.clear()
                self._untyped.add(env.correlation_id)
            if sub._closed:  # unsubscribed while this was on its way
                if durable is not None:  # (another member takes it)
                    self._command("nak", msg)  # (another member takes it)
                    return
                self._drop(sub, counter, env, "unsubscribed")
                return
            if durable is not None:
                key = (sub, env.id)
                if key in durable.held:  # delivered again while still ours: one handler
                    durable.held[key] = msg  # (its ack, of the newest delivery, covers it)
                    return
                durable.held[key] = msg  # acknowledged when its handler is done
                if sub._handler is None:  # a stream takes messages as they come: acked now
                    self._command("ack", durable.held.pop(key))
            buffer = sub._buffer
            size = len(buffer)
            if size < sub.maxsize:  # room: core._enqueue()'s common case, inlined
                counter.fanout += 1
                buffer.append(env)
                sub.received += 1
                core._in_flight += 1
                if size >= sub.max_pending:
                    sub.max_pending = size + 1
                if sub._waiters:
                    sub._wake_worker()
                elif sub.workers < sub.max_workers:
                    core._add_worker(sub)
                blocked = None
                appended = 1
            else:
                blocked = core._enqueue(route, env, published=False)
                appended = core._appended
            if env.reply_to is not None:
                pending = core._requests.get(env.correlation_id or "")
                if pending is not None:
                    pending.queued += appended
            else:
                pending = None
            if blocked is not None:  # block: this subscription's NATS queue waits too
                self._admitting += 1  # (taken from nats-py, not yet in the bus: not idle)
                try:  # (error policy: counted and dead-lettered; or the bus is closing)
                    with contextlib.suppress(BufferFull, BusClosed):
                        await core._overflow(blocked, pending)
                finally:
                    self._admitting -= 1

        return admit

    def _drop(
        self, sub: Subscription, counter: Any, env: Envelope, reason: DeadLetterReason
    ) -> None:
        """A delivery that arrived but is not handed over: counted and dead-lettered."""
        counter.fanout += 1
        sub.received += 1
        sub.dropped += 1
        self._core._dead_letter(sub, env, reason)

    def _refuse(self, sub: Subscription, counter: Any, msg: Any) -> None:
        """A message that does not decode as the subscription's type (as locally: never
        handed over, dead-lettered, and a request answered with a TypeError)."""
        try:
            frame = _RAW_DECODER.decode(msg.data)
        except (msgspec.DecodeError, msgspec.ValidationError):
            self._errors += 1  # not a hivebus frame at all: nothing to answer or keep
            log.warning("a message on %s is not a hivebus frame; dropped", msg.subject)
            return
        try:
            payload = _PAYLOAD_ANY.decode(frame.payload)
        except msgspec.DecodeError:
            payload = bytes(frame.payload)
        env = self._envelope(msg, frame, payload)
        got = frame.kind
        if env.reply_to is not None:
            error = TypeError(
                f"subscription {sub.name!r} takes {sub.topic.type.__qualname__}, got {got}"
            )
            self.send_reply(env, error_reply(error), sub.name, error=True)
        self._drop(sub, counter, env, "wrong_type")
