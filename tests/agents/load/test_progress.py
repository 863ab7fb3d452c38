"""What ``hivebus load`` shows while it runs and when it ends."""

from __future__ import annotations

import io
import re
from dataclasses import replace
from pathlib import Path

import pytest
from rich.console import Console

from agents.config import Config
from agents.load import LoadOptions, Tally, run_load
from agents.load.metrics import OK
from agents.load.progress import PLAIN_EVERY, Progress, headline, summary_lines

from .test_bottleneck import ZERO

pytestmark = pytest.mark.anyio


def plain_console() -> tuple[Console, io.StringIO]:
    out = io.StringIO()
    return Console(file=out, force_terminal=False, width=200), out


def test_off_a_terminal_a_plain_line_every_few_seconds() -> None:
    console, out = plain_console()
    tally = Tally()
    progress = Progress(console, tally, warm_up=3.0)
    for tenth in range(1, 61):  # six seconds of samples, ten a second
        t = tenth / 10
        sample = replace(
            ZERO, t=t, ok=tenth * 3, failed=tenth // 10, llm_in_flight=7, llm_queued=2, retries=4
        )
        progress.watch(sample)
    lines = out.getvalue().splitlines()
    assert len(lines) == int(6 / PLAIN_EVERY)
    assert "\x1b" not in out.getvalue(), "no escape codes off a terminal"
    last = lines[-1]
    assert "measuring" in last and "180 ok" in last and "6 failed" in last
    assert "LLM 7 in flight · 2 queued · 4 retries" in last
    rate = float(re.findall(r"([\d.]+) loops/s", last)[0])
    assert 29 <= rate <= 32  # 3 ok and a tenth of a failure per tenth of a second
    assert "warm-up" in lines[0]


def test_the_line_shows_p95_so_far() -> None:
    console, _ = plain_console()
    tally = Tally()
    for _ in range(10):
        tally.end(tally.begin(measured=True), measured=True, outcome=OK)
    progress = Progress(console, tally)
    assert progress.line() == "starting…"
    progress.watch(replace(ZERO, t=0.1))
    assert "p95 0 ms" in progress.line()
    loops, llm = progress.parts()
    assert loops.strip().startswith("0.1s measuring") and llm.startswith("LLM 0 in flight")
    assert "\n" in progress.lines().plain


def test_on_a_terminal_the_line_is_redrawn_not_printed() -> None:
    out = io.StringIO()
    console = Console(file=out, force_terminal=True, width=100)
    progress = Progress(console, Tally())
    with progress.running():
        progress.watch(replace(ZERO, t=3.0))
    assert "measuring" not in out.getvalue().split("\x1b[?25h")[-1], "transient: cleared at the end"


async def test_the_summary_names_each_subject(tmp_path: Path, fast_config: Config) -> None:
    options = LoadOptions(loops=20, concurrency=4, latency="1ms", mock_in_process=True)
    report = await run_load(options, config=fast_config)
    paths = (tmp_path / "report.json", tmp_path / "report.html")
    lines = summary_lines(report, paths)
    heads = [line.split()[0] for line in lines]
    assert heads == [
        "target",
        "loops",
        "latency",
        "throughput",
        "LLM",
        "resources",
        "accounting",
        "bottleneck",
        "report",
    ]
    assert "mock served 60 vs 60 gateway attempts ✓" in lines[6]
    assert "20 started: 20 ok, 0 failed (none)" in lines[1]
    assert str(paths[1]) in lines[-1]
    assert summary_lines(report, None)[-1].startswith("bottleneck")
    assert headline(report).startswith("20 loops: 20 ok, 0 failed · p50 ")
