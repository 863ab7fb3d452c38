"""``scripts/bench/load.py`` at tiny sizes: it runs, exits 0, and its JSON has the shape
every benchmark's has (the figures themselves are the full-size run's business)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import orjson

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "scripts" / "bench" / "load.py"


def test_the_load_bench_runs_small_and_reports_its_checks() -> None:
    done = subprocess.run(
        [sys.executable, str(SCRIPT), "--loops-small", "50", "--loops-large", "100", "--json"],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
        check=False,
    )
    assert done.returncode == 0, done.stderr  # a LOW check does not fail the script
    lines = done.stdout.strip().splitlines()
    assert lines[0].split()[:2] == ["figure", "load"], "the table comes first"
    result = orjson.loads(lines[-1])
    assert result["bench"] == "load"
    checks = result["checks"]
    assert [c["name"] for c in checks] == [
        "50 loops @50ms, cap 1,000: seconds",
        "100 loops @50ms, cap 1,000: seconds",
        "KiB per loop at 100 vs 50",
    ]
    for c in checks:
        assert set(c) == {"name", "value", "baseline", "ratio", "bar", "ok"}
        assert isinstance(c["ok"], bool)
        assert c["value"] > 0 and c["baseline"] > 0
        # the ratio is of the unrounded figures (value and baseline are rounded to 2
        # places, the ratio to 3): consistent up to that rounding
        slack = 0.005 * (1 + c["ratio"]) + 0.0005 * c["baseline"] + 1e-9
        assert abs(c["ratio"] * c["baseline"] - c["value"]) <= slack
    assert [c["bar"] for c in checks] == ["<= 1.3x ideal", "<= 1.3x ideal", "<= 1.5x"]
    for c, loops in zip(checks[:2], (50, 100), strict=True):
        figure = result["figures"][f"loops{loops}"]
        agents = figure["agents"]
        assert agents["loops"] == loops and agents["llm_calls"] == 3 * loops
        assert c["ok"] == (agents["elapsed_s"] <= 1.3 * figure["ideal_s"])
        # the ideal is never below the latency floor: calls x 50 ms / a cap of 1,000
        assert figure["ideal_s"] >= 3 * loops * 0.05 / 1000
        assert agents["peak_rss_mib"] >= agents["baseline_rss_mib"] > 0
        assert agents["event_loop"] in ("asyncio", "uvloop")
    for c, line in zip(checks, lines[1:4], strict=True):  # one table row per check
        assert line.startswith(c["name"]) and ("  ok " if c["ok"] else "  LOW ") in line
