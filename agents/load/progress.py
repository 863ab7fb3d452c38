"""What ``hivebus load`` shows: a progress line while it runs (redrawn in place on a
terminal, a plain line every few seconds anywhere else), then a summary of the report."""

from __future__ import annotations

from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from rich.console import Console
from rich.live import Live
from rich.text import Text

from .metrics import Snapshot, Tally
from .report import LoadReport

PLAIN_EVERY = 2.0  # seconds between progress lines off a terminal
RATE_OVER = 2.0  # seconds of samples the current throughput is taken over


class Progress:
    """Fed every :class:`Snapshot` (as a sampler's watcher); shows loops done and failed,
    the current throughput, p95 so far, LLM calls in flight and queued, and retries."""

    def __init__(self, console: Console, tally: Tally, *, warm_up: float = 0.0) -> None:
        self.console = console
        self.tally = tally
        self.warm_up = warm_up
        self.last: Snapshot | None = None
        self._recent: deque[Snapshot] = deque()
        self._printed_at = 0.0

    def watch(self, sample: Snapshot) -> None:
        """Take in a sample; off a terminal, print a line every :data:`PLAIN_EVERY` s."""
        self.last = sample
        self._recent.append(sample)
        while self._recent and sample.t - self._recent[0].t > RATE_OVER:
            self._recent.popleft()
        if not self.console.is_terminal and sample.t - self._printed_at >= PLAIN_EVERY:
            self._printed_at = sample.t
            self.console.print(self.line(), soft_wrap=True, markup=False, highlight=False)

    def throughput(self) -> float:
        """Loops ended per second over the last :data:`RATE_OVER` seconds."""
        if len(self._recent) < 2:
            return 0.0
        first, last = self._recent[0], self._recent[-1]
        done = last.ok + last.failed - first.ok - first.failed
        return done / (last.t - first.t) if last.t > first.t else 0.0

    def parts(self) -> tuple[str, str]:
        """The loops' progress, and the LLM calls'."""
        sample = self.last
        if sample is None:
            return "starting…", ""
        phase = "warm-up" if sample.t < self.warm_up else "measuring"
        loops = (
            f"{sample.t:6.1f}s {phase} · {sample.ok:,} ok · {sample.failed:,} failed · "
            f"{sample.loops_in_flight:,} in flight · {self.throughput():,.1f} loops/s · "
            f"p95 {self.tally.p95() * 1000:,.0f} ms"
        )
        llm = (
            f"LLM {sample.llm_in_flight:,} in flight · {sample.llm_queued:,} queued · "
            f"{sample.retries:,} retries"
        )
        return loops, llm

    def line(self) -> str:
        """The progress as one line."""
        return " · ".join(part for part in self.parts() if part)

    def lines(self) -> Text:
        """The progress as two lines, each cut to the terminal's width."""
        loops, llm = self.parts()
        text = Text(loops, style="bold", no_wrap=True, overflow="ellipsis")
        if llm:
            text.append("\n" + llm, style="yellow")
        return text

    @contextmanager
    def running(self) -> Iterator[None]:
        """Redraw the line in place while the block runs (on a terminal only)."""
        if not self.console.is_terminal:
            yield
            return
        with Live(
            get_renderable=self.lines,
            console=self.console,
            refresh_per_second=4,
            transient=True,
        ):
            yield


def headline(report: LoadReport) -> str:
    """One line: loops, latency, throughput and the bottleneck."""
    loops, lat = report.loops, report.latency
    return (
        f"{loops.started:,} loops: {loops.ok:,} ok, {loops.failed:,} failed · "
        f"p50 {lat.p50 * 1000:,.0f} ms, p95 {lat.p95 * 1000:,.0f} ms · "
        f"{report.throughput.loops_per_s:,.1f} loops/s · bottleneck: "
        f"{report.bottleneck.kind.replace('_', ' ')}"
    )


def _counts(counts: dict[str, int]) -> str:
    return ", ".join(f"{name} {count:,}" for name, count in counts.items()) or "none"


def summary_lines(report: LoadReport, paths: tuple[Path, Path] | None) -> list[str]:
    """The closing summary, a line per subject."""
    r = report
    t, lat, llm, res, acc = r.target, r.latency, r.llm, r.resources, r.accounting
    failures = {k: v for k, v in r.loops.by_outcome.items() if k != "ok"}
    mock = "not known" if acc.mock_requests is None else f"{acc.mock_requests:,}"
    checks = [
        f"loops {'✓' if acc.loops_balanced else '✗'}",
        f"mock served {mock} vs {acc.gateway_attempts:,} gateway attempts "
        + {True: "✓", False: "✗", None: "?"}[acc.llm_balanced],
        f"bus {'✓' if acc.bus_balanced else '✗'} ({r.bus.unprocessed} unprocessed)",
        f"{acc.tasks_left} tasks left",
    ]
    lines = [
        f"target     {t.kind}, model {t.model}, cap {t.cap}"
        + (f", latency {t.latency}" if t.latency else "")
        + (f", faults {t.faults}" if t.faults else "")
        + f" · {res.event_loop}, {res.gc}",
        f"loops      {r.loops.started:,} started: {r.loops.ok:,} ok, {r.loops.failed:,} failed "
        f"({_counts(failures)})"
        + (f" · stopped by {r.loops.stopped_by}" if r.loops.stopped_by else ""),
        f"latency    p50 {lat.p50:.3f}s · p90 {lat.p90:.3f}s · p95 {lat.p95:.3f}s · "
        f"p99 {lat.p99:.3f}s · max {lat.max:.3f}s ({lat.count:,} measured ok loops)",
        f"throughput {r.throughput.loops_per_s:,.1f} loops/s · "
        f"{r.throughput.llm_requests_per_s:,.1f} LLM requests/s · "
        f"{r.throughput.tokens_per_s:,.0f} tokens/s · "
        f"{r.throughput.bus_messages_per_s:,.0f} bus messages/s",
        f"LLM        {llm.calls:,} calls ({llm.failed:,} failed) · retries: {_counts(llm.retries)} "
        f"· waited {llm.cap_wait:,.1f} call-s for the cap, {llm.rate_wait:,.1f} for the rate "
        f"limit · ${llm.cost:,.4f}",
        f"resources  CPU {res.cpu_seconds_measured:,.2f}s ({res.cpu_utilisation:.0%} of a core), "
        f"{res.cpu_per_loop * 1000:,.2f} ms per loop · peak RSS {res.peak_rss / 1e6:,.0f} MB · "
        f"{res.rss_per_loop / 1e3:,.1f} kB per loop in flight",
        f"accounting {' · '.join(checks)}",
        f"bottleneck {r.bottleneck.kind.replace('_', ' ')}: {r.bottleneck.reason}",
    ]
    if paths is not None:
        lines.append(f"report     {paths[0]} · {paths[1]}")
    return lines
