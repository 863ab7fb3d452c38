"""The embedding example, scripts/examples/aiohttp_app.py: a web service that owns one bus for
its lifetime and answers each request with an agent task on it, many at once."""

from __future__ import annotations

import asyncio
import importlib.util
import os
import re
import signal
import subprocess
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from types import ModuleType
from typing import Any

import aiohttp
import anyio
import pytest
from aiohttp import web
from aiohttp.typedefs import Handler

from agents import load_config
from agents.llm import MockLLM, Policy, Rule, ScriptedCall

pytestmark = pytest.mark.anyio

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "examples" / "aiohttp_app.py"
MOCK_CONFIG = load_config(None, env={})  # the embedded mock, whatever the environment says
LOOP_FOREVER = Policy(
    [Rule(tool_calls=[ScriptedCall(name="calculator", arguments={"expression": "1 + 1"})])]
)


def _load_example() -> ModuleType:
    spec = importlib.util.spec_from_file_location("examples_aiohttp_app", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # msgspec resolves the Structs' annotations through it
    spec.loader.exec_module(module)
    return module


example = _load_example()


@asynccontextmanager
async def serving(app: web.Application) -> AsyncIterator[str]:
    """Serve ``app`` on 127.0.0.1 on a free port; yield its URL; shut it all down on exit."""
    runner = web.AppRunner(app)
    await runner.setup()
    try:
        site = web.TCPSite(runner, "127.0.0.1", 0, backlog=1024)
        await site.start()
        yield f"http://127.0.0.1:{site.port}"
    finally:
        await runner.cleanup()


async def post(url: str, body: Any) -> tuple[int, dict[str, Any]]:
    async with aiohttp.ClientSession() as http, http.post(f"{url}/ask", json=body) as response:
        return response.status, await response.json()


async def test_two_hundred_concurrent_questions_each_get_their_own_answer() -> None:
    app = example.create_app(MOCK_CONFIG)
    running = peak = 0

    @web.middleware
    async def count_running(request: web.Request, handler: Handler) -> web.StreamResponse:
        nonlocal running, peak
        running += 1
        peak = max(peak, running)
        try:
            return await handler(request)
        finally:
            running -= 1

    app.middlewares.append(count_running)
    tasks_before = asyncio.all_tasks()
    answers: dict[int, dict[str, Any]] = {}

    async with (
        serving(app) as url,
        aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as http,
    ):

        async def ask(i: int) -> None:
            body = {"question": f"What is {i} * 7 + {i + 1}?", "conversation_id": f"user-{i}"}
            async with http.post(f"{url}/ask", json=body) as response:
                assert response.status == 200, await response.text()
                answers[i] = await response.json()

        with anyio.fail_after(60):
            async with anyio.create_task_group() as tg:
                for i in range(200):
                    tg.start_soon(ask, i)

    for i, answer in answers.items():
        assert answer["answer"] == f"Based on calculator: {i * 7 + i + 1}.", i
        assert answer["conversation_id"] == f"user-{i}"
        assert (answer["agent"], answer["steps"]) == ("assistant", 2)
        assert answer["tokens"] > 0
    assert len(answers) == 200
    assert peak >= 50  # the requests were served at once, not one after another
    runtime = app[example.RUNTIME]
    assert runtime.gateway.stats().calls == 400
    report = runtime.bus.close_report
    assert report is not None and report.drained
    assert (report.unprocessed, report.interrupted, report.failed_requests) == (0, 0, 0)
    assert runtime.bus.stats().in_flight == 0 and runtime.bus.stats().balanced
    assert asyncio.all_tasks() <= tasks_before


async def test_a_question_without_arithmetic_is_answered_without_a_tool() -> None:
    async with serving(example.create_app(MOCK_CONFIG)) as url:
        status, body = await post(url, {"question": "Who are you?"})
    assert status == 200
    assert body["answer"].startswith("I answer arithmetic questions only")
    assert body["steps"] == 1
    assert body["conversation_id"]  # a new conversation of its own


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (b"{not json", "JSON is malformed"),
        (b'{"conversation_id": "c1"}', "missing required field `question`"),
        (b'{"question": 42}', "Expected `str`, got `int` - at `$.question`"),
        (b'{"question": ""}', "length >= 1"),
        (b'{"question": "1 + 1", "temperature": 2}', "unknown field `temperature`"),
    ],
)
async def test_an_invalid_body_is_a_400_that_says_what_is_wrong(raw: bytes, reason: str) -> None:
    async with (
        serving(example.create_app(MOCK_CONFIG)) as url,
        aiohttp.ClientSession() as http,
        http.post(f"{url}/ask", data=raw) as response,
    ):
        status, body = response.status, await response.json()
    assert status == 400
    assert body["error"] == "InvalidRequest"
    assert reason in body["message"]


async def test_an_agent_that_never_finishes_is_a_502_naming_max_steps_exceeded() -> None:
    async with serving(example.create_app(MOCK_CONFIG, policy=LOOP_FOREVER)) as url:
        status, body = await post(url, {"question": "What is 1 + 1?"})
    assert status == 502
    assert body["error"] == "MaxStepsExceeded"
    assert body["message"].startswith("agent 'assistant': ")  # the error's own message only


async def test_a_task_past_its_deadline_is_a_504_naming_task_timeout() -> None:
    app = example.create_app(MOCK_CONFIG, policy=LOOP_FOREVER, timeout=0.001)
    async with serving(app) as url:
        status, body = await post(url, {"question": "What is 1 + 1?"})
    assert status == 504
    assert body["error"] == "TaskTimeout"
    assert app[example.RUNTIME].bus.close_report.drained


async def test_an_llm_error_is_a_502_that_never_shows_the_api_key() -> None:
    key = "sk-not-the-right-key-0123456789"
    async with MockLLM(api_key="the-right-key") as llm_url:
        config = load_config(None, env={"OPENAI_BASE_URL": llm_url, "OPENAI_API_KEY": key})
        async with serving(example.create_app(config)) as url:
            status, body = await post(url, {"question": "What is 2 + 2?"})
    assert status == 502
    assert body["error"] == "AuthenticationFailed"
    assert key not in str(body) and "Traceback" not in str(body)


async def test_healthz_and_stats_report_the_bus_and_the_gateway() -> None:
    async with serving(example.create_app(MOCK_CONFIG)) as url, aiohttp.ClientSession() as http:
        async with http.post(f"{url}/ask", json={"question": "What is 6 * 7?"}) as response:
            assert response.status == 200
        async with http.get(f"{url}/healthz") as response:
            health = await response.json()
        async with http.get(f"{url}/stats") as response:
            stats = await response.json()
    assert health == {"status": "ok", "mock_llm": True}
    assert stats["gateway"]["calls"] == 2
    assert stats["bus"]["subjects"]["agent.assistant.inbox"]["published"] == 1
    assert stats["bus"]["in_flight"] == 0


async def test_the_script_serves_on_the_port_it_prints_and_stops_on_ctrl_c() -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OPENAI_", "HIVEBUS_"))}
    command = [sys.executable, "-u", str(SCRIPT), "--port", "0"]
    async with await anyio.open_process(command, env=env) as process:
        assert process.stdout is not None and process.stderr is not None
        try:
            output = b""
            with anyio.fail_after(30):
                while not (found := re.search(rb"Running on (http://127\.0\.0\.1:\d+)", output)):
                    output += await process.stdout.receive()
            status, body = await post(found[1].decode(), {"question": "What is 17 * 23?"})
            assert (status, body["answer"]) == (200, "Based on calculator: 391.")
            process.send_signal(signal.SIGINT)
            with anyio.fail_after(30):
                assert await process.wait() == 0
        finally:
            if process.returncode is None:
                process.kill()
                await process.wait()
        errors = b"".join([chunk async for chunk in process.stderr])
    assert b"Traceback" not in errors, errors.decode()


def test_the_script_with_a_bad_config_says_so_in_one_line_and_exits_2(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, str(SCRIPT), "--config", str(tmp_path / "missing.toml")],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2
    assert result.stderr == f"error: {tmp_path / 'missing.toml'}: no such file\n"
