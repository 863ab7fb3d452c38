"""Backoff with full jitter, Retry-After parsing, rate-limit reset durations."""

from __future__ import annotations

import email.utils
import random

import pytest

from agents.llm.retry import Backoff, reset_after, retry_after


def test_backoff_grows_exponentially_up_to_the_cap_with_full_jitter() -> None:
    policy = Backoff(base=0.5, cap=4.0)
    rng = random.Random(7)
    for failures, ceiling in [(1, 0.5), (2, 1.0), (3, 2.0), (4, 4.0), (9, 4.0)]:
        waits = [policy.backoff(failures, rng) for _ in range(500)]
        assert min(waits) >= 0.0 and max(waits) <= ceiling
        assert max(waits) > 0.8 * ceiling  # the whole range is used: full jitter
        assert min(waits) < 0.2 * ceiling


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ({"retry-after-ms": "1500"}, 1.5),
        ({"retry-after": "7"}, 7.0),
        ({"retry-after": "2.5"}, 2.5),
        ({"retry-after-ms": "250", "retry-after": "9"}, 0.25),  # the precise one wins
        ({"retry-after": "soon"}, None),
        ({}, None),
        ({"retry-after": "-3"}, 0.0),
    ],
)
def test_retry_after_reads_ms_and_seconds(headers: dict[str, str], expected: float) -> None:
    assert retry_after(headers) == expected


def test_retry_after_reads_an_http_date() -> None:
    now = 1_700_000_000.0
    date = email.utils.formatdate(now + 30, usegmt=True)
    assert retry_after({"retry-after": date}, now=now) == pytest.approx(30.0, abs=1.0)
    past = email.utils.formatdate(now - 30, usegmt=True)
    assert retry_after({"retry-after": past}, now=now) == 0.0


@pytest.mark.parametrize(
    ("value", "seconds"),
    [("1s", 1.0), ("6m0s", 360.0), ("20ms", 0.02), ("1h2m3.5s", 3723.5), ("2", 2.0)],
)
def test_reset_durations_in_openai_form(value: str, seconds: float) -> None:
    assert reset_after(value) == pytest.approx(seconds)


@pytest.mark.parametrize("value", ["", "abc", "5x", "m"])
def test_unreadable_reset_durations_are_none(value: str) -> None:
    assert reset_after(value) is None
