"""``clock``: the current time, so a model need not guess it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from typing import Annotated

import msgspec

from .._tool import tool

Hours = Annotated[
    float,
    msgspec.Meta(ge=-14, le=14, description="Offset from UTC in hours, e.g. 2 or -5.5"),
]


@tool
def clock(utc_offset_hours: Hours = 0.0) -> str:
    """The current date and time in ISO 8601, in UTC unless an offset is given."""
    zone = timezone(timedelta(hours=utc_offset_hours)) if utc_offset_hours else UTC
    return datetime.now(zone).isoformat(timespec="seconds")
