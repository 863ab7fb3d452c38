"""The ``hivebus`` command line.

hivebus run SCRIPT [options] [-- ARGS]      run a scenario with a live view, trace and summary
hivebus trace FILE [--agent NAME] [--subject PATTERN] [--json]
                                            show a recorded run as a causation tree
hivebus trace diff A B [--json]             where two recorded runs first diverge
hivebus mock-llm [options]                  serve the embedded mock LLM
hivebus load [SCENARIO] [options]           load-test many concurrent agent loops, with a report
hivebus monitor TRACE                       replay a recorded run in the web monitor

This module only parses and dispatches; the work is in :mod:`agents.scenario`,
:mod:`agents.live`, :mod:`agents.run_summary`, :mod:`agents.trace_view` and :mod:`agents.load`.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import sys
from collections.abc import Sequence
from importlib import metadata

from bus import HivebusError, InvalidSubject

from .cli_monitor import add_monitor_arguments, add_monitor_command, start_monitor
from .cli_run import RunOptions, run_scenario
from .llm.mock import add_arguments as add_mock_arguments
from .llm.mock import serve_args
from .load import LoadOptions, load_main, loop_factory
from .load.mock_process import serve_with_stats
from .load.options import LOAD_DESCRIPTION
from .load.options import add_arguments as add_load_arguments
from .trace_view import show_diff, show_trace
from .worker import WorkerError, run_worker
from .worker import __doc__ as WORKER_DOC

TRACE_DIFF = "trace diff"  # a command of two words: `hivebus trace diff A B`

EXAMPLES = """\
examples:
  hivebus run team.py                      run a scenario (on the mock LLM with no key set)
  hivebus run team.py --record team.cassette.jsonl
  hivebus run team.py --replay team.cassette.jsonl   ...the same run again, with no LLM
  hivebus trace .hivebus/runs/team-20250101-120000.jsonl --agent writer
  hivebus trace diff before.jsonl after.jsonl
  hivebus mock-llm --port 8000
  hivebus load --loops 2000 --concurrency 500 --latency 50ms --faults 429:0.05
  hivebus run team.py --monitor=8765      ...and watch it in the browser at 127.0.0.1:8765
  hivebus monitor .hivebus/runs/team-20250101-120000.jsonl

`hivebus COMMAND --help` describes each command and its options."""

RUN_DESCRIPTION = """\
Run a scenario script on the bus and watch it work.

A scenario is a Python file that either defines `async def main(runtime)` -- hivebus
opens a Runtime (bus, LLM gateway, memory, tool executor) and awaits main(runtime) --
or is a plain program that runs under `if __name__ == "__main__":` (it is run as
__main__, and its buses are observed as they start). A module-level POLICY (an
agents.llm.Policy, or a function returning one) is what the embedded mock LLM answers
with; it is used only when no real endpoint is configured (no OPENAI_API_KEY and no
base URL), so the same script runs on the mock and on a real model.

While it runs, each message is shown as a line: who sent what to whom, LLM calls with
their model and answer, tool calls with their arguments and results, agent events, and
(on a terminal) the LLM calls in flight with a running token and cost count. At the
end: a table per agent (tasks, steps, LLM calls, tokens, cost, tool calls, errors,
time) and where the trace was written. Exit status: 0 when the scenario finished, 1
when it failed (one line on stderr says why), the script's own status if it exits
with one."""


def _version() -> str:
    try:
        return metadata.version("hivebus")
    except metadata.PackageNotFoundError:  # running from a checkout that is not installed
        return "unknown"


def _add_run(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    run = commands.add_parser(
        "run",
        help="run a scenario script with a live view, a trace and a per-agent summary",
        description=RUN_DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        usage="hivebus run SCRIPT [options] [-- ARGS...]",
    )
    run.add_argument("script", metavar="SCRIPT", help="the scenario's Python file")
    run.add_argument(
        "--config",
        metavar="FILE",
        help="configuration file (.toml or .json, the [llm] table); environment variables "
        "(OPENAI_API_KEY, OPENAI_BASE_URL, HIVEBUS_*) still override it. Default: "
        "$HIVEBUS_CONFIG, else none: the embedded mock LLM unless a key or base URL is set",
    )
    run.add_argument(
        "--trace",
        metavar="FILE",
        help="write the trace (every message of the run, JSON lines) to FILE; default: "
        ".hivebus/runs/SCRIPT-YYYYmmdd-HHMMSS.jsonl under the current folder",
    )
    mode = run.add_mutually_exclusive_group()
    mode.add_argument(
        "--record",
        metavar="FILE",
        help="record every LLM call and its answer to the cassette FILE (overwritten)",
    )
    mode.add_argument(
        "--replay",
        metavar="FILE",
        help="answer every LLM call from the cassette FILE made by --record: no LLM, no "
        "mock, no network; a call the recording lacks fails the run",
    )
    run.add_argument(
        "--quiet",
        "-q",
        action="store_true",
        help="no live view and no table: only the closing line (totals and the trace's path)",
    )
    run.add_argument(
        "--json",
        action="store_true",
        help="no live view; print a machine-readable summary as one JSON object, the last "
        "line of the output",
    )
    run.add_argument(
        "--verbose",
        "-v",
        action="store_true",
        help="show every message in the live view, memory requests and routine agent "
        "events included",
    )
    run.add_argument(
        "--debug", action="store_true", help="print the traceback when the scenario fails"
    )
    add_transport_arguments(run, remote=True)
    add_monitor_arguments(run)
    run.set_defaults(run=_run, script_args=[])
    run.epilog = (
        "Arguments after `--` are the script's own (its sys.argv[1:]): "
        "hivebus run team.py --quiet -- --topic bees"
    )


def _add_trace(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    trace = commands.add_parser(
        "trace",
        help="show a recorded run (JSONL trace) as a causation tree with timings",
        description=(
            "Read a trace written by `hivebus run --trace` or bus.TraceRecorder and print "
            "its causation tree: each message under the one whose handler caused it (agent "
            "→ LLM → tools), with its offset from the start of the run, the time until the "
            "reply for requests, and what it said; then a summary: messages per subject, "
            "LLM calls, tokens and cost, tool calls, errors, the duration, and a table per "
            "agent. To compare two runs: hivebus trace diff A B."
        ),
    )
    trace.add_argument("file", metavar="FILE", help="the trace file (JSON lines)")
    trace.add_argument(
        "--subject",
        metavar="PATTERN",
        help="only the trees holding a message on a subject matching PATTERN (wildcards * >)",
    )
    trace.add_argument(
        "--agent",
        metavar="NAME",
        help="only agent NAME's loop: its inbox, its events and the requests it sent "
        "(memory, LLM, tools, other agents), with their replies",
    )
    trace.add_argument(
        "--json", action="store_true", help="print the summary as one JSON object instead"
    )
    trace.set_defaults(run=_trace)
    diff = commands.add_parser(
        TRACE_DIFF,
        help="where two recorded runs of a scenario first diverge: which message, which field",
        description=(
            "Compare two traces message by message in causation order and report the first "
            "difference: the message (its position and each file's line, subject, type) and "
            "the field (its path and both values). Fields that always differ between runs "
            "are ignored: envelope ids (compared by position instead), timestamps, "
            "durations and latencies, and ids minted per run (tool call ids). Exit status: "
            "0 when the runs match, 1 when they differ, 2 when a trace cannot be read."
        ),
    )
    diff.add_argument("a", metavar="A", help="the first trace file")
    diff.add_argument("b", metavar="B", help="the second trace file")
    diff.add_argument("--json", action="store_true", help="print the divergence as one JSON object")
    diff.set_defaults(run=_trace_diff, error_status=2)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="hivebus",
        description="hivebus: an asyncio multi-agent runtime on a typed message bus.",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"hivebus {_version()}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    _add_run(commands)
    _add_trace(commands)
    mock = commands.add_parser(
        "mock-llm",
        help="serve the embedded OpenAI-compatible mock LLM (127.0.0.1 by default)",
        description=(
            "Serve the mock LLM standalone: POST /v1/chat/completions (plain and streamed) "
            "and GET /v1/models, answering by a policy file's rules or the built-in "
            "policy, with optional latency and injected faults. Runs until interrupted."
        ),
    )
    add_mock_arguments(mock)
    mock.set_defaults(run=_mock_llm)
    load = commands.add_parser(
        "load",
        help="load-test many concurrent agent loops; a report as JSON and HTML",
        description=LOAD_DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        usage="hivebus load [SCENARIO] [--loops N | --duration S] [--concurrency C | --rate R] "
        "[options]",
    )
    add_load_arguments(load)
    add_transport_arguments(load, remote=False)
    add_monitor_arguments(load)
    load.set_defaults(run=_load)
    _add_worker(commands)
    add_monitor_command(commands)
    load_mock = commands.add_parser("_load-mock")  # hivebus load's own mock process: no help
    add_mock_arguments(load_mock)
    load_mock.set_defaults(run=_load_mock)
    return parser


def add_transport_arguments(parser: argparse.ArgumentParser, *, remote: bool) -> None:
    parser.add_argument(
        "--transport",
        metavar="URL",
        help="run the bus over the NATS server at URL (nats://host:port) rather than in "
        "this process; sets $HIVEBUS_TRANSPORT (default: that variable, else the config's "
        "bus.transport, else local)",
    )
    if remote:
        parser.add_argument(
            "--remote",
            metavar="ROLES",
            help="roles served by `hivebus worker` processes, not started here: any of "
            "gateway,tools,memory (comma-separated); sets $HIVEBUS_REMOTE",
        )


def _transport_environment(args: argparse.Namespace) -> None:
    """The flags become the variables, so a scenario's own open_runtime() sees them too."""
    if getattr(args, "transport", None):
        os.environ["HIVEBUS_TRANSPORT"] = args.transport
    if getattr(args, "remote", None):
        os.environ["HIVEBUS_REMOTE"] = args.remote


def _add_worker(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    worker = commands.add_parser(
        "worker",
        help="host actors (gateway, tools, memory, agents) in this process, on a NATS bus",
        description=WORKER_DOC,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    worker.add_argument(
        "factories", nargs="+", metavar="MODULE:FACTORY", help="what to serve (see above)"
    )
    worker.add_argument(
        "--transport",
        metavar="URL",
        default=os.environ.get("HIVEBUS_TRANSPORT"),
        help="the NATS server (nats://host:port); default: $HIVEBUS_TRANSPORT",
    )
    worker.add_argument("--name", default="worker", help="this worker's name on the bus")
    worker.add_argument(
        "--drain-timeout",
        type=float,
        default=30.0,
        metavar="S",
        help="on SIGTERM, seconds to finish the work held before exiting (default 30)",
    )
    worker.set_defaults(run=_worker)


def _worker(args: argparse.Namespace) -> int:
    if not args.transport:
        raise WorkerError("--transport URL (or $HIVEBUS_TRANSPORT) is required")
    return asyncio.run(
        run_worker(args.transport, args.factories, name=args.name, drain_timeout=args.drain_timeout)
    )


def _run(args: argparse.Namespace) -> int:
    _transport_environment(args)
    return run_scenario(RunOptions.from_args(args))


def _trace(args: argparse.Namespace) -> int:
    return show_trace(args.file, subject=args.subject, agent=args.agent, as_json=args.json)


def _trace_diff(args: argparse.Namespace) -> int:
    return show_diff(args.a, args.b, as_json=args.json)


def _mock_llm(args: argparse.Namespace) -> int:
    with contextlib.suppress(KeyboardInterrupt):  # Ctrl-C is how a server is stopped
        asyncio.run(serve_args(args))
    return 0


def _load(args: argparse.Namespace) -> int:
    _transport_environment(args)
    options = LoadOptions.from_args(args)
    try:
        with contextlib.ExitStack() as stack:
            start_monitor(
                stack, args.monitor, args.monitor_host, title="hivebus load", command="load"
            )
            with asyncio.Runner(loop_factory=loop_factory(options.uvloop)) as runner:
                return runner.run(load_main(options))
    except KeyboardInterrupt:
        print("hivebus load: interrupted", file=sys.stderr)
        return 130


def _load_mock(args: argparse.Namespace) -> int:
    asyncio.run(serve_with_stats(args))
    return 0


def _split(argv: Sequence[str]) -> tuple[list[str], list[str]]:
    """Route ``trace diff`` to its command, and take a run's script arguments (after ``--``)."""
    head, tail = list(argv), []
    if head[:2] == ["trace", "diff"]:
        head[:2] = [TRACE_DIFF]
    if head[:1] == ["run"] and "--" in head:
        split = head.index("--")
        head, tail = head[:split], head[split + 1 :]
    return head, tail


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``hivebus`` console script."""
    parser = build_parser()
    head, script_args = _split(sys.argv[1:] if argv is None else argv)
    args = parser.parse_args(head)
    if args.command is None:
        parser.print_help()
        return 2
    args.script_args = script_args
    try:
        code: int = args.run(args)
        sys.stdout.flush()
    except (HivebusError, InvalidSubject) as exc:
        print(f"hivebus {args.command}: {exc}", file=sys.stderr)
        return int(getattr(args, "error_status", 1))
    except BrokenPipeError:
        # The reader went away (`hivebus trace run.jsonl | head`): not an error of ours.
        # Point stdout at devnull so the interpreter's final flush does not complain.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    return code


if __name__ == "__main__":
    raise SystemExit(main())
