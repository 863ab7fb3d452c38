"""``hivebus worker``: host actors in a process of their own, on a NATS bus.

    hivebus worker --transport nats://127.0.0.1:4222 agents.workers:gateway myapp:tools

Each ``MODULE:FACTORY`` is called with the bus and may return

- actors (one, or an iterable of them): they are added to the bus;
- an async context manager: entered for the worker's life (it adds what it serves, and
  stops it on exit — :func:`agents.workers.gateway` is one);
- an awaitable: awaited once (it adds what it serves itself).

The worker runs until SIGTERM or SIGINT, then drains: it leaves its NATS subscriptions
first (so queue-group peers take new work), finishes what it holds within
``--drain-timeout`` seconds, stops its actors and exits 0.
"""

from __future__ import annotations

import asyncio
import importlib
import inspect
import logging
import os
import signal
import sys
from collections.abc import Callable, Iterable, Iterator
from contextlib import AsyncExitStack, contextmanager
from typing import Any

from bus import Actor, Bus, HivebusError
from bus.transport import is_nats_url
from bus.transport._wire import _redact

log = logging.getLogger("hivebus.worker")


class WorkerError(HivebusError):
    """A worker cannot start: a factory that does not load, or returns nothing servable."""


def load_factory(spec: str) -> Callable[[Bus], Any]:
    """``"package.module:name"`` → the callable it names (a clear error when it does not)."""
    module_name, sep, attribute = spec.partition(":")
    if not sep or not module_name or not attribute:
        raise WorkerError(f"{spec!r}: expected MODULE:FACTORY, e.g. agents.workers:gateway")
    if os.getcwd() not in sys.path:  # (a console script's path lacks it; uvicorn does so)
        sys.path.insert(0, os.getcwd())
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise WorkerError(f"{spec!r}: cannot import {module_name!r}: {exc}") from None
    factory: Any = module
    for part in attribute.split("."):
        factory = getattr(factory, part, None)
        if factory is None:
            raise WorkerError(f"{spec!r}: module {module_name!r} has no {attribute!r}")
    if not callable(factory):
        raise WorkerError(f"{spec!r}: {attribute!r} is not callable")
    return factory  # type: ignore[no-any-return]


async def serve(bus: Bus, spec: str, stack: AsyncExitStack) -> list[str]:
    """Call the factory ``spec`` names with ``bus`` and start what it gives; the names of
    the actors it added."""
    factory = load_factory(spec)
    before = {actor.name for actor in bus.actors}
    try:
        made = factory(bus)
    except Exception as exc:
        raise WorkerError(f"{spec!r} failed: {type(exc).__name__}: {exc}") from exc
    if hasattr(made, "__aenter__"):
        await stack.enter_async_context(made)
    elif inspect.isawaitable(made):
        await made
    else:
        actors = [made] if isinstance(made, Actor) else list(_actors(spec, made))
        for actor in actors:
            try:
                await bus.add(actor)
            except (TypeError, ValueError, RuntimeError) as exc:  # a bad actor: said plainly
                raise WorkerError(f"{spec!r}: cannot serve {actor.name!r}: {exc}") from None
    added = [actor.name for actor in bus.actors if actor.name not in before]
    if not added:
        raise WorkerError(f"{spec!r} put nothing on the bus: return actors, or add them")
    return added


def _actors(spec: str, made: Any) -> Iterable[Actor]:
    if not isinstance(made, Iterable):
        raise WorkerError(f"{spec!r} returned {type(made).__name__}, not actors")
    for each in made:
        if not isinstance(each, Actor):
            raise WorkerError(f"{spec!r} returned {type(each).__name__} among its actors")
        yield each


@contextmanager
def _stopping() -> Iterator[asyncio.Event]:
    """An event set by the first SIGTERM or SIGINT (the worker then drains)."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()

    def on_signal(signum: signal.Signals) -> None:
        if not stop.is_set():
            print(f"hivebus worker: {signum.name}, draining", file=sys.stderr, flush=True)
            stop.set()
            return
        # A second signal while draining: stop now (what was held is redelivered on
        # durable topics; on the others it is lost, as the operator asked).
        print(f"hivebus worker: {signum.name} again, exiting now", file=sys.stderr, flush=True)
        os._exit(128 + signum)

    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, on_signal, signum)
    try:
        yield stop
    finally:
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(signum)


async def run_worker(
    transport: str,
    specs: list[str],
    *,
    name: str = "worker",
    drain_timeout: float = 30.0,
    ready: Callable[[list[str]], None] | None = None,
) -> int:
    """Serve ``specs`` on the bus at ``transport`` until a signal; 0 after a clean drain."""
    if not is_nats_url(transport):
        raise WorkerError(
            "a worker serves a shared bus: --transport must be a NATS URL, got "
            f"{_redact(transport)!r}"
        )
    with _stopping() as stop:
        return await _serve_until(stop, transport, specs, name, drain_timeout, ready)


async def _serve_until(
    stop: asyncio.Event,
    transport: str,
    specs: list[str],
    name: str,
    drain_timeout: float,
    ready: Callable[[list[str]], None] | None,
) -> int:
    drained = True
    async with (
        Bus(name, transport=transport, close_timeout=drain_timeout) as bus,
        AsyncExitStack() as stack,  # (exits first: actors stop before the bus closes)
    ):
        served = [name for spec in specs for name in await serve(bus, spec, stack)]
        await bus.drain(10)  # our subscriptions are on the server: we take work now
        (ready or _announce)(served)
        await stop.wait()
        bus.stop_receiving()  # queue-group peers take what comes next
        try:
            await bus.drain(drain_timeout)  # what we hold, finished (actors still up)
        except HivebusError as exc:
            drained = False
            print(f"hivebus worker: stopped before draining: {exc}", file=sys.stderr)
    return 0 if drained else 1


def _announce(served: list[str]) -> None:
    print(f"hivebus worker: serving {', '.join(served)}", flush=True)
