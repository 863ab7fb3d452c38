"""Calling the LLM gateway from anywhere on the bus, with its typed errors restored."""

from __future__ import annotations

from bus import Bus, Context, RemoteError, RequestTimeout

from . import errors
from .messages import LLM_CHAT, ChatRequest, ChatResult

_BY_NAME: dict[str, type[errors.LLMError]] = {
    name: getattr(errors, name) for name in errors.__all__
}
ASK_MARGIN = 0.5  # seconds the bus waits beyond the call's own deadline for its answer


async def chat(via: Bus | Context, request: ChatRequest, *, deadline: float = 300.0) -> ChatResult:
    """Send ``request`` to ``llm.chat`` and return the result.

    The gateway's :class:`~agents.llm.errors.LLMError` subclasses are raised as themselves
    (rebuilt from the remote error's type and message), so ``except RateLimited`` works
    across the bus. ``via`` is the bus, or a handler's context (the call is then part of
    its causation tree and cancelled with it).
    """
    budget = request.timeout or deadline
    try:
        return await via.request(LLM_CHAT, request, timeout=budget + ASK_MARGIN)
    except RequestTimeout:
        # Still queued behind other calls (or no gateway got to it): the call's deadline
        # passed all the same; the queued copy is skipped when a gateway reaches it.
        raise errors.DeadlineExceeded(
            f"llm.chat: no answer within {budget:g}s (the gateways are saturated or stuck)"
        ) from None
    except RemoteError as exc:
        error = restore_llm_error(exc)
        if error is exc:
            raise
        raise error from exc


def restore_llm_error(exc: RemoteError) -> BaseException:
    """The :class:`~agents.llm.errors.LLMError` a remote error stands for, rebuilt with its
    fields (or ``exc`` itself when it is not one)."""
    error_type = _BY_NAME.get(exc.remote_type)
    if error_type is None:
        return exc
    details = dict(exc.remote_details)
    last = details.get("last")
    if isinstance(last, dict) and last.get("type") in _BY_NAME:  # RetriesExhausted.last
        details["last"] = _BY_NAME[last["type"]].rebuild(last.get("message", ""), last)
    return error_type.rebuild(exc.remote_message, details)
