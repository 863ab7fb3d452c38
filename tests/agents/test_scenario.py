"""Scenario scripts: telling their kind, loading them, their policy, modes and environment."""

from __future__ import annotations

import os
import re
import sys
from pathlib import Path

import pytest

from agents.config import load_config
from agents.llm import Policy, Rule
from agents.scenario import (
    NO_ENDPOINT_URL,
    Scenario,
    ScenarioError,
    default_trace_path,
    policy_of,
    program_environment,
    run_program,
    with_mode,
)

SCENARIOS = Path(__file__).resolve().parents[1] / "e2e" / "scenarios"


def script(tmp_path: Path, text: str, name: str = "s.py") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_a_script_with_main_runtime_is_a_scenario() -> None:
    assert Scenario.inspect(SCENARIOS / "hive_census.py").kind == "main"


def test_a_script_with_a_main_block_is_a_program() -> None:
    assert Scenario.inspect(SCENARIOS / "plain_program.py").kind == "program"


@pytest.mark.parametrize(
    ("text", "kind"),
    [
        ("async def main(runtime): ...\nif __name__ == '__main__': pass\n", "main"),
        ("async def main(rt: 'Runtime'): ...\nif __name__ == '__main__': pass\n", "main"),
        ("async def main(rt): ...\n", "main"),
        # A program's own main(args) is not main(runtime) when it has a __main__ block.
        ("async def main(quiet, path): ...\nif __name__ == '__main__': pass\n", "program"),
        ("async def main(args): ...\nif '__main__' == __name__: pass\n", "program"),
        ("async def main(): ...\nif __name__ == '__main__': pass\n", "program"),
    ],
)
def test_the_kind_follows_main_and_the_main_block(tmp_path: Path, text: str, kind: str) -> None:
    assert Scenario.inspect(script(tmp_path, text)).kind == kind


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("x = 1\n", "nothing to run: define `async def main(runtime)`"),
        ("async def main(): ...\n", "nothing to run"),
        ("if __name__ != '__main__': pass\n", "nothing to run"),
        ("def main(runtime): ...\n", "s.py:1: main(runtime) must be a coroutine: async def main"),
        ("def broken(:\n", "s.py:1: not a Python script: "),
    ],
)
def test_a_script_that_cannot_run_is_named_with_why(
    tmp_path: Path, text: str, message: str
) -> None:
    with pytest.raises(ScenarioError, match=re.escape(message)):
        Scenario.inspect(script(tmp_path, text))


def test_missing_scripts_and_folders_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ScenarioError, match=r"nope\.py: no such file"):
        Scenario.inspect(tmp_path / "nope.py")
    with pytest.raises(ScenarioError, match="is a folder"):
        Scenario.inspect(tmp_path)
    with pytest.raises(ScenarioError, match="not a Python script"):
        Scenario.inspect(script(tmp_path, "\x00", name="nul.py"))


def test_a_loaded_scenario_is_a_module_that_sees_its_own_folder(tmp_path: Path) -> None:
    script(tmp_path, "ANSWER = 42\n", name="helper_for_scenario.py")
    path = script(tmp_path, "import helper_for_scenario\nasync def main(runtime): ...\n")
    scenario = Scenario.inspect(path)
    with scenario.as_program(["--flag"]):
        assert sys.argv == [str(path), "--flag"]
        module = scenario.load()
    assert module.helper_for_scenario.ANSWER == 42
    assert str(tmp_path) not in sys.path and sys.argv[0] != str(path)
    sys.modules.pop("helper_for_scenario", None)


def test_the_policy_is_an_instance_or_made_by_a_function(tmp_path: Path) -> None:
    policy = Policy([Rule(text="hi")])
    made = Scenario.inspect(script(tmp_path, "async def main(runtime): ...\n")).load()
    assert policy_of(made) is None
    made.POLICY = policy
    assert policy_of(made) is policy
    made.POLICY = lambda: policy
    assert policy_of(made) is policy
    made.POLICY = 7
    with pytest.raises(ScenarioError, match=r"POLICY must be an agents\.llm\.Policy .*, not int"):
        policy_of(made)


def test_record_and_replay_modes_set_the_cassette() -> None:
    config = load_config(None, env={})
    recording = with_mode(config, record=Path("c.jsonl"), replay=None).llm
    assert (recording.mode, recording.cassette, recording.uses_mock) == ("record", "c.jsonl", True)
    replaying = with_mode(config, record=None, replay=Path("c.jsonl")).llm
    assert (replaying.mode, replaying.cassette) == ("replay", "c.jsonl")
    assert replaying.base_url == NO_ENDPOINT_URL and not replaying.uses_mock  # no mock started
    assert with_mode(config, record=None, replay=None) == config


def test_a_replay_keeps_a_real_endpoint_as_configured() -> None:
    config = load_config(None, env={"OPENAI_API_KEY": "sk-x", "OPENAI_BASE_URL": "http://h/v1"})
    replaying = with_mode(config, record=None, replay=Path("c.jsonl")).llm
    assert replaying.base_url == "http://h/v1" and replaying.mode == "replay"


def test_a_programs_environment_carries_the_run_settings_and_is_restored(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HIVEBUS_MODE", "live")
    monkeypatch.delenv("HIVEBUS_CASSETTE", raising=False)
    config_file = tmp_path / "c.toml"
    with program_environment(config_file, record=None, replay=tmp_path / "k.jsonl", uses_mock=True):
        assert os.environ["HIVEBUS_CONFIG"] == str(config_file.resolve())
        assert os.environ["HIVEBUS_MODE"] == "replay"
        assert os.environ["HIVEBUS_CASSETTE"] == str((tmp_path / "k.jsonl").resolve())
        assert os.environ["HIVEBUS_BASE_URL"] == NO_ENDPOINT_URL
    assert os.environ["HIVEBUS_MODE"] == "live"
    assert "HIVEBUS_CASSETTE" not in os.environ and "HIVEBUS_BASE_URL" not in os.environ


def test_a_recording_program_keeps_its_endpoint(tmp_path: Path) -> None:
    with program_environment(None, record=tmp_path / "k.jsonl", replay=None, uses_mock=True):
        assert os.environ["HIVEBUS_MODE"] == "record"
        assert "HIVEBUS_BASE_URL" not in os.environ and "HIVEBUS_CONFIG" not in os.environ


@pytest.mark.parametrize(
    ("body", "outcome"),
    [
        ("pass", (0, None)),
        ("raise SystemExit(3)", (3, None)),
        ("raise SystemExit(None)", (0, None)),
        ("import sys; sys.exit('the hive is empty')", (1, "the hive is empty")),
    ],
)
def test_a_programs_exit_status(tmp_path: Path, body: str, outcome: tuple[int, str | None]) -> None:
    path = script(tmp_path, f"if __name__ == '__main__':\n    {body}\n")
    assert run_program(path) == outcome


def test_default_trace_paths_are_numbered_rather_than_overwritten(tmp_path: Path) -> None:
    first = default_trace_path(Path("a/team.py"), folder=tmp_path, now=0.0)
    assert first.parent == tmp_path and first.name.startswith("team-19")
    assert first.suffix == ".jsonl"
    first.write_text("")
    second = default_trace_path(Path("team.py"), folder=tmp_path, now=0.0)
    assert second.name == first.stem + "-2.jsonl"
