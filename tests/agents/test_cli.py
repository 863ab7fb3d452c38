"""`hivebus` subcommands called in-process through ``main(argv)``."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import msgspec
import orjson
import pytest

from agents.cli import main
from bus.trace import TraceRecord


def write_trace(path: Path, records: list[TraceRecord]) -> Path:
    path.write_bytes(b"\n".join(msgspec.json.encode(r) for r in records) + b"\n")
    return path


def record(id: str, subject: str, ts: float, **kw: object) -> TraceRecord:
    return TraceRecord(
        id=id, subject=subject, kind="event", type="Note", sender="s", timestamp=ts, **kw
    )  # type: ignore[arg-type]


def test_trace_keeps_the_trees_holding_a_matching_subject(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write_trace(
        tmp_path / "t.jsonl",
        [
            record("1", "agent.a.inbox", 1.0),
            record("2", "agent.a.events", 1.1, causation_id="1"),
            record("3", "llm.chat", 1.2),
        ],
    )
    assert main(["trace", str(path), "--subject", "agent.*.events"]) == 0
    out = capsys.readouterr().out
    tree_lines = [line for line in out.splitlines() if "→" in line]
    assert len(tree_lines) == 2  # the whole tree of the match, root included
    assert "agent.a.inbox" in tree_lines[0] and "agent.a.events" in tree_lines[1]
    assert "llm.chat" not in out
    assert "2 records (2 events, 0 requests, 0 replies) in 1 tree matching" in out
    assert main(["trace", str(path), "--subject", "agent.*.events", "--json"]) == 0
    summary = orjson.loads(capsys.readouterr().out)
    assert summary["records"] == 2 and summary["subjects"] == {
        "agent.a.inbox": 1,
        "agent.a.events": 1,
    }


def test_version_is_printed(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["--version"])
    assert exit_info.value.code == 0
    assert capsys.readouterr().out.startswith("hivebus ")


def test_trace_json_counts_subjects(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write_trace(tmp_path / "t.jsonl", [record("1", "a.b", 1.0), record("2", "a.b", 2.0)])
    assert main(["trace", str(path), "--json"]) == 0
    summary = orjson.loads(capsys.readouterr().out)
    assert summary["subjects"] == {"a.b": 2}
    assert summary["roots"] == 2 and summary["span_s"] == 1.0


def test_an_empty_trace_is_an_empty_tree(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "empty.jsonl"
    path.write_text("\n")
    assert main(["trace", str(path)]) == 0
    assert "0 records" in capsys.readouterr().out


def test_no_command_prints_help_and_fails(capsys: pytest.CaptureFixture[str]) -> None:
    assert main([]) == 2
    assert "trace" in capsys.readouterr().out


def test_a_closed_pipe_is_not_a_traceback(tmp_path: Path) -> None:
    path = write_trace(
        tmp_path / "big.jsonl", [record(str(i), "a.b", float(i)) for i in range(20_000)]
    )
    reader = "import sys; sys.stdin.readline()"
    with subprocess.Popen([sys.executable, "-c", reader], stdin=subprocess.PIPE) as head:
        assert head.stdin is not None
        result = subprocess.run(
            [sys.executable, "-m", "agents.cli", "trace", str(path)],
            stdout=head.stdin,
            stderr=subprocess.PIPE,
            text=True,
            timeout=60,
            check=False,
        )
        head.stdin.close()
    assert result.returncode == 0
    assert "Traceback" not in result.stderr
