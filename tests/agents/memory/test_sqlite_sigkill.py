"""An acknowledged append survives SIGKILL: a real process is killed while it writes."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import anyio
import pytest
from anyio.streams.buffered import BufferedByteReceiveStream

from agents.llm.wire import UserMessage
from agents.memory import MEMORY_WINDOW, MemoryWindow, SQLiteStore
from bus import Bus

pytestmark = pytest.mark.anyio

ROOT = Path(__file__).resolve().parents[3]
WRITERS = 8
ACKS_BEFORE_KILL = 400

# Each writer appends 0, 1, 2, ... to its own conversation and prints the number only
# after the Appended reply: every printed line is a promise that the append is stored.
WRITER = f"""
import sys, anyio
from agents.llm.wire import UserMessage
from agents.memory import MEMORY_APPEND, MemoryAppend, SQLiteStore
from bus import Bus

async def write(bus, conversation):
    n = 0
    while True:
        request = MemoryAppend(conversation_id=conversation, messages=[UserMessage(content=str(n))])
        await bus.request(MEMORY_APPEND, request, timeout=30)
        print(conversation, n, flush=True)
        n += 1

async def main():
    async with Bus() as bus:
        await bus.add(SQLiteStore(sys.argv[1]))
        async with anyio.create_task_group() as tg:
            for k in range({WRITERS}):
                tg.start_soon(write, bus, f"c{{k}}")

anyio.run(main)
"""
ACK = re.compile(rb"(c\d+) (\d+)")


async def read_acks(stream: BufferedByteReceiveStream, acks: dict[str, int], enough: int) -> bytes:
    """Record the highest acknowledged number per conversation until ``enough`` lines (or
    the end of the output); return everything read, for the failure message.

    Pass the same ``stream`` on every call: it reads the pipe in chunks, so when it stops
    at the ``enough``-th line it may already hold the lines after it. A new wrapper would
    lose them and their acknowledgements, and more appends than the writers can have in
    flight would then seem stored without being acknowledged."""
    seen = bytearray()
    count = 0
    while count < enough:
        try:
            line = await stream.receive_until(b"\n", 1024)
        except (anyio.EndOfStream, anyio.IncompleteRead):
            break  # killed: a line cut short was never a whole acknowledgement
        seen += line + b"\n"
        if match := ACK.fullmatch(line):
            acks[match[1].decode()] = int(match[2])
            count += 1
    return bytes(seen)


async def test_every_acknowledged_append_survives_sigkill(tmp_path: Path) -> None:
    path = tmp_path / "memory.db"
    acks: dict[str, int] = {}
    command = [sys.executable, "-c", WRITER, str(path)]
    with anyio.fail_after(60):
        async with await anyio.open_process(
            command, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
        ) as process:
            assert process.stdout is not None
            stdout = BufferedByteReceiveStream(process.stdout)  # one for both reads
            output = await read_acks(stdout, acks, ACKS_BEFORE_KILL)
            process.kill()  # SIGKILL, mid-stream: appends are in flight right now
            output += await read_acks(stdout, acks, sys.maxsize)
            assert await process.wait() == -9, output.decode(errors="replace")
    assert sum(n + 1 for n in acks.values()) >= ACKS_BEFORE_KILL, output.decode()

    async with Bus() as bus:
        await bus.add(SQLiteStore(path))
        for conversation in (f"c{k}" for k in range(WRITERS)):
            last = acks.get(conversation, -1)  # -1: none acknowledged
            request = MemoryWindow(conversation_id=conversation)
            stored = (await bus.request(MEMORY_WINDOW, request, timeout=5)).messages
            # everything acknowledged, in order; perhaps one more written but not yet acked
            # (each writer waits for its reply and prints it before its next append)
            assert last + 1 <= len(stored) <= last + 2, (conversation, last, len(stored))
            assert stored == [UserMessage(content=str(n)) for n in range(len(stored))]
