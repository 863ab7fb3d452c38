"""``hivebus run``: check the inputs, run the scenario under a :class:`RunObserver`, report.

Errors in the inputs (a missing script, a bad configuration, an endpoint that cannot be
reached, a missing cassette) are raised as :class:`~bus.HivebusError` before anything
runs; the CLI prints them as one line. A scenario that fails is reported the same way,
after the summary of what it did before it failed.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import errno
import logging
import os
import shutil
import sys
import traceback
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
from rich.console import Console

from bus.trace import TraceWriter, read_trace

from .cli_monitor import linger, start_monitor
from .config import Config, load_config
from .live import LiveView, RunObserver, make_console
from .preflight import check_endpoints
from .run_summary import RunSummary, agent_table, headline, summarize, summary_data
from .scenario import (
    Scenario,
    ScenarioError,
    default_trace_path,
    program_environment,
    run_main,
    run_program,
    with_mode,
)

LIBRARY_LOGGER = "hivebus"
"""The parent of hivebus's loggers (``hivebus.bus``, ``hivebus.tools``, ``hivebus.trace``...)."""


def _path(value: str | None) -> Path | None:
    return None if value is None else Path(value)


@dataclass(frozen=True, kw_only=True)
class RunOptions:
    """What ``hivebus run`` was asked to do (see its ``--help``)."""

    script: Path
    script_args: tuple[str, ...] = ()
    config: Path | None = None
    trace: Path | None = None
    record: Path | None = None
    replay: Path | None = None
    quiet: bool = False
    json: bool = False
    verbose: bool = False
    debug: bool = False
    monitor: int | None = None  # serve the web monitor on this port (0: any free one)
    monitor_host: str | None = None  # (implies monitor; default 127.0.0.1)

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> RunOptions:
        return cls(
            script=Path(args.script),
            script_args=tuple(args.script_args),
            config=_path(args.config),
            trace=_path(args.trace),
            record=_path(args.record),
            replay=_path(args.replay),
            quiet=args.quiet,
            json=args.json,
            verbose=args.verbose,
            debug=args.debug,
            monitor=args.monitor,
            monitor_host=args.monitor_host,
        )


@dataclass(frozen=True, slots=True)
class Outcome:
    """How the scenario ended: its exit status, and why when it failed."""

    code: int
    error: str | None = None


def run_scenario(options: RunOptions) -> int:
    """Run the scenario of ``options``; its exit status."""
    scenario = Scenario.inspect(options.script)
    if options.replay is not None and not options.replay.is_file():
        raise ScenarioError(f"--replay {options.replay}: no such cassette file")
    configured = load_config(options.config)
    config = with_mode(configured, record=options.record, replay=options.replay)
    check_endpoints(config.llm)
    if options.record is not None:
        _start_cassette(options.record)
    trace_path = options.trace or default_trace_path(scenario.path)
    writer = TraceWriter(trace_path)
    try:
        writer.open()
    except OSError as error:
        raise ScenarioError(f"{trace_path}: cannot write the trace: {error.strerror}") from None
    console = make_console()
    view = None
    if not (options.quiet or options.json):
        view = LiveView(console, verbose=options.verbose, model=config.llm.model)
        _say(console, f"hivebus run {scenario.path} · {_llm_text(config)} · trace {trace_path}")
    quiet_logs = library_logs(shown=options.verbose or options.debug)
    with contextlib.ExitStack() as stack:
        monitor = start_monitor(
            stack, options.monitor, options.monitor_host, title=scenario.path.name, command="run"
        )
        with quiet_logs, RunObserver(writer, view).observing():
            outcome = _execute(scenario, config, options, uses_mock=configured.llm.uses_mock)
        summary = summarize(read_trace(trace_path))
        _report(console, options, config, summary, outcome, scenario, trace_path)
        if monitor is not None:
            linger(monitor)  # (after the report: the trace's path is there to replay)
    return outcome.code


def _start_cassette(path: Path) -> None:
    """Make ``path`` an empty cassette (a cassette holds one run, not two), or say at once
    why it cannot be written, rather than at the first LLM call."""
    try:
        if path.is_dir():
            raise IsADirectoryError(errno.EISDIR, "is a folder", str(path))
        for folder in path.parents:  # mkdir would call a file on the way "File exists"
            if folder.exists():
                if not folder.is_dir():
                    raise NotADirectoryError(errno.ENOTDIR, f"{folder} is not a folder")
                break
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("wb"):
            pass
    except OSError as error:
        reason = error.strerror or str(error)
        raise ScenarioError(f"--record {path}: cannot write the cassette: {reason}") from None


class _StderrHandler(logging.Handler):
    """Writes to ``sys.stderr`` as it is when a record comes (the live view redirects it)."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            print(self.format(record), file=sys.stderr, flush=True)
        except Exception:  # noqa: BLE001 - as logging.StreamHandler: never raise
            self.handleError(record)


@contextmanager
def library_logs(*, shown: bool) -> Iterator[None]:
    """Keep hivebus's own log records (``hivebus.bus``, ``hivebus.tools``...) off stderr
    while the block runs, errors aside: a failed handler, a dead letter or a restarted
    actor is already in the trace and the live view, and the run's failure is told in
    one line at the end. ``shown`` (``--verbose``, ``--debug``) lets warnings through too.
    The ``hivebus`` logger's handlers and propagation are restored on exit."""
    logger = logging.getLogger(LIBRARY_LOGGER)
    handlers, propagate = list(logger.handlers), logger.propagate
    handler = _StderrHandler(logging.NOTSET if shown else logging.ERROR)
    handler.setFormatter(logging.Formatter("%(name)s: %(levelname)s: %(message)s"))
    logger.handlers = [handler]
    logger.propagate = False  # nor through the root's handlers (or Python's last resort)
    try:
        yield
    finally:
        logger.handlers = handlers
        logger.propagate = propagate


def _llm_text(config: Config) -> str:
    llm = config.llm
    if llm.mode == "replay":
        return f"LLM: replaying {llm.cassette}"
    where = (
        f"embedded mock LLM ({llm.model})" if llm.uses_mock else f"{llm.model} at {llm.base_url}"
    )
    return f"LLM: {where}" + (f", recording to {llm.cassette}" if llm.mode == "record" else "")


def _execute(
    scenario: Scenario, config: Config, options: RunOptions, *, uses_mock: bool
) -> Outcome:
    try:
        with scenario.as_program(options.script_args):
            if scenario.kind == "main":
                result = asyncio.run(run_main(scenario.load(), config))
                is_status = isinstance(result, int) and not isinstance(result, bool)
                code = result if is_status else 0
                return Outcome(code, f"{scenario.path}: main returned {code}" if code else None)
            with program_environment(
                options.config, record=options.record, replay=options.replay, uses_mock=uses_mock
            ):
                code, message = run_program(scenario.path)
            if code and message is None:
                message = f"exited with status {code}"
            return Outcome(code, f"{scenario.path}: {message}" if message else None)
    except KeyboardInterrupt:
        return Outcome(130, f"{scenario.path}: interrupted")
    except Exception as exc:  # noqa: BLE001 - the scenario's failure becomes the run's error line
        if options.debug:
            traceback.print_exception(exc)
        return Outcome(1, f"{scenario.path}: {one_line(exc)}")


def one_line(exc: BaseException) -> str:
    """``Type: first line of the message``, through groups of a single exception."""
    while isinstance(exc, BaseExceptionGroup) and len(exc.exceptions) == 1:
        exc = exc.exceptions[0]
    lines = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {lines[0]}" if lines else type(exc).__name__


def _say(console: Console, text: str) -> None:
    """One line as it is: no markup, no highlighting, never wrapped."""
    console.print(text, soft_wrap=True, markup=False, highlight=False)


def _report(
    console: Console,
    options: RunOptions,
    config: Config,
    summary: RunSummary,
    outcome: Outcome,
    scenario: Scenario,
    trace_path: Path,
) -> None:
    if options.json:
        data: dict[str, Any] = {
            "script": str(scenario.path),
            "status": "ok" if outcome.code == 0 else "failed",
            "exit_code": outcome.code,
            "error": outcome.error,
            "trace": str(trace_path),
            "llm_mode": config.llm.mode,
            "cassette": config.llm.cassette,
            **summary_data(summary),
        }
        sys.stdout.flush()
        print(orjson.dumps(data).decode(), flush=True)
    elif options.quiet:
        print(f"{headline(summary)} · trace {trace_path}", flush=True)
    else:
        console.print()
        if summary.agents:
            console.print(agent_table(summary))
        _say(console, headline(summary))
        if options.record is not None:
            _say(console, f"cassette: {options.record} (replay it: --replay {options.record})")
        _say(console, f"trace: {trace_path} (read it: {_hivebus()} trace {trace_path})")
    if outcome.error is not None:
        print(f"hivebus run: {outcome.error}", file=sys.stderr, flush=True)


def _hivebus() -> str:
    """How to call hivebus again from here: the venv's script when it is not on PATH."""
    script = os.path.join(os.path.dirname(sys.executable), "hivebus")
    if shutil.which("hivebus") == script or not os.path.exists(script):
        return "hivebus"
    return os.path.relpath(script) if not os.path.relpath(script).startswith("..") else script
