"""``hivebus run`` called in-process through ``main(argv)``: outputs, statuses, arguments."""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest

from agents.cli import main
from agents.cli_run import one_line
from bus import read_trace

SCENARIOS = Path(__file__).resolve().parents[1] / "e2e" / "scenarios"
CENSUS = str(SCENARIOS / "hive_census.py")


@pytest.fixture(autouse=True)
def mock_only(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """No endpoint configured: every run here is on the embedded mock LLM."""
    for name in list(os.environ):
        if name.startswith(("OPENAI_", "HIVEBUS_")):
            monkeypatch.delenv(name)
    yield


def write(tmp_path: Path, text: str, name: str = "scenario.py") -> str:
    path = tmp_path / name
    path.write_text(text)
    return str(path)


def test_a_run_shows_the_exchange_the_table_and_the_trace(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    trace = tmp_path / "run.jsonl"
    assert main(["run", CENSUS, "--trace", str(trace)]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"hivebus run {CENSUS} · LLM: embedded mock LLM (gpt-4o-mini) · trace")
    assert 'hivebus → researcher  task "How many bees live in the hive?"' in out
    assert "Report: the north hive is home to 12000 bees." in out  # the script's own print
    assert "│ researcher │" in out and "│ writer     │" in out
    assert f"trace: {trace} (read it: " in out and f"hivebus trace {trace})" in out
    assert read_trace(trace)[0].subject == "agent.researcher.inbox"


def test_quiet_prints_only_the_closing_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["run", CENSUS, "--quiet", "--trace", str(tmp_path / "t.jsonl")]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "Report: the north hive is home to 12000 bees."
    assert len(lines) == 2 and lines[1].startswith("32 messages · 3 LLM calls · ")
    assert lines[1].endswith(f"trace {tmp_path / 't.jsonl'}")


def test_json_is_the_last_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["run", CENSUS, "--json", "--trace", str(tmp_path / "t.jsonl")]) == 0
    last = capsys.readouterr().out.splitlines()[-1]
    summary = orjson.loads(last)
    assert summary["status"] == "ok" and summary["exit_code"] == 0 and summary["error"] is None
    assert summary["llm"]["calls"] == 3 and summary["tools"]["calls"] == 1
    assert summary["agents"]["researcher"]["steps"] == 2
    assert summary["trace"] == str(tmp_path / "t.jsonl") and summary["llm_mode"] == "live"


def test_arguments_after_the_double_dash_are_the_scripts(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    args = ["run", CENSUS, "--quiet", "--trace", str(tmp_path / "t.jsonl"), "--", "--hive"]
    assert main([*args, "south"]) == 0
    assert "the south hive is home to 8000 bees" in capsys.readouterr().out


def test_main_may_return_the_exit_status(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write(tmp_path, "async def main(runtime):\n    return 3\n")
    assert main(["run", path, "--quiet", "--trace", str(tmp_path / "t.jsonl")]) == 3
    assert capsys.readouterr().err == f"hivebus run: {path}: main returned 3\n"


def test_a_failing_scenario_still_gets_its_summary(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    trace = tmp_path / "t.jsonl"
    assert main(["run", str(SCENARIOS / "failing.py"), "--json", "--trace", str(trace)]) == 1
    captured = capsys.readouterr()
    summary = orjson.loads(captured.out.splitlines()[-1])
    assert summary["status"] == "failed" and summary["agents"]["keeper"]["tasks"] == 1
    assert summary["error"].endswith("RuntimeError: the queen is missing")
    assert captured.err == f"hivebus run: {summary['error']}\n"
    assert "Traceback" not in captured.err


def test_debug_prints_the_traceback(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    failing = str(SCENARIOS / "failing.py")
    assert main(["run", failing, "--quiet", "--debug", "--trace", str(tmp_path / "t.jsonl")]) == 1
    err = capsys.readouterr().err
    assert "Traceback (most recent call last)" in err
    assert err.endswith("hivebus run: " + failing + ": RuntimeError: the queen is missing\n")


def test_a_plain_programs_exit_status_is_the_runs(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write(tmp_path, "import sys\nif __name__ == '__main__':\n    sys.exit(4)\n")
    assert main(["run", path, "--quiet", "--trace", str(tmp_path / "t.jsonl")]) == 4
    assert capsys.readouterr().err == f"hivebus run: {path}: exited with status 4\n"


def test_a_plain_program_sees_the_runs_configuration(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "hivebus.toml"
    config.write_text('[llm]\nmodel = "gpt-scenario"\n')
    path = write(
        tmp_path,
        "from agents import load_config\n"
        "if __name__ == '__main__':\n"
        "    print('model:', load_config().llm.model)\n",
    )
    args = ["--quiet", "--config", str(config), "--trace", str(tmp_path / "t.jsonl")]
    assert main(["run", path, *args]) == 0
    assert capsys.readouterr().out.startswith("model: gpt-scenario\n")
    assert "HIVEBUS_CONFIG" not in os.environ


def test_an_unwritable_trace_is_an_input_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["run", CENSUS, "--trace", str(tmp_path)]) == 1  # a folder
    err = capsys.readouterr().err
    assert err.startswith(f"hivebus run: {tmp_path}: cannot write the trace: ")


def test_a_missing_cassette_is_refused_before_running(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["run", CENSUS, "--replay", str(tmp_path / "none.jsonl")]) == 1
    captured = capsys.readouterr()
    assert (
        captured.err == f"hivebus run: --replay {tmp_path / 'none.jsonl'}: no such cassette file\n"
    )
    assert captured.out == ""


def test_record_and_replay_exclude_each_other(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["run", CENSUS, "--record", "a", "--replay", "b"])
    assert exited.value.code == 2
    assert "not allowed with argument" in capsys.readouterr().err


def test_one_line_reaches_into_single_exception_groups() -> None:
    group = ExceptionGroup("outer", [ValueError("inner\nsecond line")])
    assert one_line(group) == "ValueError: inner"
    assert one_line(KeyError()) == "KeyError"


@pytest.mark.parametrize("where", ["folder", "under a file", "under a file, deeper"])
def test_an_unwritable_cassette_is_an_input_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], where: str
) -> None:
    a_file = tmp_path / "notes.txt"
    a_file.write_text("not a folder")
    record = {
        "folder": tmp_path,
        "under a file": a_file / "c.jsonl",
        "under a file, deeper": a_file / "sub" / "c.jsonl",
    }[where]
    trace = tmp_path / "t.jsonl"
    assert main(["run", CENSUS, "--record", str(record), "--trace", str(trace)]) == 1
    captured = capsys.readouterr()
    assert captured.err.startswith(f"hivebus run: --record {record}: cannot write the cassette: ")
    assert len(captured.err.splitlines()) == 1 and "Traceback" not in captured.err
    assert captured.out == "" and not trace.exists()  # refused before anything ran
    assert a_file.read_text() == "not a folder"


def test_record_starts_a_fresh_cassette(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cassette = tmp_path / "new" / "c.jsonl"
    path = write(tmp_path, "async def main(runtime):\n    pass\n")  # no LLM call
    args = ["run", path, "--quiet", "--trace", str(tmp_path / "t.jsonl")]
    assert main([*args, "--record", str(cassette)]) == 0
    assert cassette.read_bytes() == b""  # written up front, empty: a run of no LLM calls
    cassette.write_text("an old run\n")
    assert main([*args, "--record", str(cassette)]) == 0
    assert cassette.read_bytes() == b""  # a cassette holds one run, not two


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


@pytest.mark.parametrize("flag", ["--quiet", "--json", "--verbose"])
def test_an_agent_that_fails_is_one_line_on_stderr(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], flag: str
) -> None:
    logger = logging.getLogger("hivebus")
    handlers, propagate = list(logger.handlers), logger.propagate
    path = write(tmp_path, FAILING_AGENT)
    assert main(["run", path, flag, "--trace", str(tmp_path / "t.jsonl")]) == 1
    err = capsys.readouterr().err.splitlines()
    failure = (
        f"hivebus run: {path}: MaxStepsExceeded: agent 'keeper': no final answer after "
        "max_steps=2 steps (still calling tools)"
    )
    if flag == "--verbose":  # the bus's warnings are shown, before the failure
        assert err[-1] == failure and len(err) == 2
        assert err[0].startswith("hivebus.bus: WARNING: handler of keeper.work failed on ")
    else:  # the failed handler is in the trace and the view: not told twice
        assert err == [failure]
    assert (logger.handlers, logger.propagate) == (handlers, propagate)  # restored


def test_escape_codes_from_the_model_do_not_reach_the_output(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write(
        tmp_path,
        "from agents import Agent\n"
        "from agents.llm import Policy, Rule, ScriptedCall\n"
        'CALL = ScriptedCall(name="transfer_to_billing",\n'
        '                    arguments={"reason": "\\x1b[2J\\x1b[31mbilling issue"})\n'
        'POLICY = Policy([Rule(agent="triage", step=0, tool_calls=[CALL]),\n'
        '                 Rule(agent="billing", text="Refunded.\\x1b]0;owned\\x07")])\n'
        "async def main(runtime):\n"
        '    await runtime.add(Agent("triage", "You are triage.", handoffs=["billing"]),\n'
        '                      Agent("billing", "You are billing."))\n'
        '    await runtime.ask("triage", "I was charged twice")\n',
    )
    trace = tmp_path / "t.jsonl"
    assert main(["run", path, "--trace", str(trace)]) == 0
    out = capsys.readouterr().out
    assert "triage · handed off to billing: \\x1b[2J\\x1b[31mbilling issue" in out
    assert "\x1b" not in out and "\x07" not in out
    assert main(["trace", str(trace)]) == 0
    tree = capsys.readouterr().out
    assert "handed off to billing: \\x1b[2J\\x1b[31mbilling issue" in tree
    assert "\x1b" not in tree and "\x07" not in tree
