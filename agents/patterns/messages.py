"""What travels on the bus for group chats: the task on ``chat.<name>.inbox``, its
:class:`GroupChatResult`, and each :class:`Utterance` on ``chat.<name>.messages``."""

from __future__ import annotations

from typing import Any

from bus import Message, Topic

from ..llm.wire import Usage

TASK_SPEAKER = "user"  # who "says" the task, as the transcript's first utterance


class Utterance(Message, frozen=True, kw_only=True):
    """One message of a group chat: ``speaker`` said ``text`` at ``turn`` (0 is the task,
    said by ``"user"``). Published on ``chat.<name>.messages`` as it is said."""

    chat: str
    speaker: str
    text: str
    turn: int


class GroupChatTask(Message, frozen=True, kw_only=True):
    """Start a group chat on ``content``.

    ``conversation_id`` names the chat's memory: each participant keeps its own part of
    it (``<conversation_id>.<participant>``), so a later task with the same id continues
    the chat; empty means a new one. ``timeout`` is the whole chat's deadline in seconds
    (default: the chat's).
    """

    content: str
    conversation_id: str = ""
    timeout: float | None = None


class GroupChatResult(Message, frozen=True, kw_only=True):
    """How a chat ended: every utterance (the task first), why it stopped, how many
    ``turns`` the participants took, and the tokens, cost (USD) and seconds it used."""

    chat: str
    messages: list[Utterance]
    stop_reason: str
    turns: int
    usage: Usage
    cost: float = 0.0
    duration: float

    @property
    def last(self) -> Utterance:
        """The last thing said."""
        return self.messages[-1]


def chat_inbox_topic(chat: str) -> Topic[GroupChatTask, GroupChatResult]:
    """The subject a group chat takes tasks on."""
    return Topic(f"chat.{chat}.inbox", GroupChatTask, reply=GroupChatResult)


def chat_messages_topic(chat: str) -> Topic[Utterance, Any]:
    """The subject a group chat publishes what is said on."""
    return Topic(f"chat.{chat}.messages", Utterance)
