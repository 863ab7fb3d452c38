"""An attempt's deadline, watched on the endpoint's coarse grid instead of aiohttp's timer
per request: it raises LLMTimeout, leaves the task as it found it, and never swallows a
cancellation that came from outside."""

from __future__ import annotations

import asyncio
import time

import anyio
import pytest

from agents.llm.endpoint import Endpoint
from agents.llm.errors import LLMTimeout
from agents.llm.mock import MockLLM
from agents.llm.wire import ChatCompletionRequest, UserMessage

pytestmark = pytest.mark.anyio

REQUEST = ChatCompletionRequest(model="mock-1", messages=[UserMessage(content="hello")])


def endpoint(url: str) -> Endpoint:
    return Endpoint(name="mock", base_url=url, model="mock-1", max_concurrency=8)


async def test_a_hang_past_the_attempt_deadline_raises_llm_timeout_and_the_task_goes_on() -> None:
    async with MockLLM(faults="timeout:1.0,hang=5s") as url:
        e = endpoint(url)
        await e.start()
        try:
            started = time.monotonic()
            with pytest.raises(LLMTimeout, match=r"no complete answer within 0\.05s") as caught:
                await e.attempt(REQUEST, 0.05)
            assert 0.05 <= time.monotonic() - started < 1
            assert caught.value.retryable and caught.value.endpoint == "mock"
            task = asyncio.current_task()
            assert task is not None and task.cancelling() == 0  # the cancel was taken back
            await asyncio.sleep(0.01)  # and the task is not cancelled later
            assert not any(due for _, due in e._deadlines.buckets.values())
        finally:
            await e.close()
        assert not e._deadlines.buckets  # closing stops the grid's timers


async def test_a_cancellation_from_outside_is_not_turned_into_a_timeout() -> None:
    async with MockLLM(faults="timeout:1.0,hang=5s") as url:
        e = endpoint(url)
        await e.start()
        try:
            with anyio.move_on_after(0.05) as scope:
                await e.attempt(REQUEST, 30.0)
            assert scope.cancelled_caught
            task = asyncio.current_task()
            assert task is not None and task.cancelling() == 0
        finally:
            await e.close()


async def test_both_at_once_the_outside_cancellation_wins() -> None:
    async with MockLLM(faults="timeout:1.0,hang=5s") as url:
        e = endpoint(url)
        await e.start()
        try:
            attempt = asyncio.create_task(e.attempt(REQUEST, 30.0))
            await asyncio.sleep(0.1)  # sent; the mock hangs
            assert any(due for _, due in e._deadlines.buckets.values())
            for key in list(e._deadlines.buckets):  # the deadline passes ...
                e._deadlines._expire(key)
            attempt.cancel()  # ... and the caller gives up in the same loop turn
            with pytest.raises(asyncio.CancelledError):
                await attempt
            assert attempt.cancelled()
        finally:
            await e.close()


async def test_attempts_that_answer_in_time_leave_nothing_behind() -> None:
    async with MockLLM() as url:
        e = endpoint(url)
        await e.start()
        try:
            answers = await asyncio.gather(*(e.attempt(REQUEST, 5.0) for _ in range(20)))
            assert all(a.choices[0].message.content for a in answers)
            assert not any(due for _, due in e._deadlines.buckets.values())
            task = asyncio.current_task()
            assert task is not None and task.cancelling() == 0
        finally:
            await e.close()
