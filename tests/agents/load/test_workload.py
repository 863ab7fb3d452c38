"""What a loop does: the synthetic workload's script, and a scenario shared by its loops."""

from __future__ import annotations

from pathlib import Path

import pytest

from agents import Agent, Runtime, open_runtime
from agents.config import Config
from agents.llm.mock import MockLLM
from agents.llm.wire import (
    AssistantMessage,
    ChatCompletionRequest,
    FunctionCall,
    ToolCall,
    UserMessage,
)
from agents.load import (
    LoadError,
    LoadOptions,
    ScenarioWorkload,
    SharedRuntime,
    SyntheticWorkload,
    run_load,
)
from agents.scenario import ScenarioError

pytestmark = pytest.mark.anyio

SCENARIO = """
from agents import Agent, Runtime
from agents.llm import Policy, Rule

POLICY = Policy([Rule(agent="echo", text="echoed")])
RUNS = []


async def main(runtime: Runtime) -> int:
    await runtime.add(Agent("echo", "You are echo."))
    RUNS.append((await runtime.ask("echo", "hello")).text)
    print("each loop prints this")
    return 0
"""


def request_at(step: int) -> ChatCompletionRequest:
    """A request after ``step`` assistant turns."""
    messages: list[object] = [UserMessage(content="task 1")]
    for n in range(step):
        call = ToolCall(id=f"c{n}", function=FunctionCall(name="lookup", arguments="{}"))
        messages.append(AssistantMessage(tool_calls=[call]))
    return ChatCompletionRequest(model="m", messages=messages)  # type: ignore[arg-type]


def test_the_synthetic_policy_calls_tools_then_answers() -> None:
    workload = SyntheticWorkload(agents=2, steps=4, tools=3)
    assert workload.policy is not None
    for step in range(3):
        reply = workload.policy.respond(request_at(step))
        assert [c.name for c in reply.tool_calls] == ["lookup"] * 3
        assert len({c.arguments for c in reply.tool_calls}) == 3
    final = workload.policy.respond(request_at(3))
    assert final.tool_calls == [] and final.content == "done"
    assert workload.calls_per_loop == 4.0


def test_one_step_answers_at_once() -> None:
    workload = SyntheticWorkload(agents=1, steps=1, tools=0)
    assert workload.policy is not None
    assert workload.policy.respond(request_at(0)).content == "done"
    assert "Answer every task" in workload.instructions("agent0")


def test_the_synthetic_agents_are_told_what_to_do() -> None:
    text = SyntheticWorkload(agents=1, steps=3, tools=2).instructions("agent0")
    assert text.startswith("You are agent0,") and "first 2 steps" in text and "2 times" in text
    info = SyntheticWorkload(agents=5, steps=3, tools=2).info()
    assert (info.kind, info.agents, info.steps, info.tools) == ("synthetic", 5, 3, 2)


async def test_a_synthetic_loop_takes_its_steps_and_tool_calls() -> None:
    workload = SyntheticWorkload(agents=3, steps=3, tools=2)
    async with MockLLM(workload.policy) as url:
        config = Config().llm.with_base_url(url)
        async with open_runtime(Config(llm=config)) as runtime:
            await workload.setup(runtime)
            assert sorted(runtime.agents) == ["agent0", "agent1", "agent2"]
            result = await runtime.ask("agent1", "task 1")
            assert result.steps == 3 and result.tool_calls == 4
            await workload.run(runtime, 7)  # agent1 again: 7 % 3


async def test_a_shared_runtime_starts_each_agent_once() -> None:
    async with MockLLM() as url, open_runtime(Config(llm=Config().llm.with_base_url(url))) as rt:
        shared = SharedRuntime(rt)
        await shared.add(Agent("solo", "You are solo."))
        await shared.add(Agent("solo", "You are solo."), Agent("duo", "You are duo."))
        assert sorted(shared.agents) == ["duo", "solo"] and shared.agents is rt.agents
        inboxes = [s for s in rt.bus.stats().subscriptions if s.pattern == "agent.solo.inbox"]
        assert len(inboxes) == 1
        assert isinstance(shared, Runtime)


def test_a_plain_program_cannot_be_a_load(tmp_path: Path) -> None:
    script = tmp_path / "plain.py"
    script.write_text('if __name__ == "__main__":\n    print("hi")\n')
    with pytest.raises(LoadError, match="runs a scenario's `async def main"):
        ScenarioWorkload(script)


def test_a_missing_scenario_is_one_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ScenarioError, match="no such file"):
        ScenarioWorkload(tmp_path / "nope.py")


async def test_a_scenario_runs_once_per_loop_on_one_runtime(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    script = tmp_path / "echo_scenario.py"
    script.write_text(SCENARIO)
    workload = ScenarioWorkload(script)
    assert workload.policy is not None and workload.info().scenario == str(script)
    options = LoadOptions(scenario=script, loops=12, concurrency=4, latency="1ms")
    report = await run_load(options, config=Config())
    assert report.workload.kind == "scenario"
    assert report.loops.ok == 12 and report.llm.calls == 12
    assert report.accounting.llm_balanced is True
    assert "each loop prints this" not in capsys.readouterr().out
    assert any("discarded" in note for note in report.notes)


async def test_a_scenario_main_returning_a_failure_fails_the_loop(tmp_path: Path) -> None:
    script = tmp_path / "fails.py"
    script.write_text("async def main(runtime):\n    return 3\n")
    options = LoadOptions(scenario=script, loops=3, concurrency=1, mock_in_process=True)
    report = await run_load(options, config=Config())
    assert report.loops.by_outcome == {"LoopFailed": 3}
    assert report.loops.untyped == {}
