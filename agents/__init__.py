"""hivebus agents: the agent loop, LLM gateway, mock LLM, memory stores, config and CLI.

Built on :mod:`bus`; the pieces arrive with later issues.
"""

__all__: list[str] = []
