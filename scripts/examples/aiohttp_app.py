"""Embedding hivebus in a web service: one bus for the app's lifetime, one agent task per request.

    .venv/bin/python scripts/examples/aiohttp_app.py --port 8080
    curl -s localhost:8080/ask -d '{"question": "What is 17 * 23?"}'
    # {"answer":"Based on calculator: 391.","steps":2,"tokens":...,"agent":"assistant",...}

The structure:
  create_app()       an aiohttp Application whose cleanup_ctx (``runtime_lifetime``) opens a
                     Runtime — the bus, the LLM gateway, memory, a tool executor and the
                     agent — at startup and closes it, drained, at shutdown.
  POST /ask          decodes the body into a ``Question`` (msgspec validates it: 400 if it
                     is wrong), asks the agent on the shared bus and answers an ``Answer``;
                     requests run concurrently, each one task on the bus. An agent or LLM
                     error becomes 502 (504 for a timeout) with its type and message only.
  GET /healthz       liveness; GET /stats: the bus's and the gateway's counters.

With no endpoint configured (no OPENAI_API_KEY / HIVEBUS_CONFIG), the embedded mock LLM
answers: arithmetic goes through the calculator, anything else gets a polite refusal.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Annotated

import msgspec
from aiohttp import web

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from agents import Agent, Config, ConfigError, Runtime, TaskTimeout, load_config, open_runtime
from agents.llm import DeadlineExceeded, GatewayStats, LLMTimeout, Policy, Rule
from bus import BusStats, HivebusError
from tools import calculator

RUNTIME = web.AppKey("runtime", Runtime)
AGENT = "assistant"


class Question(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """The body of ``POST /ask``; an empty ``conversation_id`` starts a new one."""

    question: Annotated[str, msgspec.Meta(min_length=1, max_length=4_000)]
    conversation_id: str = ""


class Answer(msgspec.Struct, frozen=True, kw_only=True):
    """What ``POST /ask`` answers: the agent's text, its LLM steps and tokens used."""

    answer: str | None
    steps: int
    tokens: int
    agent: str
    conversation_id: str


class Problem(msgspec.Struct, frozen=True, kw_only=True):
    """An error response: the error's type name and its one-line message."""

    error: str
    message: str


class Stats(msgspec.Struct, frozen=True, kw_only=True):
    """What ``GET /stats`` answers."""

    bus: BusStats
    gateway: GatewayStats


def mock_policy() -> Policy:
    """The mock LLM's script: a question without a digit is refused; the built-in default
    answers the rest by calling the calculator on the arithmetic it finds, then reporting."""
    refusal = "I answer arithmetic questions only, e.g. 'What is 6 * 7?'."
    return Policy([Rule(name="no-arithmetic", role="user", regex=r"^\D*$", text=refusal)])


def create_app(
    config: Config | None = None, *, policy: Policy | None = None, timeout: float = 60.0
) -> web.Application:
    """The web app; ``policy`` scripts the mock LLM (default :func:`mock_policy`) and
    ``timeout`` bounds each agent task in seconds."""

    async def runtime_lifetime(app: web.Application) -> AsyncIterator[None]:
        async with open_runtime(config, policy=policy or mock_policy(), name="web") as runtime:
            instructions = "You are an assistant who answers arithmetic with the calculator."
            await runtime.add(Agent(AGENT, instructions, tools=[calculator], max_steps=5))
            app[RUNTIME] = runtime
            yield  # serving; aiohttp waits for in-flight requests before resuming us

    async def ask(request: web.Request) -> web.Response:
        try:
            question = msgspec.json.decode(await request.read(), type=Question)
        except msgspec.DecodeError as error:  # malformed JSON and invalid fields alike
            return _json(Problem(error="InvalidRequest", message=f"request body: {error}"), 400)
        try:
            result = await request.app[RUNTIME].ask(
                AGENT, question.question, conversation_id=question.conversation_id, timeout=timeout
            )
        except HivebusError as error:  # typed, and never carries an API key
            return _json(Problem(error=type(error).__name__, message=str(error)), _status(error))
        answer = Answer(
            answer=result.text,
            steps=result.steps,
            tokens=result.usage.total_tokens,
            agent=result.agent,
            conversation_id=result.conversation_id,
        )
        return _json(answer)

    async def healthz(request: web.Request) -> web.Response:
        return _json({"status": "ok", "mock_llm": request.app[RUNTIME].uses_mock})

    async def stats(request: web.Request) -> web.Response:
        runtime = request.app[RUNTIME]
        return _json(Stats(bus=runtime.bus.stats(), gateway=runtime.gateway.stats()))

    app = web.Application()
    app.cleanup_ctx.append(runtime_lifetime)
    app.add_routes([web.post("/ask", ask), web.get("/healthz", healthz), web.get("/stats", stats)])
    return app


def _status(error: HivebusError) -> int:
    return 504 if isinstance(error, TaskTimeout | LLMTimeout | DeadlineExceeded) else 502


def _json(body: object, status: int = 200) -> web.Response:
    return web.Response(
        body=msgspec.json.encode(body), status=status, content_type="application/json"
    )


def main(argv: list[str] | None = None) -> None:
    """Parse the command line, load the configuration and serve until Ctrl-C or SIGTERM."""
    parser = argparse.ArgumentParser(description="Serve an arithmetic agent over HTTP.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8080, help="0 picks a free port")
    parser.add_argument("--config", help="a .toml or .json file (default: $HIVEBUS_CONFIG)")
    parser.add_argument("--timeout", type=float, default=60.0, help="seconds per question")
    args = parser.parse_args(argv)
    try:
        config = load_config(args.config)
    except ConfigError as error:  # one line, and never the key
        parser.exit(2, f"error: {error}\n")
    web.run_app(create_app(config, timeout=args.timeout), host=args.host, port=args.port)


if __name__ == "__main__":
    main()
