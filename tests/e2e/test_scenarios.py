"""The scenarios shipped in ``scripts/scenarios/``, end to end on the mock LLM: their
``main(runtime)`` as ``hivebus run`` awaits it, and each script run standalone."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from types import ModuleType
from typing import TypeVar

import msgspec
import pytest

from agents import AgentResult, Runtime, load_config, open_runtime
from agents.llm import ChatRequest
from agents.patterns import GroupChatResult, GroupChatTask, Utterance
from bus import Envelope, read_trace
from tools import ToolCallRequest, ToolResult

from .cli import clean_env

ROOT = Path(__file__).resolve().parents[2]
SCENARIOS = ROOT / "scripts" / "scenarios"
T = TypeVar("T")

pytestmark = pytest.mark.anyio


def load(name: str, monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    """Import ``scripts/scenarios/<name>.py`` afresh (its POLICY is unused)."""
    spec = importlib.util.spec_from_file_location(f"scenario_{name}", SCENARIOS / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, spec.name, module)  # so its Structs' annotations resolve
    spec.loader.exec_module(module)
    return module


@asynccontextmanager
async def running(scenario: ModuleType) -> AsyncIterator[tuple[Runtime, list[Envelope]]]:
    """A runtime on the mock LLM answering with the scenario's POLICY, and every envelope
    that crosses its bus."""
    async with open_runtime(load_config(None, env={}), policy=scenario.POLICY) as runtime:
        seen: list[Envelope] = []
        with runtime.bus.tap(">", seen.append):
            yield runtime, seen


def payloads(seen: list[Envelope], kind: type[T]) -> list[T]:
    """The messages of type ``kind`` that crossed the bus, in order."""
    return [e.payload for e in seen if isinstance(e.payload, kind)]


async def test_the_research_team_reports_findings_citing_facts_its_tools_found(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    team = load("research_team", monkeypatch)
    async with running(team) as (runtime, seen):
        await team.main(runtime)
        calls = {name: each.calls for name, each in runtime.tools.stats().tools.items()}
    team.POLICY.assert_complete()
    assert calls == {"library_search": 3, "calculator": 1, "notes": 1}
    # the planner's three subtasks went to the researchers' shared inbox at once
    subtasks = [e for e in seen if e.subject == "agent.researcher.inbox"]
    assert len(subtasks) == 3
    assert max(seen.index(e) for e in subtasks) < min(
        seen.index(e) for e in seen if isinstance(e.payload, AgentResult)
    )
    # the writer was given the researchers' notes, the computed figure included
    brief = payloads(seen, GroupChatTask)[0].content
    assert "[F9]" in brief and "42,857" in brief
    results = payloads(seen, ToolResult)
    assert "42857.142857142855" in [r.content for r in results if r.name == "calculator"]
    found = "\n".join(r.content for r in results if r.name == "library_search")

    said = [u for u in payloads(seen, Utterance) if u.chat == "review"]
    assert [u.speaker for u in said] == ["user", "writer", "critic", "writer", "critic"]
    assert said[-1].text.startswith("APPROVED")
    report = msgspec.json.decode(said[-2].text, type=team.Report)
    cited = {fact for finding in report.findings for fact in finding.facts}
    assert cited == set(report.sources) and len(report.findings) == 4
    for fact in cited:  # every citation is a fact a library search returned
        assert f"[{fact}] {team.LIBRARY[fact]}" in found
    assert any("42,857" in finding.claim for finding in report.findings)

    out = capsys.readouterr().out
    assert f"{report.title}\n{report.summary}" in out
    assert "  4. 25 kg of honey is about 42,857 worker lifetimes. [F6, F7, F8]" in out
    assert "review: text_mention: 'APPROVED' by critic · 4 turns" in out


async def test_triage_hands_each_customer_to_the_department_whose_tools_resolve_it(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    desk = load("support_triage", monkeypatch)
    async with running(desk) as (runtime, seen):
        await desk.main(runtime)
        stats = runtime.tools.stats()
    desk.POLICY.assert_complete()
    answered = {r.conversation_id: (r.handoffs, r.agent) for r in payloads(seen, AgentResult)}
    assert answered == {
        "ticket-initech": (["triage"], "billing"),
        "ticket-acme": (["triage"], "technical"),
        "ticket-globex": ([], "triage"),
    }
    # each department's tools ran, in its customer's conversation, without an error
    called = {(c.conversation_id, c.agent, c.name) for c in payloads(seen, ToolCallRequest)}
    assert called == {
        ("ticket-initech", "billing", "lookup_invoice"),
        ("ticket-initech", "billing", "issue_refund"),
        ("ticket-acme", "technical", "check_service_status"),
        ("ticket-acme", "technical", "run_diagnostic"),
    }
    assert stats.calls == stats.succeeded == 4
    refund = next(r for r in payloads(seen, ToolResult) if r.name == "issue_refund")
    assert refund.content.startswith("refund RF-1002 of $49.00 issued")
    # the customers were served at once: every task was in before any was answered
    tasks = [i for i, e in enumerate(seen) if e.subject == "agent.triage.inbox"]
    replies = [i for i, e in enumerate(seen) if isinstance(e.payload, AgentResult)]
    assert len(tasks) == 3 and max(tasks) < min(replies)

    out = capsys.readouterr().out
    assert "initech: triage → billing (transfer_to_billing, lookup_invoice, issue_refund)" in out
    assert "acme: triage → technical (transfer_to_technical, check_service_status, " in out
    assert "globex: triage (no tools)" in out


async def test_the_debate_follows_the_moderator_until_its_token_budget_runs_out(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    debate = load("debate", monkeypatch)
    async with running(debate) as (runtime, seen):
        await debate.main(runtime)
        calls = {name: each.calls for name, each in runtime.tools.stats().tools.items()}
    debate.POLICY.assert_complete()
    result = payloads(seen, GroupChatResult)[0]
    speakers = [u.speaker for u in result.messages[1:]]
    # the moderator's picks, not the participants' order (advocate, beekeeper, ecologist)
    assert speakers == ["advocate", "ecologist", "beekeeper", "advocate", "ecologist"]
    asked = [r for r in payloads(seen, ChatRequest) if r.agent == "debate"]
    assert len(asked) == len(speakers)  # one choice per turn, each one used as given
    assert result.stop_reason == f"token_budget: {result.usage.total_tokens} of 2600 tokens used"
    assert calls == {"evidence": 3}  # each debater's first turn looks evidence up
    judged = next(e.payload for e in seen if e.subject == "agent.judge.inbox")
    assert judged.content.count("\n\n[") == len(speakers)  # the judge read every turn

    out = capsys.readouterr().out
    assert "  2. ecologist: Where hives crowd" in out
    assert f"stopped: {result.stop_reason} · 5 turns" in out
    assert "verdict: beekeeper. " in out
    assert f"tokens: {result.usage.total_tokens} debating + " in out


RUNS = [  # each script, a line of what it prints, and the tools its run calls
    (
        "research_team.py",
        "review: text_mention: 'APPROVED' by critic · 4 turns",
        {"library_search", "calculator", "notes"},
    ),
    (
        "support_triage.py",
        "acme: triage → technical",
        {"lookup_invoice", "issue_refund", "check_service_status", "run_diagnostic"},
    ),
    ("debate.py", "verdict: beekeeper. ", {"evidence"}),
]


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, *args],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
        env=clean_env(),
        check=False,
    )


@pytest.mark.parametrize(("script", "outcome", "tools"), RUNS)
def test_each_scenario_runs_standalone_on_the_mock(
    script: str, outcome: str, tools: set[str]
) -> None:
    result = run(str(SCENARIOS / script))
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    assert outcome in result.stdout


@pytest.mark.parametrize(("script", "outcome", "tools"), RUNS)
def test_each_scenario_runs_under_hivebus_run_and_its_trace_reads_back(
    script: str, outcome: str, tools: set[str], tmp_path: Path
) -> None:
    trace = tmp_path / "run.jsonl"
    result = run(
        "-m", "agents.cli", "run", str(SCENARIOS / script), "--quiet", "--trace", str(trace)
    )
    assert result.returncode == 0, result.stderr
    assert outcome in result.stdout
    records = read_trace(trace)
    assert records[0].causation_id is None and records[0].sender == "hivebus"
    assert {r.payload["name"] for r in records if r.type == "ToolCallRequest"} == tools
