"""The style budgets of ../shared/CONVENTIONS.md, checked on bus/ (the tail, not the average)."""

from __future__ import annotations

import ast
import statistics
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BUS = sorted((ROOT / "bus").rglob("*.py"))
SOURCES = sorted(p for pkg in ("bus", "agents", "tools") for p in (ROOT / pkg).rglob("*.py"))


def _lines(path: Path) -> int:
    return len(path.read_text().splitlines())


def _nodes(path: Path) -> list[ast.AST]:
    return list(ast.walk(ast.parse(path.read_text())))


def test_bus_modules_stay_small() -> None:
    sizes = {p.name: _lines(p) for p in BUS}
    assert statistics.median(sizes.values()) <= 200, sizes
    assert max(sizes.values()) <= 600, sizes


def test_bus_classes_and_functions_stay_readable() -> None:
    worst_class = worst_function = 0
    lengths = []
    for path in BUS:
        for node in _nodes(path):
            if isinstance(node, ast.ClassDef):
                worst_class = max(worst_class, node.end_lineno - node.lineno + 1)  # type: ignore[operator]
            elif isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                lengths.append(node.end_lineno - node.lineno + 1)  # type: ignore[operator]
    worst_function = max(lengths)
    assert worst_class <= 500, worst_class
    assert worst_function <= 120, worst_function
    lengths.sort()
    assert lengths[int(0.99 * (len(lengths) - 1))] <= 80


def test_no_broad_except_is_swallowed() -> None:
    for path in SOURCES:
        for node in _nodes(path):
            if not isinstance(node, ast.ExceptHandler):
                continue
            broad = node.type is None or (
                isinstance(node.type, ast.Name) and node.type.id in ("Exception", "BaseException")
            )
            body_is_silent = all(
                isinstance(stmt, ast.Pass | ast.Continue)
                or (isinstance(stmt, ast.Expr) and isinstance(stmt.value, ast.Constant))
                for stmt in node.body
            )
            what = ast.unparse(node.type) if node.type else "everything"
            assert not (broad and body_is_silent), f"{path}:{node.lineno} swallows {what}"


def test_no_asyncio_run_in_library_code() -> None:
    for path in SOURCES:
        if path.relative_to(ROOT).as_posix().startswith("agents/cli"):  # the CLI's modules
            continue
        assert "asyncio.run(" not in path.read_text(), path


def test_tests_outweigh_the_code() -> None:
    tests = sum(_lines(p) for p in (ROOT / "tests").rglob("*.py"))
    source = sum(_lines(p) for p in SOURCES)
    assert tests >= source, (tests, source)
