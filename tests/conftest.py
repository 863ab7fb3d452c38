from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from bus import Bus


@pytest.fixture
def anyio_backend() -> str:
    # The bus's hot path uses asyncio directly; anyio gives it structure, not portability.
    return "asyncio"


@pytest.fixture
async def bus() -> AsyncIterator[Bus]:
    async with Bus("test", request_timeout=5.0, close_timeout=5.0) as running:
        yield running
