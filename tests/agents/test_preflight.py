"""The check, before a run, that an LLM endpoint can be reached at all."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator

import msgspec
import pytest

from agents.config import FallbackConfig, load_config
from agents.preflight import EndpointUnreachable, check_endpoints, probe


@pytest.fixture
def listening() -> Iterator[str]:
    """A base URL on 127.0.0.1 where something accepts connections."""
    with socket.create_server(("127.0.0.1", 0)) as server:
        yield f"http://127.0.0.1:{server.getsockname()[1]}/v1"


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])  # closed again when this returns


def config_for(base_url: str) -> dict[str, str]:
    return {"OPENAI_API_KEY": "sk-test", "OPENAI_BASE_URL": base_url}


def test_nothing_is_checked_for_the_mock_or_a_replay() -> None:
    check_endpoints(load_config(None, env={}).llm)
    replay = {"HIVEBUS_MODE": "replay", "HIVEBUS_CASSETTE": "c.jsonl"}
    dead = {"OPENAI_API_KEY": "sk-x", "OPENAI_BASE_URL": f"http://127.0.0.1:{closed_port()}/v1"}
    check_endpoints(load_config(None, env=dead | replay).llm)


def test_a_listening_endpoint_passes(listening: str) -> None:
    check_endpoints(load_config(None, env=config_for(listening)).llm)


def test_a_refused_connection_is_one_clear_error_at_once() -> None:
    url = f"http://127.0.0.1:{closed_port()}/v1"
    started = time.monotonic()
    with pytest.raises(EndpointUnreachable) as raised:
        check_endpoints(load_config(None, env=config_for(url)).llm)
    assert time.monotonic() - started < 2
    message = str(raised.value)
    assert message.startswith(f"cannot reach the LLM endpoint 'primary' at {url}: ")
    assert "connection refused" in message and "\n" not in message
    assert "sk-test" not in message


def test_a_reachable_fallback_is_enough(listening: str) -> None:
    primary = load_config(None, env=config_for(f"http://127.0.0.1:{closed_port()}/v1")).llm
    fallback = FallbackConfig(model="other", base_url=listening)
    check_endpoints(msgspec.structs.replace(primary, fallbacks=(fallback,)))


@pytest.mark.parametrize(
    ("url", "problem"),
    [("http:///v1", "no host in the URL"), ("http://127.0.0.1:99999/v1", "out of range")],
)
def test_urls_that_name_no_place_are_problems(url: str, problem: str) -> None:
    found = probe(url, timeout=1.0)
    assert found is not None and problem in found
