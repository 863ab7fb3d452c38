"""The errors of LLM calls. Each names the endpoint and model and never carries the key.

Across the bus a handler's exception arrives as :class:`bus.RemoteError`;
:func:`agents.llm.client.chat` turns it back into the class below of the same name.
"""

from __future__ import annotations

from typing import Any

from bus import HivebusError


class LLMError(HivebusError):
    """Base of every LLM-call failure."""

    retryable = False

    def __init__(
        self, message: str, *, endpoint: str = "", model: str = "", status: int | None = None
    ) -> None:
        where = "/".join(p for p in (endpoint, model) if p)
        super().__init__(f"{where}: {message}" if where else message)
        self.endpoint = endpoint
        self.model = model
        self.status = status

    def remote_details(self) -> dict[str, Any]:
        """The fields to carry across the bus (see :class:`bus.RemoteError`)."""
        return {"endpoint": self.endpoint, "model": self.model, "status": self.status}

    @classmethod
    def rebuild(cls, message: str, details: dict[str, Any]) -> LLMError:
        """The error again on the caller's side, from its message and details."""
        error = cls.__new__(cls)
        Exception.__init__(error, message)
        error.endpoint = details.get("endpoint", "")
        error.model = details.get("model", "")
        error.status = details.get("status")
        for name, value in details.items():
            if name not in ("endpoint", "model", "status"):
                setattr(error, name, value)
        return error


class BadRequest(LLMError):
    """400/422: the provider refused the request as malformed; not retried."""


class AuthenticationFailed(LLMError):
    """401/403: the API key was refused (the key itself is never shown); not retried."""


class ModelNotFound(LLMError):
    """404: no such model or endpoint path; not retried."""


class RateLimited(LLMError):
    """429: too many requests; ``retry_after`` is the provider's wait in seconds, if given."""

    retryable = True

    def __init__(self, message: str, *, retry_after: float | None = None, **kw: object) -> None:
        super().__init__(message, **kw)  # type: ignore[arg-type]
        self.retry_after = retry_after

    def remote_details(self) -> dict[str, Any]:
        return {**super().remote_details(), "retry_after": self.retry_after}


class ProviderError(LLMError):
    """5xx from the provider."""

    retryable = True


class ConnectionFailed(LLMError):
    """The endpoint could not be reached, or the connection broke mid-response."""

    retryable = True


class LLMTimeout(LLMError):
    """One attempt took longer than the per-request timeout."""

    retryable = True


class MalformedResponse(LLMError):
    """The provider answered 200 with a body that is not a valid completion."""

    retryable = True


class StreamError(LLMError):
    """The provider reported an error inside an SSE stream."""

    retryable = True


class DeadlineExceeded(LLMError):
    """The call's overall deadline passed, or a Retry-After would pass it."""


class RetriesExhausted(LLMError):
    """Every attempt allowed failed; ``last`` is the final attempt's error."""

    def __init__(self, message: str, *, last: LLMError, **kw: object) -> None:
        super().__init__(message, **kw)  # type: ignore[arg-type]
        self.last = last

    def remote_details(self) -> dict[str, Any]:
        last = self.last
        details = {"type": type(last).__name__, "message": str(last), **last.remote_details()}
        return {**super().remote_details(), "last": details}


class AllEndpointsFailed(LLMError):
    """The whole fallback chain failed (or was cooling down); ``causes`` per endpoint."""

    def __init__(self, message: str, *, causes: dict[str, str], **kw: object) -> None:
        super().__init__(message, **kw)  # type: ignore[arg-type]
        self.causes = causes

    def remote_details(self) -> dict[str, Any]:
        return {**super().remote_details(), "causes": self.causes}


class CassetteMiss(LLMError):
    """Replay mode met a request the cassette does not hold; says which recorded one is
    closest and how it differs."""


__all__ = [
    "AllEndpointsFailed",
    "AuthenticationFailed",
    "BadRequest",
    "CassetteMiss",
    "ConnectionFailed",
    "DeadlineExceeded",
    "LLMError",
    "LLMTimeout",
    "MalformedResponse",
    "ModelNotFound",
    "ProviderError",
    "RateLimited",
    "RetriesExhausted",
    "StreamError",
]
