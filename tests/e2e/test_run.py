"""``hivebus run`` as a user runs it: a subprocess, stdout a pipe, on the mock LLM."""

from __future__ import annotations

import re
import time
from pathlib import Path

import orjson
import pytest

from bus import read_trace

from .cli import ESCAPES, ROOT, clean_env, hivebus

SCENARIOS = Path(__file__).resolve().parent / "scenarios"
CENSUS = str(SCENARIOS / "hive_census.py")
PLAIN = str(SCENARIOS / "plain_program.py")


def test_a_scenario_runs_to_its_table_and_trace(tmp_path: Path) -> None:
    trace = tmp_path / "census.jsonl"
    result = hivebus("run", CENSUS, "--trace", str(trace))
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    out = result.stdout
    assert not ESCAPES.search(out), "no escape codes or cursor tricks off a terminal"
    lines = out.splitlines()
    assert lines[0] == (
        f"hivebus run {CENSUS} · LLM: embedded mock LLM (gpt-4o-mini) · trace {trace}"
    )
    assert 'hivebus → researcher  task "How many bees live in the hive?"' in lines[1]
    exchange = "\n".join(lines[1:])
    assert "researcher → llm  gpt-4o-mini · 2 messages · tools: count_bees" in exchange
    assert 'llm-gateway → researcher  ↩ calls count_bees({"hive":"north"})' in exchange
    assert 'researcher → tools  count_bees({"hive":"north"})' in exchange
    assert 'tool-executor → researcher  ↩ count_bees = "12000"' in exchange
    assert "researcher · step 2" in exchange and "writer · finished" in exchange
    assert re.search(r"\[Σ 94 tok · \$0\.0000\]", exchange)  # the running count
    table = [line for line in lines if line.startswith("│")]
    assert [row.split("│")[1].strip() for row in table] == ["researcher", "writer", "total"]
    assert re.search(r"│ researcher │\s+1 │\s+2 │\s+2 │\s+58 │ \$0\.0000 │\s+1 │\s+0 │", out)
    assert "32 messages · 3 LLM calls · 94 tokens · $0.0000 · 1 tool call · 0 errors" in out
    # the command as it can be typed here: .venv/bin/hivebus when hivebus is not on PATH
    assert lines[-1] in (
        f"trace: {trace} (read it: hivebus trace {trace})",
        f"trace: {trace} (read it: .venv/bin/hivebus trace {trace})",
    )
    assert read_trace(trace)[0].type == "Task"


def test_its_trace_reads_back_as_a_tree_by_agent_with_a_summary(tmp_path: Path) -> None:
    trace = tmp_path / "census.jsonl"
    assert hivebus("run", CENSUS, "--quiet", "--trace", str(trace)).returncode == 0
    whole = hivebus("trace", str(trace))
    assert whole.returncode == 0, whole.stderr
    tree = whole.stdout.splitlines()
    assert "hivebus → agent.researcher.inbox [Task] ⏱ " in tree[0]
    assert tree[1].startswith("  ") and "researcher.work → agent.researcher.events" in tree[1]
    assert "researcher.work → memory.window [MemoryWindow]" in tree[2]
    assert "append 1 message (user), then window" in tree[2]
    assert any(
        "researcher.work → tool.call [ToolCallRequest]" in line and "⇒ count_bees =" in line
        for line in tree
    )
    assert "32 records (10 events, 11 requests, 11 replies) in 2 trees over " in whole.stdout
    assert "LLM: 3 calls (0 failed), 94 tokens" in whole.stdout
    assert "│ writer     │" in whole.stdout
    writer = hivebus("trace", str(trace), "--agent", "writer")
    assert writer.returncode == 0
    assert "researcher.work" not in writer.stdout and "writer.work → llm.chat" in writer.stdout
    assert "11 records (3 events, 4 requests, 4 replies) in 1 tree of agent 'writer'" in (
        writer.stdout
    )
    summary = orjson.loads(hivebus("trace", str(trace), "--json").stdout)
    assert summary["agents"]["researcher"]["tool_calls"] == 1
    assert summary["llm"]["total_tokens"] == 94


def test_a_plain_asyncio_program_is_watched_and_traced(tmp_path: Path) -> None:
    trace = tmp_path / "plain.jsonl"
    result = hivebus("run", PLAIN, "--trace", str(trace))
    assert result.returncode == 0, result.stderr
    assert not ESCAPES.search(result.stdout)
    assert 'hivebus → calc  task "What is six times seven?"' in result.stdout
    assert 'calc → tools  calculator({"expression":"6*7"})' in result.stdout
    assert "answer: Based on calculator: 42." in result.stdout  # the program's own output
    assert "│ calc  │" in result.stdout
    assert {r.subject for r in read_trace(trace)} >= {"agent.calc.inbox", "llm.chat", "tool.call"}


def test_json_prints_one_summary_object_last(tmp_path: Path) -> None:
    result = hivebus("run", CENSUS, "--json", "--trace", str(tmp_path / "t.jsonl"))
    assert result.returncode == 0, result.stderr
    *before, last = result.stdout.splitlines()
    assert before == ["Report: the north hive is home to 12000 bees."]  # the script's print only
    summary = orjson.loads(last)
    assert summary["status"] == "ok" and summary["script"] == CENSUS
    assert summary["messages"] == 32
    assert summary["llm"] == {
        "calls": 3,
        "errors": 0,
        "prompt_tokens": 67,
        "completion_tokens": 27,
        "total_tokens": 94,
        "cost": 0.0,
    }
    assert summary["agents"]["writer"] == summary["agents"]["writer"] | {
        "tasks": 1,
        "steps": 1,
        "llm_calls": 1,
        "tokens": 36,
        "tool_calls": 0,
        "errors": 0,
    }


def test_a_recorded_run_replays_identically_with_no_llm(tmp_path: Path) -> None:
    cassette, recorded, replayed = (tmp_path / n for n in ("c.jsonl", "rec.jsonl", "rep.jsonl"))
    record = hivebus("run", CENSUS, "--record", str(cassette), "--trace", str(recorded))
    assert record.returncode == 0, record.stderr
    assert f"recording to {cassette}" in record.stdout.splitlines()[0]
    assert f"cassette: {cassette} (replay it: --replay {cassette})" in record.stdout
    # The endpoint is configured but unreachable: a replay must not touch the network.
    dead = clean_env(OPENAI_API_KEY="sk-test", OPENAI_BASE_URL="http://127.0.0.1:1/v1")
    replay = hivebus("run", CENSUS, "--replay", str(cassette), "--trace", str(replayed), env=dead)
    assert replay.returncode == 0, replay.stderr
    assert f"LLM: replaying {cassette}" in replay.stdout.splitlines()[0]
    assert "Report: the north hive is home to 12000 bees." in replay.stdout
    same = hivebus("trace", "diff", str(recorded), str(replayed))
    assert same.returncode == 0, same.stdout
    assert same.stdout.startswith("identical: the 32 messages of ")


def test_a_replay_without_any_endpoint_starts_no_mock(tmp_path: Path) -> None:
    cassette = tmp_path / "c.jsonl"
    assert hivebus("run", PLAIN, "--quiet", "--record", str(cassette), "--trace",
                   str(tmp_path / "a.jsonl")).returncode == 0  # fmt: skip
    replay = hivebus("run", PLAIN, "--replay", str(cassette), "--trace", str(tmp_path / "b.jsonl"))
    assert replay.returncode == 0, replay.stderr
    assert "answer: Based on calculator: 42." in replay.stdout
    chat = [r for r in read_trace(tmp_path / "b.jsonl") if r.type == "ChatResult"]
    assert chat and all(r.payload["endpoint"] == "primary" for r in chat)
    diff = hivebus("trace", "diff", str(tmp_path / "a.jsonl"), str(tmp_path / "b.jsonl"))
    assert diff.returncode == 0, diff.stdout


def test_trace_diff_finds_where_two_runs_part(tmp_path: Path) -> None:
    north, south = tmp_path / "north.jsonl", tmp_path / "south.jsonl"
    assert hivebus("run", CENSUS, "--quiet", "--trace", str(north)).returncode == 0
    changed = hivebus("run", CENSUS, "--quiet", "--trace", str(south), "--", "--hive", "south")
    assert changed.returncode == 0, changed.stderr
    diff = hivebus("trace", "diff", str(north), str(south))
    assert diff.returncode == 1
    lines = diff.stdout.splitlines()
    assert lines[0] == (
        f"first divergence at message 6 in causation order "
        f"(A: {north} line 6, 32 messages; B: {south} line 6, 32 messages)"
    )
    assert lines[1].startswith("  A: llm-gateway.chat → _INBOX.") and "[ChatResult]" in lines[1]
    assert lines[3:] == [
        "  field payload.message.tool_calls[0].function.arguments:",
        '    A: "{\\"hive\\":\\"north\\"}"',
        '    B: "{\\"hive\\":\\"south\\"}"',
    ]


def test_input_errors_are_one_line_and_a_nonzero_exit(tmp_path: Path) -> None:
    bad_config = tmp_path / "bad.toml"
    bad_config.write_text('[llm]\nmax_tokens = "lots"\n')
    nothing = tmp_path / "nothing.py"
    nothing.write_text("x = 1\n")
    cases = {
        "missing script": (["run", str(tmp_path / "nope.py")], "nope.py: no such file"),
        "bad config": (
            ["run", CENSUS, "--config", str(bad_config)],
            "bad.toml: llm.max_tokens: expected int, got str",
        ),
        "nothing to run": (["run", str(nothing)], "nothing to run"),
    }
    for name, (args, message) in cases.items():
        result = hivebus(*args)
        assert result.returncode == 1, name
        assert result.stderr.startswith("hivebus run: ") and message in result.stderr, name
        assert len(result.stderr.splitlines()) == 1, (name, result.stderr)
        assert result.stdout == "", name


def test_an_unreachable_endpoint_is_reported_at_once(tmp_path: Path) -> None:
    env = clean_env(OPENAI_API_KEY="sk-secret-key", OPENAI_BASE_URL="http://127.0.0.1:1/v1")
    started = time.monotonic()
    result = hivebus("run", CENSUS, "--trace", str(tmp_path / "t.jsonl"), env=env)
    assert time.monotonic() - started < 15  # no retries with backoff first
    assert result.returncode == 1
    assert result.stderr.splitlines() == [result.stderr.strip()]
    assert result.stderr.startswith(
        "hivebus run: cannot reach the LLM endpoint 'primary' at http://127.0.0.1:1/v1: "
        "connection refused"
    )
    assert "sk-secret-key" not in result.stderr and "Traceback" not in result.stderr


def test_a_failing_scenario_reports_its_error_after_its_summary(tmp_path: Path) -> None:
    result = hivebus("run", str(SCENARIOS / "failing.py"), "--trace", str(tmp_path / "t.jsonl"))
    assert result.returncode == 1
    assert "│ keeper │" in result.stdout  # what it did before failing
    assert result.stderr == (
        f"hivebus run: {SCENARIOS / 'failing.py'}: RuntimeError: the queen is missing\n"
    )


def test_without_trace_the_run_is_kept_under_hivebus_runs(tmp_path: Path) -> None:
    env = clean_env(PYTHONPATH=str(ROOT))
    result = hivebus("run", CENSUS, "--quiet", env=env, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    (trace,) = (tmp_path / ".hivebus" / "runs").glob("hive_census-*.jsonl")
    assert result.stdout.splitlines()[-1].endswith(f"trace {trace.relative_to(tmp_path)}")
    assert len(read_trace(trace)) == 32


@pytest.mark.parametrize(
    ("command", "words"),
    [
        ([], ["run", "trace", "trace diff", "mock-llm", "examples:"]),
        (
            ["run"],
            ["--config", "--trace", "--record", "--replay", "--quiet", "--json", "--verbose",
             "--debug", "async def main(runtime)", "POLICY", "after `--`"],
        ),
        (["trace"], ["--agent", "--subject", "--json", "causation tree", "summary"]),
        (["trace", "diff"], ["first difference", "ignored", "Exit status", "--json"]),
    ],
)  # fmt: skip
def test_help_describes_every_command_and_option(command: list[str], words: list[str]) -> None:
    result = hivebus(*command, "--help")
    assert result.returncode == 0
    text = " ".join(result.stdout.split())  # as it reads, whatever the line breaks
    for word in words:
        assert word in text, word


FAILING_AGENT = """
from agents import Agent, Runtime
from agents.llm import Policy, Rule, ScriptedCall
from tools import calculator

CALL = ScriptedCall(name="calculator", arguments={"expression": "1+1"})
POLICY = Policy([Rule(agent="keeper", tool_calls=[CALL])])


async def main(runtime: Runtime) -> None:
    await runtime.add(Agent("keeper", "You are keeper.", tools=[calculator], max_steps=2))
    await runtime.ask("keeper", "How is the hive?")
"""


def test_an_agent_that_fails_is_one_line_on_stderr(tmp_path: Path) -> None:
    script = tmp_path / "agent_fails.py"
    script.write_text(FAILING_AGENT)
    result = hivebus("run", str(script), "--quiet", "--trace", str(tmp_path / "t.jsonl"))
    assert result.returncode == 1
    assert result.stderr.splitlines() == [
        f"hivebus run: {script}: MaxStepsExceeded: agent 'keeper': no final answer after "
        "max_steps=2 steps (still calling tools)"
    ]


def test_an_unwritable_cassette_is_one_line_before_anything_runs(tmp_path: Path) -> None:
    result = hivebus("run", CENSUS, "--record", str(tmp_path), "--trace", str(tmp_path / "t"))
    assert result.returncode == 1 and result.stdout == ""
    assert result.stderr.splitlines() == [
        f"hivebus run: --record {tmp_path}: cannot write the cassette: is a folder"
    ]


PARALLEL_TOOLS = """
import asyncio, sys
from agents import Agent, ask
from agents.llm import Policy, Rule, ScriptedCall
from tools import tool

SLOW_FIRST = "slow-first" in sys.argv[1:]

@tool
async def alpha(x: str) -> str:
    \"\"\"Alpha.\"\"\"
    await asyncio.sleep(0.3 if SLOW_FIRST else 0.0)
    return "A"

@tool
async def beta(x: str) -> str:
    \"\"\"Beta.\"\"\"
    await asyncio.sleep(0.0 if SLOW_FIRST else 0.3)
    return "B"

POLICY = Policy([
    Rule(agent="worker", step=0, tool_calls=[ScriptedCall(name="alpha", arguments={"x": "1"}),
                                              ScriptedCall(name="beta", arguments={"x": "2"})]),
    Rule(agent="worker", step=1, text="done"),
])

async def main(runtime):
    await runtime.add(Agent("worker", "You are worker.", tools=[alpha, beta]))
    result = await ask(runtime.bus, "worker", "go")
    print(result.text)
"""


def test_trace_diff_ignores_which_parallel_tool_call_finished_first(tmp_path: Path) -> None:
    script = tmp_path / "parallel_tools.py"
    script.write_text(PARALLEL_TOOLS)
    first, second = tmp_path / "pt1.jsonl", tmp_path / "pt2.jsonl"
    assert hivebus("run", str(script), "-q", "--trace", str(first)).returncode == 0
    slow = hivebus("run", str(script), "-q", "--trace", str(second), "--", "slow-first")
    assert slow.returncode == 0, slow.stderr
    answered = [
        r.payload["tool"]
        for trace in (first, second)
        for r in read_trace(trace)
        if r.type == "AgentEvent" and r.payload["kind"] == "tool_answered"
    ]
    assert answered == ["alpha", "beta", "beta", "alpha"]  # they did finish in other orders
    diff = hivebus("trace", "diff", str(first), str(second))
    assert diff.returncode == 0, diff.stdout
    assert diff.stdout.startswith("identical: the 25 messages of ")


ORDERS = """
import asyncio, sys
from bus import Bus, Message, Topic

class Order(Message, frozen=True, kw_only=True):
    id: str
    qty: int
    timeout: float = 30.0

ORDERS = Topic("orders.placed", Order)

async def run(order_id: str, timeout: float) -> None:
    async with Bus() as bus:
        await bus.publish(ORDERS, Order(id=order_id, qty=3, timeout=timeout))

if __name__ == "__main__":
    asyncio.run(run(sys.argv[1], float(sys.argv[2])))
"""


def test_trace_diff_compares_a_users_id_and_timeout_fields(tmp_path: Path) -> None:
    script = tmp_path / "orders.py"
    script.write_text(ORDERS)
    traces = {}
    for order, timeout in (("ORD-1001", "30"), ("ORD-9999", "30"), ("ORD-1001", "60")):
        traces[order, timeout] = trace = tmp_path / f"{order}-{timeout}.jsonl"
        run = hivebus("run", str(script), "-q", "--trace", str(trace), "--", order, timeout)
        assert run.returncode == 0, run.stderr
    other_id = hivebus(
        "trace", "diff", str(traces["ORD-1001", "30"]), str(traces["ORD-9999", "30"])
    )
    assert other_id.returncode == 1
    assert other_id.stdout.splitlines()[3:] == [
        "  field payload.id:",
        '    A: "ORD-1001"',
        '    B: "ORD-9999"',
    ]
    other_timeout = hivebus(
        "trace", "diff", str(traces["ORD-1001", "30"]), str(traces["ORD-1001", "60"])
    )
    assert other_timeout.returncode == 1
    assert "  field payload.timeout:" in other_timeout.stdout.splitlines()
