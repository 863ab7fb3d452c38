"""The leak test: five batches of 500 synthetic loops in one process, on one runtime, and
after the fifth the live tasks, bus subscriptions and gc-tracked objects are back to
where they were after the first, and RSS has not grown by more than 10 %."""

from __future__ import annotations

import asyncio
import gc

import pytest

from agents.config import Config, LLMConfig
from agents.load.metrics import current_rss
from agents.load.workload import SyntheticWorkload
from agents.memory import InMemoryStore
from agents.runtime import open_runtime
from bus import Bus

pytestmark = pytest.mark.anyio

BATCHES, LOOPS = 5, 500
# Every deadline of a loop (the task's, the bus requests' inside it, the LLM call's) is at
# most this many seconds. The bus keeps one loop timer per 10 ms tick in which a request
# was made until that tick's deadline passes, even once its requests have all been
# answered: bounded by time, not by the number of requests, yet it would read as growth
# here. So after a measured batch the test waits out the deadlines (deterministic: the
# wait's own timer fires after every deadline timer registered before it). 5 s leaves a
# batch (about 0.5 s here) ten times its time on a loaded machine before a loop fails.
DEADLINE = 5.0
# Tracked objects may differ by this many after five batches without a leak: loop
# timers of aiohttp's keep-alive and asyncio's internals that happen to be pending at
# the moment of measuring. A leak of one object per loop would show 2,000.
OBJECT_SLACK = 300
RSS_GROWTH = 0.10  # the bar


def measure(bus: Bus) -> tuple[int, int, int, int]:
    """Live tasks, the bus's subscriptions, gc-tracked objects, RSS in bytes."""
    gc.collect()
    return (
        len(asyncio.all_tasks()),
        len(bus.stats().subscriptions),
        len(gc.get_objects()),
        current_rss(),
    )


async def test_five_batches_leave_nothing_behind() -> None:
    work = SyntheticWorkload(agents=10, steps=3, tools=1, loop_timeout=DEADLINE)
    config = Config(llm=LLMConfig(request_timeout=DEADLINE, deadline=DEADLINE))
    # The store keeps each loop's conversation by design; capped at one batch's worth it
    # holds as much after every batch, so what it keeps is not mistaken for a leak.
    memory = InMemoryStore(max_conversations=LOOPS)
    async with (
        Bus("leak", request_timeout=DEADLINE) as bus,
        # no endpoint configured: the embedded mock LLM, in this process, zero latency
        open_runtime(config, bus=bus, policy=work.policy, memory=memory) as runtime,
    ):
        await work.setup(runtime)
        for batch in range(BATCHES):
            await asyncio.gather(*(work.run(runtime, batch * LOOPS + n) for n in range(LOOPS)))
            if batch == 0:
                await asyncio.sleep(DEADLINE + 0.1)
                tasks, subscriptions, objects, rss = measure(bus)
        await asyncio.sleep(DEADLINE + 0.1)
        tasks_now, subscriptions_now, objects_now, rss_now = measure(bus)
        assert runtime.gateway.stats().calls == BATCHES * LOOPS * 3
    # Tasks: the bus's workers and the mock's one handler per pooled connection, the
    # same connections after every batch; 2 spare for one the pool replaced meanwhile.
    assert tasks_now <= tasks + 2, (tasks, tasks_now)
    assert subscriptions_now == subscriptions
    assert objects_now <= objects + OBJECT_SLACK, (objects, objects_now)
    assert rss_now <= rss * (1 + RSS_GROWTH), (rss, rss_now)
