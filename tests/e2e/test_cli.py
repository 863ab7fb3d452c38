"""The `hivebus` command line, run as a user runs it: a real subprocess."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import orjson
import pytest

from bus import Bus, Context, Topic, TraceRecorder

from ..bus.messages import RPC, Other, Ping, Pong

ROOT = Path(__file__).resolve().parents[2]


def hivebus(*args: str) -> subprocess.CompletedProcess[str]:
    exe = shutil.which("hivebus", path=str(Path(sys.executable).parent))
    command = [exe] if exe else [sys.executable, "-m", "agents.cli"]
    return subprocess.run(
        [*command, *args], capture_output=True, text=True, timeout=60, cwd=ROOT, check=False
    )


@pytest.fixture
async def trace_file(tmp_path: Path) -> Path:
    path = tmp_path / "run.jsonl"
    step = Topic("demo.step", Other)
    async with Bus() as bus:

        async def plan(msg: Ping, ctx: Context) -> Pong:
            await ctx.publish(step, Other(text="thinking"))
            return Pong(n=msg.n)

        bus.subscribe(RPC, plan, name="planner")
        bus.subscribe(step, lambda m: None)
        with TraceRecorder(bus, path):
            await bus.request(RPC, Ping(n=7), sender="user")
            await bus.drain()
    return path


@pytest.mark.anyio
async def test_trace_prints_the_causation_tree_with_timings(trace_file: Path) -> None:
    result = hivebus("trace", str(trace_file))
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert "user → test.rpc [Ping] ⏱ " in lines[0]
    assert lines[1].lstrip().startswith("+") and "planner → demo.step [Other]" in lines[1]
    assert "3 records (1 event, 1 request, 1 reply) in 1 tree over" in result.stdout


@pytest.mark.anyio
async def test_trace_json_summary_and_subject_filter(trace_file: Path) -> None:
    summary = orjson.loads(hivebus("trace", str(trace_file), "--json").stdout)
    assert summary["records"] == 3 and summary["kinds"] == {"request": 1, "reply": 1, "event": 1}
    filtered = hivebus("trace", str(trace_file), "--subject", "nothing.>")
    assert filtered.returncode == 0
    assert "→" not in filtered.stdout


def test_errors_are_one_clear_line_and_a_nonzero_exit(tmp_path: Path) -> None:
    missing = hivebus("trace", str(tmp_path / "nope.jsonl"))
    assert missing.returncode == 1
    assert missing.stderr.strip().startswith("hivebus trace:") and "cannot read" in missing.stderr
    assert len(missing.stderr.strip().splitlines()) == 1
    bad = tmp_path / "bad.jsonl"
    bad.write_text("{}\n")
    broken = hivebus("trace", str(bad))
    assert broken.returncode == 1 and "bad.jsonl:1: not a trace record" in broken.stderr
    pattern = hivebus("trace", str(bad), "--subject", "a..b")
    assert pattern.returncode == 1 and "invalid subject 'a..b'" in pattern.stderr


def test_help_describes_every_command() -> None:
    top = hivebus("--help")
    assert top.returncode == 0 and "trace" in top.stdout
    sub = hivebus("trace", "--help")
    assert sub.returncode == 0 and "--subject" in sub.stdout and "causation" in sub.stdout
    bare = hivebus()
    assert bare.returncode == 2
