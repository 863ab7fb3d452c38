"""The exceptions ``tools`` raises; each derives from :class:`bus.HivebusError`."""

from __future__ import annotations

from bus import HivebusError


class ToolError(HivebusError):
    """Base of the errors about calling a tool (not the errors a tool itself raises)."""


class ArgumentsError(ToolError, ValueError):
    """The model's arguments cannot be turned into the tool's parameters."""

    def __init__(self, tool: str, message: str) -> None:
        super().__init__(message)
        self.tool = tool


class MalformedArguments(ArgumentsError):
    """The arguments are not JSON at all (the message says where it broke)."""


class InvalidArguments(ArgumentsError):
    """The arguments are JSON but break the tool's schema (the message gives the path)."""
