"""Calling the LLM gateway from anywhere on the bus, with its typed errors restored."""

from __future__ import annotations

from bus import Bus, Context, RemoteError

from . import errors
from .messages import LLM_CHAT, ChatRequest, ChatResult

_BY_NAME: dict[str, type[errors.LLMError]] = {
    name: getattr(errors, name) for name in errors.__all__
}
ASK_MARGIN = 5.0  # seconds the bus waits beyond the call's own deadline


async def chat(via: Bus | Context, request: ChatRequest, *, deadline: float = 300.0) -> ChatResult:
    """Send ``request`` to ``llm.chat`` and return the result.

    The gateway's :class:`~agents.llm.errors.LLMError` subclasses are raised as themselves
    (rebuilt from the remote error's type and message), so ``except RateLimited`` works
    across the bus. ``via`` is the bus, or a handler's context (the call is then part of
    its causation tree and cancelled with it).
    """
    timeout = (request.timeout or deadline) + ASK_MARGIN
    try:
        return await via.request(LLM_CHAT, request, timeout=timeout)
    except RemoteError as exc:
        error_type = _BY_NAME.get(exc.remote_type)
        if error_type is None:
            raise
        rebuilt = error_type.__new__(error_type)
        errors.LLMError.__init__(rebuilt, exc.remote_message)
        raise rebuilt from exc
