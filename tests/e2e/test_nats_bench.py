"""The NATS benchmark, run whole as a subprocess with tiny counts against a real nats-server."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import orjson
import pytest

from ..nats_server import nats_server_binary

ROOT = Path(__file__).resolve().parents[2]
HALF_CENT = 0.005  # value and baseline are rounded to 2 decimals, the ratio to 3


def ratio_agrees(row: dict[str, Any]) -> bool:
    """The row's ratio is value / baseline, up to the rounding of all three."""
    value, baseline, ratio = float(row["value"]), float(row["baseline"]), float(row["ratio"])
    low = max(value - HALF_CENT, 0.0) / (baseline + HALF_CENT)
    high = (value + HALF_CENT) / max(baseline - HALF_CENT, 1e-9)
    return low - 0.0005 <= ratio <= high + 0.0005


def test_the_nats_benchmark_measures_both_sides_and_reports_ratios() -> None:
    binary = nats_server_binary()  # skips without one (fails under HIVEBUS_REQUIRE_NATS=1)
    command = [sys.executable, "-W", "always::ResourceWarning", "scripts/bench/nats.py"]
    command += ["--messages", "300", "--requests", "40", "--concurrent", "200"]
    command += ["--in-flight", "20", "--rounds", "1", "--timeout", "60", "--json"]
    command += ["--loops", "20", "--workers", "1,2", "--worker-rounds", "1"]
    command += ["--nats-server", binary]
    result = subprocess.run(
        command, cwd=ROOT, capture_output=True, text=True, timeout=120, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stderr == ""  # no warning, no log line, no unclosed resource
    report = orjson.loads(result.stdout.strip().splitlines()[-1])
    assert report["bench"] == "nats"
    names = [c["name"] for c in report["checks"]]
    assert names == [
        "publish->handle 300: messages/s",
        "request 40 sequential: requests/s",
        "request 200 20 in flight: requests/s",
    ]
    for row in report["checks"]:
        assert row["value"] > 0 and row["baseline"] > 0, row
        assert ratio_agrees(row), row
        assert row["bar"] == ">= 0.7x raw nats-py"
        if abs(row["ratio"] - 0.7) > 0.001:  # (ok is decided before rounding)
            assert row["ok"] == (row["ratio"] >= 0.7), row
    info = {row["name"]: row for row in report["info"]}
    assert set(info) == {
        "publish: CPU us/message",
        *(f"{f}: {unit}" for f in ("request", "request x20") for unit in ("p50 ms", "p99 ms")),
        "request: CPU us",
        "request x20: CPU us",
    }
    for row in info.values():
        assert row["value"] > 0 and row["baseline"] > 0, row
        assert ratio_agrees(row), row
    figures = report["figures"]
    publish = figures["publish"]
    assert publish["bus"]["slow_consumer_drops"] == 0 and publish["bus"]["disconnects"] == 0
    for key in ("request", "concurrent"):
        for side in ("bus", "raw"):
            figure = figures[key][side]
            assert 0 < figure["p50_ms"] <= figure["p99_ms"], figure
    # the table's rows are the report's
    table = result.stdout
    for row in [*report["checks"], *report["info"]]:
        assert row["name"] in table
    check_the_worker_section(report["workers"], table)
    # the server it started is gone, and so is every mock LLM and worker process
    assert report["server"]["version"].startswith("nats-server: v")
    for pid in [report["server"]["pid"], *report["workers"]["pids"]]:
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)


def check_the_worker_section(section: dict[str, Any], table: str) -> None:
    """Agent loops/s: the one-process baseline, then 1 and 2 workers, each beside 1 worker."""
    assert section["loops"] == 20 and section["rounds"] == 1
    assert (section["steps"], section["tool_calls"]) == (3, 2)
    rows = section["rows"]
    assert [(r["name"], r["workers"]) for r in rows] == [
        ("one process, local transport", 0),
        ("1 worker over NATS", 1),
        ("2 workers over NATS", 2),
    ]
    assert section["ratio_to"] == "1 worker over NATS" and rows[1]["ratio"] == 1.0
    for row in rows:
        assert row["loops_per_s"] > 0 and len(row["rounds"]) == 1, row
        assert row["ratio"] == pytest.approx(row["loops_per_s"] / rows[1]["loops_per_s"], 1e-3)
        assert 0 < row["p50_ms"] <= row["p99_ms"] <= row["max_ms"], row
        cpu = row["cpu_ms_per_loop"]
        assert set(cpu) == {"bench", "workers", "mock_llm", "nats_server"}, row
        assert cpu["bench"] > 0 and all(v >= 0 for v in cpu.values()), row
        assert row["name"] in table
    assert rows[0]["cpu_ms_per_loop"]["workers"] == 0  # no worker in the baseline
    assert [r["exit_codes"] for r in rows[1:]] == [[0], [0, 0]]  # drained on SIGTERM
    assert [len(r["each_worker_cpu_s"]) for r in rows] == [0, 1, 2]
    assert all(0 <= r["drain_s"] < 15 for r in rows[1:])  # none needed a SIGKILL
    assert section["problems"] == []
    assert len(section["pids"]) == 1 + 1 + 2  # the mock LLM and each worker
    assert f"why not linear: this machine has {section['cpus']} cores" in table
    assert section["why"] in table


def test_the_nats_benchmark_can_leave_the_workers_out() -> None:
    binary = nats_server_binary()
    command = [sys.executable, "scripts/bench/nats.py", "--messages", "50", "--requests", "5"]
    command += ["--concurrent", "20", "--in-flight", "5", "--rounds", "1", "--timeout", "60"]
    command += ["--skip-workers", "--json", "--nats-server", binary]
    result = subprocess.run(
        command, cwd=ROOT, capture_output=True, text=True, timeout=120, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr
    report = orjson.loads(result.stdout.strip().splitlines()[-1])
    assert "workers" not in report and "agent loops/s" not in result.stdout
