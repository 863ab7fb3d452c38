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
    # the server it started is gone
    assert report["server"]["version"].startswith("nats-server: v")
    with pytest.raises(ProcessLookupError):
        os.kill(report["server"]["pid"], 0)
