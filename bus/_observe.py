"""Seeing every bus a program starts, from outside the program.

A runner such as ``hivebus run`` executes a script that creates its own buses; to show
a live view of them and record their traces it needs each bus the moment it starts.
:func:`observe_buses` gives it that, scoped to a context (a :class:`~contextvars.ContextVar`),
not to the process: the observer sees the buses started in the ``with`` block, by code
it calls and by the tasks and event loops (``asyncio.run``) that code starts, and no others.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ._bus import Bus

BusObserver = Callable[["Bus"], None]

_observers: ContextVar[tuple[BusObserver, ...]] = ContextVar("hivebus_bus_observers", default=())


@contextmanager
def observe_buses(callback: BusObserver) -> Iterator[None]:
    """Call ``callback(bus)`` for every :class:`Bus` started inside this block, as it starts:
    before its actors start and before any message, so a tap it adds sees the whole run.

    Observers nest; an exception in one propagates from ``async with Bus()`` (it is a bug
    of the observer, not of the bus).
    """
    token = _observers.set((*_observers.get(), callback))
    try:
        yield
    finally:
        _observers.reset(token)


def notify_started(bus: Bus) -> None:
    """Tell the observers of the current context that ``bus`` is starting."""
    for callback in _observers.get():
        callback(bus)
