"""The real-nats-server test harness: the fixture's server works with nats-py, restarts on its own
port with its store, stops for good; and a missing binary skips, or fails under CI."""

from __future__ import annotations

import os
import stat
import sys
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import pytest

from . import nats_server as ns
from .nats_server import NatsServer

pytestmark = pytest.mark.anyio


@asynccontextmanager
async def connected(url: str) -> AsyncIterator[tuple[Any, list[Exception]]]:
    """A nats-py client that fails fast instead of reconnecting; yields it and its errors.

    Not `max_reconnect_attempts=0`: nats-py (2.16) reads 0 as "no limit" when picking a server,
    so even with allow_reconnect=False connect() retries a refused port forever (every
    reconnect_time_wait). 1 attempt with no wait raises NoServersError at once.
    """
    import nats

    errors: list[Exception] = []

    async def on_error(exc: Exception) -> None:
        errors.append(exc)

    nc = await nats.connect(
        url,
        connect_timeout=2,
        max_reconnect_attempts=1,
        reconnect_time_wait=0,
        allow_reconnect=False,
        error_cb=on_error,
    )
    try:
        yield nc, errors
    finally:
        await nc.close()


async def round_trip(nc: Any, subject: str = "hivebus.test.ping") -> bytes:
    sub = await nc.subscribe(subject)
    try:
        await nc.publish(subject, b"hello")
        await nc.flush(timeout=2)
        msg = await sub.next_msg(timeout=2)
        return bytes(msg.data)
    finally:
        await sub.unsubscribe()


def pid_exists(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


async def test_fixture_server_is_local_and_accepts_connections(nats_server: NatsServer) -> None:
    assert nats_server.url.startswith("nats://127.0.0.1:")
    assert nats_server.url == f"nats://127.0.0.1:{nats_server.port}"
    assert nats_server.running and pid_exists(nats_server.pid)
    assert nats_server.store_dir.is_dir()
    async with connected(nats_server.url) as (nc, errors):
        assert nc.is_connected
        assert nc.connected_url.netloc == f"127.0.0.1:{nats_server.port}"
    assert errors == []


async def test_publish_subscribe_round_trip(nats_server: NatsServer) -> None:
    async with connected(nats_server.url) as (nc, errors):
        assert await round_trip(nc) == b"hello"
    assert errors == []


async def test_jetstream_is_enabled_and_stores_in_store_dir(nats_server: NatsServer) -> None:
    async with connected(nats_server.url) as (nc, errors):
        js = nc.jetstream()
        info = await js.account_info()
        assert info.streams == 0
        await js.add_stream(name="HIVEBUS_TEST", subjects=["hivebus.js.>"])
        ack = await js.publish("hivebus.js.one", b"kept")
        assert ack.stream == "HIVEBUS_TEST" and ack.seq == 1
    assert errors == []
    assert (nats_server.store_dir / "jetstream").is_dir()


async def test_restart_keeps_url_and_jetstream_data(nats_server: NatsServer) -> None:
    url, first_pid = nats_server.url, nats_server.pid
    async with connected(url) as (nc, errors):
        js = nc.jetstream()
        await js.add_stream(name="HIVEBUS_RESTART", subjects=["hivebus.restart.>"])
        await js.publish("hivebus.restart.one", b"before")
    assert errors == []

    nats_server.restart()

    assert nats_server.url == url
    assert nats_server.pid != first_pid and not pid_exists(first_pid)
    async with connected(nats_server.url) as (nc, errors):
        assert await round_trip(nc) == b"hello"
        msg = await nc.jetstream().get_msg("HIVEBUS_RESTART", 1)
        assert msg.data == b"before"
    assert errors == []


async def test_restart_after_kill_comes_back_on_same_port(nats_server: NatsServer) -> None:
    url, first_pid = nats_server.url, nats_server.pid
    nats_server.kill()
    assert not nats_server.running and not pid_exists(first_pid)
    nats_server.restart()
    assert nats_server.url == url and nats_server.running
    async with connected(url) as (nc, errors):
        assert await round_trip(nc) == b"hello"
    assert errors == []


async def test_stop_ends_the_process_and_connecting_fails_fast(nats_server: NatsServer) -> None:
    from nats.errors import NoServersError

    pid, url = nats_server.pid, nats_server.url
    nats_server.stop()
    assert not nats_server.running and not pid_exists(pid)
    nats_server.stop()  # idempotent
    nats_server.kill()  # and harmless once stopped

    started = time.monotonic()
    with anyio.fail_after(5), pytest.raises(NoServersError):
        async with connected(url):
            pytest.fail("connected to a stopped server")
    assert time.monotonic() - started < 2.0


def test_context_manager_removes_its_temp_dir() -> None:
    with NatsServer(ns.nats_server_binary()) as server:
        store, pid = server.store_dir, server.pid
        assert store.is_dir()
    assert not store.exists() and not pid_exists(pid)


def test_early_exit_raises_with_the_log_tail(tmp_path: Path) -> None:
    fake = tmp_path / "nats-server"
    fake.write_text("#!/bin/sh\necho 'bad flags, giving up' >&2\nexit 3\n")
    fake.chmod(fake.stat().st_mode | stat.S_IXUSR)
    server = NatsServer(str(fake))
    with pytest.raises(RuntimeError, match=r"exited early \(code 3\)[\s\S]*bad flags"):
        server.start()
    server.close()


def test_finder_prefers_the_venv_binary(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    venv_bin, path_bin = tmp_path / "venv", tmp_path / "path"
    for folder in (venv_bin, path_bin):
        folder.mkdir()
        exe = folder / "nats-server"
        exe.write_text("#!/bin/sh\n")
        exe.chmod(0o755)
    monkeypatch.setattr(sys, "executable", str(venv_bin / "python"))
    monkeypatch.setenv("PATH", str(path_bin))
    assert ns.find_nats_server() == str(venv_bin / "nats-server")
    (venv_bin / "nats-server").unlink()
    assert ns.find_nats_server() == str(path_bin / "nats-server")
    monkeypatch.setenv("PATH", str(tmp_path / "nowhere"))
    assert ns.find_nats_server() is None


@pytest.mark.parametrize("require", [None, "0", ""])
def test_missing_binary_skips(monkeypatch: pytest.MonkeyPatch, require: str | None) -> None:
    monkeypatch.setattr(ns, "find_nats_server", lambda: None)
    if require is None:
        monkeypatch.delenv(ns.REQUIRE_ENV, raising=False)
    else:
        monkeypatch.setenv(ns.REQUIRE_ENV, require)
    with pytest.raises(pytest.skip.Exception, match="nats-server not found"):
        ns.nats_server_binary()


def test_missing_binary_fails_when_required(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ns, "find_nats_server", lambda: None)
    monkeypatch.setenv(ns.REQUIRE_ENV, "1")
    with pytest.raises(pytest.fail.Exception, match=r"nats-server not found.*HIVEBUS_REQUIRE_NATS"):
        ns.nats_server_binary()


def test_found_binary_is_used(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ns, "find_nats_server", lambda: "/opt/nats-server")
    monkeypatch.setenv(ns.REQUIRE_ENV, "1")
    assert ns.nats_server_binary() == "/opt/nats-server"
