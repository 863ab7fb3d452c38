"""The monitor from the command line: ``hivebus monitor TRACE``, and ``--monitor`` on
``hivebus run`` and ``hivebus load``.

A run's buses live on event loops the script makes (``asyncio.run`` in a plain program), so
the live monitor of a run is served from a thread of its own with its own loop: it sees
every bus the run starts (:func:`bus.observe_buses`), and it keeps serving between the
script's loops and after the run, until it is closed.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import secrets
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from types import TracebackType

from bus import observe_buses

from .monitor import MonitorError, MonitorHub, MonitorServer, serve_replay
from .monitor.server import is_loopback

TOKEN_VARIABLE = "HIVEBUS_MONITOR_TOKEN"
START_TIMEOUT = 10.0


def add_monitor_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--monitor",
        nargs="?",
        const=0,
        type=int,
        metavar="PORT",
        help="serve the web monitor of the run on 127.0.0.1:PORT (any free port without "
        "=PORT) and print its address; write it --monitor=PORT before the script",
    )
    parser.add_argument(
        "--monitor-host",
        metavar="HOST",
        help="where the monitor listens (implies --monitor; default 127.0.0.1); any other "
        f"address needs a token: ${TOKEN_VARIABLE}, else one is made and printed in the "
        f"address (${TOKEN_VARIABLE}, when set, is required on loopback too)",
    )


def monitor_token(host: str) -> str | None:
    """The token for a monitor on ``host``: the variable's, else a new one off loopback."""
    token = os.environ.get(TOKEN_VARIABLE) or None
    if token is None and not is_loopback(host):
        token = secrets.token_urlsafe(18)
    return token


class MonitorThread:
    """A live monitor served from its own thread (see the module's docstring):

    ``with MonitorThread(port=0) as monitor, monitor.observing(): ...run...``
    """

    def __init__(
        self, *, host: str = "127.0.0.1", port: int = 0, token: str | None = None, title: str
    ) -> None:
        self.hub = MonitorHub()
        self.server = MonitorServer(hub=self.hub, host=host, port=port, token=token, title=title)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread = threading.Thread(target=self._serve, name="hivebus-monitor", daemon=True)
        self._ready = threading.Event()
        self._error: BaseException | None = None

    @property
    def url(self) -> str:
        return self.server.url

    def __enter__(self) -> MonitorThread:
        self._thread.start()
        if not self._ready.wait(START_TIMEOUT):
            raise MonitorError(f"the monitor did not start within {START_TIMEOUT:.0f}s")
        if self._error is not None:
            raise self._error
        return self

    def __exit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def close(self) -> None:
        loop = self._loop
        if loop is not None and self._thread.is_alive():
            with contextlib.suppress(RuntimeError):  # the loop has already stopped
                loop.call_soon_threadsafe(loop.stop)
            self._thread.join(START_TIMEOUT)

    @contextlib.contextmanager
    def observing(self) -> Iterator[None]:
        """Watch every bus started inside the block: by code it calls, and by the tasks and
        event loops (``asyncio.run``) that code starts (a context, not the process: see
        :func:`bus.observe_buses`)."""
        with observe_buses(self.hub.attach):
            yield

    def _serve(self) -> None:
        loop = asyncio.new_event_loop()
        try:
            try:
                loop.run_until_complete(self.server.start())
            except Exception as error:  # noqa: BLE001 - told to the starting thread, which raises it
                self._error = error
                return
            finally:
                self._loop = loop
                self._ready.set()
            loop.run_forever()
            loop.run_until_complete(self.server.close())
        finally:
            loop.close()


def shown(url: str) -> str:
    """``url`` as printed: a token the user gave (the variable) is not echoed, one made up
    here is (it is the only way to learn it)."""
    if os.environ.get(TOKEN_VARIABLE) and "?token=" in url:
        return url.split("?", 1)[0] + f"?token=${TOKEN_VARIABLE}"
    return url


def start_monitor(
    stack: contextlib.ExitStack, port: int | None, host: str | None, *, title: str, command: str
) -> MonitorThread | None:
    """The live monitor of ``--monitor[=PORT]`` / ``--monitor-host`` (None: not asked for),
    watching every bus started while ``stack`` is open; its address goes to stderr."""
    if port is None and host is None:
        return None
    host = host or "127.0.0.1"
    monitor = MonitorThread(host=host, port=port or 0, token=monitor_token(host), title=title)
    stack.enter_context(monitor)
    stack.enter_context(monitor.observing())
    print(f"hivebus {command}: monitor at {shown(monitor.url)}", file=sys.stderr, flush=True)
    return monitor


def linger(monitor: MonitorThread) -> None:
    """After a run on a terminal: keep the page up until Ctrl-C (elsewhere: return)."""
    if not sys.stdin.isatty():
        return
    print(f"the run is over; the monitor stays at {shown(monitor.url)} until Ctrl-C", flush=True)
    with contextlib.suppress(KeyboardInterrupt):
        threading.Event().wait()


def add_monitor_command(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    monitor = commands.add_parser(
        "monitor",
        help="open a recorded trace in the web monitor, with a time slider to replay it",
        description="Serve the web monitor for a recorded run (a trace file written by "
        "`hivebus run`, or by a TraceRecorder) until Ctrl-C: the same page as a live "
        "monitor, with a time slider and play button to replay the run.",
    )
    monitor.add_argument("trace", metavar="TRACE", help="the trace file (JSON lines)")
    monitor.add_argument("--port", type=int, default=0, help="the port (default: any free one)")
    monitor.add_argument(
        "--host",
        default="127.0.0.1",
        help=f"where to listen (default 127.0.0.1); elsewhere needs ${TOKEN_VARIABLE} "
        "(else a token is made and printed in the address)",
    )
    monitor.set_defaults(run=monitor_trace)


def monitor_trace(args: argparse.Namespace) -> int:
    """``hivebus monitor TRACE``: serve the replay until interrupted."""
    path = Path(args.trace)
    token = monitor_token(args.host)

    async def serve() -> None:
        server = await serve_replay(path, host=args.host, port=args.port, token=token)
        try:
            print(f"hivebus monitor: {path} at {shown(server.url)} (Ctrl-C to stop)", flush=True)
            await asyncio.Event().wait()
        finally:
            await server.close()

    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve())
    return 0
