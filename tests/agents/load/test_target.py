"""Where the load goes: the mock by default, and a real endpoint only when asked twice,
with a hard cap on calls (and cost) that the run keeps to."""

from __future__ import annotations

import pytest

from agents.config import Config, LLMConfig, ModelPrice, Secret
from agents.llm.mock import MockLLM
from agents.load import LoadError, LoadOptions, RealEndpointRefused, choose_target, run_load
from agents.load.target import is_loopback

from .conftest import FAST_RETRIES

pytestmark = pytest.mark.anyio

REAL = LLMConfig(api_key=Secret("sk-real"), model="gpt-4o")


def test_with_no_endpoint_configured_the_mock_runs_in_its_own_process() -> None:
    choice = choose_target(LoadOptions(), LLMConfig())
    assert choice.kind == "mock-subprocess" and choice.is_mock
    assert choose_target(LoadOptions(mock_in_process=True), LLMConfig()).kind == "mock-in-process"


def test_the_options_set_the_gateways_limits() -> None:
    options = LoadOptions(cap=7, rpm=600, tpm=90_000, request_timeout=2.0)
    llm = choose_target(options, LLMConfig()).llm
    assert (llm.max_concurrency, llm.rpm, llm.tpm, llm.request_timeout) == (7, 600, 90_000, 2.0)


def test_a_running_mock_on_this_machine_is_used_as_is() -> None:
    url = "http://127.0.0.1:8000/v1"
    choice = choose_target(LoadOptions(mock_url=url), REAL)
    assert choice.kind == "mock-url" and choice.llm.base_url == url
    assert choice.llm.api_key is None, "a real key is never sent to a mock"


def test_a_running_mock_cannot_be_reshaped() -> None:
    options = LoadOptions(mock_url="http://127.0.0.1:8000/v1", latency="10ms")
    with pytest.raises(LoadError, match="the one at --mock-url was started with its own"):
        choose_target(options, LLMConfig())


def test_a_mock_url_elsewhere_is_refused() -> None:
    with pytest.raises(LoadError, match="not on this machine"):
        choose_target(LoadOptions(mock_url="http://10.1.2.3:8000/v1"), LLMConfig())


@pytest.mark.parametrize(
    ("url", "local"),
    [
        ("http://127.0.0.1:1/v1", True),
        ("http://127.8.0.1/v1", True),
        ("http://[::1]:80/v1", True),
        ("http://localhost:9/v1", True),
        ("https://api.openai.com/v1", False),
        ("http://192.168.0.2/v1", False),
    ],
)
def test_loopback_hosts(url: str, local: bool) -> None:
    assert is_loopback(url) is local


@pytest.mark.parametrize(
    ("options", "missing"),
    [
        (LoadOptions(), "without --yes-real-endpoint, --max-calls N;"),
        (LoadOptions(yes_real_endpoint=True), "without --max-calls N;"),
        (LoadOptions(max_calls=10), "without --yes-real-endpoint;"),
    ],
)
def test_a_real_endpoint_is_refused_without_both_flags(options: LoadOptions, missing: str) -> None:
    with pytest.raises(RealEndpointRefused, match=missing) as refused:
        choose_target(options, REAL)
    assert "gpt-4o at api.openai.com" in str(refused.value)
    assert "sk-real" not in str(refused.value)


def test_with_prices_configured_a_cost_cap_is_required_too() -> None:
    priced = LLMConfig(
        api_key=Secret("sk-real"),
        model="gpt-4o",
        prices={"gpt-4o": ModelPrice(input=2.5, output=10)},
    )
    options = LoadOptions(yes_real_endpoint=True, max_calls=10)
    with pytest.raises(RealEndpointRefused, match=r"--max-cost USD \(prices are configured\)"):
        choose_target(options, priced)
    allowed = choose_target(LoadOptions(yes_real_endpoint=True, max_calls=10, max_cost=1.0), priced)
    assert allowed.kind == "real" and allowed.llm.api_key == Secret("sk-real")


def test_a_base_url_alone_is_a_real_endpoint() -> None:
    with pytest.raises(RealEndpointRefused):
        choose_target(LoadOptions(), LLMConfig(base_url="http://127.0.0.1:9/v1"))


def test_mock_shaping_options_mean_nothing_to_a_real_endpoint() -> None:
    options = LoadOptions(yes_real_endpoint=True, max_calls=10, faults="500:0.1")
    with pytest.raises(LoadError, match="--latency and --faults shape the mock"):
        choose_target(options, REAL)


async def test_run_load_refuses_before_starting_anything() -> None:
    with pytest.raises(RealEndpointRefused):
        await run_load(LoadOptions(loops=5), config=Config(llm=REAL))


async def test_the_call_cap_stops_the_run_against_a_real_endpoint() -> None:
    async with MockLLM(api_key="sk-real") as url:  # standing in for a paid endpoint
        llm = LLMConfig(api_key=Secret("sk-real"), base_url=url, retry=FAST_RETRIES)
        options = LoadOptions(loops=100, concurrency=4, yes_real_endpoint=True, max_calls=20)
        report = await run_load(options, config=Config(llm=llm))
    assert report.target.kind == "real" and report.target.url.startswith("http://127.0.0.1:")
    assert report.target.url.count("/") == 2, "a real endpoint's path is not reported"
    assert report.loops.stopped_by == "max_calls"
    assert report.llm.attempts <= 20
    assert 0 < report.loops.started < 100
    assert report.loops.ok + report.loops.failed == report.loops.started


async def test_the_cost_cap_stops_the_run_against_a_real_endpoint() -> None:
    async with MockLLM(api_key="sk-real") as url:
        llm = LLMConfig(
            api_key=Secret("sk-real"),
            base_url=url,
            model="gpt-4o",
            prices={"gpt-4o": ModelPrice(input=100_000, output=100_000)},  # 10 cents a token
        )
        options = LoadOptions(
            loops=50, concurrency=2, yes_real_endpoint=True, max_calls=1000, max_cost=50.0
        )
        report = await run_load(options, config=Config(llm=llm))
    assert report.loops.stopped_by == "max_cost"
    assert report.loops.started < 50
    assert report.llm.cost > 0
