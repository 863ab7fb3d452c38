"""The built-in tools, each safe by construction (see each module for how)."""

from ._calculator import calculator
from ._clock import clock
from ._files import DirListing, file_tools
from ._http import HttpResponse, http_get_tool
from ._notes import notes

__all__ = [
    "DirListing",
    "HttpResponse",
    "calculator",
    "clock",
    "file_tools",
    "http_get_tool",
    "notes",
]
