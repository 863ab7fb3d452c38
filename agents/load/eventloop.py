"""The process settings of a load: which event loop runs it (uvloop when it is installed,
``hivebus[fast]``, and not turned off, else asyncio's own) and the garbage collector's
thresholds while the loops run; and their names, for the report."""

from __future__ import annotations

import asyncio
import gc
import importlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager


def loop_factory(use_uvloop: bool = True) -> Callable[[], asyncio.AbstractEventLoop] | None:
    """uvloop's ``new_event_loop`` if wanted and installed, else None (asyncio's default)."""
    if not use_uvloop:
        return None
    try:
        uvloop = importlib.import_module("uvloop")
    except ImportError:
        return None
    factory: Callable[[], asyncio.AbstractEventLoop] = uvloop.new_event_loop
    return factory


def running_loop_name() -> str:
    """``"uvloop"`` or ``"asyncio"``: the kind of loop running this coroutine."""
    module = type(asyncio.get_running_loop()).__module__
    return "uvloop" if module.split(".")[0] == "uvloop" else "asyncio"


YOUNG_GC_THRESHOLD = 50_000  # allocations between young-generation collections in a load


@contextmanager
def load_gc(tuned: bool = True) -> Iterator[str]:
    """The garbage collector's settings for the loops of a load run; yields their name for
    the report.

    Thousands of requests in flight keep tens of thousands of young objects alive, and at
    CPython's default (a collection every 700 allocations) the collector then took about
    a third of the CPU of aiohttp requests at concurrency 1,000. Tuned: what the set-up
    made is frozen out of the collector (it lives for the run), and the young generation
    is collected every 50,000 allocations. Both are undone afterwards.
    """
    if not tuned:
        yield "default gc"
        return
    threshold = gc.get_threshold()
    gc.collect()
    gc.freeze()
    gc.set_threshold(YOUNG_GC_THRESHOLD, *threshold[1:])
    try:
        yield f"gc every {YOUNG_GC_THRESHOLD:,} allocations"
    finally:
        gc.set_threshold(*threshold)
        gc.unfreeze()
