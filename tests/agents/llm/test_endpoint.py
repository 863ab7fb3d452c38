"""An endpoint's health, cost and presentation (no network needed)."""

from __future__ import annotations

import pytest

from agents.llm.endpoint import Endpoint
from agents.llm.errors import LLMError, ProviderError
from agents.llm.wire import ChatCompletionRequest, Usage

pytestmark = pytest.mark.anyio


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def make(clock: Clock, **options: object) -> Endpoint:
    return Endpoint(
        name="e",
        base_url="http://127.0.0.1:9/v1/",
        model="m",
        clock=clock,
        **options,  # type: ignore[arg-type]
    )


def test_repeated_failures_cool_the_endpoint_down_for_a_while() -> None:
    clock = Clock()
    endpoint = make(clock, cooldown=30, cooldown_after=3)
    endpoint.failed()
    endpoint.failed()
    endpoint.succeeded()  # a success in between resets the count
    endpoint.failed()
    endpoint.failed()
    assert endpoint.cooling_for == 0
    endpoint.failed()
    assert endpoint.cooling_for == 30
    clock.now += 29
    assert endpoint.cooling_for == pytest.approx(1)
    clock.now += 2
    assert endpoint.cooling_for == 0


def test_cost_follows_the_prices_per_million_tokens() -> None:
    endpoint = make(Clock(), prices=(2.5, 10.0))
    usage = Usage(prompt_tokens=1000, completion_tokens=500, total_tokens=1500)
    assert endpoint.cost(usage) == pytest.approx(0.0075)
    assert make(Clock()).cost(usage) is None


def test_the_key_never_shows_and_the_url_is_normalised() -> None:
    endpoint = make(Clock(), api_key="sk-secret-value")
    assert "sk-secret-value" not in repr(endpoint)
    assert "api_key='***'" in repr(endpoint)
    assert endpoint.url == "http://127.0.0.1:9/v1/chat/completions"


async def test_an_endpoint_must_be_started_before_use() -> None:
    endpoint = make(Clock())
    request = ChatCompletionRequest(model="m", messages=[])
    with pytest.raises(RuntimeError, match="not started"):
        await endpoint.attempt(request, 1.0)
    await endpoint.start()
    await endpoint.close()
    await endpoint.close()  # closing twice is harmless


def test_errors_name_endpoint_model_and_say_if_they_are_retryable() -> None:
    error = ProviderError("503 provider error: busy", endpoint="e", model="m", status=503)
    assert str(error) == "e/m: 503 provider error: busy"
    assert (error.endpoint, error.model, error.status, error.retryable) == ("e", "m", 503, True)
    assert not LLMError("x").retryable


def test_an_answer_ends_the_cooldown() -> None:
    clock = Clock()
    endpoint = make(clock, cooldown=30, cooldown_after=1)
    endpoint.failed()
    assert endpoint.cooling_for == 30
    endpoint.succeeded()  # a probe got through: the endpoint works again
    assert endpoint.cooling_for == 0
