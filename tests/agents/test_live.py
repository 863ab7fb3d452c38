"""The live view of ``hivebus run`` and the observer that feeds it and writes the trace."""

from __future__ import annotations

import io
import re
from pathlib import Path

import pytest
from rich.console import Console

from agents import Agent, load_config, open_runtime
from agents.live import LiveView, RunObserver, make_console
from bus import Bus, read_trace
from bus.trace import TraceRecord, TraceWriter

from .run_fixtures import POLICY, count_bees, record_team_run

pytestmark = pytest.mark.anyio

ANSI = re.compile(r"\x1b\[")


def plain_console() -> tuple[Console, io.StringIO]:
    out = io.StringIO()
    return Console(file=out, width=100, highlight=False), out


def show_all(view: LiveView, records: list[TraceRecord]) -> None:
    for record in records:
        view.show(record)


async def test_off_a_terminal_each_message_is_one_plain_line(tmp_path: Path) -> None:
    records, _ = await record_team_run(tmp_path / "team.jsonl")
    console, out = plain_console()
    view = LiveView(console, model="gpt-test")
    show_all(view, records)
    assert not ANSI.search(out.getvalue())
    lines = out.getvalue().splitlines()
    assert lines[0].endswith('hivebus → researcher  task "How many bees in the north hive?"')
    assert lines[0].lstrip().startswith("+0.000s")
    text = "\n".join(lines)
    assert "researcher → llm  gpt-test · 2 messages · tools: count_bees" in text
    assert "tool-executor → researcher  ↩ count_bees = " in text
    assert "looper · FAILED: MaxStepsExceeded" in text
    assert max(len(line) for line in lines) > 100  # wider than the console, not wrapped
    assert not any("memory" in line for line in lines)  # routine traffic is left out


async def test_llm_answers_carry_the_running_totals_off_a_terminal(tmp_path: Path) -> None:
    records, _ = await record_team_run(tmp_path / "team.jsonl")
    console, out = plain_console()
    view = LiveView(console)
    show_all(view, records)
    totals = re.findall(r"\[Σ ([\d,]+) tok · \$(\d+\.\d{4})\]", out.getvalue())
    assert len(totals) == view.llm_calls == 3
    counts = [int(t.replace(",", "")) for t, _ in totals]
    assert counts == sorted(counts) and counts[-1] == view.tokens > 0


async def test_verbose_shows_every_message(tmp_path: Path) -> None:
    records, _ = await record_team_run(tmp_path / "team.jsonl")
    console, out = plain_console()
    show_all(LiveView(console, verbose=True), records)
    assert len(out.getvalue().splitlines()) == len(records)
    assert "researcher → memory  append 1 message (user), then window" in out.getvalue()


async def test_the_status_names_the_llm_calls_in_flight(tmp_path: Path) -> None:
    records, _ = await record_team_run(tmp_path / "team.jsonl")
    console, out = plain_console()
    view = LiveView(console, model="gpt-test")
    first_call = next(i for i, r in enumerate(records) if r.subject == "llm.chat")
    show_all(view, records[: first_call + 1])
    console.print(view.status())
    status = out.getvalue().splitlines()[-2:]
    assert status[0].startswith("LLM in flight: researcher (gpt-test, ")
    assert status[1].startswith(f"{first_call + 1} messages · 1 LLM calls · 0 tokens")
    show_all(view, records[first_call + 1 :])
    console.print(view.status())
    assert out.getvalue().splitlines()[-2] == "LLM in flight: none"
    assert view.errors >= 2  # the failed tool call and the failed task, at least


async def test_on_a_terminal_lines_are_styled_and_cut_to_the_width(tmp_path: Path) -> None:
    records, _ = await record_team_run(tmp_path / "team.jsonl")
    out = io.StringIO()
    console = Console(file=out, width=60, force_terminal=True, color_system="standard")
    view = LiveView(console)
    with view.running():
        show_all(view, records)
    text = out.getvalue()
    assert ANSI.search(text)  # colours, and the status redrawn in place
    assert "LLM in flight" in text
    assert "Σ" not in text  # the totals are in the status line, not in the lines


async def test_the_observer_records_and_shows_every_bus_started_in_its_block(
    tmp_path: Path,
) -> None:
    console, out = plain_console()
    writer = TraceWriter(tmp_path / "run.jsonl").open()
    observer = RunObserver(writer, LiveView(console))
    with observer.observing():
        async with open_runtime(load_config(None, env={}), policy=POLICY) as runtime:
            await runtime.add(Agent("researcher", "You are researcher.", tools=[count_bees]))
            await runtime.ask("researcher", "How many bees?")
        async with Bus("second"):
            pass
    async with Bus("after"):
        pass
    assert observer.buses == ["hivebus", "second"]
    records = read_trace(writer.path)
    assert records and records[0].type == "Task"
    assert len(out.getvalue().splitlines()) < len(records)  # memory traffic not shown


async def test_the_observer_without_a_view_only_records(tmp_path: Path) -> None:
    writer = TraceWriter(tmp_path / "quiet.jsonl").open()
    with RunObserver(writer).observing():
        async with Bus("quiet") as bus:
            bus.tap(">", lambda env: None)
    assert writer.count == 0 and read_trace(writer.path) == []


def test_off_a_terminal_the_console_is_wide_unless_columns_say(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("COLUMNS", raising=False)
    assert make_console().width == 160  # pytest's stdout is not a terminal
    monkeypatch.setenv("COLUMNS", "90")
    assert make_console().width == 90
