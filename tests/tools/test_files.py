"""``read_file`` and ``list_dir``: reads under the root work; every way out of it is refused."""

from __future__ import annotations

from pathlib import Path

import msgspec
import pytest

from bus import Bus
from tools import TOOL_CALL, DirListing, ToolCallRequest, ToolExecutor, file_tools

pytestmark = pytest.mark.anyio


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    """root/ with files, a subdirectory and symlinks in and out; a secret beside it."""
    root = tmp_path / "root"
    (root / "sub").mkdir(parents=True)
    (root / "a.txt").write_text("alpha\n")
    (root / "sub" / "b.txt").write_text("beta")
    (root / "blob.bin").write_bytes(b"\xff\xfe\x00binary")
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.txt").write_text("the secret")
    (root / "inner_link.txt").symlink_to(root / "a.txt")
    (root / "relative_inner").symlink_to("sub")
    (root / "escape.txt").symlink_to(outside / "secret.txt")
    (root / "escape_dir").symlink_to(outside)
    (root / "sneaky").symlink_to("../outside/secret.txt")
    return root


def test_a_file_under_the_root_is_read(tree: Path) -> None:
    read_file, _ = file_tools(tree)
    assert read_file("a.txt") == "alpha\n"
    assert read_file("sub/b.txt") == "beta"
    assert read_file("./sub/b.txt") == "beta"


def test_a_symlink_that_stays_under_the_root_is_followed(tree: Path) -> None:
    read_file, list_dir = file_tools(tree)
    assert read_file("inner_link.txt") == "alpha\n"
    assert read_file("relative_inner/b.txt") == "beta"
    assert list_dir("relative_inner").entries == ["b.txt"]


def test_a_directory_is_listed_sorted_with_subdirectories_marked(tree: Path) -> None:
    _, list_dir = file_tools(tree)
    assert list_dir() == DirListing(
        path=".",
        entries=[
            "a.txt",
            "blob.bin",
            "escape.txt",
            "escape_dir/",
            "inner_link.txt",
            "relative_inner/",
            "sneaky",
            "sub/",
        ],
    )
    assert list_dir("sub") == DirListing(path="sub", entries=["b.txt"])
    assert list_dir("").entries == list_dir(".").entries


@pytest.mark.parametrize(
    "path", ["../outside/secret.txt", "sub/../../outside/secret.txt", "..", "sub/../a.txt"]
)
def test_dot_dot_is_refused_even_when_it_would_stay_inside(tree: Path, path: str) -> None:
    read_file, list_dir = file_tools(tree)
    with pytest.raises(PermissionError, match=r"contains '\.\.'; paths may not leave the root"):
        read_file(path)
    with pytest.raises(PermissionError, match=r"contains '\.\.'"):
        list_dir(path)


def test_absolute_paths_are_refused_even_when_they_point_inside(tree: Path) -> None:
    read_file, list_dir = file_tools(tree)
    for path in ["/etc/passwd", str(tree / "a.txt"), str(tree.parent / "outside" / "secret.txt")]:
        with pytest.raises(PermissionError, match=r"is absolute; give a path relative to the root"):
            read_file(path)
    with pytest.raises(PermissionError, match=r"is absolute"):
        list_dir("/")


@pytest.mark.parametrize("path", ["escape.txt", "sneaky", "escape_dir/secret.txt"])
def test_symlinks_that_lead_out_of_the_root_are_refused(tree: Path, path: str) -> None:
    read_file, _ = file_tools(tree)
    with pytest.raises(PermissionError, match=r"leads outside the root through a symlink"):
        read_file(path)


def test_a_symlinked_directory_outside_the_root_cannot_be_listed(tree: Path) -> None:
    _, list_dir = file_tools(tree)
    with pytest.raises(PermissionError, match=r"'escape_dir' leads outside the root"):
        list_dir("escape_dir")


def test_a_root_that_is_itself_a_symlink_still_confines(tmp_path: Path, tree: Path) -> None:
    alias = tmp_path / "alias"
    alias.symlink_to(tree)
    read_file, _ = file_tools(alias)
    assert read_file("a.txt") == "alpha\n"
    with pytest.raises(PermissionError):
        read_file("escape.txt")


def test_missing_files_and_wrong_kinds_are_clear_errors(tree: Path) -> None:
    read_file, list_dir = file_tools(tree)
    with pytest.raises(FileNotFoundError, match=r"^no file 'nope.txt'$"):
        read_file("nope.txt")
    with pytest.raises(IsADirectoryError, match=r"'sub' is a directory; list it with list_dir"):
        read_file("sub")
    with pytest.raises(NotADirectoryError, match=r"'a.txt' is not a directory \(a file\)"):
        list_dir("a.txt")
    with pytest.raises(NotADirectoryError, match=r"'gone' is not a directory \(missing\)"):
        list_dir("gone")


def test_files_over_the_size_cap_are_refused(tree: Path) -> None:
    (tree / "big.txt").write_text("x" * 101)
    (tree / "fits.txt").write_text("x" * 100)
    read_file, _ = file_tools(tree, max_bytes=100)
    assert read_file("fits.txt") == "x" * 100
    with pytest.raises(ValueError, match=r"'big.txt' is larger than the limit of 100 bytes"):
        read_file("big.txt")


def test_binary_files_are_refused_as_not_text(tree: Path) -> None:
    read_file, _ = file_tools(tree)
    with pytest.raises(ValueError, match=r"'blob.bin' is not UTF-8 text"):
        read_file("blob.bin")


def test_a_long_listing_is_capped_and_says_how_much_is_left_out(tmp_path: Path) -> None:
    for i in range(12):
        (tmp_path / f"f{i:02}").touch()
    _, list_dir = file_tools(tmp_path, max_entries=5)
    listing = list_dir()
    assert listing.entries == ["f00", "f01", "f02", "f03", "f04"]
    assert listing.omitted == 7


def test_the_root_must_be_an_existing_directory(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        file_tools(tmp_path / "missing")
    (tmp_path / "file").touch()
    with pytest.raises(NotADirectoryError, match=r"must be a directory"):
        file_tools(tmp_path / "file")


def test_the_tools_are_named_and_described_without_revealing_the_root(tree: Path) -> None:
    read_file, list_dir = file_tools(tree)
    assert (read_file.name, list_dir.name) == ("read_file", "list_dir")
    for each in (read_file, list_dir):
        assert str(tree) not in msgspec.json.encode(each.definition()).decode()
    assert list_dir.parameters["properties"]["path"]["default"] == "."


async def test_through_the_executor_reads_work_and_escapes_are_error_results(
    bus: Bus, tree: Path
) -> None:
    await bus.add(ToolExecutor(file_tools(tree)))

    async def ask(name: str, path: str) -> tuple[str, bool]:
        arguments = msgspec.json.encode({"path": path}).decode()
        request = ToolCallRequest(call_id="1", name=name, arguments=arguments)
        result = await bus.request(TOOL_CALL, request)
        return result.content, result.is_error

    assert await ask("read_file", "sub/b.txt") == ("beta", False)
    assert await ask("list_dir", "sub") == ('{"path":"sub","entries":["b.txt"],"omitted":0}', False)
    assert await ask("read_file", "../outside/secret.txt") == (
        "tool 'read_file' raised PermissionError: '../outside/secret.txt' contains '..'; "
        "paths may not leave the root",
        True,
    )
    content, is_error = await ask("read_file", "escape.txt")
    assert is_error
    assert "the secret" not in content
