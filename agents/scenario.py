"""Scenario scripts, as ``hivebus run`` runs them.

A scenario is a Python file of one of two kinds:

- it defines ``async def main(runtime)``: the runner opens a :class:`~agents.Runtime`
  (:func:`~agents.open_runtime`) with the run's configuration and awaits ``main`` on it.
  A module-level ``POLICY`` (an :class:`~agents.llm.Policy`, or a function returning
  one) is what the embedded mock LLM answers with; it is used only when no real endpoint
  is configured, so one script runs in both worlds. An ``int`` returned by ``main`` is
  the exit status.
- it is a plain program, starting its own event loop under ``if __name__ == "__main__":``: it is
  run as ``__main__``. Its configuration comes from the environment
  (:func:`program_environment` sets ``HIVEBUS_CONFIG``, ``HIVEBUS_MODE`` and
  ``HIVEBUS_CASSETTE``), and the runner sees its buses through :func:`bus.observe_buses`.

Either way the script's folder is first on ``sys.path`` and ``sys.argv`` is the script
and its arguments, as with ``python SCRIPT ARGS``.
"""

from __future__ import annotations

import ast
import importlib.util
import inspect
import os
import runpy
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any, Literal

import msgspec

from bus import HivebusError

from .config import Config
from .llm.policy import Policy
from .runtime import open_runtime

RUNS_DIR = Path(".hivebus") / "runs"
"""Where a run's trace goes when ``--trace`` does not say (relative to the working folder)."""

NO_ENDPOINT_URL = "http://127.0.0.1:9/v1"
"""The base URL a replay uses when no endpoint is configured: replay answers every call from
the cassette, so no mock LLM is started, and a call that reached the network would fail."""


class ScenarioError(HivebusError):
    """A scenario script cannot be run: missing, not Python, or with nothing to run."""


@dataclass(frozen=True, slots=True)
class Scenario:
    """A scenario script and how to run it: ``kind`` is ``"main"`` (it defines
    ``async def main(runtime)``) or ``"program"`` (it has an ``if __name__ == "__main__":``
    block)."""

    path: Path
    kind: Literal["main", "program"]

    @classmethod
    def inspect(cls, path: str | os.PathLike[str]) -> Scenario:
        """Read ``path`` and tell its kind, without running it."""
        path = Path(path)
        if not path.exists():
            raise ScenarioError(f"{path}: no such file")
        if path.is_dir():
            raise ScenarioError(f"{path}: is a folder, not a Python script")
        try:
            tree = ast.parse(path.read_bytes(), filename=str(path))
        except OSError as error:
            raise ScenarioError(f"{path}: cannot read: {error.strerror or error}") from None
        except (SyntaxError, ValueError) as error:
            line = f":{error.lineno}" if isinstance(error, SyntaxError) and error.lineno else ""
            reason = error.msg if isinstance(error, SyntaxError) else str(error)
            raise ScenarioError(f"{path}{line}: not a Python script: {reason}") from None
        guarded = any(isinstance(n, ast.If) and _is_main_guard(n.test) for n in tree.body)
        for node in tree.body:
            if not isinstance(node, ast.AsyncFunctionDef | ast.FunctionDef) or node.name != "main":
                continue
            if _takes_runtime(node, guarded) and isinstance(node, ast.FunctionDef):
                raise ScenarioError(
                    f"{path}:{node.lineno}: main(runtime) must be a coroutine: async def main"
                )
            if _takes_runtime(node, guarded):
                return cls(path, "main")
        if guarded:
            return cls(path, "program")
        raise ScenarioError(
            f"{path}: nothing to run: define `async def main(runtime)` or run a program "
            'under `if __name__ == "__main__":`'
        )

    @contextmanager
    def as_program(self, arguments: Sequence[str] = ()) -> Iterator[None]:
        """``sys.argv`` and ``sys.path`` as ``python SCRIPT ARGUMENTS`` sets them, restored
        on exit."""
        argv, path = sys.argv, list(sys.path)
        sys.argv = [str(self.path), *arguments]
        sys.path.insert(0, str(self.path.resolve().parent))
        try:
            yield
        finally:
            sys.argv = argv
            sys.path[:] = path

    def load(self) -> ModuleType:
        """Import the script as a module (its ``__main__`` block does not run)."""
        name = "_hivebus_scenario_" + "".join(c if c.isalnum() else "_" for c in self.path.stem)
        spec = importlib.util.spec_from_file_location(name, self.path)
        if spec is None or spec.loader is None:
            raise ScenarioError(f"{self.path}: cannot be imported")
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module  # so that its Structs' annotations resolve
        spec.loader.exec_module(module)
        return module


def _takes_runtime(main: ast.AsyncFunctionDef | ast.FunctionDef, guarded: bool) -> bool:
    """Whether ``main`` is a scenario's ``main(runtime)``: its first parameter is called
    ``runtime`` or annotated ``Runtime``, or it is its only one and the script has no
    ``__main__`` block (a program's own ``main(args)`` does not count)."""
    parameters = [*main.args.posonlyargs, *main.args.args]
    if not parameters:
        return False
    first = parameters[0]
    annotation = ast.unparse(first.annotation) if first.annotation is not None else ""
    if first.arg == "runtime" or annotation.strip("'\"").endswith("Runtime"):
        return True
    return len(parameters) == 1 and not guarded


def _is_main_guard(test: ast.expr) -> bool:
    """``__name__ == "__main__"``, either way round."""
    if not (isinstance(test, ast.Compare) and len(test.ops) == 1):
        return False
    sides = {ast.dump(test.left), ast.dump(test.comparators[0])}
    return isinstance(test.ops[0], ast.Eq) and sides == {
        ast.dump(ast.Name(id="__name__", ctx=ast.Load())),
        ast.dump(ast.Constant(value="__main__")),
    }


def policy_of(module: ModuleType) -> Policy | None:
    """The module's ``POLICY`` (called first if it is a function), or None."""
    policy = getattr(module, "POLICY", None)
    if callable(policy) and not isinstance(policy, Policy):
        policy = policy()
    if policy is not None and not isinstance(policy, Policy):
        raise ScenarioError(
            f"POLICY must be an agents.llm.Policy or a function returning one, "
            f"not {type(policy).__name__}"
        )
    return policy


async def run_main(module: ModuleType, config: Config) -> Any:
    """Open a runtime for ``config`` (mock answering with the module's policy) and await
    ``module.main(runtime)``; return what it returns."""
    main = module.main
    if not inspect.iscoroutinefunction(main):
        raise ScenarioError("main(runtime) must be a coroutine function: async def main")
    async with open_runtime(config, policy=policy_of(module)) as runtime:
        return await main(runtime)


def run_program(path: Path) -> tuple[int, str | None]:
    """Run the script as ``__main__``; its exit status, and the message ``sys.exit`` was
    given if it was not a number."""
    try:
        runpy.run_path(str(path), run_name="__main__")
    except SystemExit as exit:
        code = exit.code
        if code is None or isinstance(code, int):
            return code or 0, None
        return 1, str(code)
    return 0, None


def with_mode(config: Config, *, record: Path | None, replay: Path | None) -> Config:
    """``config`` recording every LLM call to ``record``, or replaying them from ``replay``
    (then with no LLM at all: see :data:`NO_ENDPOINT_URL`)."""
    llm = config.llm
    if record is not None:
        llm = msgspec.structs.replace(llm, mode="record", cassette=str(record))
    elif replay is not None:
        llm = msgspec.structs.replace(llm, mode="replay", cassette=str(replay))
        if llm.uses_mock:
            llm = llm.with_base_url(NO_ENDPOINT_URL)
    return msgspec.structs.replace(config, llm=llm)


@contextmanager
def program_environment(
    config_path: Path | None, *, record: Path | None, replay: Path | None, uses_mock: bool
) -> Iterator[None]:
    """The environment that gives a plain program's ``load_config()`` the run's settings;
    restored on exit."""
    changes: dict[str, str] = {}
    if config_path is not None:
        changes["HIVEBUS_CONFIG"] = str(config_path.resolve())
    if record is not None or replay is not None:
        changes["HIVEBUS_MODE"] = "record" if record is not None else "replay"
        changes["HIVEBUS_CASSETTE"] = str((record or replay or Path()).resolve())
    if replay is not None and uses_mock:
        changes["HIVEBUS_BASE_URL"] = NO_ENDPOINT_URL
    saved = {name: os.environ.get(name) for name in changes}
    os.environ.update(changes)
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def default_trace_path(script: Path, *, folder: Path = RUNS_DIR, now: float | None = None) -> Path:
    """``.hivebus/runs/<script>-<YYYYmmdd-HHMMSS>.jsonl``, numbered if that exists."""
    stamp = time.strftime("%Y%m%d-%H%M%S", time.localtime(now))
    path = folder / f"{script.stem}-{stamp}.jsonl"
    number = 1
    while path.exists():
        number += 1
        path = folder / f"{script.stem}-{stamp}-{number}.jsonl"
    return path
