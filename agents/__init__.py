"""hivebus agents: configuration and the LLM side (gateway, mock LLM), built on :mod:`bus`.

The agent loop, memory stores and multi-agent patterns arrive with later issues.
"""

from .config import Config, ConfigError, LLMConfig, load_config

__all__ = ["Config", "ConfigError", "LLMConfig", "load_config"]
