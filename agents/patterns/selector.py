"""The selector group chat: a function or the LLM chooses who speaks next."""

from __future__ import annotations

import inspect
import re
from collections.abc import Awaitable, Callable, Mapping, Sequence

from ..llm.client import chat
from ..llm.messages import ChatRequest
from ..llm.wire import AssistantMessage, ChatMessage, SystemMessage, UserMessage
from ..task import DEFAULT_TASK_DEADLINE
from .errors import SpeakerSelectionError
from .group_chat import ChatRun, GroupChat
from .messages import Utterance
from .termination import ChatState, TerminationCondition

SelectorFunction = Callable[[ChatState], str | Awaitable[str | None] | None]
"""Chooses the next speaker from the chat so far; None: the next one in order."""

_TRIM = " \t\n\"'`.,;:!?*[]()"


class LLMSelector:
    """Asks the LLM (``llm.chat``, as the chat) who speaks next, showing it the
    participants' descriptions and the conversation.

    An answer that names no participant is shown to the model with the valid names, up
    to ``attempts`` answers in all; then the next participant in order speaks when
    ``fallback`` is set, else the chat fails with :class:`SpeakerSelectionError`.
    ``instructions`` are added to its system prompt. Its tokens count toward the chat's.
    """

    def __init__(
        self,
        *,
        instructions: str = "",
        model: str | None = None,
        temperature: float | None = None,
        attempts: int = 2,
        fallback: bool = True,
    ) -> None:
        if attempts < 1:
            raise ValueError(f"attempts must be >= 1, got {attempts}")
        self.instructions = instructions
        self.model = model
        self.temperature = temperature
        self.attempts = attempts
        self.fallback = fallback

    def __repr__(self) -> str:
        return f"LLMSelector(attempts={self.attempts}, fallback={self.fallback})"

    async def choose(self, run: ChatRun) -> str | None:
        """The participant the model names (None: fall back to the order)."""
        group = run.chat
        names = ", ".join(group.participants)
        messages: list[ChatMessage] = [
            SystemMessage(content=self.system_prompt(group.name, group.descriptions)),
            UserMessage(content=self.question(run.messages, names)),
        ]
        answers = []
        for _ in range(self.attempts):
            result = await chat(
                run.ctx,
                ChatRequest(
                    messages=messages,
                    model=self.model,
                    temperature=self.temperature,
                    agent=group.name,
                    timeout=max(0.001, run.time_left()),
                ),
            )
            run.count(result.usage, result.cost)
            answer = result.text or ""
            speaker = speaker_named(answer, group.participants)
            if speaker is not None:
                return speaker
            answers.append(answer)
            messages += [
                AssistantMessage(content=answer),
                UserMessage(
                    content=f"{answer!r} is not a participant. Answer with exactly one name "
                    f"from: {names}."
                ),
            ]
        if self.fallback:
            return None
        raise SpeakerSelectionError(
            f"the LLM named no participant in {len(answers)} answers: {answers!r}",
            chat=group.name,
            turns=run.turns,
        )

    def system_prompt(self, chat: str, descriptions: Mapping[str, str]) -> str:
        """Who the model is and whom it chooses from."""
        lines = [
            f"- {name}: {text}" if text else f"- {name}" for name, text in descriptions.items()
        ]
        prompt = (
            f"You are {chat}, the moderator of a group chat: you choose who speaks next.\n\n"
            "The participants:\n" + "\n".join(lines)
        )
        return f"{prompt}\n\n{self.instructions}" if self.instructions else prompt

    @staticmethod
    def question(transcript: Sequence[Utterance], names: str) -> str:
        """The conversation so far and the question."""
        said = "\n\n".join(f"[{u.speaker}]: {u.text}" for u in transcript)
        return (
            f"The conversation so far:\n\n{said}\n\n"
            f"Who speaks next? Answer with exactly one name from: {names}."
        )


def speaker_named(answer: str, participants: Sequence[str]) -> str | None:
    """The participant ``answer`` names: all of it (case and punctuation aside), or the
    only participant it mentions as a word; None if neither."""
    by_lower = {name.lower(): name for name in participants}
    exact = by_lower.get(answer.strip(_TRIM).lower())
    if exact is not None:
        return exact
    mentioned = [
        name
        for name in participants
        if re.search(rf"(?<![\w-]){re.escape(name)}(?![\w-])", answer, re.IGNORECASE)
    ]
    return mentioned[0] if len(mentioned) == 1 else None


class SelectorGroupChat(GroupChat):
    """A group chat whose ``selector`` chooses each speaker: a function of the
    :class:`ChatState` (sync or async; returning None means the next in order), or an
    :class:`LLMSelector` (the default). A name that is not a participant ends the chat
    with :class:`SpeakerSelectionError`. The other options are :class:`GroupChat`'s.
    """

    def __init__(
        self,
        name: str,
        participants: Sequence[str] | Mapping[str, str],
        *,
        selector: SelectorFunction | LLMSelector | None = None,
        termination: TerminationCondition | None = None,
        max_turns: int = 20,
        turn_timeout: float | None = None,
        deadline: float = DEFAULT_TASK_DEADLINE,
        concurrency: int = 64,
    ) -> None:
        super().__init__(
            name,
            participants,
            termination=termination,
            max_turns=max_turns,
            turn_timeout=turn_timeout,
            deadline=deadline,
            concurrency=concurrency,
        )
        self.selector = selector if selector is not None else LLMSelector()

    async def next_speaker(self, run: ChatRun) -> str:
        if isinstance(self.selector, LLMSelector):
            chosen = await self.selector.choose(run)
        else:
            picked = self.selector(run.state())
            chosen = await picked if inspect.isawaitable(picked) else picked
        if chosen is None:
            last = run.messages[-1].speaker if run.turns else None
            return self.following(last)
        return chosen
