"""``read_file`` and ``list_dir``: a directory tree a model may read, and nothing outside it.

Every path is taken relative to the root. Absolute paths and ``..`` are refused outright;
what remains is resolved (following symlinks) and refused unless it is still under the
root, so a symlink inside the tree cannot lead out of it.
"""

from __future__ import annotations

import os
from pathlib import Path, PurePath

import msgspec

from .._tool import Tool, tool


class DirListing(msgspec.Struct, frozen=True, kw_only=True):
    """A directory's entries, sorted; directories end with ``/``; ``omitted`` past the cap."""

    path: str
    entries: list[str]
    omitted: int = 0


def file_tools(
    root: str | os.PathLike[str], *, max_bytes: int = 1_000_000, max_entries: int = 1_000
) -> tuple[Tool[[str], str], Tool[..., DirListing]]:
    """The tools ``read_file`` and ``list_dir``, confined to the directory ``root``.

    ``read_file`` refuses files over ``max_bytes`` and files that are not UTF-8 text;
    ``list_dir`` shows at most ``max_entries`` entries.
    """
    base = Path(root).resolve(strict=True)
    if not base.is_dir():
        raise NotADirectoryError(f"the root of the file tools must be a directory: {root}")

    def inside(path: str) -> Path:
        """The real path ``path`` names under the root, or PermissionError saying why not."""
        pure = PurePath(path)
        if pure.is_absolute():
            raise PermissionError(f"{path!r} is absolute; give a path relative to the root")
        if ".." in pure.parts:
            raise PermissionError(f"{path!r} contains '..'; paths may not leave the root")
        real = (base / pure).resolve()
        if not real.is_relative_to(base):
            raise PermissionError(f"{path!r} leads outside the root through a symlink")
        return real

    @tool(name="read_file")
    def read_file(path: str) -> str:
        """Read a UTF-8 text file; the path is relative to the shared directory."""
        real = inside(path)
        if real.is_dir():
            raise IsADirectoryError(f"{path!r} is a directory; list it with list_dir")
        if not real.is_file():
            raise FileNotFoundError(f"no file {path!r}")
        with real.open("rb") as file:
            data = file.read(max_bytes + 1)
        if len(data) > max_bytes:
            raise ValueError(f"{path!r} is larger than the limit of {max_bytes} bytes")
        try:
            return data.decode()
        except UnicodeDecodeError:
            raise ValueError(f"{path!r} is not UTF-8 text") from None

    @tool(name="list_dir")
    def list_dir(path: str = ".") -> DirListing:
        """List a directory of the shared directory ('.' is its top); names of
        subdirectories end with '/'."""
        real = inside(path)
        if not real.is_dir():
            what = "a file" if real.exists() else "missing"
            raise NotADirectoryError(f"{path!r} is not a directory ({what})")
        with os.scandir(real) as scan:
            names = sorted(entry.name + "/" if entry.is_dir() else entry.name for entry in scan)
        return DirListing(
            path=path,
            entries=names[:max_entries],
            omitted=max(0, len(names) - max_entries),
        )

    return read_file, list_dir
