"""``hivebus load``'s options: read from the command line, checked as a whole, each
mistake one line naming the option."""

from __future__ import annotations

from pathlib import Path

import pytest

from agents.cli import build_parser
from agents.load import LoadError, LoadOptions
from agents.load.options import DEFAULT_CONCURRENCY, DEFAULT_LOOPS, default_report_dir


def parse(*argv: str) -> LoadOptions:
    return LoadOptions.from_args(build_parser().parse_args(["load", *argv]))


def test_the_defaults_are_a_closed_loop_of_the_synthetic_workload() -> None:
    options = parse()
    assert options.scenario is None and options.mode == "closed"
    assert (options.agents, options.steps, options.tools) == (10, 3, 1)
    assert options.loop_count == DEFAULT_LOOPS and options.workers == DEFAULT_CONCURRENCY
    assert options.mock_latency.seconds == 0.05 and options.mock_faults.rates == {}
    assert options.report is not None and options.report.parent == Path(".hivebus/load")
    assert options.uvloop is True and not options.mock_in_process
    assert options.tuned_gc is True


def test_every_option_is_read() -> None:
    options = parse(
        "team.py",
        "--agents", "4",
        "--steps", "2",
        "--tools", "3",
        "--duration", "1.5s",
        "--rate", "20",
        "--ramp-up", "500ms",
        "--warm-up", "0.25",
        "--loop-timeout", "9",
        "--latency", "50ms,lognormal",
        "--faults", "429:0.05,500:0.02,timeout:0.01,badjson:0.01",
        "--seed", "4",
        "--rpm", "600",
        "--tpm", "100000",
        "--cap", "32",
        "--request-timeout", "2s",
        "--config", "hivebus.toml",
        "--mock-url", "http://127.0.0.1:8000/v1",
        "--report", "out",
        "--yes-real-endpoint",
        "--max-calls", "500",
        "--max-cost", "2.5",
        "--quiet",
        "--json",
        "--no-uvloop",
        "--default-gc",
    )  # fmt: skip
    assert options.scenario == Path("team.py")
    assert (options.agents, options.steps, options.tools) == (4, 2, 3)
    assert options.duration == 1.5 and options.loop_count is None
    assert options.mode == "open" and options.rate == 20.0
    assert (options.ramp_up, options.warm_up, options.loop_timeout) == (0.5, 0.25, 9.0)
    assert options.mock_latency.distribution == "lognormal"
    assert options.mock_faults.rates == {"429": 0.05, "500": 0.02, "timeout": 0.01, "badjson": 0.01}
    assert (options.seed, options.rpm, options.tpm, options.cap) == (4, 600, 100_000, 32)
    assert options.request_timeout == 2.0 and options.config == Path("hivebus.toml")
    assert options.mock_url == "http://127.0.0.1:8000/v1" and options.report == Path("out")
    assert options.yes_real_endpoint and options.max_calls == 500 and options.max_cost == 2.5
    assert options.quiet and options.json and options.uvloop is False
    assert options.tuned_gc is False


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--loops", "5", "--duration", "2"], "--loops and --duration: give one of them"),
        (["--rate", "5", "--concurrency", "2"], "--rate (open loop) and --concurrency"),
        (["--mock-url", "http://127.0.0.1:1/v1", "--mock-in-process"], "give one of them"),
        (["--agents", "0"], "--agents: must be at least 1, got 0"),
        (["--steps", "0"], "--steps: must be at least 1, got 0"),
        (["--tools", "-1"], "--tools: must be 0 or more, got -1"),
        (["--tools", "0"], "--tools 0: a step without tool calls is the final answer"),
        (["--cap", "0"], "--cap: must be at least 1"),
        (["--max-calls", "0"], "--max-calls: must be at least 1"),
        (["--rate", "0"], "--rate: must be a positive number, got 0"),
        (["--max-cost", "-1"], "--max-cost: must be a positive number"),
        (["--duration", "soon"], "--duration: 'soon' is not a duration"),
        (["--warm-up", "1h"], "--warm-up: '1h' is not a duration"),
        (["--latency", "fast"], "latency 'fast'"),
        (["--faults", "418:0.5"], "faults: unknown kind '418'"),
        (["--faults", "500:0.7,429:0.7"], "faults: the rates add up to 1.4 > 1"),
    ],
)
def test_mistakes_name_the_option(argv: list[str], message: str) -> None:
    with pytest.raises(LoadError) as error:
        parse(*argv)
    assert message in str(error.value)
    assert "\n" not in str(error.value)


def test_one_step_without_tools_is_fine() -> None:
    options = parse("--tools", "0", "--steps", "1")
    assert options.tools == 0 and options.steps == 1


def test_a_duration_run_has_no_loop_count_unless_given() -> None:
    assert LoadOptions(duration=3.0).loop_count is None
    assert LoadOptions().loop_count == DEFAULT_LOOPS
    assert LoadOptions(loops=7).loop_count == 7


def test_negative_ramps_are_refused() -> None:
    with pytest.raises(LoadError, match="cannot be negative"):
        LoadOptions(ramp_up=-1.0)


def test_the_default_report_folder_is_stamped_and_never_reused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    first = default_report_dir(now=0.0)
    assert first.parent == Path(".hivebus/load") and first.name.startswith("load-19")
    first.mkdir(parents=True)
    second = default_report_dir(now=0.0)
    assert second != first and second.name == first.name + "-2"
