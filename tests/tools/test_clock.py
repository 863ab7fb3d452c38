"""``clock``: the current time in ISO 8601, in UTC or at a bounded offset."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from bus import Bus
from tools import TOOL_CALL, ToolCallRequest, ToolExecutor, clock

pytestmark = pytest.mark.anyio


def test_the_time_is_now_in_utc_by_default() -> None:
    stamp = datetime.fromisoformat(clock())
    assert stamp.utcoffset() == timedelta(0)
    assert abs(datetime.now(UTC) - stamp) < timedelta(seconds=5)
    assert clock().endswith("+00:00")


def test_an_offset_shifts_the_zone_not_the_instant() -> None:
    stamp = clock(5.5)
    assert stamp.endswith("+05:30")
    assert abs(datetime.now(UTC) - datetime.fromisoformat(stamp)) < timedelta(seconds=5)
    assert clock(-8).endswith("-08:00")


def test_the_time_has_second_precision() -> None:
    assert len(clock()) == len("2024-01-01T00:00:00+00:00")


async def test_an_offset_beyond_any_time_zone_is_refused_with_the_bound(bus: Bus) -> None:
    await bus.add(ToolExecutor([clock]))
    result = await bus.request(
        TOOL_CALL,
        ToolCallRequest(call_id="1", name="clock", arguments='{"utc_offset_hours": 20}'),
    )
    assert result.is_error
    assert result.content == (
        "invalid arguments for tool 'clock': Expected `float` <= 14.0 - at `$.utc_offset_hours`"
    )


async def test_without_arguments_it_answers_in_utc(bus: Bus) -> None:
    await bus.add(ToolExecutor([clock]))
    result = await bus.request(TOOL_CALL, ToolCallRequest(call_id="1", name="clock", arguments=""))
    assert not result.is_error
    assert datetime.fromisoformat(result.content).utcoffset() == timedelta(0)


def test_the_schema_tells_the_model_the_bounds() -> None:
    offset = clock.parameters["properties"]["utc_offset_hours"]
    assert (offset["minimum"], offset["maximum"], offset["default"]) == (-14, 14, 0.0)
    assert clock.parameters["required"] == []
