"""The actor that answers ``tool.call``: runs tools and turns every failure into a result."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Iterable
from typing import Any, Literal

import anyio
import msgspec

from bus import Actor, Context, DeadlineGrid, TaskDeadline, handler

from ._threads import ToolBusy, ToolThreads, ToolTimedOut
from ._tool import Tool, ToolContext
from .errors import InvalidArguments, MalformedArguments
from .messages import TOOL_CALL, ToolCallRequest, ToolResult

log = logging.getLogger("hivebus.tools")

ErrorKind = Literal["unknown_tool", "invalid_json", "invalid_arguments", "exception", "timeout"]


class ToolStats(msgspec.Struct, frozen=True, kw_only=True):
    """One tool's calls so far; ``errors`` by kind; ``cancelled``: abandoned by the caller."""

    calls: int = 0
    succeeded: int = 0
    errors: dict[str, int] = msgspec.field(default_factory=dict)
    cancelled: int = 0


class ToolExecutorStats(msgspec.Struct, frozen=True, kw_only=True):
    """The executor's calls so far, in total and per tool (unknown names only in total)."""

    calls: int
    succeeded: int
    errors: dict[str, int]
    cancelled: int
    in_flight: int
    tools: dict[str, ToolStats]
    threads: int = 0  # sync calls running in threads, those past their time limit included


class _Tally:
    __slots__ = ("calls", "cancelled", "errors", "succeeded")

    def __init__(self) -> None:
        self.calls = self.succeeded = self.cancelled = 0
        self.errors: dict[str, int] = {}

    def freeze(self) -> ToolStats:
        return ToolStats(
            calls=self.calls,
            succeeded=self.succeeded,
            errors=dict(self.errors),
            cancelled=self.cancelled,
        )


class _TimedOut(Exception):
    pass


class ToolExecutor(Actor):
    """Answers ``tool.call`` (queue group ``tool-executor``) with a :class:`ToolResult`.

    Each call runs under its tool's timeout (else ``default_timeout``) and its tool's
    concurrency limit, besides the executor's own ``concurrency``. An unknown tool, bad
    arguments, an exception or a timeout comes back as ``is_error=True`` with a message
    the model can act on; the handler itself never fails. A call whose requester gives up
    is cancelled, tool included.
    """

    def __init__(
        self,
        tools: Iterable[Tool[..., Any]],
        *,
        name: str = "tool-executor",
        concurrency: int = 64,
        default_timeout: float = 30.0,
    ) -> None:
        super().__init__(name)
        if concurrency < 1 or default_timeout <= 0:
            raise ValueError("concurrency must be >= 1 and default_timeout > 0")
        self.concurrency = concurrency
        self.default_timeout = default_timeout
        self.tools: dict[str, Tool[..., Any]] = {}
        self._limiters: dict[str, anyio.CapacityLimiter] = {}
        self._total = _Tally()
        self._by_tool: dict[str, _Tally] = {}
        self._in_flight = 0
        self._threads = ToolThreads(concurrency)
        self._deadlines = DeadlineGrid()  # the async tools' time limits
        for each in tools:
            self.add(each)

    def add(self, new: Tool[..., Any]) -> None:
        """Run ``new`` too (also while running). The same tool again is a no-op; another
        tool of the same name is refused: a call must mean one function."""
        known = self.tools.get(new.name)
        if known is new:
            return
        if known is not None:
            raise ValueError(f"two tools are named {new.name!r}; tool names must be unique")
        self.tools[new.name] = new
        self._by_tool[new.name] = _Tally()
        if new.concurrency is not None:
            self._limiters[new.name] = anyio.CapacityLimiter(new.concurrency)

    def definitions(self) -> list[dict[str, Any]]:
        """The definitions of every tool this executor runs, to offer them to a model."""
        return [t.definition() for t in self.tools.values()]

    def stats(self) -> ToolExecutorStats:
        """Calls, successes, errors by kind and cancellations, in total and per tool."""
        total = self._total.freeze()
        return ToolExecutorStats(
            calls=total.calls,
            succeeded=total.succeeded,
            errors=total.errors,
            cancelled=total.cancelled,
            in_flight=self._in_flight,
            tools={name: tally.freeze() for name, tally in self._by_tool.items()},
            threads=self._threads.running,
        )

    @handler(TOOL_CALL, queue="tool-executor", buffer=65_536)
    async def call(self, request: ToolCallRequest, ctx: Context) -> ToolResult:
        """Run the requested tool; whatever goes wrong is the content of an error result."""
        tool = self.tools.get(request.name)
        tallies = [self._total]
        self._total.calls += 1
        if tool is None:
            return self._error(request, tallies, "unknown_tool", self._unknown(request.name))
        tallies.append(self._by_tool[tool.name])
        tallies[1].calls += 1
        tool_ctx = (  # (made only for a tool that reads it)
            ToolContext(
                call_id=request.call_id,
                conversation_id=request.conversation_id,
                agent=request.agent,
                context=ctx,
            )
            if tool.takes_context
            else None
        )
        self._in_flight += 1
        try:
            content = await self._run(tool, request.arguments, tool_ctx)
        except MalformedArguments as exc:
            return self._error(request, tallies, "invalid_json", str(exc))
        except InvalidArguments as exc:
            return self._error(request, tallies, "invalid_arguments", str(exc))
        except _TimedOut:
            timeout = tool.timeout or self.default_timeout
            message = f"tool {tool.name!r} did not finish within its time limit of {timeout:g}s"
            return self._error(request, tallies, "timeout", message)
        except ToolBusy:
            timeout = tool.timeout or self.default_timeout
            message = (
                f"tool {tool.name!r} is busy: its earlier calls, still running past their "
                f"time limit, held every slot for {timeout:g}s; try again later"
            )
            return self._error(request, tallies, "timeout", message)
        except Exception as exc:  # the model reads it; the log keeps the traceback
            log.debug("tool %r raised", tool.name, exc_info=exc)
            message = f"tool {tool.name!r} raised {type(exc).__name__}"
            message += f": {exc}" if str(exc) else ""
            return self._error(request, tallies, "exception", message)
        except BaseException:  # cancelled: the requester gave up, or the bus is closing
            for tally in tallies:
                tally.cancelled += 1
            raise
        finally:
            self._in_flight -= 1
        for tally in tallies:
            tally.succeeded += 1
        return ToolResult(call_id=request.call_id, name=request.name, content=content)

    async def on_start(self) -> None:
        self._threads.start()

    async def on_stop(self) -> None:
        self._threads.stop()

    async def _run(self, tool: Tool[..., Any], arguments: str, ctx: ToolContext | None) -> str:
        limiter = self._limiters.get(tool.name)
        timeout = tool.timeout or self.default_timeout
        if not tool.is_async:  # its slot is held until its thread is done (see ToolThreads)
            call = tool.bind(arguments, ctx)
            try:
                return tool.as_text(await self._threads.run(call, limiter, timeout))
            except ToolTimedOut:
                raise _TimedOut from None
        # The time limit starts once the tool may run: waiting for a slot is bounded by
        # the time limits of the calls holding the slots.
        async with limiter if limiter is not None else contextlib.nullcontext():
            # (on the executor's grid: a set insert, where asyncio.timeout's loop timer
            # cost a few microseconds a call; a tool's own TimeoutError passes as it is)
            deadline = TaskDeadline(self._deadlines, timeout)
            try:
                return await tool.invoke(arguments, ctx)
            except asyncio.CancelledError:
                if deadline.expired():
                    raise _TimedOut from None
                raise
            finally:
                deadline.stop()

    def _unknown(self, name: str) -> str:
        if not self.tools:
            return f"unknown tool {name!r}: no tools are available"
        return f"unknown tool {name!r}; the available tools are: " + ", ".join(sorted(self.tools))

    @staticmethod
    def _error(
        request: ToolCallRequest, tallies: list[_Tally], kind: ErrorKind, message: str
    ) -> ToolResult:
        for tally in tallies:
            tally.errors[kind] = tally.errors.get(kind, 0) + 1
        return ToolResult(
            call_id=request.call_id, name=request.name, content=message, is_error=True
        )
