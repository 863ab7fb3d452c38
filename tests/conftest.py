from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import pytest

from bus import Bus

from .nats_server import NatsServer, nats_server_binary


@pytest.fixture
def anyio_backend() -> str:
    # The bus's hot path uses asyncio directly; anyio gives it structure, not portability.
    return "asyncio"


@pytest.fixture
async def bus() -> AsyncIterator[Bus]:
    async with Bus("test", request_timeout=5.0, close_timeout=5.0) as running:
        yield running


@pytest.fixture
def nats_server() -> Iterator[NatsServer]:
    """A real nats-server (JetStream on) of this test's own; skipped without the binary, failed
    instead when HIVEBUS_REQUIRE_NATS=1 (.ci/run sets it)."""
    with NatsServer(nats_server_binary()) as server:
        yield server
