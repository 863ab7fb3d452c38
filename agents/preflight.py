"""Checking, before a run, that the configured LLM endpoint can be reached at all.

The gateway retries connection errors with backoff, as it should during a run; but a
wrong base URL is better reported at once, in one line, than after a scenario's first
call has used up its retries. So ``hivebus run`` opens (and closes) one TCP connection to
each endpoint first, and stops if none answers.
"""

from __future__ import annotations

import socket
from urllib.parse import urlsplit

from bus import HivebusError

from .config import LLMConfig

PROBE_TIMEOUT = 3.0  # seconds, at most, per endpoint


class EndpointUnreachable(HivebusError):
    """No configured LLM endpoint accepts a connection; names each and why."""


def check_endpoints(llm: LLMConfig, *, timeout: float = PROBE_TIMEOUT) -> None:
    """Raise :class:`EndpointUnreachable` unless one endpoint of ``llm`` accepts a TCP
    connection. Nothing to check for the embedded mock, or when replaying a cassette."""
    if llm.uses_mock or llm.mode == "replay":
        return
    problems = []
    for endpoint in llm.endpoints():
        url = endpoint.base_url or ""
        problem = probe(url, timeout=min(timeout, endpoint.connect_timeout))
        if problem is None:
            return
        problems.append(f"{endpoint.name!r} at {url}: {problem}")
    raise EndpointUnreachable(
        f"cannot reach the LLM endpoint {'; '.join(problems)} "
        "(check llm.base_url / OPENAI_BASE_URL; with neither a key nor a base URL "
        "the embedded mock LLM answers)"
    )


def probe(url: str, *, timeout: float) -> str | None:
    """Why a TCP connection to ``url``'s host and port fails, or None when it succeeds."""
    parts = urlsplit(url)
    host = parts.hostname
    if not host:
        return "no host in the URL"
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError as error:
        return str(error)
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return None
    except ConnectionRefusedError:
        return "connection refused"
    except socket.gaierror:
        return f"unknown host {host!r}"
    except TimeoutError:
        return f"no answer within {timeout:g}s"
    except OSError as error:
        return error.strerror or str(error)
