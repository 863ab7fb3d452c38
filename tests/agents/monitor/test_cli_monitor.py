"""The monitor from the command line: its own thread under ``hivebus run`` and ``load``,
``hivebus monitor TRACE``, and the tokens."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import urllib.request
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pytest

from agents.cli_monitor import TOKEN_VARIABLE, MonitorThread, monitor_token, shown
from agents.monitor import MonitorError
from bus import Bus, Message, Topic

from ...e2e.cli import ROOT, clean_env, hivebus

CENSUS = str(ROOT / "tests" / "e2e" / "scenarios" / "hive_census.py")


class Tick(Message, frozen=True):
    n: int


TICKS = Topic("clock.tick", Tick)


def fetch(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=10) as response:
        return orjson.loads(response.read())


def test_a_thread_monitor_sees_buses_on_other_loops_and_their_exact_counters() -> None:
    """As under ``hivebus run``: the program's bus lives on its own loop (asyncio.run); the
    monitor reads that bus's counters on that loop while it runs."""
    snapshots: list[dict[str, Any]] = []

    async def program(url: str) -> None:
        async with Bus("program") as bus:
            bus.subscribe(TICKS, lambda tick: None, name="clock")
            for n in range(7):
                await bus.publish(TICKS, Tick(n=n))
            await asyncio.sleep(0.3)  # a tick of the monitor
            async with aiohttp.ClientSession() as http, http.get(url + "api/snapshot") as r:
                snapshots.append(await r.json())

    with MonitorThread(title="program") as monitor, monitor.observing():
        asyncio.run(program(monitor.url))
        after = fetch(monitor.url + "api/records?limit=100")
    (snap,) = snapshots
    subjects = {s["subject"]: s["count"] for s in snap["bus"]["subjects"]}
    assert subjects["clock.tick"] == 7
    assert [s["name"] for s in snap["bus"]["subscriptions"]] == ["clock"]
    assert [r["payload"]["n"] for r in after["records"]] == list(range(7))
    with pytest.raises(OSError):  # closed with the block
        fetch(monitor.url + "api/info")


def test_a_thread_monitor_that_cannot_listen_says_why() -> None:
    with MonitorThread(title="a") as first, pytest.raises(MonitorError, match="cannot listen"):
        MonitorThread(port=first.server.port, title="b").__enter__()


def test_tokens_off_loopback(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(TOKEN_VARIABLE, raising=False)
    assert monitor_token("127.0.0.1") is None
    made = monitor_token("0.0.0.0")
    assert made and len(made) >= 20 and made != monitor_token("0.0.0.0")
    monkeypatch.setenv(TOKEN_VARIABLE, "mine")
    assert monitor_token("0.0.0.0") == monitor_token("127.0.0.1") == "mine"


def test_a_token_from_the_environment_is_required_and_never_echoed(tmp_path: Path) -> None:
    secret = "env-s3cret-value"
    result = hivebus(
        "run",
        CENSUS,
        "--quiet",
        "--monitor-host",  # (implies --monitor)
        "127.0.0.1",
        "--trace",
        str(tmp_path / "t.jsonl"),
        env=clean_env(HIVEBUS_MONITOR_TOKEN=secret),
    )
    assert result.returncode == 0, result.stderr
    assert secret not in result.stderr + result.stdout
    (line,) = result.stderr.splitlines()
    assert line.startswith("hivebus run: monitor at http://127.0.0.1:")
    assert line.endswith("/?token=$HIVEBUS_MONITOR_TOKEN")


def test_shown_addresses(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(TOKEN_VARIABLE, raising=False)
    made = "http://0.0.0.0:1/?token=made-here"
    assert shown(made) == made  # (the only way to learn a token made up here)
    monkeypatch.setenv(TOKEN_VARIABLE, "mine")
    assert (
        shown("http://127.0.0.1:1/?token=mine")
        == "http://127.0.0.1:1/?token=$HIVEBUS_MONITOR_TOKEN"
    )
    assert shown("http://127.0.0.1:1/") == "http://127.0.0.1:1/"


def test_rates_are_of_exact_running_counts() -> None:
    from collections import deque

    from agents.monitor.hub import _per_second

    history: deque[tuple[float, int]] = deque(maxlen=64)
    assert _per_second(history, 100.0, 0) == 0.0
    assert _per_second(history, 101.0, 500) == 500.0
    assert _per_second(history, 103.0, 2000) == 2000 / 3
    assert _per_second(history, 110.0, 2100) == 0.0  # nothing within the last 5.5 s but now


def test_run_with_monitor_prints_its_address_and_finishes(tmp_path: Path) -> None:
    trace = tmp_path / "census.jsonl"
    result = hivebus("run", CENSUS, "--quiet", "--monitor", "--trace", str(trace))
    assert result.returncode == 0, result.stderr
    (line,) = result.stderr.splitlines()
    assert line.startswith("hivebus run: monitor at http://127.0.0.1:") and line.endswith("/")
    assert "32 messages" in result.stdout  # the run itself is unchanged


def test_load_with_monitor(tmp_path: Path) -> None:
    result = hivebus(
        "load", "--loops", "20", "--concurrency", "5", "--monitor", "--report", str(tmp_path)
    )
    assert result.returncode == 0, result.stderr
    assert "hivebus load: monitor at http://127.0.0.1:" in result.stderr


def test_monitor_command_serves_a_trace_until_interrupted(tmp_path: Path) -> None:
    trace = tmp_path / "census.jsonl"
    assert hivebus("run", CENSUS, "--quiet", "--trace", str(trace)).returncode == 0
    with subprocess.Popen(
        [sys.executable, "-m", "agents.cli", "monitor", str(trace)],
        cwd=ROOT,
        env=clean_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    ) as process:
        try:
            assert process.stdout is not None and process.stderr is not None
            line = process.stdout.readline()
            assert line.startswith(f"hivebus monitor: {trace} at http://127.0.0.1:"), line
            url = line.split(" at ", 1)[1].split()[0]
            info = fetch(url + "api/info")
            assert info["mode"] == "replay" and info["replay"]["records"] == 32
            snap = fetch(url + "api/snapshot")
            assert {a["name"] for a in snap["agents"]} == {"researcher", "writer"}
            process.send_signal(signal.SIGINT)
            assert process.wait(timeout=10) == 0
            assert process.stderr.read() == ""
        finally:
            if process.poll() is None:
                process.kill()


def test_monitor_command_with_a_bad_trace_says_so_in_one_line(tmp_path: Path) -> None:
    missing = hivebus("monitor", str(tmp_path / "nope.jsonl"))
    assert missing.returncode == 1
    assert missing.stderr.startswith("hivebus monitor: ") and "nope.jsonl" in missing.stderr
    assert len(missing.stderr.splitlines()) == 1
    assert os.path.exists(ROOT / "agents" / "monitor" / "page.html")
