"""The demo scenario and the benchmark script, run whole as subprocesses."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import orjson

from bus import read_trace
from bus.trace import build_tree

ROOT = Path(__file__).resolve().parents[2]


def test_the_demo_runs_the_team_and_leaves_a_trace(tmp_path: Path) -> None:
    trace = tmp_path / "tour.jsonl"
    result = subprocess.run(
        [sys.executable, "scripts/examples/bus_tour.py", "--quiet", "--trace", str(trace)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "review: accept (3 sections read); planner retries: 1; dead letters: 1" in result.stdout
    assert "accounting balanced: True" in result.stdout
    records = read_trace(trace)
    (root,) = build_tree(records)
    assert root.record.subject == "team.task"
    subjects = {node.record.subject for _, node in root.walk()}
    assert {"team.work", "team.progress", "team.report", "team.review", "_bus.dead"} <= subjects


def test_scripts_demo_passes_its_arguments_to_the_demo(tmp_path: Path) -> None:
    trace = tmp_path / "via-script.jsonl"
    result = subprocess.run(
        ["scripts/demo", "--quiet", "--trace", str(trace)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "installing" not in result.stdout  # .venv is reused, not reinstalled
    assert f"trace {trace}" in result.stdout  # the closing line points at the trace
    assert read_trace(trace)


def test_scripts_demo_runs_the_research_team_on_the_mock_with_its_live_view(
    tmp_path: Path,
) -> None:
    env = {"PATH": "/usr/bin:/bin", "COLUMNS": "160", "OPENAI_API_KEY": "sk-not-used-by-demo"}
    trace = tmp_path / "demo.jsonl"
    result = subprocess.run(
        ["scripts/demo", "--trace", str(trace)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
        env=env,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    out = result.stdout
    assert "\x1b[" not in out  # piped: plain lines, no terminal codes
    assert "planner → llm" in out and "researcher → tools  library_search(" in out
    assert "Inside the honey bee colony" in out  # the structured report
    assert "review: text_mention: 'APPROVED' by critic" in out
    assert "│ researcher │" in out and f"trace: {trace}" in out
    assert "sk-not-used-by-demo" not in out  # the demo ignores a configured key


def test_the_demo_with_its_live_view_renders_the_exchange(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "scripts/examples/bus_tour.py", "--trace", str(tmp_path / "t.jsonl")],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env={"COLUMNS": "160", "PATH": "/usr/bin:/bin", "TERM": "dumb"},
    )
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "live message exchange" in out
    assert "causation tree" in out and "planner.plan → team.work [Job]" in out
    assert "worker-2.work" in out and "dead letter" in out


def test_the_bus_benchmark_prints_its_baselines_and_ratios_as_json() -> None:
    result = subprocess.run(
        [
            sys.executable,
            "scripts/bench/bus.py",
            "--n",
            "2000",
            "--rpc",
            "200",
            "--rounds",
            "1",
            "--concurrent",
            "500",
            "--json",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    report = orjson.loads(result.stdout.strip().splitlines()[-1])
    assert report["bench"] == "bus"
    names = [c["name"] for c in report["checks"]]
    assert names == [
        "1->1 msgs/s",
        "1->10 deliveries/s",
        "10k wildcard subs msgs/s",
        "request/reply p50 us",
        "request/reply p99 us",
        "10k concurrent requests calls/s",
    ]
    for check in report["checks"]:
        assert check["value"] > 0 and check["baseline"] > 0
        assert (
            abs(check["ratio"] - check["value"] / check["baseline"]) < 0.01 * check["ratio"] + 1e-3
        )
        assert set(check) == {"name", "value", "baseline", "ratio", "bar", "ok"}


def test_the_agents_benchmark_runs_real_loops_and_reports_its_floor() -> None:
    result = subprocess.run(
        [sys.executable, "scripts/bench/agents.py", "--loops", "60", "--rounds", "1", "--json"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    report = orjson.loads(result.stdout.strip().splitlines()[-1])
    assert report["bench"] == "agents"
    (check,) = report["checks"]
    assert check["name"] == "60 agent loops: loops/s"
    assert check["value"] > 0 and check["baseline"] > 0
    figures = report["figures"]
    # 9 requests and the task; the agents' 11 events are not built: nobody listens
    assert figures["agents"]["messages_per_loop"] == 10
    assert figures["raw"]["rps"] > 0
