"""``hivebus trace`` (tree, filters, summary) and ``hivebus trace diff``, in-process."""

from __future__ import annotations

from pathlib import Path

import msgspec
import orjson
import pytest

from agents.cli import main
from agents.trace_view import of_agent
from bus.trace import TraceRecord

from .run_fixtures import record_team_run

pytestmark = pytest.mark.anyio


@pytest.fixture
async def team_trace(tmp_path: Path) -> Path:
    path = tmp_path / "team.jsonl"
    await record_team_run(path)
    return path


def write(path: Path, records: list[TraceRecord]) -> str:
    path.write_bytes(b"".join(msgspec.json.encode(r) + b"\n" for r in records))
    return str(path)


def rec(id: str, subject: str, ts: float, payload: object = None, **kw: object) -> TraceRecord:
    fields: dict[str, object] = {"kind": "event", "type": "Note", "sender": "s"} | kw
    return TraceRecord(id=id, subject=subject, timestamp=ts, payload=payload, **fields)  # type: ignore[arg-type]


async def test_the_tree_reads_as_agent_llm_tools(
    team_trace: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["trace", str(team_trace)]) == 0
    out = capsys.readouterr().out
    lines = out.splitlines()
    assert "hivebus → agent.researcher.inbox [Task] ⏱ " in lines[0]
    assert 'task "How many bees in the north hive?"  ⇒ answer "The north hive' in lines[0]
    llm = next(line for line in lines if "researcher.work → llm.chat" in line)
    assert "gpt-4o-mini · 2 messages · tools: count_bees  ⇒ calls count_bees(" in llm
    assert any("researcher.work → tool.call [ToolCallRequest] ⏱ " in line for line in lines)
    assert "LLM: 3 calls (0 failed), " in out and "tools: 3 calls (1 failed)" in out
    assert "errors: 1 error reply, 1 dead letter" in out
    assert "│ researcher │" in out and "│ looper     │" in out and "│ total" in out


async def test_the_agent_filter_keeps_that_agents_loop(
    team_trace: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["trace", str(team_trace), "--agent", "looper"]) == 0
    out = capsys.readouterr().out
    tree = [line for line in out.splitlines() if " → " in line and "[" in line]
    assert tree and all("looper" in line for line in tree)
    assert "researcher" not in out
    assert "of agent 'looper'" in out
    assert main(["trace", str(team_trace), "--agent", "looper", "--json"]) == 0
    summary = orjson.loads(capsys.readouterr().out)
    assert summary["agent"] == "looper" and list(summary["agents"]) == ["looper"]
    assert summary["agents"]["looper"]["failed"] == 1
    assert summary["llm"]["calls"] == 1 and summary["tools"]["calls"] == 1


async def test_an_unknown_agent_names_the_agents_there_are(
    team_trace: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["trace", str(team_trace), "--agent", "queen"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("\n0 records")
    assert f"no messages of agent 'queen' in {team_trace} (its agents: looper, researcher)" in out


async def test_filters_combine(team_trace: Path, capsys: pytest.CaptureFixture[str]) -> None:
    args = ["trace", str(team_trace), "--agent", "researcher", "--subject", "tool.call", "--json"]
    assert main(args) == 0
    summary = orjson.loads(capsys.readouterr().out)
    assert summary["subjects"]["tool.call"] == 2
    assert "agent.looper.inbox" not in summary["subjects"]


def test_the_agent_filter_takes_inbox_events_and_requests_it_sent() -> None:
    keep = of_agent("bob")
    assert keep(rec("1", "agent.bob.inbox", 1.0))
    assert keep(rec("2", "agent.bob.events", 1.0))
    assert keep(rec("3", "memory.window", 1.0, kind="request", sender="bob.work"))
    assert keep(rec("4", "llm.chat", 1.0, {"agent": "bob"}, kind="request", sender="elsewhere"))
    assert not keep(rec("4", "llm.chat", 1.0, {"agent": "bob"}, sender="elsewhere"))  # an event
    assert not keep(rec("5", "agent.alice.inbox", 1.0))
    assert not keep(rec("6", "agent.bob2.events", 1.0, sender="bob2.work"))


async def test_a_run_diffed_with_itself_is_identical(
    team_trace: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["trace", "diff", str(team_trace), str(team_trace)]) == 0
    out = capsys.readouterr().out
    assert out.startswith("identical: the ") and "(ids, timestamps and durations aside)" in out
    assert main(["trace", "diff", str(team_trace), str(team_trace), "--json"]) == 0
    assert orjson.loads(capsys.readouterr().out)["identical"] is True


def test_the_first_divergence_names_message_field_and_values(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    a = write(tmp_path / "a.jsonl", [rec("a1", "x.y", 1.0, {"text": "bees"})])
    b = write(tmp_path / "b.jsonl", [rec("b1", "x.y", 1.0, {"text": "wasps"})])
    assert main(["trace", "diff", a, b]) == 1
    assert capsys.readouterr().out.splitlines() == [
        f"first divergence at message 1 in causation order "
        f"(A: {a} line 1, 1 message; B: {b} line 1, 1 message)",
        '  A: s → x.y [Note] {"text":"bees"}',
        '  B: s → x.y [Note] {"text":"wasps"}',
        "  field payload.text:",
        '    A: "bees"',
        '    B: "wasps"',
    ]
    assert main(["trace", "diff", a, b, "--json"]) == 1
    found = orjson.loads(capsys.readouterr().out)
    assert (found["identical"], found["position"], found["field"]) == (False, 1, "payload.text")
    assert (found["a"]["value"], found["b"]["value"]) == ("bees", "wasps")
    assert found["a"]["line"] == 1 and found["b"]["messages"] == 1


def test_a_run_that_stops_early_is_where_they_diverge(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    a = write(tmp_path / "a.jsonl", [rec("a1", "x.y", 1.0)])
    b = write(tmp_path / "b.jsonl", [rec("b1", "x.y", 1.0), rec("b2", "x.z", 2.0)])
    assert main(["trace", "diff", a, b]) == 1
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("first divergence at message 2 in causation order (A: ")
    assert "1 message; B: " in lines[0] and "line 2, 2 messages)" in lines[0]
    assert lines[1:] == ["  A: (ends before this message)", "  B: s → x.z [Note] "]
    assert main(["trace", "diff", a, b, "--json"]) == 1
    found = orjson.loads(capsys.readouterr().out)
    assert found["a"]["missing"] is True and found["b"]["value"] == "x.z"


def test_long_values_are_clipped(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    a = write(tmp_path / "a.jsonl", [rec("a1", "x.y", 1.0, "a" * 500)])
    b = write(tmp_path / "b.jsonl", [rec("b1", "x.y", 1.0, "b" * 500)])
    assert main(["trace", "diff", a, b]) == 1
    value_line = capsys.readouterr().out.splitlines()[-2]
    assert value_line.startswith('    A: "aaa') and value_line.endswith("…")
    assert len(value_line) < 220


def test_an_unreadable_trace_is_exit_status_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    good = write(tmp_path / "a.jsonl", [rec("a1", "x.y", 1.0)])
    assert main(["trace", "diff", good, str(tmp_path / "missing.jsonl")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("hivebus trace diff: ") and "cannot read" in err
    assert len(err.splitlines()) == 1
