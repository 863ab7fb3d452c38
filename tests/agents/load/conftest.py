"""Shared by the tests of ``hivebus load``: a configuration whose retries are quick."""

from __future__ import annotations

import pytest

from agents.config import Config, LLMConfig, RetryPolicy

# Injected faults are retried at once (a 429's Retry-After is set in the fault spec), and
# a hung request is given up after a second and a half.
FAST_RETRIES = RetryPolicy(max_attempts=2, backoff_base=0.001, backoff_max=0.01)
FAULTS = "429:0.1,500:0.05,timeout:0.01,badjson:0.04,retry_after=1ms"


@pytest.fixture
def fast_config() -> Config:
    return Config(llm=LLMConfig(request_timeout=1.5, retry=FAST_RETRIES))
