"""Starting the LLM side of a program: the gateway for a configuration, on a bus — and
the embedded mock LLM first when the configuration names no endpoint."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from typing import Any

from bus import Bus

from ..config import LLMConfig, load_config
from .gateway import LLMGateway
from .mock import MockLLM
from .policy import Policy


@asynccontextmanager
async def llm_gateway(
    bus: Bus,
    config: LLMConfig | None = None,
    *,
    policy: Policy | None = None,
    **gateway_options: Any,
) -> AsyncIterator[LLMGateway]:
    """Run an :class:`LLMGateway` on ``bus`` for ``config`` (default: ``load_config()``).

    With no API key and no base URL configured, the embedded mock LLM is started on
    127.0.0.1 first (answering with ``policy``, or the built-in one) and the gateway
    points at it; so a program runs unchanged with and without a real endpoint. On
    exit the gateway stops taking calls and the mock stops.
    """
    if config is None:
        config = load_config().llm
    async with AsyncExitStack() as stack:
        if config.uses_mock:
            url = await stack.enter_async_context(MockLLM(policy))
            config = config.with_base_url(url)
        gateway = LLMGateway.from_config(config, **gateway_options)
        await bus.add(gateway)
        try:
            yield gateway
        finally:
            gateway.stop()
