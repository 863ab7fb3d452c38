"""LLM calls as bus messages: the gateway actor, its endpoints and limits, the embedded
mock LLM, and the OpenAI wire format.

A call is ``await chat(bus, ChatRequest(messages=[...]))``: a request on ``llm.chat``,
answered by an :class:`LLMGateway` with a :class:`ChatResult` or a typed
:class:`~agents.llm.errors.LLMError`.
"""

from .client import chat
from .endpoint import Endpoint
from .errors import (
    AllEndpointsFailed,
    AuthenticationFailed,
    BadRequest,
    CassetteMiss,
    ConnectionFailed,
    DeadlineExceeded,
    LLMError,
    LLMTimeout,
    MalformedResponse,
    ModelNotFound,
    ProviderError,
    RateLimited,
    RetriesExhausted,
    StreamError,
)
from .gateway import GatewayStats, LLMGateway
from .limits import Admission
from .messages import LLM_CHAT, ChatDelta, ChatRequest, ChatResult, stream_topic
from .mock import Faults, Latency, MockLLM, MockStats, RateLimit
from .policy import Policy, PolicyIncomplete, Rule, ScriptedCall
from .retry import Backoff
from .runtime import llm_gateway

__all__ = [
    "LLM_CHAT",
    "Admission",
    "AllEndpointsFailed",
    "AuthenticationFailed",
    "Backoff",
    "BadRequest",
    "CassetteMiss",
    "ChatDelta",
    "ChatRequest",
    "ChatResult",
    "ConnectionFailed",
    "DeadlineExceeded",
    "Endpoint",
    "Faults",
    "GatewayStats",
    "LLMError",
    "LLMGateway",
    "LLMTimeout",
    "Latency",
    "MalformedResponse",
    "MockLLM",
    "MockStats",
    "ModelNotFound",
    "Policy",
    "PolicyIncomplete",
    "ProviderError",
    "RateLimit",
    "RateLimited",
    "RetriesExhausted",
    "Rule",
    "ScriptedCall",
    "StreamError",
    "chat",
    "llm_gateway",
    "stream_topic",
]
