"""The mock LLM in a process of its own, so that serving it does not use the CPU of the
process under load, and what it served can still be counted.

The child is ``python -m agents.cli _load-mock`` (the ``hivebus mock-llm`` options): it
prints ``mock LLM listening on URL``, then answers each ``stats`` line on its stdin with
one JSON line, :class:`ServedStats`, and stops when its stdin closes.
:class:`MockProcess` is the parent's side.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import sys
import tempfile
import time
from pathlib import Path
from types import TracebackType

import msgspec

from ..llm.mock import MockLLM, MockStats
from ..llm.mock_specs import Faults, Latency
from ..llm.policy import Policy, PolicyFile
from .options import LoadError

START_TIMEOUT = 30.0  # seconds for the child to import and listen (a loaded machine)
STOP_TIMEOUT = 10.0
READY = "mock LLM listening on "


class ServedStats(msgspec.Struct, frozen=True, kw_only=True):
    """What the mock served, and the CPU seconds its process used (None in-process)."""

    mock: MockStats
    cpu_seconds: float | None = None


async def serve_with_stats(args: argparse.Namespace) -> None:
    """The child: serve the mock as ``hivebus mock-llm`` would, answer ``stats`` lines."""
    policy = Policy.load(args.policy) if args.policy else None
    mock = MockLLM(
        policy,
        latency=Latency.parse(args.latency),
        faults=Faults.parse(args.faults),
        seed=args.seed,
        host=args.host,
        port=args.port,
    )
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    transport, _ = await loop.connect_read_pipe(
        lambda: asyncio.StreamReaderProtocol(reader), sys.stdin
    )
    try:
        async with mock as url:
            print(READY + url, flush=True)
            while line := await reader.readline():  # until the parent closes our stdin
                if line.strip() == b"stats":
                    served = ServedStats(mock=mock.stats(), cpu_seconds=time.process_time())
                    sys.stdout.write(msgspec.json.encode(served).decode() + "\n")
                    sys.stdout.flush()
    finally:
        transport.close()


class MockProcess:
    """``async with MockProcess(policy, latency, faults) as url``: the child started,
    listening on 127.0.0.1; :meth:`stats` asks it what it served; leaving stops it."""

    def __init__(
        self, policy: Policy | None, *, latency: str, faults: str | None, seed: int = 0
    ) -> None:
        self.policy = policy
        self.latency, self.faults, self.seed = latency, faults, seed
        self.url = ""
        self._process: asyncio.subprocess.Process | None = None
        self._folder: tempfile.TemporaryDirectory[str] | None = None

    async def __aenter__(self) -> str:
        command = [sys.executable, "-m", "agents.cli", "_load-mock", "--port", "0"]
        command += ["--seed", str(self.seed), "--latency", self.latency]
        if self.faults:
            command += ["--faults", self.faults]
        if self.policy is not None:
            self._folder = tempfile.TemporaryDirectory(prefix="hivebus-load-")
            path = Path(self._folder.name) / "policy.json"
            rules = PolicyFile(rules=list(self.policy.rules), default=self.policy.default)
            path.write_bytes(msgspec.json.encode(rules))
            command += ["--policy", str(path)]
        self._process = await asyncio.create_subprocess_exec(
            *command,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            start_new_session=True,  # a Ctrl-C at the terminal is the parent's to handle
        )
        try:
            line = await self._line(START_TIMEOUT)
            if not line.startswith(READY):
                raise LoadError(f"the mock LLM's process did not start: {await self._why(line)}")
        except BaseException:
            await self._stop()
            raise
        self.url = line[len(READY) :].strip()
        return self.url

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self._stop()

    async def stats(self) -> ServedStats:
        """What the child served so far."""
        assert self._process is not None and self._process.stdin is not None
        self._process.stdin.write(b"stats\n")
        await self._process.stdin.drain()
        line = await self._line(STOP_TIMEOUT)
        try:
            return msgspec.json.decode(line, type=ServedStats)
        except msgspec.MsgspecError:
            raise LoadError(f"the mock LLM's process answered {line!r} to stats") from None

    async def _line(self, timeout: float) -> str:
        assert self._process is not None and self._process.stdout is not None
        try:
            async with asyncio.timeout(timeout):
                return (await self._process.stdout.readline()).decode()
        except TimeoutError:
            raise LoadError(f"the mock LLM's process said nothing for {timeout:g}s") from None

    async def _why(self, line: str) -> str:
        assert self._process is not None and self._process.stderr is not None
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(STOP_TIMEOUT):
                await self._process.wait()
        errors = (await self._process.stderr.read()).decode().strip().splitlines()
        return errors[-1] if errors else line.strip() or f"exit status {self._process.returncode}"

    async def _stop(self) -> None:
        process, self._process = self._process, None
        try:
            if process is not None:
                await _end(process)
        finally:
            if self._folder is not None:
                self._folder.cleanup()
                self._folder = None


async def _end(process: asyncio.subprocess.Process) -> None:
    """Close its stdin (it stops), kill it if it does not, and read its pipes to the end."""
    if process.stdin is not None:
        process.stdin.close()
    try:
        async with asyncio.timeout(STOP_TIMEOUT):
            await process.communicate()
    except TimeoutError:
        process.kill()
        await process.communicate()
    finally:
        if process.returncode is None:  # cancelled while waiting: do not leave it behind
            process.kill()
