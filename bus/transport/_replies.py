"""The inbox side of the NATS bridge: replies to this process's requests (and the server's
no-responders status), flush markers coming back; and the decoding both sides share."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

import msgspec

from .._message import Envelope
from .._request import PendingRequest
from ..errors import NoResponders, RemoteError
from ._wire import _ERROR_DECODER, _NO_RESPONDERS, _PAYLOAD_ANY, _RAW_DECODER, _STATUS, Frame

if TYPE_CHECKING:
    from .._core import Core


class ReplyReader:
    """Mixed into :class:`~bus.transport.nats.NatsBridge`."""

    _core: Core
    _decoders: dict[type, msgspec.msgpack.Decoder[Any]]
    _reply_types: dict[str, type]  # correlation id -> the reply's type
    _markers: dict[str, asyncio.Future[None]]  # flush markers on their way
    _received: int

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
        if pending is None or pending.future.done():
            self._core._late_replies += 1
            return
        if msg.headers and msg.headers.get(_STATUS) == _NO_RESPONDERS:
            self._core._no_responders += 1
            pending.future.set_exception(NoResponders(pending.subject))
            return
        self._received += 1
        try:
            frame = _RAW_DECODER.decode(msg.data)
            if frame.error:
                error = _ERROR_DECODER.decode(frame.payload)
                pending.future.set_exception(
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
            pending.future.set_exception(
                RemoteError(pending.subject, "DecodeError", f"undecodable reply: {exc}", "", None)
            )
            return
        self._core._replies += 1
        self._tap_reply(msg, frame, result)
        pending.future.set_result(result)
