"""Bus throughput and latency, each next to a raw-asyncio baseline measured in the same run.

    .venv/bin/python scripts/bench/bus.py            # a table
    .venv/bin/python scripts/bench/bus.py --json     # ... and one JSON object as the last line

Figures (each the median of --rounds rounds, bus and baseline alternating):
  1->1       publish -> handle, messages/s          vs a raw asyncio.Queue(1024) producer/consumer
  1->10      fan-out deliveries/s                   vs ten raw queues, one consumer each
  wildcard   10,000 wildcard subscriptions on distinct subjects, messages spread over them
             vs 10,000 raw queues with a consumer each and a dict from subject to queue
  rpc        sequential request/reply p50 and p99   vs a raw future round trip through a server task
  rpc-10k    10,000 concurrent requests, calls/s    vs 10,000 concurrent raw future round trips
Bars (issue 2): 1->1 >= 0.5x the raw queue; request/reply p50 <= 3x the raw round trip.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import statistics
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from bus import Bus, Message, Topic
from scripts.bench._report import check, print_checks


class Ping(Message, frozen=True, kw_only=True):
    n: int


class Pong(Message, frozen=True, kw_only=True):
    n: int


PING = Topic("bench.ping", Ping, reply=Pong)


# -- raw baselines ------------------------------------------------------------------------


async def raw_queue(n: int, consumers: int = 1) -> float:
    queues: list[asyncio.Queue[Ping]] = [asyncio.Queue(1024) for _ in range(consumers)]
    done = [0]

    async def consume(q: asyncio.Queue[Ping]) -> None:
        for _ in range(n):
            await q.get()
            done[0] += 1

    tasks = [asyncio.create_task(consume(q)) for q in queues]
    start = time.perf_counter()
    for i in range(n):
        msg = Ping(n=i)
        for q in queues:
            await q.put(msg)
    await asyncio.gather(*tasks)
    return n * consumers / (time.perf_counter() - start)


async def raw_many_queues(n: int, queues: int) -> float:
    """The raw equivalent of the wildcard figure: one queue and one consumer per subject,
    a dict from subject to queue, messages spread round-robin over the subjects."""
    subjects = [f"bench.s{i}.x" for i in range(queues)]
    by_subject: dict[str, asyncio.Queue[Ping]] = {s: asyncio.Queue(64) for s in subjects}
    per_queue = [n // queues + (1 if i < n % queues else 0) for i in range(queues)]

    async def consume(q: asyncio.Queue[Ping], count: int) -> None:
        for _ in range(count):
            await q.get()

    tasks = [
        asyncio.create_task(consume(q, c))
        for q, c in zip(by_subject.values(), per_queue, strict=True)
    ]
    start = time.perf_counter()
    for i in range(n):
        await by_subject[subjects[i % queues]].put(Ping(n=i))
    await asyncio.gather(*tasks)
    return n / (time.perf_counter() - start)


async def _raw_server(q: asyncio.Queue[tuple[Ping, asyncio.Future[Pong]]]) -> None:
    while True:
        msg, fut = await q.get()
        if not fut.done():
            fut.set_result(Pong(n=msg.n))


async def raw_rpc_sequential(n: int) -> list[float]:
    loop = asyncio.get_running_loop()
    q: asyncio.Queue[tuple[Ping, asyncio.Future[Pong]]] = asyncio.Queue(1024)
    server = asyncio.create_task(_raw_server(q))
    lat = []
    for i in range(n):
        t0 = time.perf_counter_ns()
        fut: asyncio.Future[Pong] = loop.create_future()
        await q.put((Ping(n=i), fut))
        await fut
        lat.append((time.perf_counter_ns() - t0) / 1000)
    server.cancel()
    return lat


async def raw_rpc_concurrent(n: int) -> float:
    loop = asyncio.get_running_loop()
    q: asyncio.Queue[tuple[Ping, asyncio.Future[Pong]]] = asyncio.Queue(1024)
    server = asyncio.create_task(_raw_server(q))

    async def call(i: int) -> Pong:
        fut: asyncio.Future[Pong] = loop.create_future()
        await q.put((Ping(n=i), fut))
        return await fut

    start = time.perf_counter()
    await asyncio.gather(*(call(i) for i in range(n)))
    elapsed = time.perf_counter() - start
    server.cancel()
    return n / elapsed


# -- the bus ------------------------------------------------------------------------------


async def bus_pubsub(n: int, subscribers: int = 1) -> float:
    async with Bus() as bus:
        count = [0]

        async def on_ping(msg: Ping) -> None:
            count[0] += 1

        for _ in range(subscribers):
            bus.subscribe(PING, on_ping)
        start = time.perf_counter()
        for i in range(n):
            await bus.publish(PING, Ping(n=i))
        await bus.drain()
        elapsed = time.perf_counter() - start
        assert count[0] == n * subscribers, count
    return n * subscribers / elapsed


async def bus_wildcard(n: int, subscriptions: int = 10_000) -> float:
    async with Bus() as bus:
        count = [0]

        async def on_ping(msg: Ping) -> None:
            count[0] += 1

        for i in range(subscriptions):
            bus.subscribe(Topic(f"bench.s{i}.*", Ping), on_ping, buffer=64)
        topics = [Topic(f"bench.s{i}.x", Ping) for i in range(subscriptions)]
        start = time.perf_counter()
        for i in range(n):
            await bus.publish(topics[i % subscriptions], Ping(n=i))
        await bus.drain()
        elapsed = time.perf_counter() - start
        assert count[0] == n, count
    return n / elapsed


async def bus_rpc_sequential(n: int) -> list[float]:
    async with Bus() as bus:

        async def on_ping(msg: Ping) -> Pong:
            return Pong(n=msg.n)

        bus.subscribe(PING, on_ping)
        lat = []
        for i in range(n):
            t0 = time.perf_counter_ns()
            await bus.request(PING, Ping(n=i), timeout=5.0)
            lat.append((time.perf_counter_ns() - t0) / 1000)
    return lat


async def bus_rpc_concurrent(n: int) -> float:
    async with Bus() as bus:

        async def on_ping(msg: Ping) -> Pong:
            return Pong(n=msg.n)

        bus.subscribe(PING, on_ping)
        start = time.perf_counter()
        await asyncio.gather(*(bus.request(PING, Ping(n=i), timeout=60.0) for i in range(n)))
        elapsed = time.perf_counter() - start
    return n / elapsed


# -- running ------------------------------------------------------------------------------


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def median_of(rounds: int, fn: Callable[[], Awaitable[float]]) -> float:
    values = []
    for _ in range(rounds):
        gc.collect()
        values.append(await fn())
    return statistics.median(values)


async def run(args: argparse.Namespace) -> dict[str, object]:
    n, rounds = args.n, args.rounds
    checks: list[dict[str, object]] = []

    raw = await median_of(rounds, lambda: raw_queue(n))
    mine = await median_of(rounds, lambda: bus_pubsub(n))
    checks.append(check("1->1 msgs/s", mine, raw, ">= 0.5x raw asyncio.Queue", mine / raw >= 0.5))

    fan_n = n // 10
    raw = await median_of(rounds, lambda: raw_queue(fan_n, 10))
    mine = await median_of(rounds, lambda: bus_pubsub(fan_n, 10))
    checks.append(check("1->10 deliveries/s", mine, raw, "(none; raw 10 queues)", True))

    subs = args.subs
    raw = await median_of(rounds, lambda: raw_many_queues(n, subs))
    mine = await median_of(rounds, lambda: bus_wildcard(n, subs))
    bar = f"(none; {subs:,} raw queues + consumers)"
    checks.append(check("10k wildcard subs msgs/s", mine, raw, bar, True))

    rpc_n = args.rpc
    raw_lat: list[float] = []
    bus_lat: list[float] = []
    for _ in range(rounds):
        gc.collect()
        raw_lat += await raw_rpc_sequential(rpc_n)
        gc.collect()
        bus_lat += await bus_rpc_sequential(rpc_n)
    p50, r50 = pct(bus_lat, 0.5), pct(raw_lat, 0.5)
    p99, r99 = pct(bus_lat, 0.99), pct(raw_lat, 0.99)
    bar = "<= 3x raw future round trip"
    checks.append(check("request/reply p50 us", p50, r50, bar, p50 <= 3 * r50))
    checks.append(check("request/reply p99 us", p99, r99, "(none)", True))

    raw = await median_of(rounds, lambda: raw_rpc_concurrent(args.concurrent))
    mine = await median_of(rounds, lambda: bus_rpc_concurrent(args.concurrent))
    checks.append(check("10k concurrent requests calls/s", mine, raw, "(none)", True))
    return {
        "bench": "bus",
        "python": sys.version.split()[0],
        "loop": type(asyncio.get_running_loop()).__module__,
        "n": n,
        "rounds": rounds,
        "checks": checks,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=200_000, help="messages per 1->1 round")
    parser.add_argument("--rpc", type=int, default=20_000, help="sequential requests per round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--subs", type=int, default=10_000, help="wildcard subscriptions")
    parser.add_argument("--concurrent", type=int, default=10_000, help="concurrent requests")
    parser.add_argument("--json", action="store_true", help="print one JSON object last")
    args = parser.parse_args()
    print_checks(asyncio.run(run(args)), "hivebus", as_json=args.json)


if __name__ == "__main__":
    main()
