"""Which limit held the run back: the concurrency cap, the rate limit, the endpoint's
latency, or this process's CPU.

Where does an LLM call's time go? At the endpoint (the HTTP exchange), or waiting before
it: for a free slot under the cap (queued on the bus for the gateway, or in admission),
or for the RPM/TPM budget and 429 pauses. Summed over calls in the measured window, each
is a number of call-seconds: queue lengths sampled every interval times the interval,
plus the waits admission accumulates itself. Calls queue for a slot when every slot is
taken; when slots are taken by calls waiting for the rate limit, that queueing is the
rate limit's doing, so the queue's call-seconds are shared out between the cap and the
rate limit as the slots' time is. Then, in this order:

- ``cpu`` — this process used :data:`CPU_BOUND` of a core or more: its one event loop
  is saturated, every wait is inflated by it, and neither a higher cap nor more loops
  would help (run fewer loops per process);
- ``rate_limit`` or ``cap`` — calls waited at least :data:`WAIT_BOUND` of the time
  they spent at the endpoint: whichever of the two held the most of that wait. Raising
  it (if the provider allows) is what raises throughput;
- ``endpoint_latency`` — otherwise calls spend their time at the endpoint: loops wait
  for the model, and more loops at once (up to the cap) would raise throughput.
"""

from __future__ import annotations

from collections.abc import Sequence

from .metrics import Snapshot
from .report import Bottleneck, BottleneckKind

CPU_BOUND = 0.85  # of one core: one event loop cannot use more than one
WAIT_BOUND = 0.2  # waiting, as a share of the time at the endpoint, that names a limit
MIN_SAMPLES = 3  # samples in the window below which there is nothing to tell


def find_bottleneck(samples: Sequence[Snapshot], start: Snapshot, end: Snapshot) -> Bottleneck:
    """The bottleneck of the window from ``start`` to ``end`` (see the module's docstring)."""
    wall = end.t - start.t
    cpu = (end.cpu - start.cpu) / wall if wall > 0 else 0.0
    queued = at_endpoint = 0.0
    previous = start
    inside = [s for s in samples if start.t < s.t < end.t]
    for sample in (*inside, end):
        dt = sample.t - previous.t
        queued += sample.llm_queued * dt
        at_endpoint += sample.at_endpoint * dt
        previous = sample
    rate_wait = end.wait_rate - start.wait_rate
    # the slots are taken by calls at the endpoint or waiting for the rate limit: the
    # queue for a slot is each one's doing in that proportion
    in_slots = at_endpoint + rate_wait
    rate_share = rate_wait / in_slots if in_slots > 0 else 0.0
    seconds = {
        "cap": queued * (1 - rate_share) + (end.wait_cap - start.wait_cap),
        "rate_limit": rate_wait + queued * rate_share,
        "endpoint_latency": at_endpoint,
    }
    rounded = {k: round(v, 3) for k, v in seconds.items()}
    calls = end.llm_calls - start.llm_calls
    if cpu >= CPU_BOUND and len(inside) >= MIN_SAMPLES:
        return Bottleneck(
            kind="cpu",
            reason=f"this process used {cpu:.0%} of a core over the measured window: its event "
            "loop is saturated, so waits are inflated by it; run fewer loops per process",
            call_seconds=rounded,
            cpu_utilisation=round(cpu, 3),
        )
    if calls <= 0 or len(inside) < MIN_SAMPLES:
        return Bottleneck(
            kind="none",
            reason="no LLM calls in the measured window"
            if calls <= 0
            else f"the measured window ({wall:.2f}s) was too short to sample: run it longer",
            call_seconds=rounded,
            cpu_utilisation=round(cpu, 3),
        )
    waited = seconds["cap"] + seconds["rate_limit"]
    kind: BottleneckKind = "endpoint_latency"
    if waited >= WAIT_BOUND * at_endpoint:
        kind = "rate_limit" if seconds["rate_limit"] >= seconds["cap"] else "cap"
    total = sum(seconds.values())
    reasons = {
        "cap": "calls waited for a free slot under the concurrency cap",
        "rate_limit": "calls waited for the requests/tokens-per-minute budget or a 429 pause",
        "endpoint_latency": "calls spent their time at the endpoint, waiting for the model",
    }
    return Bottleneck(
        kind=kind,
        reason=f"{reasons[kind]}; call-seconds "
        f"waiting for the cap {seconds['cap']:,.1f}, for the rate limit "
        f"{seconds['rate_limit']:,.1f}, at the endpoint {at_endpoint:,.1f} (of {total:,.1f}); "
        f"this process used {cpu:.0%} of a core",
        call_seconds=rounded,
        cpu_utilisation=round(cpu, 3),
    )
