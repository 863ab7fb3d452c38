"""The monitor's model of a run, fed a real recorded run (the team of ``run_fixtures``)."""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest

from agents.monitor import MonitorState, ReplaySource
from agents.monitor.state import passes
from bus import Bus, Message, Topic, TraceRecorder, read_trace
from bus.trace import TraceRecord

from ..run_fixtures import record_team_run

pytestmark = pytest.mark.anyio


@pytest.fixture
async def team(tmp_path: Path) -> list[TraceRecord]:
    records, _ = await record_team_run(tmp_path / "team.jsonl")
    return records


def fed(records: list[TraceRecord], **kwargs: int) -> MonitorState:
    state = MonitorState(**kwargs)
    for record in records:
        state.feed(record)
    return state


async def test_the_agents_their_work_and_how_their_tasks_ended(
    team: list[TraceRecord],
) -> None:
    snap = fed(team).snapshot()
    agents = {a["name"]: a for a in snap["agents"]}
    assert set(agents) == {"researcher", "looper"}
    researcher, looper = agents["researcher"], agents["looper"]
    assert (researcher["state"], researcher["tasks"], researcher["steps"]) == ("done", 1, 2)
    assert (looper["state"], looper["tasks"]) == ("failed", 1)
    assert looper["errors"] >= 1  # its task ended in MaxStepsExceeded
    assert researcher["errors"] == 1  # the tool call with bad arguments
    answers = [r for r in team if r.kind == "reply" and r.type == "ChatResult"]
    tokens = sum(r.payload["usage"]["total_tokens"] for r in answers)
    assert researcher["tokens"] + looper["tokens"] == tokens
    assert researcher["last"].startswith("answer ")


async def test_the_gateway_panel_counts_every_call_and_its_tokens(
    team: list[TraceRecord],
) -> None:
    gateway = fed(team).snapshot()["gateway"]
    calls = [r for r in team if r.subject == "llm.chat"]
    answers = [r for r in team if r.type == "ChatResult"]
    assert gateway["calls"] == len(calls) == gateway["succeeded"] + gateway["failed"]
    assert gateway["in_flight"] == 0
    (model,) = gateway["models"]
    assert model["model"] == answers[0].payload["model"]
    assert model["prompt_tokens"] == sum(r.payload["usage"]["prompt_tokens"] for r in answers)
    latency = gateway["latency_ms"]
    assert 0 < latency["p50"] <= latency["p90"] <= latency["p99"]


async def test_a_state_in_mid_run_shows_what_was_in_flight_then(
    team: list[TraceRecord],
) -> None:
    first_call = next(r for r in team if r.subject == "llm.chat")
    replay = ReplaySource(team)
    snap = replay.at(first_call.timestamp).snapshot(first_call.timestamp)
    assert [(a["name"], a["state"]) for a in snap["agents"]] == [("researcher", "thinking")]
    assert snap["gateway"]["in_flight"] == 1
    tool_call = next(r for r in team if r.subject == "tool.call")
    states = {a["name"]: a["state"] for a in replay.at(tool_call.timestamp).snapshot()["agents"]}
    assert states["researcher"] == "tools"
    # back to before the start (a fresh state), then to the end again
    assert replay.at(team[0].timestamp - 1).snapshot()["agents"] == []
    assert replay.at(None).snapshot() == fed(team).snapshot()


async def test_replies_come_back_along_their_requests_arrow(team: list[TraceRecord]) -> None:
    state = fed(team)
    for rec in state.records:
        if rec["kind"] == "reply":
            request = state.by_id[rec["correlation_id"]]
            assert (rec["from"], rec["to"]) == (request["to"], request["from"])
            assert rec["conversation"] == request["conversation"]
    lanes = state.snapshot()["lanes"]
    assert {"hivebus", "researcher", "looper", "llm", "tools", "memory"} <= set(lanes)


async def test_filters_by_agent_subject_conversation_and_time(team: list[TraceRecord]) -> None:
    state = fed(team)
    looper, total = state.select(agent="looper", limit=1000)
    assert looper and total == len(looper)
    assert all("looper" in (r["agent"], r["from"], r["to"]) for r in looper)
    llm, _ = state.select(subject="llm.*", limit=1000)
    assert llm and {r["subject"] for r in llm} == {"llm.chat"}
    events, _ = state.select(subject="events", limit=1000)  # a plain substring
    assert events and all(r["subject"].endswith(".events") for r in events)
    conversations = {r["conversation"] for r in state.records}
    assert len(conversations) == 2  # one per task, every message in one
    one = next(iter(conversations))
    mine, _ = state.select(conversation=one, limit=1000)
    assert mine and all(r["conversation"] == one for r in mine)
    middle = team[len(team) // 2].timestamp
    early, _ = state.select(until=middle, limit=1000)
    assert early and all(r["timestamp"] <= middle for r in early)
    last3, total = state.select(limit=3)
    assert [r["id"] for r in last3] == [r.id for r in team[-3:]] and total == len(team)
    assert state.select(limit=0) == ([], len(team))
    assert not passes(last3[0], "nobody", None, None)


async def test_a_message_comes_with_its_causation_chain_and_replies(
    team: list[TraceRecord],
) -> None:
    state = fed(team)
    tool_call = next(r for r in team if r.subject == "tool.call")
    found = state.message(tool_call.id)
    assert found is not None
    chain = found["chain"]
    assert chain[0]["type"] == "Task" and chain[-1]["id"] == tool_call.id
    for parent, child in itertools.pairwise(chain):
        assert child["causation_id"] == parent["id"]
    (reply,) = found["replies"]
    assert reply["correlation_id"] == tool_call.id
    assert state.message("no-such-id") is None


async def test_what_it_keeps_is_bounded_and_consistent(team: list[TraceRecord]) -> None:
    state = fed(team, keep=10)
    assert len(state.records) == 10 == len(state.by_id)
    assert [r["id"] for r in state.records] == [r.id for r in team[-10:]]
    assert state.snapshot()["bus"]["messages"] == len(team)  # counted, though not kept
    assert state.message(team[0].id) is None


class Job(Message, frozen=True):
    n: int


async def test_dead_letters_are_listed_newest_first(tmp_path: Path) -> None:
    topic = Topic("jobs.run", Job)

    async def fails(job: Job) -> None:
        raise ValueError(f"job {job.n} is broken")

    async with Bus("dead") as bus:
        with TraceRecorder(bus, tmp_path / "dead.jsonl"):
            bus.subscribe(topic, fails, name="worker")
            for n in range(3):
                await bus.publish(topic, Job(n=n))
            await bus.drain()
    snap = fed(read_trace(tmp_path / "dead.jsonl")).snapshot()
    assert snap["bus"]["dead_lettered"] == 3
    dead = snap["dead_letters"]
    assert [d["reason"] for d in dead] == ["handler_error"] * 3
    assert dead[0]["subject"] == "jobs.run" and dead[0]["subscription"] == "worker"
    assert dead[0]["error"] == "ValueError: job 2 is broken"
    assert dead[0]["timestamp"] >= dead[-1]["timestamp"]
