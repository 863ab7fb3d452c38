"""``hivebus load`` called in-process through ``main(argv)``: outputs and exit statuses."""

from __future__ import annotations

import os
from pathlib import Path

import orjson
import pytest

from agents.cli import main
from agents.load import loop_factory, read_report

SCENARIOS = Path(__file__).resolve().parents[2] / "e2e" / "scenarios"


@pytest.fixture(autouse=True)
def mock_only(monkeypatch: pytest.MonkeyPatch) -> None:
    """No endpoint configured: every run here is on the mock LLM."""
    for name in list(os.environ):
        if name.startswith(("OPENAI_", "HIVEBUS_")):
            monkeypatch.delenv(name)


def test_quiet_prints_one_line_and_writes_the_report(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = tmp_path / "out"
    code = main(["load", "--loops", "30", "--latency", "1ms", "--quiet", "--report", str(folder)])
    out, err = capsys.readouterr()
    assert code == 0 and err == ""
    assert out.count("\n") == 1
    assert out.startswith("30 loops: 30 ok, 0 failed · p50 ")
    assert out.strip().endswith(f"report {folder / 'report.html'}")
    report = read_report(folder / "report.json")
    assert report.loops.ok == 30 and report.target.kind == "mock-subprocess"


def test_json_prints_the_report_as_the_last_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["load", "--loops", "20", "--json", "--mock-in-process", "--report", str(tmp_path)]
    assert main(argv) == 0
    last = capsys.readouterr().out.strip().splitlines()[-1]
    data = orjson.loads(last)
    assert data["loops"]["started"] == 20 and data["accounting"]["llm_balanced"] is True
    assert data == orjson.loads((tmp_path / "report.json").read_bytes())


def test_by_default_the_progress_and_a_summary_are_shown(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["load", "--duration", "2.5", "--concurrency", "4", "--latency", "20ms"]
    assert main([*argv, "--report", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "measuring ·" in out, "a progress line (plain, off a terminal)"
    for head in ("target", "loops", "latency", "throughput", "LLM", "resources", "bottleneck"):
        assert f"\n{head} " in out
    assert f"report     {tmp_path / 'report.json'}" in out


def test_a_scenario_is_loaded_like_hivebus_run_runs_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    census = str(SCENARIOS / "hive_census.py")
    argv = ["load", census, "--loops", "10", "--concurrency", "5", "--quiet"]
    assert main([*argv, "--report", str(tmp_path)]) == 0
    report = read_report(tmp_path / "report.json")
    assert report.workload.kind == "scenario" and report.workload.scenario == census
    assert report.loops.ok == 10 and report.llm.calls == 30  # researcher twice, writer once
    assert "10 loops: 10 ok" in capsys.readouterr().out


def test_a_real_endpoint_is_refused_in_one_line(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-secret-key")
    assert main(["load", "--loops", "5"]) == 1
    out, err = capsys.readouterr()
    assert out == "" and err.count("\n") == 1
    assert err.startswith("hivebus load: refusing to load a real endpoint")
    assert "--yes-real-endpoint" in err and "sk-secret" not in err


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--loops", "5", "--duration", "1"], "--loops and --duration"),
        (["--faults", "nonsense"], "faults 'nonsense'"),
        (["missing_scenario.py"], "missing_scenario.py: no such file"),
        (["--mock-url", "http://203.0.113.9:80/v1"], "not on this machine"),
    ],
)
def test_bad_input_is_one_line_and_status_1(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["load", *argv]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("hivebus load: ") and message in err


def test_an_unwritable_report_folder_is_an_input_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    argv = ["load", "--loops", "2", "--mock-in-process", "--quiet", "--report", str(blocker)]
    assert main(argv) == 1
    out, err = capsys.readouterr()
    assert out == "", "refused before the run, not after it"
    assert (
        err.strip() == f"hivebus load: --report {blocker}: cannot write: {blocker} is not a folder"
    )


def test_the_loop_factory_is_asyncios_without_uvloop() -> None:
    assert loop_factory(use_uvloop=False) is None
    try:
        import uvloop  # noqa: F401
    except ImportError:
        assert loop_factory() is None
    else:  # pragma: no cover - with hivebus[fast] installed
        assert loop_factory() is not None


def test_load_is_listed_in_the_help(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["--help"])
    out = capsys.readouterr().out
    assert "load      load-test many concurrent agent loops" in out
    assert "_load-mock" not in out, "the mock's child process is no command of the user's"


def test_a_report_written_before_gc_settings_were_reported_still_reads(
    tmp_path: Path,
) -> None:
    argv = ["load", "--loops", "5", "--concurrency", "5", "--mock-in-process", "--quiet"]
    assert main([*argv, "--report", str(tmp_path)]) == 0
    raw = orjson.loads((tmp_path / "report.json").read_bytes())
    assert raw["resources"]["gc"] == "gc every 50,000 allocations"
    del raw["resources"]["gc"]  # as an older hivebus wrote it
    (tmp_path / "report.json").write_bytes(orjson.dumps(raw))
    assert read_report(tmp_path / "report.json").resources.gc == "default gc"
