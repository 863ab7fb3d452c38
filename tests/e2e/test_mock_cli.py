"""`hivebus mock-llm` run as a user runs it, and asked over HTTP."""

from __future__ import annotations

import subprocess
import sys
import urllib.request
from pathlib import Path

import orjson

ROOT = Path(__file__).resolve().parents[2]


def test_the_standalone_mock_serves_models_and_completions() -> None:
    command = [sys.executable, "-m", "agents.cli", "mock-llm", "--port", "0", "--seed", "3"]
    with subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, text=True) as server:
        try:
            assert server.stdout is not None
            line = server.stdout.readline()
            assert line.startswith("mock LLM listening on http://127.0.0.1:")
            url = line.rsplit(" ", 1)[1].strip()
            with urllib.request.urlopen(f"{url}/models", timeout=10) as response:
                models = orjson.loads(response.read())
            body = {"model": "mock-1", "messages": [{"role": "user", "content": "hi"}]}
            post = urllib.request.Request(
                f"{url}/chat/completions",
                data=orjson.dumps(body),
                headers={"Content-Type": "application/json"},
            )
            with urllib.request.urlopen(post, timeout=10) as response:
                completion = orjson.loads(response.read())
        finally:
            server.terminate()
            server.wait(timeout=10)
    assert models["object"] == "list" and models["data"][0]["id"] == "mock-1"
    assert completion["object"] == "chat.completion"
    assert completion["choices"][0]["message"]["role"] == "assistant"


def test_a_bad_fault_spec_is_one_clear_line() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "agents.cli", "mock-llm", "--faults", "bogus:1"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 1
    assert result.stderr.strip() == (
        "hivebus mock-llm: faults: unknown kind 'bogus' "
        "(one of 429, 500, 503, reset, timeout, badjson, truncated, badargs)"
    )
