"""Which event loop runs a load: uvloop when it is installed (``hivebus[fast]``) and not
turned off, else asyncio's own; and which one is running, for the report."""

from __future__ import annotations

import asyncio
import importlib
from collections.abc import Callable


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
