"""The ``hivebus`` command line.

hivebus trace FILE [--subject PATTERN] [--json]   show a recorded run as a causation tree
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import sys
from collections import Counter
from collections.abc import Sequence
from importlib import metadata

import orjson

from bus import HivebusError, InvalidSubject, validate_subject
from bus.trace import build_tree, format_tree, read_trace, select

from .llm.mock import add_arguments as add_mock_arguments
from .llm.mock import serve_args


def _plural(count: int, word: str) -> str:
    if count == 1:
        return f"1 {word}"
    return f"{count} {word[:-1] + 'ies' if word.endswith('y') else word + 's'}"


def _trace(args: argparse.Namespace) -> int:
    if args.subject is not None:
        validate_subject(args.subject, pattern=True)
    roots = build_tree(read_trace(args.file))
    if args.subject is not None:
        roots = select(roots, args.subject)
    records = [node.record for root in roots for _, node in root.walk()]
    replies = sum(1 for root in roots for _, node in root.walk() if node.reply is not None)
    by_kind = Counter(r.kind for r in records)
    by_subject = Counter(r.subject for r in records)
    times = [r.timestamp for r in records]
    span = max(times) - min(times) if times else 0.0
    if args.json:
        summary = {
            "file": str(args.file),
            "subject": args.subject,
            "records": len(records) + replies,
            "roots": len(roots),
            "kinds": {**by_kind, "reply": replies} if replies else dict(by_kind),
            "subjects": dict(by_subject),
            "span_s": round(span, 6),
        }
        print(orjson.dumps(summary).decode())
        return 0
    for line in format_tree(roots):
        print(line)
    print()
    matching = f" matching {args.subject!r}" if args.subject is not None else ""
    print(
        f"{_plural(len(records) + replies, 'record')} ({_plural(by_kind['event'], 'event')}, "
        f"{_plural(by_kind['request'], 'request')}, {_plural(replies, 'reply')}) "
        f"in {_plural(len(roots), 'tree')}{matching} over {span * 1000:.1f}ms"
    )
    for subject, count in by_subject.most_common(10):
        print(f"  {count:>6}  {subject}")
    return 0


def _version() -> str:
    try:
        return metadata.version("hivebus")
    except metadata.PackageNotFoundError:  # running from a checkout that is not installed
        return "unknown"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="hivebus",
        description="hivebus: an asyncio multi-agent runtime on a typed message bus.",
    )
    parser.add_argument("--version", action="version", version=f"hivebus {_version()}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    trace = commands.add_parser(
        "trace",
        help="show a recorded run (JSONL trace) as a causation tree with timings",
        description=(
            "Read a trace written by bus.TraceRecorder and print its causation tree: "
            "each message under the one whose handler caused it, with its offset from the "
            "start of the run and, for requests, the time until the reply."
        ),
    )
    trace.add_argument("file", help="the trace file (JSON lines)")
    trace.add_argument(
        "--subject",
        metavar="PATTERN",
        help="only the trees holding a message on a subject matching PATTERN (wildcards * >)",
    )
    trace.add_argument("--json", action="store_true", help="print a JSON summary instead")
    trace.set_defaults(run=_trace)
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
    return parser


def _mock_llm(args: argparse.Namespace) -> int:
    with contextlib.suppress(KeyboardInterrupt):  # Ctrl-C is how a server is stopped
        asyncio.run(serve_args(args))
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``hivebus`` console script."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    try:
        code: int = args.run(args)
        sys.stdout.flush()
    except (HivebusError, InvalidSubject) as exc:
        print(f"hivebus {args.command}: {exc}", file=sys.stderr)
        return 1
    except BrokenPipeError:
        # The reader went away (`hivebus trace run.jsonl | head`): not an error of ours.
        # Point stdout at devnull so the interpreter's final flush does not complain.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    return code


if __name__ == "__main__":
    raise SystemExit(main())
