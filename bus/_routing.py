"""Routing: from a concrete subject to the subscriptions, queue groups and taps it reaches.

A route is computed once per subject from the subject index and cached, so a publish is one
dict lookup however many subscriptions exist; a subscription change evicts what it may alter.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Protocol

from ._message import Envelope
from ._subjects import SubjectIndex, is_pattern

if TYPE_CHECKING:
    from ._subscription import Subscription

TapCallback = Callable[[Envelope], None]

MAX_CACHED_ROUTES = 16_384
MAX_SUBJECT_COUNTERS = 10_000
OTHER_SUBJECTS = "(other)"


class SubjectCounter:
    """Mutable per-subject counters, kept apart from routes so they survive cache evictions."""

    __slots__ = ("cursors", "fanout", "published", "unrouted")

    def __init__(self) -> None:
        self.published = 0
        self.fanout = 0
        self.unrouted = 0
        self.cursors: dict[str, list[int]] = {}  # queue group -> round-robin position


class QueueGroup:
    """Members of one queue group that match a subject: each message goes to one of them."""

    __slots__ = ("_cursor", "members", "name")

    def __init__(self, name: str, members: list[Subscription], cursor: list[int]) -> None:
        self.name = name
        self.members = members
        self._cursor = cursor  # kept by the subject's counter: survives route evictions

    def pick(self) -> Subscription:
        """Round-robin, skipping members whose buffer is full while another has room."""
        members = self.members
        count = len(members)
        cursor = self._cursor
        start = cursor[0] % count
        for offset in range(count):
            member = members[(start + offset) % count]
            if len(member._buffer) < member.maxsize:
                cursor[0] = start + offset + 1
                return member
        cursor[0] = start + 1
        return members[start]


class Route:
    """Where a message on one subject goes."""

    __slots__ = ("answers", "counter", "direct", "groups", "silent", "single", "subs", "taps")

    def __init__(
        self,
        subs: tuple[Subscription, ...],
        groups: tuple[QueueGroup, ...],
        taps: tuple[TapCallback, ...],
        counter: SubjectCounter,
    ) -> None:
        self.subs = subs
        self.groups = groups
        self.taps = taps
        self.counter = counter
        # The one plain subscriber, when there is no queue group (publish's fast path; it
        # runs the taps, if any, after the append).
        self.single = subs[0] if len(subs) == 1 and not groups else None
        self.silent = not subs and not groups and not taps  # a publish here reaches no one
        # The only handler a request here can reach, if exactly one (request's fast path).
        direct = None
        if len(subs) == 1 and not groups:
            direct = subs[0]
        elif not subs and len(groups) == 1 and len(groups[0].members) == 1:
            direct = groups[0].members[0]
        # (only a subscriber whose topic names a reply type answers a typed request)
        if direct is not None and (direct._handler is None or direct.topic.reply is None):
            direct = None
        self.direct = direct
        self.answers = any(sub.topic.reply is not None for sub in subs) or any(
            member.topic.reply is not None for group in groups for member in group.members
        )

    @property
    def has_targets(self) -> bool:
        return bool(self.subs or self.groups)


class Tap:
    """An observer of every envelope on subjects matching a pattern; it never changes delivery.

    The callback runs synchronously on publish, so it must be quick (append to a list,
    write to a buffer). ``close()`` detaches it.
    """

    __slots__ = ("_router", "callback", "pattern")

    def __init__(self, router: Router, pattern: str, callback: TapCallback) -> None:
        self._router = router
        self.pattern = pattern
        self.callback = callback

    def close(self) -> None:
        """Stop observing (idempotent)."""
        self._router.remove_tap(self)

    def __repr__(self) -> str:
        return f"Tap({self.pattern!r}, {getattr(self.callback, '__qualname__', self.callback)!r})"

    def __enter__(self) -> Tap:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


class Mirror(Protocol):
    """Told of every subscription added and removed (a transport mirrors them remotely)."""

    def subscribe(self, sub: Subscription) -> None: ...

    def unsubscribe(self, sub: Subscription) -> None: ...


class Router:
    """The subject index of subscriptions and taps, with a bounded cache of routes."""

    def __init__(self) -> None:
        self.subscriptions: SubjectIndex[Subscription] = SubjectIndex()
        self.taps: SubjectIndex[Tap] = SubjectIndex()
        self.cache: dict[str, Route] = {}
        self.counters: dict[str, SubjectCounter] = {}
        # A transport mirroring subscriptions beyond the process (the NATS bridge), if any.
        self.mirror: Mirror | None = None

    def route(self, subject: str) -> Route:
        """The route of a concrete subject (computed on a cache miss)."""
        route = self.cache.get(subject)
        if route is not None:
            return route
        subs: list[Subscription] = []
        grouped: dict[str, list[Subscription]] = {}
        for sub in self.subscriptions.match(subject):
            if sub.queue is None:
                subs.append(sub)
            else:
                grouped.setdefault(sub.queue, []).append(sub)
        counter = self._counter(subject)
        groups = tuple(
            QueueGroup(name, members, counter.cursors.setdefault(name, [0]))
            for name, members in grouped.items()
        )
        taps = tuple(tap.callback for tap in self.taps.match(subject))
        route = Route(tuple(subs), groups, taps, counter)
        if len(self.cache) >= MAX_CACHED_ROUTES:
            self.cache.clear()
        self.cache[subject] = route
        return route

    def _counter(self, subject: str) -> SubjectCounter:
        counter = self.counters.get(subject)
        if counter is None:
            if len(self.counters) >= MAX_SUBJECT_COUNTERS:
                subject = OTHER_SUBJECTS
                counter = self.counters.get(subject)
            if counter is None:
                counter = self.counters[subject] = SubjectCounter()
        return counter

    def _evict(self, pattern: str) -> None:
        # A literal pattern caches one subject. A wildcard may touch any of them: dropping the
        # whole cache is O(1) here, and each subject costs one trie walk (O(tokens)) on its
        # next publish, where scanning the cache would cost O(cached subjects) per change.
        if is_pattern(pattern):
            self.cache.clear()
        else:
            self.cache.pop(pattern, None)

    def add_subscription(self, sub: Subscription) -> None:
        self.subscriptions.add(sub.pattern, sub)
        self._evict(sub.pattern)
        if self.mirror is not None:
            self.mirror.subscribe(sub)

    def remove_subscription(self, sub: Subscription) -> None:
        try:
            self.subscriptions.remove(sub.pattern, sub)
        except (KeyError, ValueError):
            return  # never added (a stream not entered) or already removed
        self._evict(sub.pattern)
        if self.mirror is not None:
            self.mirror.unsubscribe(sub)

    def add_tap(self, pattern: str, callback: TapCallback) -> Tap:
        tap = Tap(self, pattern, callback)
        self.taps.add(pattern, tap)
        self._evict(pattern)
        return tap

    def remove_tap(self, tap: Tap) -> None:
        try:
            self.taps.remove(tap.pattern, tap)
        except (KeyError, ValueError):
            return  # already closed
        self._evict(tap.pattern)
