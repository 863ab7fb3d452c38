"""The live view of ``hivebus run``: the message exchange as readable lines while it runs,
and, on a terminal, a status line of the LLM calls in flight and the running token and
cost count.

Fed by :class:`RunObserver`, which taps every bus of the run and also writes the trace.
On a terminal the lines are styled and the status is redrawn in place under them (rich's
``Live``); anywhere else (a pipe, a file, CI) the lines are plain text, one per message,
with no escape codes and no cursor movement, and each LLM answer carries the running
total instead of a status line.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

from rich.console import Console, Group
from rich.live import Live
from rich.text import Text

from bus import Bus, Envelope, Tap, observe_buses
from bus.trace import TraceRecord, TraceWriter, to_record

from .describe import actor, describe, is_error, target, tokens_of

# Shown only with ``verbose``: the memory traffic, and the agent events that repeat what the
# LLM and tool requests next to them already say.
_QUIET_EVENTS = frozenset({"llm_answered", "tool_called", "tool_answered"})


def make_console() -> Console:
    """A console on stdout: styled on a terminal; elsewhere plain, and wide enough for the
    tables (``COLUMNS`` still decides when it is set)."""
    console = Console(highlight=False)
    if not console.is_terminal and "COLUMNS" not in os.environ:
        console.width = 160
    return console


class LiveView:
    """Shows each message of a run as one line (see the module's docstring).

    ``model`` names the configured model, for LLM calls that leave it to the gateway.
    :meth:`show` is called from the event loop's thread; the status is drawn from rich's
    refresh thread, hence the lock.
    """

    def __init__(self, console: Console, *, verbose: bool = False, model: str = "") -> None:
        self.console = console
        self.verbose = verbose
        self.model = model
        self.start: float | None = None
        self.messages = self.llm_calls = self.tokens = self.tool_calls = self.errors = 0
        self.cost = 0.0
        self._requests: dict[str, TraceRecord] = {}
        self._llm_in_flight: dict[str, tuple[str, str, float]] = {}  # id -> agent, model, since
        self._lock = threading.Lock()
        self._live: Live | None = None

    def show(self, record: TraceRecord) -> None:
        """Count ``record`` and print its line (unless it is routine and not ``verbose``)."""
        with self._lock:
            request = self._count(record)
        if not self.verbose and self._routine(record, request):
            return
        if self.console.is_terminal:  # one line each, cut to the width of the terminal
            self.console.print(self.line(record, request), no_wrap=True, overflow="ellipsis")
            if self._live is not None and "llm.chat" in (
                record.subject,
                getattr(request, "subject", ""),
            ):
                self._live.refresh()  # the calls in flight changed: show it now
        else:  # whole lines, for grep and for logs
            self.console.print(self.line(record, request), soft_wrap=True)

    def _count(self, record: TraceRecord) -> TraceRecord | None:
        if self.start is None:
            self.start = record.timestamp
        self.messages += 1
        self.errors += is_error(record)
        payload = record.payload if isinstance(record.payload, dict) else {}
        if record.kind == "request":
            self._requests[record.id] = record
            if record.subject == "llm.chat":
                self.llm_calls += 1
                model = str(payload.get("model") or self.model or "?")
                agent = str(payload.get("agent") or actor(record.sender))
                self._llm_in_flight[record.id] = (agent, model, time.monotonic())
            elif record.subject == "tool.call":
                self.tool_calls += 1
            return None
        if record.kind != "reply":
            return None
        request = self._requests.pop(record.correlation_id or "", None)
        if request is not None and request.subject == "llm.chat":
            self._llm_in_flight.pop(request.id, None)
            self.tokens += tokens_of(payload)
            self.cost += float(payload.get("cost") or 0.0)
        return request

    def _routine(self, record: TraceRecord, request: TraceRecord | None) -> bool:
        if (request or record).subject.startswith("memory."):
            return True
        payload = record.payload
        return (
            record.type == "AgentEvent"
            and isinstance(payload, dict)
            and (payload.get("kind") in _QUIET_EVENTS and not payload.get("is_error"))
        )

    def line(self, record: TraceRecord, request: TraceRecord | None = None) -> Text:
        """The line for ``record``; ``request`` is the request a reply answers."""
        at = f"+{record.timestamp - (self.start or record.timestamp):.3f}s"
        who = actor(record.sender)
        if record.kind == "reply":
            whom = actor(request.sender) if request is not None else "?"
        elif record.type == "AgentEvent":
            who, whom = target(record), ""
        else:
            whom = target(record)
        text = describe(record, model=self.model)
        if record.kind == "reply":
            text = "↩ " + text
        if request is not None and request.subject == "llm.chat" and not self.console.is_terminal:
            text += f"  [Σ {self.tokens:,} tok · ${self.cost:.4f}]"
        line = Text()
        line.append(f"{at:>9} ", style="dim")
        line.append(who, style="cyan")
        if whom:
            line.append(" → ")
            line.append(whom, style="magenta")
        line.append(" · " if record.type == "AgentEvent" else "  ")
        line.append(text, style="red" if is_error(record) else ("green" if request else ""))
        return line

    def status(self) -> Group:
        """The status lines: LLM calls in flight and the running totals."""
        now = time.monotonic()
        with self._lock:
            flying = list(self._llm_in_flight.values())
            totals = (
                f"{self.messages:,} messages · {self.llm_calls:,} LLM calls · "
                f"{self.tokens:,} tokens · ${self.cost:.4f} · {self.tool_calls:,} tool calls · "
                f"{self.errors:,} errors"
            )
        calls = ", ".join(
            f"{agent} ({model}, {now - since:.1f}s)" for agent, model, since in flying
        )
        in_flight = Text(f"LLM in flight: {calls or 'none'}", style="yellow" if flying else "dim")
        return Group(in_flight, Text(totals, style="bold"))

    @contextmanager
    def running(self) -> Iterator[None]:
        """Redraw the status under the lines while the block runs (on a terminal only)."""
        if not self.console.is_terminal:
            yield
            return
        with Live(
            get_renderable=self.status,
            console=self.console,
            refresh_per_second=8,
            transient=True,
            redirect_stdout=True,
            redirect_stderr=True,
        ) as live:
            self._live = live
            try:
                yield
            finally:
                self._live = None


class RunObserver:
    """Taps every bus a run starts: writes each envelope to the trace and shows it live.

    ``with observer.observing():`` — the buses started inside the block (by a scenario's
    runtime, or by a plain program's own code) are attached as they start (see
    :func:`bus.observe_buses`); on exit the taps are closed and the trace is written out.
    """

    def __init__(self, writer: TraceWriter, view: LiveView | None = None) -> None:
        self.writer = writer
        self.view = view
        self.buses: list[str] = []
        self._taps: list[Tap] = []

    def attach(self, bus: Bus) -> None:
        """Record and show every envelope of ``bus`` from now on."""
        self.buses.append(bus.name)
        self._taps.append(bus.tap(">", self._seen))

    def _seen(self, envelope: Envelope) -> None:
        record = to_record(envelope)
        self.writer.write(record)
        if self.view is not None:
            self.view.show(record)

    @contextmanager
    def observing(self) -> Iterator[None]:
        """Attach to the buses started in the block (the writer must be open); then close
        the taps and the writer."""
        try:
            with observe_buses(self.attach):
                if self.view is None:
                    yield
                else:
                    with self.view.running():
                        yield
        finally:
            for tap in self._taps:
                tap.close()
            self.writer.close()
