"""The bus semantics suite runs on both transports: in-process, and over a real nats-server."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from bus import Bus


@pytest.fixture(params=["local", "nats"])
async def bus(request: pytest.FixtureRequest) -> AsyncIterator[Bus]:
    transport = "local"
    if request.param == "nats":
        transport = request.getfixturevalue("nats_server").url
    async with Bus("test", transport=transport, request_timeout=5.0, close_timeout=5.0) as b:
        yield b


def local(bus: Bus) -> bool:
    """Whether ``bus`` runs in-process (some figures only a local bus can know: a publish
    that reached no one, say — over NATS only the server knows that)."""
    return bus.transport == "local"


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "local_only(why): semantics of the in-process transport only; the [nats] variant is "
        "not collected (the reason says what NATS does instead)",
    )


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Tests marked local_only run on the local transport only: their [nats] variant is
    deselected (reported as such), never run and skipped."""
    keep, drop = [], []
    for item in items:
        marked = item.get_closest_marker("local_only") is not None
        (drop if marked and item.name.endswith("[nats]") else keep).append(item)
    if drop:
        config.hook.pytest_deselected(items=drop)
        items[:] = keep
