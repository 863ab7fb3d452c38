"""``@tool``: a typed Python function, described to a model and callable with its JSON."""

from __future__ import annotations

import functools
import inspect
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Generic, ParamSpec, TypeVar, overload

import anyio.to_thread
import msgspec

from bus import Context, Topic

from ._schema import object_schema, read_signature
from .errors import InvalidArguments, MalformedArguments

P = ParamSpec("P")
R = TypeVar("R")
T = TypeVar("T")
Reply = TypeVar("Reply")

_NAME = re.compile(r"[A-Za-z0-9_-]{1,64}")  # what OpenAI accepts as a function name
_ENCODER = msgspec.json.Encoder()


@dataclass(frozen=True, slots=True, kw_only=True)
class ToolContext:
    """Who called a tool, and the bus ``Context`` of the ``tool.call`` message.

    A tool takes it by declaring a parameter annotated ``ToolContext``; that parameter is
    injected, not shown to the model. Requests sent through it are caused by the call (they
    sit under it in a trace) and are cancelled with it. ``context`` is None when the tool
    was invoked directly rather than over the bus. Sync tools run in a worker thread, where
    these coroutines need ``anyio.from_thread.run``.
    """

    call_id: str = ""
    conversation_id: str = ""
    agent: str = ""
    context: Context | None = None

    async def request(
        self, topic: Topic[T, Reply], message: T, *, timeout: float | None = None
    ) -> Reply:
        """Send a request on the bus as a consequence of this call and await its reply."""
        return await self._bus_context().request(topic, message, timeout=timeout)

    async def publish(self, topic: Topic[T, Any], message: T) -> None:
        """Publish on the bus as a consequence of this call."""
        await self._bus_context().publish(topic, message)

    def _bus_context(self) -> Context:
        if self.context is None:
            raise RuntimeError("this tool call did not come over the bus: no bus to send on")
        return self.context


class Tool(Generic[P, R]):
    """A function a model can call: its name, description and JSON schema, and ``invoke``.

    Made by :func:`tool`. Calling the object calls the function unchanged; ``invoke``
    takes the model's JSON arguments instead and returns the output as text.
    """

    def __init__(
        self,
        func: Callable[P, R],
        *,
        name: str | None = None,
        description: str | None = None,
        timeout: float | None = None,
        concurrency: int | None = None,
    ) -> None:
        self.func = func
        self.name = name if name is not None else func.__name__
        if not _NAME.fullmatch(self.name):
            raise ValueError(f"tool name {self.name!r} must match [A-Za-z0-9_-]{{1,64}}")
        if timeout is not None and timeout <= 0:
            raise ValueError(f"tool {self.name!r}: timeout must be > 0, got {timeout!r}")
        if concurrency is not None and concurrency < 1:
            raise ValueError(f"tool {self.name!r}: concurrency must be >= 1, got {concurrency!r}")
        self.description = (
            description if description is not None else inspect.cleandoc(func.__doc__ or "")
        )
        self.timeout = timeout  # None: the executor's default
        self.concurrency = concurrency  # None: bounded by the executor's only
        signature = read_signature(func, self.name, ToolContext)
        self.parameters = object_schema(signature.arguments, f"tool {self.name!r}")  # read-only
        self._fields = signature.fields
        self._context_param = signature.context_param
        self._decoder = msgspec.json.Decoder(signature.arguments, strict=True)
        self._is_async = inspect.iscoroutinefunction(func)

    def __call__(self, *args: P.args, **kwargs: P.kwargs) -> R:
        return self.func(*args, **kwargs)

    def __repr__(self) -> str:
        return f"<Tool {self.name!r}>"

    def definition(self) -> dict[str, Any]:
        """The OpenAI-style tool definition: ``{"type": "function", "function": {...}}``."""
        function: dict[str, Any] = {"name": self.name, "parameters": self.parameters}
        if self.description:
            function["description"] = self.description
        return {"type": "function", "function": function}

    def decode(self, arguments: str | bytes) -> dict[str, Any]:
        """The keyword arguments the model's JSON stands for, validated against the schema.

        An empty string counts as ``{}`` (models send it for tools without parameters).
        Raises :class:`MalformedArguments` or :class:`InvalidArguments`.
        """
        if not arguments.strip():
            arguments = b"{}"
        try:
            decoded = self._decoder.decode(arguments)
        except msgspec.ValidationError as exc:
            raise InvalidArguments(
                self.name, f"invalid arguments for tool {self.name!r}: {exc}"
            ) from None
        except msgspec.DecodeError as exc:
            raise MalformedArguments(
                self.name, f"arguments for tool {self.name!r} are not valid JSON: {exc}"
            ) from None
        return {field: getattr(decoded, field) for field in self._fields}

    async def invoke(self, arguments: str | bytes, ctx: ToolContext | None = None) -> str:
        """Decode ``arguments``, run the function (a sync one in a worker thread), and
        return its output: a str as is, anything else as JSON.

        What the function raises propagates. A sync function cannot be interrupted: when
        the call is cancelled it is abandoned to finish in its thread.
        """
        call = self.bind(arguments, ctx)
        if self._is_async:
            result = await call()  # (a coroutine function's call: an awaitable)
        else:
            result = await anyio.to_thread.run_sync(call, abandon_on_cancel=True)
        return self.as_text(result)

    @property
    def is_async(self) -> bool:
        """True for a coroutine function; a sync one is run in a worker thread."""
        return self._is_async

    @property
    def takes_context(self) -> bool:
        """True if the function declares a :class:`ToolContext` parameter."""
        return self._context_param is not None

    def bind(self, arguments: str | bytes, ctx: ToolContext | None = None) -> Callable[[], Any]:
        """The call the model's ``arguments`` stand for, ready to make (decoded and
        validated now: raises :class:`MalformedArguments` or :class:`InvalidArguments`)."""
        kwargs = self.decode(arguments)
        if self._context_param is not None:
            kwargs[self._context_param] = ctx if ctx is not None else ToolContext()
        func: Callable[..., Any] = self.func  # (no cast(): it builds a generic per call)
        return functools.partial(func, **kwargs)

    def as_text(self, result: Any) -> str:
        """The function's output as the model reads it: a str as is, anything else JSON."""
        return _as_text(self.name, result)


def _as_text(name: str, result: Any) -> str:
    if isinstance(result, str):
        return result
    try:
        return _ENCODER.encode(result).decode()
    except (TypeError, ValueError) as exc:
        raise TypeError(
            f"tool {name!r} returned a {type(result).__qualname__} with no JSON form: {exc}"
        ) from exc


@overload
def tool(func: Callable[P, R], /) -> Tool[P, R]: ...
@overload
def tool(
    *,
    name: str | None = None,
    description: str | None = None,
    timeout: float | None = None,
    concurrency: int | None = None,
) -> Callable[[Callable[P, R]], Tool[P, R]]: ...


def tool(
    func: Callable[P, R] | None = None,
    /,
    *,
    name: str | None = None,
    description: str | None = None,
    timeout: float | None = None,
    concurrency: int | None = None,
) -> Tool[P, R] | Callable[[Callable[P, R]], Tool[P, R]]:
    """Make a tool of a typed function, sync or async: ``@tool`` or ``@tool(name=...)``.

    The name defaults to the function's, the description to its docstring, and the JSON
    schema comes from its type hints (use ``Annotated[int, msgspec.Meta(...)]`` for
    bounds and per-parameter descriptions). ``timeout`` (seconds) and ``concurrency``
    bound each call and the calls running at once, in the :class:`ToolExecutor`.
    Functions whose parameters lack hints or use ``*args``/``**kwargs`` raise TypeError.
    """

    def make(func: Callable[P, R]) -> Tool[P, R]:
        return Tool(
            func, name=name, description=description, timeout=timeout, concurrency=concurrency
        )

    return make if func is None else make(func)
