"""``hivebus worker``: a scenario split over three processes on a real nats-server gives
what it gives in one; a worker drains and exits on SIGTERM."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import orjson
import pytest

from agents.worker import WorkerError, load_factory

from ..nats_server import NatsServer
from .cli import ROOT, clean_env, hivebus

CENSUS = str(Path(__file__).resolve().parent / "scenarios" / "hive_census.py")
MODULE = "tests.e2e.scenarios.hive_census"
READY_TIMEOUT = 20.0


@contextmanager
def worker(url: str, *factories: str) -> Iterator[subprocess.Popen[str]]:
    """``hivebus worker`` in a process of its own, up once it says what it serves;
    SIGTERM at the end (the test checks how it exited)."""
    process = subprocess.Popen(
        [sys.executable, "-m", "agents.cli", "worker", "--transport", url, *factories],
        cwd=ROOT,
        env=clean_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        deadline = time.monotonic() + READY_TIMEOUT
        line = ""
        while time.monotonic() < deadline and not line.startswith("hivebus worker: serving"):
            line = process.stdout.readline()
            if not line and process.poll() is not None:
                raise AssertionError(f"worker exited: {process.stderr.read()}")  # type: ignore[union-attr]
        assert line.startswith("hivebus worker: serving"), line
        yield process
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
        try:
            _, process.stderr_text = process.communicate(timeout=15)  # type: ignore[attr-defined]
        except subprocess.TimeoutExpired:
            process.kill()
            process.communicate()


def _summary(result: subprocess.CompletedProcess[str]) -> tuple[list[str], dict[str, object]]:
    assert result.returncode == 0, result.stderr
    *printed, last = result.stdout.splitlines()
    return printed, orjson.loads(last)


def test_a_scenario_split_over_three_processes_gives_the_one_process_result(
    nats_server: NatsServer, tmp_path: Path
) -> None:
    alone = _summary(hivebus("run", CENSUS, "--json", "--trace", str(tmp_path / "a.jsonl")))
    url = nats_server.url
    with (
        worker(url, f"{MODULE}:gateway") as gateway,
        worker(url, f"{MODULE}:tools") as tools,
    ):
        split = _summary(
            hivebus(
                "run",
                CENSUS,
                "--json",
                "--trace",
                str(tmp_path / "b.jsonl"),
                "--transport",
                url,
                "--remote",
                "gateway,tools",
            )
        )
    for each in (gateway, tools):  # drained on SIGTERM
        assert each.returncode == 0, each.stderr_text  # type: ignore[attr-defined]
        assert "SIGTERM, draining" in each.stderr_text  # type: ignore[attr-defined]
    printed, summary = split
    assert printed == alone[0] == ["Report: the north hive is home to 12000 bees."]
    assert summary["llm"] == alone[1]["llm"]  # the same 3 calls and tokens, served elsewhere

    def counts(of: object) -> dict[str, dict[str, object]]:  # (not the time taken)
        assert isinstance(of, dict)
        return {name: {k: v for k, v in row.items() if k != "time_s"} for name, row in of.items()}

    assert counts(summary["agents"]) == counts(alone[1]["agents"])
    assert summary["status"] == "ok" and summary["messages"] == alone[1]["messages"]


def test_a_worker_refuses_what_it_cannot_serve() -> None:
    for spec, problem in [
        ("nocolon", "expected MODULE:FACTORY"),
        ("no.such.module:x", "cannot import 'no.such.module'"),
        ("agents.workers:nothing", "has no 'nothing'"),
        ("agents.workers:__doc__", "is not callable"),
    ]:
        with pytest.raises(WorkerError, match=problem):
            load_factory(spec)


def test_a_factory_giving_an_actor_that_cannot_serve_is_one_clear_line(
    nats_server: NatsServer,
) -> None:
    result = hivebus("worker", "tests.e2e.durable_jobs:nothing", "--transport", nats_server.url)
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        "hivebus worker: 'tests.e2e.durable_jobs:nothing': cannot serve 'idle': "
        "actor 'idle' has no @handler methods"
    ]


def test_a_second_sigterm_while_draining_exits_at_once(nats_server: NatsServer) -> None:
    with worker(nats_server.url, "tests.e2e.durable_jobs:jobs") as process:
        process.send_signal(signal.SIGTERM)
        process.send_signal(signal.SIGTERM)
    assert process.returncode in (0, 128 + signal.SIGTERM)  # drained already, or forced
    assert "Traceback" not in process.stderr_text  # type: ignore[attr-defined]


def test_a_worker_needs_a_nats_transport() -> None:
    result = hivebus("worker", "agents.workers:memory", "--transport", "local")
    assert result.returncode == 1
    assert "--transport must be a NATS URL, got 'local'" in result.stderr


def test_a_worker_on_a_server_that_is_down_says_so(nats_server: NatsServer) -> None:
    url = nats_server.url
    nats_server.stop()
    result = hivebus("worker", "agents.workers:memory", "--transport", url)
    assert result.returncode == 1
    assert "cannot connect to NATS at nats://127.0.0.1:" in result.stderr


@pytest.mark.anyio
async def test_a_worker_killed_holding_durable_tasks_loses_none(
    nats_server: NatsServer,
) -> None:
    import anyio
    import nats

    from bus import Bus
    from bus.transport._durable import stream_name

    from .durable_jobs import JOBS, Done, Job

    spec = "tests.e2e.durable_jobs:jobs"
    async with Bus("caller", transport=nats_server.url) as caller:

        async def held_by_workers() -> int:
            """The messages delivered to the group and not acknowledged (the server's view)."""
            nc = await nats.connect(nats_server.url)
            try:
                info = await nc.jetstream().consumer_info(stream_name(JOBS.subject), "q_jobs")
                return int(info.num_ack_pending)
            finally:
                await nc.close()

        replies: list[Done] = []

        async def ask(n: int) -> None:
            replies.append(await caller.request(JOBS, Job(n=n), timeout=60))

        async with anyio.create_task_group() as group:
            for n in range(12):
                group.start_soon(ask, n)
            await caller.drain(5)  # all 12 kept by the server before any worker is up
            with worker(nats_server.url, "tests.e2e.durable_jobs:held_jobs") as doomed:
                with anyio.fail_after(20):
                    while await held_by_workers() < 4:  # noqa: ASYNC110 - it holds 4, mid-way
                        await anyio.sleep(0.05)
                doomed.kill()  # SIGKILL: no drain, no acknowledgement
                doomed.wait()
            assert replies == []
            with worker(nats_server.url, spec) as survivor:
                with anyio.fail_after(30):
                    while len(replies) < 12:  # noqa: ASYNC110
                        await anyio.sleep(0.05)
        assert sorted(r.n for r in replies) == list(range(12))  # each once, none lost
        assert {r.by for r in replies} == {survivor.pid}
        assert caller.stats().late_replies == 0


def test_hivebus_load_runs_its_loops_over_nats(nats_server: NatsServer, tmp_path: Path) -> None:
    from agents.load import read_report

    result = hivebus(
        "load",
        "--loops",
        "30",
        "--quiet",
        "--json",
        "--report",
        str(tmp_path),
        "--transport",
        nats_server.url,
    )
    assert result.returncode == 0, result.stderr
    report = read_report(tmp_path / "report.json")
    assert report.loops.started == 30 and report.loops.ok == 30
    assert report.bus.balanced and report.bus.drained and report.bus.unprocessed == 0
