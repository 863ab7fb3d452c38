"""The mock LLM in a process of its own: started, asked what it served, stopped."""

from __future__ import annotations

import asyncio
import json
import urllib.request

import pytest

from agents.llm.policy import Policy, Rule
from agents.load import LoadError, MockProcess

pytestmark = pytest.mark.anyio


def post(url: str) -> dict[str, object]:
    body = {"model": "m", "messages": [{"role": "user", "content": "hi"}]}
    request = urllib.request.Request(
        f"{url}/chat/completions",
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        answer: dict[str, object] = json.loads(response.read())
        return answer


async def test_the_child_serves_with_its_policy_and_counts() -> None:
    process = MockProcess(Policy([Rule(text="from the child")]), latency="0", faults=None)
    async with process as url:
        assert url.startswith("http://127.0.0.1:") and url.endswith("/v1")
        before = await process.stats()
        answer = await asyncio.to_thread(post, url)
        after = await process.stats()
    choices = answer["choices"]
    assert isinstance(choices, list) and choices[0]["message"]["content"] == "from the child"
    assert before.mock.requests == 0 and after.mock.requests == 1
    assert after.mock.responses == {200: 1}
    assert after.cpu_seconds is not None and after.cpu_seconds > 0


async def test_a_child_that_cannot_start_says_why() -> None:
    process = MockProcess(None, latency="not a latency", faults=None)
    with pytest.raises(LoadError, match=r"did not start: .*latency 'not a latency'"):
        async with process:
            pass


async def test_the_child_is_gone_after_the_block() -> None:
    process = MockProcess(None, latency="0", faults="500:0.5")
    async with process:
        child = process._process
        assert child is not None and child.returncode is None
    assert child.returncode == 0, "it stopped when its stdin closed"
    assert process._folder is None
