"""Where the gateway's CPU per request goes, layer by layer, next to raw aiohttp.

    .venv/bin/python scripts/bench/gateway_layers.py [--rounds 20] [--requests 2000]

A diagnostic for the c100 bar of ``gateway.py``: one mock LLM in its own process, one
keep-alive pool shared by every variant (no connection set-up in the figures), 100
concurrent callers, and the variants run in rotating order, round after round, so that
each sees the same machine. Client CPU per request, the median of the rounds:

  raw        aiohttp + orjson, as a user writes it (``async with``, a dict body)  — baseline
  endpoint   Endpoint.attempt: our HTTP (msgspec, the deadline grid, no ``async with``)
  gateway    LLMGateway.chat called directly: + admission, retries' loop, accounting
  bus        agents.llm.chat over the bus: + the request, routing, context, reply

Each figure is printed with its cost over the layer below and its ratio to raw. The
micro-benchmark of the same layers (no network) costs a third of what they cost here:
between requests, aiohttp's own work evicts ours from the CPU's caches.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import orjson

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from agents.llm.client import chat
from agents.llm.endpoint import Endpoint
from agents.llm.gateway import LLMGateway
from agents.llm.messages import ChatRequest
from agents.llm.wire import ChatCompletionRequest, UserMessage
from bus import Bus
from scripts.bench.gateway import BODY, mock_server

LAYERS = ("raw", "endpoint", "gateway", "bus")


class _Envelope:
    timestamp = 0.0  # (no send time: the call's deadline runs from the handler's start)


class _Context:
    """What LLMGateway.chat reads of its context when called without the bus."""

    envelope = _Envelope()


async def measure(url: str, rounds: int, requests: int, concurrency: int) -> dict[str, Any]:
    endpoint = Endpoint(name="mock", base_url=url, model="mock-1", max_concurrency=concurrency)
    request = ChatRequest(messages=[UserMessage(content="What is a hive?")], model="mock-1")
    wire = ChatCompletionRequest(model="mock-1", messages=request.messages)
    body = orjson.dumps(BODY)
    headers = {"Content-Type": "application/json"}
    async with Bus("bench", request_timeout=600) as bus:
        gateway = await bus.add(LLMGateway([endpoint]))
        session = endpoint._session  # the one pool every layer uses
        assert session is not None
        ctx: Any = _Context()

        async def raw() -> None:
            async with session.post(endpoint.url, data=body, headers=headers) as response:
                assert orjson.loads(await response.read())["choices"]

        async def by_endpoint() -> None:
            assert (await endpoint.attempt(wire, 60.0)).choices

        async def by_gateway() -> None:
            assert (await gateway.chat(request, ctx)).message.content

        async def by_bus() -> None:
            assert (await chat(bus, request)).message.content

        calls: dict[str, Callable[[], Awaitable[None]]] = {
            "raw": raw,
            "endpoint": by_endpoint,
            "gateway": by_gateway,
            "bus": by_bus,
        }

        async def cpu_per_request(call: Callable[[], Awaitable[None]], n: int) -> float:
            left = [n]

            async def worker() -> None:
                while left[0] > 0:
                    left[0] -= 1
                    await call()

            cpu = time.process_time()
            await asyncio.gather(*(worker() for _ in range(concurrency)))
            return (time.process_time() - cpu) / n * 1e6

        for layer in LAYERS:  # warm-up: the pool's connections, decoders, caches
            await cpu_per_request(calls[layer], requests)
        samples: dict[str, list[float]] = {layer: [] for layer in LAYERS}
        for round_ in range(rounds):
            shift = round_ % len(LAYERS)
            order = LAYERS[shift:] + LAYERS[:shift]
            for layer in order if round_ % 2 else reversed(order):
                samples[layer].append(await cpu_per_request(calls[layer], requests))
    return {layer: statistics.median(values) for layer, values in samples.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=20, help="rounds of every layer")
    parser.add_argument("--requests", type=int, default=2000, help="requests per layer and round")
    parser.add_argument("--concurrency", type=int, default=100)
    parser.add_argument("--json", action="store_true", help="print one JSON object last")
    args = parser.parse_args()
    with mock_server(None) as url:
        cpu = asyncio.run(measure(url, args.rounds, args.requests, args.concurrency))
    print(f"{'layer':10} {'CPU us/request':>15} {'over the layer below':>21} {'raw / layer':>12}")
    below = None
    for layer in LAYERS:
        added = "" if below is None else f"{cpu[layer] - cpu[below]:+.1f}"
        print(f"{layer:10} {cpu[layer]:>15.1f} {added:>21} {cpu['raw'] / cpu[layer]:>12.3f}")
        below = layer
    if args.json:
        print(orjson.dumps({"bench": "gateway_layers", "cpu_us_per_request": cpu}).decode())


if __name__ == "__main__":
    main()
