"""Where the load goes: the mock LLM (in a subprocess, in this process, or already running
at ``--mock-url``) or a configured real endpoint, which is loaded only when asked twice.

:func:`choose_target` decides, before anything starts, and refuses a real endpoint
without ``--yes-real-endpoint`` and a hard ``--max-calls`` (and ``--max-cost`` when
prices are configured): a load test against a paid API spends real money.
:func:`open_target` starts the mock when there is one to start.
"""

from __future__ import annotations

import ipaddress
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Literal
from urllib.parse import urlsplit

import msgspec

from ..config import LLMConfig
from ..llm.mock import MockLLM
from ..llm.policy import Policy
from .mock_process import MockProcess, ServedStats
from .options import DEFAULT_LATENCY, LoadError, LoadOptions, RealEndpointRefused

TargetKind = Literal["mock-subprocess", "mock-in-process", "mock-url", "real"]

WHY = {
    "mock-subprocess": "the mock runs in a process of its own, so that serving it does not "
    "use the CPU of the process under load (whose CPU figures are then the runtime's alone)",
    "mock-in-process": "--mock-in-process: the mock shares this process's CPU, so the CPU "
    "figures include serving it",
    "mock-url": "--mock-url: an already running mock; what it served is not known here",
    "real": "a configured endpoint, with --yes-real-endpoint and a hard cap on calls",
}


@dataclass(frozen=True)
class TargetChoice:
    """The target and the LLM configuration the gateway will use (its URL still empty
    for a mock that is yet to start)."""

    kind: TargetKind
    llm: LLMConfig

    @property
    def is_mock(self) -> bool:
        """Whether a mock LLM answers (any target but a real endpoint)."""
        return self.kind != "real"


def choose_target(options: LoadOptions, llm: LLMConfig) -> TargetChoice:
    """Apply the options to ``llm`` and decide the target (see the module's docstring)."""
    changes: dict[str, object] = {}
    if options.cap is not None:
        changes["max_concurrency"] = options.cap
    if options.rpm is not None:
        changes["rpm"] = options.rpm
    if options.tpm is not None:
        changes["tpm"] = options.tpm
    if options.request_timeout is not None:
        changes["request_timeout"] = options.request_timeout
    if changes:
        llm = msgspec.structs.replace(llm, **changes)
    if options.mock_url is not None:
        if options.faults is not None or options.latency is not None:
            raise LoadError(
                "--latency and --faults shape the mock this command starts; the one at "
                "--mock-url was started with its own"
            )
        if not is_loopback(options.mock_url):
            raise LoadError(
                f"--mock-url {options.mock_url}: not on this machine; a remote server is a real "
                "endpoint: set llm.base_url (or OPENAI_BASE_URL) and pass --yes-real-endpoint "
                "--max-calls N"
            )
        return TargetChoice("mock-url", _as_mock(llm, options.mock_url))
    if llm.uses_mock:
        kind: TargetKind = "mock-in-process" if options.mock_in_process else "mock-subprocess"
        return TargetChoice(kind, _as_mock(llm, None))
    refuse_real_endpoint(options, llm)
    return TargetChoice("real", llm)


def refuse_real_endpoint(options: LoadOptions, llm: LLMConfig) -> None:
    """Raise :class:`RealEndpointRefused` unless the options make loading ``llm`` safe."""
    priced = [e.model for e in llm.endpoints() if llm.price_of(e.model) is not None]
    missing = []
    if not options.yes_real_endpoint:
        missing.append("--yes-real-endpoint")
    if options.max_calls is None:
        missing.append("--max-calls N")
    if priced and options.max_cost is None:
        missing.append("--max-cost USD (prices are configured)")
    where = f"{llm.model} at {urlsplit(llm.base_url or 'https://api.openai.com').netloc}"
    if missing:
        raise RealEndpointRefused(
            f"refusing to load a real endpoint ({where}) without {', '.join(missing)}; "
            "with neither OPENAI_API_KEY nor a base URL set, the mock LLM is loaded instead"
        )
    if options.faults is not None or options.latency is not None:
        raise LoadError("--latency and --faults shape the mock LLM; a real endpoint has its own")


def is_loopback(url: str) -> bool:
    """Whether ``url``'s host is this machine (127.0.0.0/8, ::1 or localhost)."""
    host = urlsplit(url).hostname or ""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _as_mock(llm: LLMConfig, url: str | None) -> LLMConfig:
    """``llm`` pointed at a mock: no key (never sent to a mock), no fallbacks."""
    return msgspec.structs.replace(llm, base_url=url, api_key=None, fallbacks=(), organization=None)


@dataclass(frozen=True)
class Target:
    """A started target: the gateway's configuration, and how to ask what the mock served
    (None when that is not known: a real endpoint, or a mock started elsewhere)."""

    kind: TargetKind
    llm: LLMConfig
    served: Callable[[], Awaitable[ServedStats | None]]

    @property
    def why(self) -> str:
        """Why the load went there, for the report."""
        return WHY[self.kind]


async def _unknown() -> ServedStats | None:
    return None


@asynccontextmanager
async def open_target(
    choice: TargetChoice, options: LoadOptions, policy: Policy | None
) -> AsyncIterator[Target]:
    """Start the mock the choice names (answering with ``policy``), or nothing."""
    latency = options.latency if options.latency is not None else DEFAULT_LATENCY
    if choice.kind == "mock-subprocess":
        process = MockProcess(policy, latency=latency, faults=options.faults, seed=options.seed)
        async with process as url:
            yield Target(choice.kind, choice.llm.with_base_url(url), process.stats)
    elif choice.kind == "mock-in-process":
        mock = MockLLM(policy, latency=latency, faults=options.faults, seed=options.seed)
        async with mock as url:

            async def served() -> ServedStats | None:
                return ServedStats(mock=mock.stats())

            yield Target(choice.kind, choice.llm.with_base_url(url), served)
    else:
        yield Target(choice.kind, choice.llm, _unknown)
