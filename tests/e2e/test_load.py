"""``hivebus load`` as a user runs it: a subprocess, stdout a pipe, on the mock LLM."""

from __future__ import annotations

import re
from pathlib import Path

import orjson

from agents.load import read_report

from .cli import ESCAPES, clean_env, hivebus


def test_a_quiet_json_run_writes_both_reports(tmp_path: Path) -> None:
    result = hivebus("load", "--loops", "50", "--quiet", "--json", "--report", str(tmp_path))
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    lines = result.stdout.splitlines()
    assert len(lines) == 1, "--json: the report, and nothing else"
    printed = orjson.loads(lines[0])
    assert (tmp_path / "report.json").is_file() and (tmp_path / "report.html").is_file()
    report = read_report(tmp_path / "report.json")
    assert printed == orjson.loads((tmp_path / "report.json").read_bytes())
    assert report.loops.started == 50 and report.loops.ok + report.loops.failed == 50
    assert report.target.kind == "mock-subprocess"
    assert report.accounting.llm_balanced is True and report.accounting.bus_balanced
    assert report.resources.event_loop in ("asyncio", "uvloop")
    html = (tmp_path / "report.html").read_text()
    assert html.count("<svg") == 3 and "http://" not in html and "https://" not in html


def test_off_a_terminal_the_progress_is_plain_lines(tmp_path: Path) -> None:
    result = hivebus(
        "load",
        "--duration", "2.5",
        "--concurrency", "8",
        "--faults", "500:0.05",
        "--report", str(tmp_path),
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert not ESCAPES.search(out), "no escape codes or cursor tricks off a terminal"
    assert re.search(r"^\s+\d+\.\ds measuring · [\d,]+ ok · ", out, re.MULTILINE)
    assert "\nbottleneck " in out and "\naccounting loops ✓" in out


def test_a_configured_key_is_refused_without_the_flags() -> None:
    result = hivebus("load", "--loops", "5", env=clean_env(OPENAI_API_KEY="sk-do-not-print"))
    assert result.returncode == 1
    assert result.stdout == ""
    assert result.stderr.count("\n") == 1
    assert result.stderr.startswith("hivebus load: refusing to load a real endpoint")
    assert "sk-do-not-print" not in result.stderr
