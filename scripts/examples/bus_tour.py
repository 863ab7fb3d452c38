"""A tour of the bus: a planner, a pool of workers and a critic talking over typed topics.

    scripts/demo                  # runs this with a live view
    .venv/bin/python scripts/examples/bus_tour.py --quiet --trace run.jsonl

What happens (every arrow is a typed message on the bus, visible in the live view):
  you ─► team.task            a Task for the planner
  planner ─► team.work        three Job requests, fanned out to a queue group of workers
  worker ─► team.progress     progress events while working (one worker fails once, on purpose:
                              the planner sees a RemoteError, the failure is dead-lettered, and
                              the planner retries)
  planner ─► team.report      the combined Report
  critic ─► team.review       a Review of the report
Then the run is printed as a causation tree (the trace) and the bus's counters.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import random
import sys
import tempfile
import time
from pathlib import Path

from rich.console import Console, Group
from rich.live import Live
from rich.markup import escape
from rich.table import Table

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from bus import (
    DEAD_LETTERS,
    Actor,
    Bus,
    Context,
    DeadLetter,
    Envelope,
    Message,
    RemoteError,
    Topic,
    TraceRecorder,
    handler,
)
from bus.trace import build_tree, format_tree, read_trace


class Task(Message, frozen=True, kw_only=True):
    text: str


class Job(Message, frozen=True, kw_only=True):
    part: int
    text: str


class JobDone(Message, frozen=True, kw_only=True):
    part: int
    summary: str
    worker: str


class Progress(Message, frozen=True, kw_only=True):
    worker: str
    part: int
    percent: int


class Report(Message, frozen=True, kw_only=True):
    task: str
    sections: list[str]


class Review(Message, frozen=True, kw_only=True):
    verdict: str
    notes: str


TASK = Topic("team.task", Task)
WORK = Topic("team.work", Job, reply=JobDone)
PROGRESS = Topic("team.progress", Progress)
REPORT = Topic("team.report", Report)
REVIEW = Topic("team.review", Review)


class Planner(Actor):
    """Splits a task into jobs, farms them out, retries a failed one, publishes the report."""

    async def on_start(self) -> None:
        self.retries = 0

    @handler(TASK)
    async def plan(self, task: Task, ctx: Context) -> None:
        parts = [f"{task.text}: part {i}" for i in range(1, 4)]
        results = await asyncio.gather(*(self._run_job(ctx, i, p) for i, p in enumerate(parts)))
        sections = [f"{r.summary} (by {r.worker})" for r in sorted(results, key=lambda r: r.part)]
        await ctx.publish(REPORT, Report(task=task.text, sections=sections))

    async def _run_job(self, ctx: Context, part: int, text: str) -> JobDone:
        for attempt in range(3):
            try:
                return await ctx.request(WORK, Job(part=part, text=text), timeout=5.0)
            except RemoteError:
                self.retries += 1
                if attempt == 2:
                    raise
                await asyncio.sleep(0.05 * (attempt + 1))
        raise AssertionError("unreachable")


class Worker(Actor):
    """A member of the ``workers`` queue group: each job goes to exactly one worker."""

    def __init__(self, name: str, *, flaky: bool = False, pace: float = 0.08) -> None:
        super().__init__(name)
        self.flaky = flaky
        self.pace = pace

    @handler(WORK, queue="workers")
    async def work(self, job: Job, ctx: Context) -> JobDone:
        for percent in (25, 50, 75, 100):
            await asyncio.sleep(self.pace * random.uniform(0.5, 1.5))
            await ctx.publish(PROGRESS, Progress(worker=self.name, part=job.part, percent=percent))
            if self.flaky and percent == 50:
                self.flaky = False
                raise RuntimeError(f"{self.name} dropped part {job.part} (on purpose)")
        return JobDone(part=job.part, summary=f"findings on {job.text!r}", worker=self.name)


class Critic(Actor):
    """Reads every report and publishes a review."""

    @handler(REPORT)
    async def review(self, report: Report, ctx: Context) -> None:
        await asyncio.sleep(0.05)
        verdict = "accept" if len(report.sections) == 3 else "revise"
        await ctx.publish(
            REVIEW, Review(verdict=verdict, notes=f"{len(report.sections)} sections read")
        )


class LiveView:
    """The last messages on the bus and a few counters, redrawn as they arrive."""

    def __init__(self, bus: Bus, rows: int = 14) -> None:
        self.bus = bus
        self.rows = rows
        self.start = time.time()
        self.seen: list[Envelope] = []
        self.counts: dict[str, int] = {}
        self.requesters: dict[str, str] = {}  # request id -> who asked

    def __call__(self, env: Envelope) -> None:
        self.seen.append(env)
        if env.reply_to is not None:
            self.requesters[env.id] = env.sender
        kind = type(env.payload).__name__
        self.counts[kind] = self.counts.get(kind, 0) + 1

    def render(self) -> Group:
        table = Table(title="hivebus: live message exchange", expand=True)
        table.add_column("time", justify="right", style="dim", min_width=6, no_wrap=True)
        table.add_column("sender", style="cyan", min_width=13, no_wrap=True)
        table.add_column("subject", style="magenta", min_width=13, no_wrap=True)
        table.add_column("message", overflow="ellipsis", no_wrap=True, ratio=1)
        for env in self.seen[-self.rows :]:
            payload = env.payload
            text = escape(repr(payload))
            subject = env.subject
            if isinstance(payload, DeadLetter):
                text = f"[red]dead letter[/]: {payload.reason} {escape(str(payload.error_message))}"
            elif subject.startswith("_INBOX."):
                subject = f"reply → {self.requesters.get(env.correlation_id or '', '?')}"
                text = f"[green]reply[/] {text}"
            elif env.reply_to:
                text = f"[yellow]request[/] {text}"
            at = f"{(env.timestamp - self.start) * 1000:.0f}ms"
            table.add_row(at, env.sender, subject, text)
        stats = self.bus.stats()
        counters = (
            f"published [bold]{stats.published}[/] ({stats.unrouted} unheard)  "
            f"handled [bold]{stats.delivered}[/]  failed [bold red]{stats.failed}[/]  "
            f"dead [bold]{stats.dead_lettered}[/]  replies [bold]{stats.replies}[/]/"
            f"{stats.requests}  in flight [bold]{stats.in_flight}[/]"
        )
        return Group(table, counters)


async def main(quiet: bool, trace_path: Path) -> int:
    console = Console()
    async with Bus("tour") as bus:
        view = LiveView(bus)
        bus.tap(">", view)
        dead: list[DeadLetter] = []
        bus.subscribe(DEAD_LETTERS, dead.append, name="dead-letter-log")
        reviews: list[Review] = []
        bus.subscribe(REVIEW, reviews.append, name="you")
        with TraceRecorder(bus, trace_path):
            planner = Planner("planner")
            await bus.add(planner)
            await bus.add(Critic("critic"))
            for i in range(3):
                await bus.add(Worker(f"worker-{i + 1}", flaky=(i == 1)))
            with (
                Live(view.render(), console=console, refresh_per_second=12, transient=False)
                if not quiet
                else _Nothing() as live
            ):
                await bus.publish(TASK, Task(text="How do bees pick a new hive?"), sender="you")
                while not reviews:
                    await asyncio.sleep(0.05)
                    if live is not None:
                        live.update(view.render())
                await bus.drain(timeout=10)
                if live is not None:
                    live.update(view.render())
        stats = bus.stats()
    if not quiet:
        console.print()
        console.rule("the run as a causation tree (hivebus trace)")
        for line in format_tree(build_tree(read_trace(trace_path))):
            console.print(line, markup=False, highlight=False, no_wrap=True, overflow="ellipsis")
        console.rule("per subscription")
        table = Table()
        for col in ("subscription", "received", "delivered", "failed", "max pending"):
            table.add_column(col, justify="left" if col == "subscription" else "right")
        for s in stats.subscriptions:
            table.add_row(
                s.name, str(s.received), str(s.delivered), str(s.failed), str(s.max_pending)
            )
        console.print(table)
    review = reviews[0]
    print(
        f"review: {review.verdict} ({review.notes}); planner retries: {planner.retries}; "
        f"dead letters: {len(dead)}; accounting balanced: {stats.balanced}\n"
        f"trace: {trace_path}  (see it again: .venv/bin/hivebus trace {trace_path})"
    )
    return 0 if stats.balanced and review.verdict == "accept" else 1


class _Nothing:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: object) -> None:
        return None


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description="A tour of the hivebus message bus.")
    parser.add_argument("--quiet", action="store_true", help="no live view, only the summary")
    parser.add_argument("--trace", type=Path, help="where to write the trace (JSON lines)")
    args = parser.parse_args()
    path = args.trace or Path(tempfile.gettempdir()) / "hivebus-demo" / "bus_tour.jsonl"
    # The worker's deliberate failure shows as a dead letter in the view; no log lines too.
    logging.getLogger("hivebus").setLevel(logging.ERROR)
    raise SystemExit(asyncio.run(main(args.quiet, path)))
