"""``calculator``: arithmetic evaluated by walking the AST, with every cost bounded.

No ``eval``: only numbers, the arithmetic operators, a whitelist of math functions and
constants are understood; anything else is refused by name. Exponents, integer sizes,
nesting and the expression's length are bounded before anything is computed, so no
expression can take long or use much memory.
"""

from __future__ import annotations

import ast
import math
import operator
from collections.abc import Callable
from typing import Any

from .._tool import tool

MAX_LENGTH = 1_000  # characters in an expression
MAX_DEPTH = 100  # nested operations
MAX_EXPONENT = 1_000  # |b| in a ** b
MAX_INT_BITS = 4_000  # about 1,200 decimal digits
MAX_ROUND_DIGITS = 100

Number = int | float

_BINARY: dict[type[ast.operator], Callable[[Any, Any], Any]] = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: operator.truediv,
    ast.FloorDiv: operator.floordiv,
    ast.Mod: operator.mod,
    ast.Pow: operator.pow,
}
_UNARY: dict[type[ast.unaryop], Callable[[Any], Any]] = {
    ast.UAdd: operator.pos,
    ast.USub: operator.neg,
}
_CONSTANTS: dict[str, float] = {"pi": math.pi, "e": math.e, "tau": math.tau}


def _round(x: Number, digits: Number = 0) -> Number:
    if not isinstance(digits, int) or abs(digits) > MAX_ROUND_DIGITS:
        # round(10, -10**9) would compute 10**(10**9): bound it like an exponent
        raise ValueError(f"round: digits must be an integer within ±{MAX_ROUND_DIGITS}")
    return round(x, digits) if digits else round(x)


_FUNCTIONS: dict[str, Callable[..., Number]] = {
    "abs": abs,
    "round": _round,
    "min": min,
    "max": max,
    "sqrt": math.sqrt,
    "floor": math.floor,
    "ceil": math.ceil,
    "exp": math.exp,
    "log": math.log,
    "log10": math.log10,
    "sin": math.sin,
    "cos": math.cos,
    "tan": math.tan,
}


@tool
def calculator(expression: str) -> str:
    """Evaluate an arithmetic expression and return the exact result.

    Supports numbers, + - * / // % ** and parentheses, the constants pi, e and tau, and
    the functions abs, round, min, max, sqrt, floor, ceil, exp, log, log10, sin, cos, tan.
    Example: "sqrt(2) * (3 + 4) ** 2".
    """
    if len(expression) > MAX_LENGTH:
        raise ValueError(
            f"expression is {len(expression)} characters long; the limit is {MAX_LENGTH}"
        )
    try:
        tree = ast.parse(expression.strip(), mode="eval")
    except SyntaxError as exc:
        raise ValueError(
            f"not an arithmetic expression: {exc.msg} at column {exc.offset}"
        ) from None
    try:
        result = _evaluate(tree.body, 0)
    except ZeroDivisionError:
        raise ValueError("division by zero") from None
    except OverflowError:
        raise ValueError("the result is too large") from None
    return repr(result)


def _evaluate(node: ast.expr, depth: int) -> Number:
    if depth > MAX_DEPTH:
        raise ValueError(f"expression is nested more than {MAX_DEPTH} levels deep")
    if isinstance(node, ast.Constant):
        if type(node.value) not in (int, float):  # bool is an int: refuse it too
            raise ValueError(f"only numbers are allowed, not {node.value!r}")
        return _checked(node.value)
    if isinstance(node, ast.BinOp) and type(node.op) in _BINARY:
        left = _evaluate(node.left, depth + 1)
        right = _evaluate(node.right, depth + 1)
        _check_cost(node.op, left, right)
        return _checked(_BINARY[type(node.op)](left, right))
    if isinstance(node, ast.UnaryOp) and type(node.op) in _UNARY:
        return _checked(_UNARY[type(node.op)](_evaluate(node.operand, depth + 1)))
    if isinstance(node, ast.Name):
        if node.id not in _CONSTANTS:
            raise ValueError(
                f"unknown name {node.id!r}; the constants are: {', '.join(_CONSTANTS)}"
            )
        return _CONSTANTS[node.id]
    if isinstance(node, ast.Call):
        return _call(node, depth)
    raise ValueError(f"{_describe(node)} is not allowed; only arithmetic is")


def _call(node: ast.Call, depth: int) -> Number:
    if not isinstance(node.func, ast.Name) or node.func.id not in _FUNCTIONS:
        called = node.func.id if isinstance(node.func, ast.Name) else _describe(node.func)
        raise ValueError(f"unknown function {called!r}; the functions are: {', '.join(_FUNCTIONS)}")
    if node.keywords:
        raise ValueError(f"{node.func.id}() takes no keyword arguments")
    args = [_evaluate(arg, depth + 1) for arg in node.args]  # a starred arg is refused here
    try:
        return _checked(_FUNCTIONS[node.func.id](*args))
    except TypeError as exc:  # wrong number of arguments
        raise ValueError(f"{node.func.id}(): {exc}") from None
    except ValueError as exc:  # sqrt(-1), log(0): math domain errors
        raise ValueError(f"{node.func.id}({', '.join(map(repr, args))}): {exc}") from None


def _check_cost(op: ast.operator, left: Number, right: Number) -> None:
    """Refuse an operation whose result would be huge, before computing it."""
    if isinstance(op, ast.Pow) and abs(right) > MAX_EXPONENT:
        raise ValueError(f"exponent {right!r} is beyond the limit of ±{MAX_EXPONENT}")
    if not (isinstance(left, int) and isinstance(right, int)):
        return  # floats overflow into an error, not into a huge number
    if isinstance(op, ast.Pow) and right > 0 and left.bit_length() * right > MAX_INT_BITS:
        raise ValueError(f"{left!r} ** {right!r} would be too large")
    if isinstance(op, ast.Mult) and left.bit_length() + right.bit_length() > MAX_INT_BITS:
        raise ValueError("the product would be too large")


def _checked(value: object) -> Number:
    if isinstance(value, float) and not math.isfinite(value):
        raise OverflowError
    if isinstance(value, int) and value.bit_length() > MAX_INT_BITS:
        raise OverflowError
    if not isinstance(value, int | float):  # (-8) ** 0.5 is complex
        raise ValueError(f"the result {value!r} is not a real number")
    return value


def _describe(node: ast.AST) -> str:
    kinds = {
        ast.Attribute: "attribute access",
        ast.Subscript: "subscripting",
        ast.Compare: "comparison",
        ast.BoolOp: "and/or",
        ast.Lambda: "lambda",
        ast.Starred: "unpacking",
    }
    for kind, label in kinds.items():
        if isinstance(node, kind):
            return label
    return f"a {type(node).__name__} expression"
