"""Group chats: participants take turns on one task until a termination condition is met.

A chat is an actor on ``chat.<name>.inbox``. For a :class:`~.messages.GroupChatTask` it
asks one participant after another over the bus (a :class:`~agents.task.Task` caused by
the chat's task), each time with what the others said since its last turn, attributed
by name. Each participant keeps its part of the chat in memory
(``<conversation>.<participant>``). Everything said is published on
``chat.<name>.messages``. Every turn and every choice of speaker is bounded by the chat's
deadline: a speaker that never answers ends the chat with :class:`GroupChatTimeout`,
naming it.
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping, Sequence

import anyio

from bus import Actor, Bus, Context, RemoteError, RequestTimeout, handler

from ..llm.wire import Usage
from ..task import ASK_MARGIN, DEFAULT_TASK_DEADLINE, AgentResult, TaskTimeout, ask
from .delegation import answer_text
from .errors import GroupChatTimeout, SpeakerSelectionError, restore_error
from .messages import (
    TASK_SPEAKER,
    GroupChatResult,
    GroupChatTask,
    Utterance,
    chat_inbox_topic,
    chat_messages_topic,
)
from .termination import ChatState, TerminationCondition


def _check_token(what: str, name: str) -> None:
    if "." in name or not name.strip() or any(c.isspace() for c in name):
        raise ValueError(f"{what} {name!r} must be one subject token (no dots, spaces)")


class GroupChat(Actor):
    """Base of the group chats; subclasses say who speaks next (:meth:`next_speaker`).

    ``participants`` are agent names, or a mapping of agent name to a description of it
    (shown to an LLM selector). The chat stops when ``termination`` is met or after
    ``max_turns`` turns. ``deadline`` is a chat's default time limit in seconds and
    ``turn_timeout`` (None: no limit of its own) bounds each turn; a speaker that does
    not answer within either ends the chat with :class:`GroupChatTimeout`.
    """

    def __init__(
        self,
        name: str,
        participants: Sequence[str] | Mapping[str, str],
        *,
        termination: TerminationCondition | None = None,
        max_turns: int = 20,
        turn_timeout: float | None = None,
        deadline: float = DEFAULT_TASK_DEADLINE,
        concurrency: int = 64,
    ) -> None:
        super().__init__(name)
        _check_token("chat name", name)
        if isinstance(participants, Mapping):
            self.descriptions = dict(participants)
        else:
            self.descriptions = {participant: "" for participant in participants}
        self.participants = tuple(self.descriptions)
        if not self.participants or len(self.participants) != len(participants):
            raise ValueError(f"chat {name!r}: participants must be distinct, at least one")
        for participant in self.participants:
            _check_token("participant", participant)
        if max_turns < 1 or deadline <= 0 or concurrency < 1:
            raise ValueError("max_turns and concurrency must be >= 1, deadline > 0")
        if turn_timeout is not None and turn_timeout <= 0:
            raise ValueError(f"turn_timeout must be > 0, got {turn_timeout}")
        self.termination = termination
        self.max_turns = max_turns
        self.turn_timeout = turn_timeout
        self.deadline = deadline
        self.concurrency = concurrency
        self.inbox = chat_inbox_topic(name)
        self.messages = chat_messages_topic(name)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name!r} participants={list(self.participants)}>"

    @handler(lambda self: self.inbox, queue="chat", buffer=4096)
    async def run(self, task: GroupChatTask, ctx: Context) -> GroupChatResult:
        """Run one chat on ``task`` to its end."""
        return await ChatRun(self, task, ctx).run()

    async def next_speaker(self, run: ChatRun) -> str:
        """The participant who speaks next."""
        raise NotImplementedError

    def following(self, speaker: str | None) -> str:
        """The participant after ``speaker`` in order (the first when None)."""
        if speaker not in self.descriptions:
            return self.participants[0]
        index = self.participants.index(speaker)
        return self.participants[(index + 1) % len(self.participants)]


class RoundRobinGroupChat(GroupChat):
    """Participants speak in the order given, over and over."""

    async def next_speaker(self, run: ChatRun) -> str:
        return self.participants[run.turns % len(self.participants)]


class ChatRun:
    """One chat in progress: what was said, the tokens and cost so far, the deadline.
    Selectors read it (:meth:`state`) and add what they spend (:meth:`count`)."""

    def __init__(self, chat: GroupChat, task: GroupChatTask, ctx: Context) -> None:
        self.chat = chat
        self.task = task
        self.ctx = ctx
        self.conversation = task.conversation_id or ctx.id
        self.messages: list[Utterance] = []
        self.seen: dict[str, int] = {}  # participant -> messages it has been shown
        self.prompt_tokens = self.completion_tokens = 0
        self.cost = 0.0
        self.started = time.monotonic()
        self.deadline = self.started + (task.timeout or chat.deadline)

    @property
    def turns(self) -> int:
        """How many times a participant spoke."""
        return len(self.messages) - 1

    def state(self) -> ChatState:
        """The chat so far, for termination conditions and selectors."""
        return ChatState(
            chat=self.chat.name,
            participants=self.chat.participants,
            messages=tuple(self.messages),
            usage=self.usage(),
            cost=self.cost,
            elapsed=time.monotonic() - self.started,
        )

    def usage(self) -> Usage:
        """The tokens used so far, participants and selector together."""
        return Usage(
            prompt_tokens=self.prompt_tokens,
            completion_tokens=self.completion_tokens,
            total_tokens=self.prompt_tokens + self.completion_tokens,
        )

    def count(self, usage: Usage, cost: float | None) -> None:
        """Add the tokens and cost of work done for this chat."""
        self.prompt_tokens += usage.prompt_tokens
        self.completion_tokens += usage.completion_tokens
        self.cost += cost or 0.0

    def time_left(self) -> float:
        """Seconds until the chat's deadline."""
        return self.deadline - time.monotonic()

    async def run(self) -> GroupChatResult:
        await self.say(TASK_SPEAKER, self.task.content)
        while (reason := self.stop_reason()) is None:
            speaker = await self.select()
            if speaker is None:
                reason = self.interrupted("while choosing the next speaker")
                break
            result = await self.turn(speaker)
            if result is None:
                reason = self.interrupted(f"{speaker} was interrupted")
                break
            self.count(result.usage, result.cost)
            await self.say(speaker, answer_text(result))
        return GroupChatResult(
            chat=self.chat.name,
            messages=self.messages,
            stop_reason=reason,
            turns=self.turns,
            usage=self.usage(),
            cost=self.cost,
            duration=time.monotonic() - self.started,
        )

    def stop_reason(self) -> str | None:
        if self.chat.termination is not None:
            reason = self.chat.termination.check(self.state())
            if reason is not None:
                return reason
        if self.turns >= self.chat.max_turns:
            return f"max_turns: {self.turns} turns"
        return None

    def interrupted(self, what: str) -> str:
        assert self.chat.termination is not None  # only its time limit interrupts
        reason = self.chat.termination.check(self.state()) or "termination time limit"
        return f"{reason} ({what})"

    def budget(self, *, turn: bool) -> tuple[float, bool]:
        """Seconds the next step may take, and whether a termination condition's time
        limit (rather than a deadline) sets them."""
        hard = self.time_left()
        if turn and self.chat.turn_timeout is not None:
            hard = min(hard, self.chat.turn_timeout)
        if self.chat.termination is not None:
            soft = self.chat.termination.time_left(self.state())
            if soft is not None and soft < hard:
                return max(0.0, soft), True
        return max(0.0, hard), False

    async def select(self) -> str | None:
        """The next speaker, or None when a termination condition's time ran out."""
        budget, soft = self.budget(turn=False)
        with anyio.move_on_after(budget):
            speaker = await self.chat.next_speaker(self)
            if speaker not in self.chat.descriptions:
                raise SpeakerSelectionError(
                    f"the selector chose {speaker!r}, not one of "
                    f"{', '.join(self.chat.participants)}",
                    chat=self.chat.name,
                    turns=self.turns,
                )
            return speaker
        if soft:
            return None
        raise GroupChatTimeout(
            f"no speaker was chosen within {budget:g}s (after turn {self.turns})",
            chat=self.chat.name,
            turns=self.turns,
        )

    async def turn(self, speaker: str) -> AgentResult | None:
        """``speaker``'s answer, or None when a termination condition's time ran out."""
        budget, soft = self.budget(turn=True)
        prompt = self.prompt_for(speaker)
        conversation = f"{self.conversation}.{speaker}"
        cause: TaskTimeout | None = None
        with anyio.move_on_after(budget):
            try:
                return await ask(
                    self.ctx, speaker, prompt, conversation_id=conversation, timeout=budget
                )
            except TaskTimeout as exc:  # the speaker's own clock ran out first
                cause = exc
        if soft:
            return None
        raise GroupChatTimeout(
            f"{speaker!r} did not answer within {budget:g}s (turn {self.turns + 1})",
            chat=self.chat.name,
            speaker=speaker,
            turns=self.turns,
        ) from cause

    def prompt_for(self, speaker: str) -> str:
        """What ``speaker`` is told: what was said since its last turn, by whom."""
        seen = self.seen.get(speaker)
        self.seen[speaker] = len(self.messages) + 1  # its own answer comes next
        new = self.messages[seen or 0 :]
        if seen is None:
            names = ", ".join(self.chat.participants)
            header = f"Group chat {self.chat.name!r} between {names}. The conversation so far:"
        else:
            header = "Since your last turn:"
        body = "\n\n".join(f"[{u.speaker}]: {u.text}" for u in new) or "(nothing new was said)"
        return f"{header}\n\n{body}\n\nIt is your turn, {speaker}."

    async def say(self, speaker: str, text: str) -> None:
        utterance = Utterance(chat=self.chat.name, speaker=speaker, text=text, turn=self.turns + 1)
        self.messages.append(utterance)
        await self.ctx.publish(self.chat.messages, utterance)


async def run_group_chat(
    via: Bus | Context,
    chat: str,
    content: str,
    *,
    conversation_id: str = "",
    timeout: float | None = None,
) -> GroupChatResult:
    """Give group chat ``chat`` a task and return its :class:`GroupChatResult`.

    Raises what ended the chat, as itself: a :class:`~.errors.GroupChatError`, or the
    agent or LLM error of a participant's failed turn. ``via`` is the bus, or a
    handler's context (the chat is then part of its causation tree).
    """
    task = GroupChatTask(content=content, conversation_id=conversation_id, timeout=timeout)
    # No timeout: the chat's own deadline, which only it knows (it always ends by it).
    wait = math.inf if timeout is None else timeout + ASK_MARGIN
    try:
        return await via.request(chat_inbox_topic(chat), task, timeout=wait)
    except RequestTimeout:
        raise GroupChatTimeout(f"no result within {timeout:g}s", chat=chat) from None
    except RemoteError as exc:
        raise restore_error(exc) from exc
