"""hivebus tools: ``@tool``, the tool executor actor and the built-in tools.

Built on :mod:`bus` only; the pieces arrive with later issues.
"""

__all__: list[str] = []
