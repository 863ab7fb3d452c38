"""Starting the gateway from configuration, with the mock when nothing is configured."""

from __future__ import annotations

import pytest

from agents.config import load_config
from agents.llm import ChatRequest, MockLLM, Policy, Rule, chat
from agents.llm.runtime import llm_gateway
from agents.llm.wire import UserMessage
from bus import Bus, NoResponders

pytestmark = pytest.mark.anyio


async def test_with_nothing_configured_the_embedded_mock_answers() -> None:
    policy = Policy([Rule(contains="hive", text="Bees vote with dances.")])
    async with Bus() as bus:
        async with llm_gateway(bus, load_config(None, env={}).llm, policy=policy) as gateway:
            result = await chat(bus, ChatRequest(messages=[UserMessage(content="new hive?")]))
            assert gateway.endpoints[0].base_url.startswith("http://127.0.0.1:")
        assert result.text == "Bees vote with dances."
        with pytest.raises(NoResponders):  # the gateway stopped with the block
            await chat(bus, ChatRequest(messages=[UserMessage(content="again")]))


async def test_a_configured_endpoint_is_used_as_is() -> None:
    async with MockLLM() as url:
        config = load_config(None, env={"OPENAI_BASE_URL": url, "HIVEBUS_MODEL": "mock-1"})
        async with Bus() as bus, llm_gateway(bus, config.llm) as gateway:
            result = await chat(bus, ChatRequest(messages=[UserMessage(content="hi")]))
    assert gateway.endpoints[0].base_url == url
    assert result.model == "mock-1"
