"""The ways a group chat ends without a result, and restoring them across the bus."""

from __future__ import annotations

from typing import Any

from bus import HivebusError, RemoteError

from ..task import restore


class GroupChatError(HivebusError):
    """Base of the group chat failures; ``chat`` names the chat, ``speaker`` the
    participant concerned (empty if none), ``turns`` how many were taken."""

    def __init__(self, message: str, *, chat: str = "", speaker: str = "", turns: int = 0) -> None:
        super().__init__(f"chat {chat!r}: {message}" if chat else message)
        self.chat = chat
        self.speaker = speaker
        self.turns = turns

    def remote_details(self) -> dict[str, Any]:
        """The fields to carry across the bus (see :class:`bus.RemoteError`)."""
        return {"chat": self.chat, "speaker": self.speaker, "turns": self.turns}

    @classmethod
    def rebuild(cls, message: str, details: dict[str, Any]) -> GroupChatError:
        """The error a :class:`bus.RemoteError` carried, with its fields."""
        error = cls.__new__(cls)
        Exception.__init__(error, message)
        error.chat = details.get("chat", "")
        error.speaker = details.get("speaker", "")
        error.turns = details.get("turns", 0)
        return error


class GroupChatTimeout(GroupChatError, TimeoutError):
    """A speaker (``speaker``) did not answer in time: the chat's deadline or its turn
    time limit passed. Empty ``speaker``: the time ran out choosing one."""


class SpeakerSelectionError(GroupChatError):
    """The selector chose no participant of the chat (an unknown name, or nothing)."""


_CHAT_ERRORS: dict[str, type[GroupChatError]] = {
    cls.__name__: cls for cls in (GroupChatError, GroupChatTimeout, SpeakerSelectionError)
}


def restore_error(exc: RemoteError) -> BaseException:
    """The group chat, agent or LLM error a remote error stands for (or ``exc``)."""
    chat_error = _CHAT_ERRORS.get(exc.remote_type)
    if chat_error is not None:
        return chat_error.rebuild(exc.remote_message, dict(exc.remote_details))
    return restore(exc)
