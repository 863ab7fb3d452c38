"""Debate: a moderator picks who speaks next among three debaters until a token budget runs
out; then a judge gives a structured verdict.

    hivebus run scripts/scenarios/debate.py
    python scripts/scenarios/debate.py

Shows a :class:`~agents.patterns.SelectorGroupChat` whose speakers an LLM chooses
(:class:`~agents.patterns.LLMSelector`: the moderator, shown each debater's description
and the transcript), termination conditions composed with ``|`` (a token budget, or eight
messages), debaters citing a shared evidence tool, and a judge answering with a typed
``Verdict``. On the mock LLM, ``POLICY`` scripts each step; on a real model the same
instructions run the debate.
"""

from __future__ import annotations

import asyncio
import re
import textwrap
from typing import Literal

import msgspec

from agents import Agent, Runtime, load_config, open_runtime
from agents.llm import Policy, Rule, ScriptedCall
from agents.patterns import (
    LLMSelector,
    MaxMessages,
    SelectorGroupChat,
    TokenBudget,
    run_group_chat,
)
from tools import tool

MOTION = "Every city should put honey bee hives on its rooftops."
DEBATERS = {  # who debates, as the moderator sees them
    "advocate": "argues for the motion",
    "beekeeper": "keeps hives in the city; speaks from practice",
    "ecologist": "argues against the motion, for wild pollinators",
}
BUDGET = TokenBudget(2_600) | MaxMessages(8)
EVIDENCE = {
    "E1": "Honey bees from a city hive pollinate gardens and fruit trees within about 3 km.",
    "E2": "Where hives are dense, honey bees outcompete wild bees for the same flowers.",
    "E3": "Studies in European cities link rising hive numbers to fewer wild pollinator visits.",
    "E4": "City bees go hungry in summer gaps unless enough flowers grow near the hive.",
    "E5": "Rooftop hives draw people into caring for pollinators and teach beekeeping.",
}


class Verdict(msgspec.Struct, frozen=True, kw_only=True):
    """The judge's ruling: who argued best, why, and what every side agreed on."""

    winner: Literal["advocate", "beekeeper", "ecologist"]
    reason: str
    common_ground: str


@tool
def evidence(topic: str) -> str:
    """Findings about urban beekeeping matching a few keywords, each with its id."""
    words = {word for word in re.findall(r"[a-z]+", topic.lower()) if len(word) > 3}
    found = [
        f"[{key}] {fact}" for key, fact in EVIDENCE.items() if any(w in fact.lower() for w in words)
    ]
    return "\n".join(found[:3]) or f"no evidence about {topic!r}"


def _rule(agent: str, step: int, answer: str | ScriptedCall) -> Rule:
    """The mock's answer (a text or a tool call) for ``agent`` at ``step``, used once."""
    if isinstance(answer, str):
        return Rule(agent=agent, step=step, text=answer, once=True)
    return Rule(agent=agent, step=step, tool_calls=[answer], once=True)


def _pick(speaker: str) -> Rule:  # the moderator's choices, used in order
    return Rule(agent="debate", contains="Who speaks next?", text=speaker, once=True)


def _search(topic: str) -> ScriptedCall:
    return ScriptedCall(name="evidence", arguments={"topic": topic})


_VERDICT = Verdict(
    winner="beekeeper",
    reason="Only the beekeeper's plan weighs both the gains and the harm.",
    common_ground="Hives belong only where flowers can feed them and the wild bees.",
)
POLICY = Policy(  # the mock's script, turn by turn; the moderator's picks are used in order
    [
        _pick("advocate"),
        _rule("advocate", 0, _search("pollinate gardens people")),
        _rule("advocate", 1, "Rooftop hives pollinate gardens and fruit trees for 3 km around "
              "[E1] and bring people into caring for pollinators [E5]. Every city gains."),
        _pick("Ecologist."),
        _rule("ecologist", 0, _search("wild bees")),
        _rule("ecologist", 1, "Where hives crowd, honey bees outcompete wild bees for the same "
              "flowers [E2], and cities that added hives saw fewer wild pollinators [E3]."),
        _pick("beekeeper"),
        _rule("beekeeper", 0, _search("flowers hungry")),
        _rule("beekeeper", 1, "From my roofs: bees go hungry in summer gaps unless flowers grow "
              "nearby [E4]. The number of hives has to follow the flowers."),
        _pick("advocate, please"),
        _rule("advocate", 2, "Then let the motion mean hives where there is forage: a cap per "
              "district, planted first. We keep the pollination without the crowding."),
        _pick("ecologist"),
        _rule("ecologist", 2, "A cap tied to forage answers me, if wild bees are counted "
              "before any hive goes up. Plant, survey, then hive."),
        Rule(agent="judge", json=msgspec.to_builtins(_VERDICT), once=True),
    ]
)  # fmt: skip


def debater(name: str) -> Agent:
    return Agent(
        name,
        f"You are {name}, in a debate on the motion: {MOTION} You {DEBATERS[name]}. Back "
        "your claims with the evidence tool, citing ids like [E2]; answer the others' points; "
        "keep each turn to two sentences.",
        tools=[evidence],
    )


async def main(runtime: Runtime) -> None:
    moderator = LLMSelector(
        instructions="Let each debater speak once before anyone speaks again; then give the "
        "floor to whoever was challenged last. Answer with the name only."
    )
    chat = SelectorGroupChat("debate", DEBATERS, selector=moderator, termination=BUDGET)
    judge = Agent(
        "judge",
        "You are judge. Read a debate and rule: who argued best from evidence, in one "
        "sentence why, and one sentence on what the debaters agreed on.",
        output_type=Verdict,
    )
    await runtime.add(chat, judge, *map(debater, DEBATERS))

    debate = await run_group_chat(runtime.bus, "debate", f"The motion: {MOTION}", timeout=180)
    transcript = "\n\n".join(f"[{u.speaker}]: {u.text}" for u in debate.messages[1:])
    ruling = await runtime.ask("judge", f"The motion: {MOTION}\n\n{transcript}", timeout=60)
    verdict: Verdict = ruling.output

    print(f"\n{MOTION}")
    for said in debate.messages[1:]:
        print(f"  {said.turn}.", textwrap.shorten(f"{said.speaker}: {said.text}", width=96))
    print(f"stopped: {debate.stop_reason} · {debate.turns} turns")
    print(f"verdict: {verdict.winner}. {verdict.reason}\ncommon ground: {verdict.common_ground}")
    print(f"tokens: {debate.usage.total_tokens} debating + {ruling.usage.total_tokens} judging")


if __name__ == "__main__":

    async def _standalone() -> None:
        async with open_runtime(load_config(), policy=POLICY) as runtime:
            await main(runtime)

    asyncio.run(_standalone())
