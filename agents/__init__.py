"""hivebus agents: the agent loop, configuration, memory and the LLM side, built on :mod:`bus`.

An :class:`Agent` is an actor on ``agent.<name>.inbox``; :func:`ask` gives it a task.
The LLM gateway and mock live in :mod:`agents.llm`, the memory stores in
:mod:`agents.memory`, the tools in :mod:`tools`.
"""

from .agent import Agent
from .config import Config, ConfigError, LLMConfig, load_config
from .runtime import Runtime, open_runtime
from .task import (
    AgentError,
    AgentEvent,
    AgentResult,
    InvalidOutput,
    MaxStepsExceeded,
    Task,
    TaskTimeout,
    ToolUnavailable,
    ask,
    events_topic,
    inbox_topic,
)

__all__ = [
    "Agent",
    "AgentError",
    "AgentEvent",
    "AgentResult",
    "Config",
    "ConfigError",
    "InvalidOutput",
    "LLMConfig",
    "MaxStepsExceeded",
    "Runtime",
    "Task",
    "TaskTimeout",
    "ToolUnavailable",
    "ask",
    "events_topic",
    "inbox_topic",
    "load_config",
    "open_runtime",
]
