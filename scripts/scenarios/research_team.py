"""Research team: a planner splits a question, researchers dig with tools, a writer reports
and a critic reviews the report until it is approved.

    hivebus run scripts/scenarios/research_team.py
    python scripts/scenarios/research_team.py

Shows a :class:`~agents.patterns.Supervisor` fanning subtasks out to three agents sharing
the name ``researcher`` (a queue group on one inbox), tools (an offline library search,
``calculator``, ``notes``), a structured answer (``output_type=Report``) and a round-robin
review chat that ends when the critic says APPROVED, or after five messages. On the mock
LLM, ``POLICY`` scripts each step; on a real model the instructions drive the same team.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Sequence
from typing import Annotated, Any

import msgspec

from agents import Agent, Runtime, load_config, open_runtime
from agents.llm import Policy, Rule, ScriptedCall
from agents.patterns import (
    MaxMessages,
    RoundRobinGroupChat,
    SubtaskResult,
    Supervisor,
    TextMention,
    answer_text,
    run_group_chat,
)
from tools import calculator, notes, tool

QUESTION = "How does a honey bee colony work, and how much labour goes into its honey?"

LIBRARY = {  # the team's offline library: short facts, each cited by its id
    "F1": "A colony has one queen, tens of thousands of female workers and a few hundred drones.",
    "F2": "At the height of summer the queen lays up to about 2,000 eggs a day.",
    "F3": "Workers change jobs with age: cleaning, nursing larvae, building comb, guarding, "
    "then foraging for their last weeks.",
    "F4": "Drones neither sting nor forage; they mate with queens from other colonies.",
    "F5": "Foragers bring nectar home; house bees add enzymes and fan it until it is about 18% "
    "water, then cap it with wax.",
    "F6": "A worker makes about 1/12 of a teaspoon of honey in her lifetime.",
    "F7": "A teaspoon of honey weighs about 7 grams.",
    "F8": "A strong colony can store about 25 kg of surplus honey in a good year.",
    "F9": "The waggle dance gives the direction of food: the run's angle to vertical is the "
    "food's angle to the sun.",
    "F10": "The longer the waggle run, the farther the food: about one second per kilometre.",
}


class Finding(msgspec.Struct, frozen=True, kw_only=True):
    """One claim of the report and the library facts (ids) it rests on."""

    claim: str
    facts: Annotated[list[str], msgspec.Meta(min_length=1)]


class Report(msgspec.Struct, frozen=True, kw_only=True):
    """The team's answer: every finding cites facts; ``sources`` lists every id cited."""

    title: str
    summary: str
    findings: Annotated[list[Finding], msgspec.Meta(min_length=1)]
    sources: list[str]


@tool
def library_search(query: str) -> str:
    """Search the hive library with a few keywords; up to three facts, each with its id."""
    words = {word for word in re.findall(r"[a-z]+", query.lower()) if len(word) > 3}
    score = {key: sum(word in fact.lower() for word in words) for key, fact in LIBRARY.items()}
    best = sorted((key for key in LIBRARY if score[key]), key=lambda key: -score[key])[:3]
    return "\n".join(f"[{key}] {LIBRARY[key]}" for key in best) or f"nothing about {query!r}"


def by_subtask(question: str, results: Sequence[SubtaskResult]) -> str:
    """The planner's combine step: each researcher's notes under its subtask."""
    return "\n\n".join(f"## {each.subtask}\n{answer_text(each.result)}" for each in results)


def _says(agent: str, step: int, when: str, **answer: Any) -> Rule:
    """A scripted answer (text or json) of ``agent`` at ``step`` when the last message has
    ``when`` in it."""
    return Rule(agent=agent, step=step, contains=when, once=True, **answer)


def _calls(agent: str, step: int, when: str, tool: str, **arguments: str) -> Rule:
    """A scripted tool call, like :func:`_says`."""
    call = ScriptedCall(name=tool, arguments=arguments)
    return Rule(agent=agent, step=step, contains=when, tool_calls=[call], once=True)


_PLAN = [
    "How is a honey bee colony organised: what do the queen, workers and drones do?",
    "How do bees make honey, and how many worker lifetimes does a 25 kg harvest take?",
    "How do foragers tell their nestmates where food is?",
]
_DRAFT = Report(
    title="Inside the honey bee colony",
    summary="A queen, workers and drones share the work; dances guide the foragers.",
    findings=[
        Finding(claim="One queen, tens of thousands of workers, some drones.", facts=["F1"]),
        Finding(claim="Workers go from nursing to building, guarding, foraging.", facts=["F3"]),
        Finding(claim="The waggle dance shows where food is and how far.", facts=["F9", "F10"]),
    ],
    sources=["F1", "F3", "F9", "F10"],
)
_FINAL = msgspec.structs.replace(
    _DRAFT,
    summary="A queen, workers and drones share the work; a 25 kg harvest is the life's work "
    "of some 43,000 bees.",
    findings=[
        *_DRAFT.findings,
        Finding(claim="25 kg of honey is about 42,857 worker lifetimes.", facts=["F6", "F7", "F8"]),
    ],
    sources=["F1", "F3", "F6", "F7", "F8", "F9", "F10"],
)
POLICY = Policy(  # the mock LLM's script, step by step; a real model ignores it
    [
        _says("planner", 0, "Split this task", json={"subtasks": [{"task": t} for t in _PLAN]}),
        _calls("researcher", 0, "organised", "library_search", query="queen workers jobs"),
        _says(
            "researcher", 1, "[F1]", text="One queen, many workers [F1]; jobs change with age [F3]."
        ),
        _calls("researcher", 0, "lifetimes", "library_search", query="honey teaspoon surplus"),
        _calls("researcher", 1, "[F6]", "calculator", expression="25000 / (7 / 12)"),
        _calls("researcher", 2, "42857", "notes", action="set", key="lives", value="42857"),
        _says(
            "researcher",
            3,
            "noted",
            text="1/12 tsp [F6] is 7/12 g [F7]: 25 kg [F8] is 42,857 lives.",
        ),
        _calls("researcher", 0, "nestmates", "library_search", query="waggle dance food"),
        _says("researcher", 1, "[F9]", text="The waggle dance: direction [F9], distance [F10]."),
        _says("writer", 0, "your turn, writer", json=msgspec.to_builtins(_DRAFT)),
        _says("critic", 0, "[writer]", text="Answer the labour part too: 42,857 lives [F6-F8]."),
        _says("writer", 1, "[critic]", json=msgspec.to_builtins(_FINAL)),
        _says("critic", 1, "[writer]", text="APPROVED: it answers all of it, citing the library."),
    ]
)


async def main(runtime: Runtime) -> None:
    researchers = [
        Agent(
            "researcher",
            "You are researcher, on a team answering questions about bees. Look facts up with "
            "library_search (a few keywords at a time), do arithmetic with calculator, keep "
            "numbers you will need with notes. Answer in two or three sentences using only "
            "library facts, citing each by its id in brackets, e.g. [F3].",
            tools=[library_search, calculator, notes],
        )
        for _ in range(3)
    ]
    planner = Supervisor(
        "planner",
        workers="researcher",
        instructions="You are planner, the lead of a bee research team: split a question into "
        "subtasks a researcher with a library of bee facts can answer alone.",
        combine=by_subtask,
        max_subtasks=3,
    )
    writer = Agent(
        "writer",
        "You are writer. Turn the research notes into a report: a title, a two-sentence "
        "summary, findings (each claim with the ids of the facts it rests on) and sources (every "
        "id cited). Use only facts in the notes. When the critic asks for changes, answer with "
        "the whole revised report.",
        output_type=Report,
    )
    critic = Agent(
        "critic",
        "You are critic. Check the writer's latest report against the research notes: each "
        "finding must say what its cited facts say, and the report must answer the whole "
        "question. If it does, answer APPROVED and why in one sentence; if not, list the "
        "changes needed and do not write APPROVED.",
    )
    approved = TextMention("APPROVED", speakers=["critic"])
    review = RoundRobinGroupChat(
        "review", ["writer", "critic"], termination=approved | MaxMessages(5)
    )
    await runtime.add(planner, *researchers, writer, critic, review)

    research = await runtime.ask("planner", QUESTION, timeout=180)
    brief = f"Question: {QUESTION}\n\nResearch notes:\n\n{research.text}"
    chat = await run_group_chat(runtime.bus, "review", brief, timeout=180)
    last = next(u for u in reversed(chat.messages) if u.speaker == "writer")
    report = msgspec.json.decode(last.text, type=Report)  # the writer's output, as JSON

    print(f"\n{report.title}\n{report.summary}")
    for number, finding in enumerate(report.findings, 1):
        print(f"  {number}. {finding.claim} [{', '.join(finding.facts)}]")
    print(f"sources: {', '.join(report.sources)}")
    tokens = research.usage.total_tokens + chat.usage.total_tokens
    print(f"review: {chat.stop_reason} · {chat.turns} turns · {tokens} tokens in all")


if __name__ == "__main__":

    async def _standalone() -> None:
        async with open_runtime(load_config(), policy=POLICY) as runtime:
            await main(runtime)

    asyncio.run(_standalone())
