"""From a function's signature to a Struct of its arguments and the JSON schema a model reads.

msgspec does both halves: the Struct built from the signature decodes and validates the
model's JSON, and ``msgspec.json.schema_components`` describes the same Struct, so the
schema the model sees and the checks its arguments meet cannot drift apart.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any, NamedTuple

import msgspec

_REF_PREFIX = "#/$defs/"
_NO_NAME = (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD)


class Signature(NamedTuple):
    """What a tool's function takes: the Struct of its model-facing arguments, their names,
    and the name of the parameter that receives the ``ToolContext`` (if any)."""

    arguments: type[msgspec.Struct]
    fields: tuple[str, ...]
    context_param: str | None


def read_signature(func: Callable[..., Any], tool: str, context_type: type) -> Signature:
    """Build the arguments Struct of ``func``, or raise TypeError naming what cannot be."""
    try:
        hints = inspect.get_annotations(func, eval_str=True)
    except NameError as exc:
        raise TypeError(
            f"tool {tool!r}: cannot resolve its type hints ({exc}); define the types "
            "they name at module level"
        ) from exc
    fields: list[tuple[str, Any] | tuple[str, Any, Any]] = []
    context_param = None
    for param in inspect.signature(func).parameters.values():
        where = f"tool {tool!r}: parameter {param.name!r}"
        if param.kind in _NO_NAME:
            raise TypeError(
                f"{where}: *args and **kwargs cannot be described to a model; name every parameter"
            )
        if param.kind is inspect.Parameter.POSITIONAL_ONLY:
            raise TypeError(f"{where} is positional-only; arguments arrive by name")
        if param.name not in hints:
            raise TypeError(f"{where} has no type hint; the schema is built from type hints")
        hint = hints[param.name]
        if hint is context_type:
            if context_param is not None:
                raise TypeError(f"{where}: only one parameter may take the {hint.__name__}")
            context_param = param.name
        elif param.default is inspect.Parameter.empty:
            fields.append((param.name, hint))
        else:
            fields.append((param.name, hint, param.default))
    try:
        arguments = msgspec.defstruct(
            f"{tool}_arguments", fields, kw_only=True, frozen=True, forbid_unknown_fields=True
        )
    except TypeError as exc:  # e.g. a default msgspec cannot copy safely
        raise TypeError(f"tool {tool!r}: {exc}") from exc
    return Signature(arguments, tuple(f[0] for f in fields), context_param)


def object_schema(arguments: type[msgspec.Struct], owner: str) -> dict[str, Any]:
    """The JSON schema of ``arguments``: an object with definitions inlined (its root is
    ``{"type": "object", ...}``, never a ``$ref``, as OpenAI's structured outputs need).
    ``owner`` names what it is for in errors (``"tool 'add'"``).

    Definitions are inlined because many OpenAI-compatible servers handle ``$ref`` poorly;
    only recursive types (which cannot be inlined) stay in ``$defs``, referenced from the
    same object, so the schema is always self-contained.
    """
    try:
        (root,), defs = msgspec.json.schema_components(
            [arguments], ref_template=_REF_PREFIX + "{name}"
        )
    except (TypeError, ValueError) as exc:  # a type or default with no JSON form
        raise TypeError(f"{owner}: no JSON schema: {exc}") from exc
    kept: set[str] = set()
    schema: dict[str, Any] = _inline(root, defs, (), kept)
    schema.pop("title", None)
    if kept:
        inlined: dict[str, Any] = {}
        while pending := kept - inlined.keys():  # inlining one may keep another
            for name in pending:
                inlined[name] = _inline(defs[name], defs, (name,), kept)
        schema["$defs"] = {name: inlined[name] for name in sorted(inlined)}
    return schema


def _inline(node: Any, defs: dict[str, Any], expanding: tuple[str, ...], kept: set[str]) -> Any:
    if isinstance(node, list):
        return [_inline(item, defs, expanding, kept) for item in node]
    if not isinstance(node, dict):
        return node
    out = {
        key: value if key == "default" else _inline(value, defs, expanding, kept)
        for key, value in node.items()
        if key != "$ref"
    }
    ref = node.get("$ref")
    if not isinstance(ref, str) or not ref.startswith(_REF_PREFIX):
        return out
    name = ref.removeprefix(_REF_PREFIX)
    if name in expanding:  # a type that contains itself: inlining would never end
        kept.add(name)
        return {"$ref": ref, **out}
    return {**_inline(defs[name], defs, (*expanding, name), kept), **out}
