"""Durable topics over NATS: JetStream keeps their messages until a handler is done.

- Each durable topic has a stream of its own (``HIVE_<subject>``), with the topic's
  :class:`~bus.Durability` as its retention (``max_age``, ``max_bytes``) and
  ``duplicate_window``; a publish carries its envelope id as ``Nats-Msg-Id``, so a publish
  retried after a lost acknowledgement is stored once.
- A subscription takes messages from a durable pull consumer named after its queue group
  (members share it) or, without one, after the subscription (each gets every message).
  It fetches no more than its buffer has room for.
- A message is acknowledged when its handler is done — returned, or raised (then it is
  dead-lettered and the requester told, as for any topic) — never before, and never
  "everything up to here" (AckAll loses a crashed consumer's batch). While the handler
  runs, the bridge tells the server it is in progress every third of ``ack_wait``, so a
  long LLM call is not delivered again. A process that dies holding messages never
  acknowledges them: after ``ack_wait`` they are delivered to another member. A handler
  cancelled because the bus is closing gives its message back (``nak``, redelivered after
  a second).
- The request's reply subject travels in the frame (JetStream puts its ack subject where
  a reply subject would be), so a request on a durable topic is answered as any other —
  even when no worker was up when it was sent: it waits in the stream.
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import inspect
import logging
from typing import TYPE_CHECKING, Any

import orjson

from .._message import Durability
from ..errors import DurableConflict
from ._wire import _PAYLOAD_ANY, _RAW_DECODER

if TYPE_CHECKING:
    from .._subscription import Subscription
    from .nats import NatsBridge

log = logging.getLogger("hivebus.bus.nats")

SUBJECTS_OVERLAP = 10065  # JetStream's error code: the subjects are another stream's
_REFUSED_SETTINGS = {10052}  # a stream's settings refused, though answered as a 500

# Seconds a fetch waits on the server. A message given back (nak) is redelivered no
# sooner, so that it does not go to a fetch the closing bus left pending.
FETCH_EXPIRY = 1.0


def stream_name(subject: str) -> str:
    """``agent.*.inbox`` → ``HIVE_agent_STAR_inbox_<hash>`` (stream names allow no dots;
    the hash keeps ``a.b_c`` and ``a_b.c`` apart)."""
    readable = subject.replace(".", "_").replace("*", "STAR").replace(">", "REST")
    digest = hashlib.blake2s(subject.encode(), digest_size=4).hexdigest()
    return f"HIVE_{readable}_{digest}"


def covers(pattern: str, subject: str) -> bool:
    """Whether every subject that ``subject`` (a subject or a pattern) stands for matches
    ``pattern``: ``ov.*`` covers ``ov.a`` and ``ov.*``, not ``ov.>`` nor ``ov.a.b``."""
    wide, narrow = pattern.split("."), subject.split(".")
    for i, token in enumerate(wide):
        if token == ">":
            return len(narrow) > i
        if i >= len(narrow) or narrow[i] == ">" or token not in ("*", narrow[i]):
            return False
    return len(wide) == len(narrow)


def permanent(exc: BaseException) -> bool:
    """A durable publish's failure that retrying cannot mend (the writer moves on): the
    server refused the stream's settings, not a server that is away or busy."""
    import nats.js.errors

    if isinstance(exc, DurableConflict):
        return True
    if isinstance(exc, nats.js.errors.APIError):
        return exc.code == 400 or exc.err_code in _REFUSED_SETTINGS
    return False


def consumer_name(sub: Subscription, process: str) -> str:
    """A queue group's consumer is shared by its members everywhere; a plain
    subscription's is its own (``process``: this bus's unique id prefix)."""
    name = f"q_{sub.queue}" if sub.queue else f"s_{process}{sub.name}"
    return "".join(c if c.isalnum() or c in "-_" else "_" for c in name)


class Durable:
    """The JetStream side of one bridge."""

    def __init__(self, bridge: NatsBridge) -> None:
        self.bridge = bridge
        self.js: Any = None
        self.streams: set[str] = set()
        self.kept_in: dict[str, str] = {}  # subject -> a wider topic's stream keeping it
        # (subscription, envelope id) -> the JetStream message, until acknowledged
        self.held: dict[tuple[Subscription, str], Any] = {}
        self.pullers: dict[Subscription, asyncio.Task[None]] = {}
        self.consumers: dict[Subscription, Any] = {}  # nats-py's pull subscriptions
        self.heartbeat: asyncio.Task[None] | None = None
        self.redelivered = 0
        self.given_up = 0
        self.beat_every = 0.0

    async def stream(self, subject: str, durability: Durability) -> str:
        """The topic's stream, made (or brought to the topic's settings) once; or the
        stream of a wider durable topic that keeps this subject already (JetStream keeps
        a subject in one stream only: it is kept there, with that stream's retention)."""
        kept = self.kept_in.get(subject)
        if kept is not None:
            return kept
        name = stream_name(subject)
        if name in self.streams:
            return name
        if self.js is None:
            self.js = self.bridge._nc.jetstream()
        settings: dict[str, Any] = {
            "name": name,
            "subjects": [subject],
            "max_age": durability.max_age,
            "max_bytes": durability.max_bytes,
            "duplicate_window": min(durability.duplicate_window, durability.max_age),
        }
        import nats.js.errors

        try:
            await self.js.add_stream(**settings)
        except nats.js.errors.BadRequestError as exc:
            if exc.err_code != SUBJECTS_OVERLAP:  # it exists with other settings: take ours
                await self.js.update_stream(**settings)
            else:
                kept = self.kept_in[subject] = await self._keeper(subject)
                return kept
        self.streams.add(name)
        return name

    def forget(self, subject: str) -> None:
        """The subject's stream is not there (deleted): made again on the next use."""
        self.streams.discard(stream_name(subject))
        self.kept_in.pop(subject, None)

    async def _keeper(self, subject: str) -> str:
        """The stream that ``subject`` overlaps, if it keeps all of it."""
        name: str = await self.js.find_stream_name_by_subject(subject)
        kept = list((await self.js.stream_info(name)).config.subjects or ())
        if not any(covers(pattern, subject) for pattern in kept):
            raise DurableConflict(subject, name, kept)
        return name

    async def publish(self, subject: str, durability: Durability, data: bytes, id: str) -> None:
        import nats.js.errors

        await self.stream(subject, durability)
        try:
            await self.js.publish(subject, data, headers={"Nats-Msg-Id": id}, timeout=5)
        except nats.js.errors.NoStreamResponseError:
            self.forget(subject)  # deleted under us: the retry makes it again
            raise

    async def consume(self, sub: Subscription) -> None:
        """Start taking the subscription's messages from its durable consumer."""
        from nats.js.api import AckPolicy, ConsumerConfig

        durability = sub.topic.durable
        assert durability is not None
        subject = sub.topic.subject
        stream = await self.stream(subject, durability)
        config = ConsumerConfig(
            ack_policy=AckPolicy.EXPLICIT,
            ack_wait=durability.ack_wait,
            max_deliver=durability.max_deliver,
            filter_subject=subject,
            # a plain subscription's consumer goes when its process has (a group's stays)
            inactive_threshold=None if sub.queue else max(3600.0, durability.ack_wait * 4),
        )
        consumer = consumer_name(sub, self.bridge._core._id_prefix)
        if stream != stream_name(subject):  # a wider topic's stream: its consumers are there
            consumer += "_" + hashlib.blake2s(subject.encode(), digest_size=4).hexdigest()
        # The server gives up on a message after max_deliver deliveries: it says so on an
        # advisory subject, and one member of the consumer dead-letters it here.
        await self.bridge._nc.subscribe(
            f"$JS.EVENT.ADVISORY.CONSUMER.MAX_DELIVERIES.{stream}.{consumer}",
            queue=consumer,
            cb=functools.partial(self._given_up, sub, stream),
        )
        puller = await self.js.pull_subscribe(
            subject, durable=consumer, stream=stream, config=config
        )
        loop = asyncio.get_running_loop()
        self.consumers[sub] = puller
        self.pullers[sub] = loop.create_task(self._pull(sub, puller))
        every = durability.ack_wait / 3
        if self.heartbeat is None or every < self.beat_every:  # the shortest ack_wait's
            if self.heartbeat is not None:
                self.heartbeat.cancel()
            self.beat_every = every
            self.heartbeat = loop.create_task(self._beat(every))

    async def _pull(self, sub: Subscription, puller: Any) -> None:
        import nats.errors

        bridge = self.bridge
        admit = bridge._admitter(sub, durable=self)
        while not sub._closed and bridge.receiving:
            # (what it can start now and as much again: a burst is shared between members,
            # not hoarded by the first to fetch)
            ahead = 2 * sub.concurrency - sub.running - len(sub._buffer)
            room = min(sub.maxsize - len(sub._buffer), ahead)
            if room <= 0 or not bridge._connected:
                await asyncio.sleep(0.005 if bridge._connected else 0.05)  # (later)
                continue
            try:
                messages = await puller.fetch(room, timeout=FETCH_EXPIRY)
            except nats.errors.TimeoutError:
                continue
            except nats.errors.Error as exc:  # an outage, say: retried
                log.debug("fetch for %s: %s", sub.name, exc)
                await asyncio.sleep(0.1)
                continue
            for message in messages:
                if message.metadata.num_delivered > 1:
                    self.redelivered += 1
                await admit(message)

    async def _given_up(self, sub: Subscription, stream: str, advisory: Any) -> None:
        """Dead-letter a message the server will not deliver again (``max_deliveries``)."""
        bridge = self.bridge
        try:
            sequence = orjson.loads(advisory.data)["stream_seq"]
            stored = await self.js.get_msg(stream, sequence)
            frame = _RAW_DECODER.decode(stored.data)
            payload = _PAYLOAD_ANY.decode(frame.payload)
        except Exception as exc:  # noqa: BLE001 - counted and logged: it cannot be kept
            bridge._errors += 1
            log.warning("a message given up on %s could not be read back: %s", stream, exc)
            return
        env = bridge._envelope(stored, frame, payload)
        self.given_up += 1
        bridge._core._dead_letter(sub, env, "max_deliveries")

    async def _beat(self, every: float) -> None:
        """Tell the server the held messages are still being worked on."""
        while True:
            await asyncio.sleep(every)
            for message in list(self.held.values()):
                self.bridge._command("progress", message)

    def wrap(self, sub: Subscription) -> None:
        """Acknowledge each message once its handler is done (see the module's text)."""
        handler = sub._handler
        if handler is None:  # a stream: acknowledged as it is taken
            return
        wants_ctx = sub._wants_ctx
        held = self.held
        bridge = self.bridge

        async def acked(payload: Any, ctx: Any) -> Any:
            verdict = "ack"
            try:
                result = handler(payload, ctx) if wants_ctx else handler(payload)
                if inspect.isawaitable(result):
                    result = await result
                return result
            except asyncio.CancelledError:
                if not bridge._core._accepting:  # the bus is closing: another takes it now
                    verdict = "nak"
                raise
            finally:  # (the newest delivery: one that came again meanwhile is folded in)
                message = held.pop((ctx.subscription, ctx.envelope.id), None)
                if message is not None:
                    bridge._command(verdict, message)

        sub._handler = acked
        sub._wants_ctx = True
        sub._is_async = True

    def stop(self) -> None:
        for task in [*self.pullers.values(), self.heartbeat]:
            if task is not None:
                task.cancel()
        self.pullers.clear()
        self.heartbeat = None
