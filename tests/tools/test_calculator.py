"""The calculator: exact arithmetic through the AST, and refusals for everything else."""

from __future__ import annotations

import math
import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bus import Bus
from tools import TOOL_CALL, ToolCallRequest, ToolExecutor, calculator

pytestmark = pytest.mark.anyio


@pytest.mark.parametrize(
    ("expression", "result"),
    [
        ("2 + 3 * 4", "14"),
        ("(2 + 3) * 4", "20"),
        ("2 ** 10", "1024"),
        ("2 ** -1", "0.5"),
        ("-2 ** 2", "-4"),
        ("7 // 2", "3"),
        ("-7 // 2", "-4"),
        ("7 % 3", "1"),
        ("1 / 4", "0.25"),
        ("+3 - -3", "6"),
        ("0.1 + 0.2", "0.30000000000000004"),
        ("1e3 * 2", "2000.0"),
        ("sqrt(16)", "4.0"),
        ("abs(-3)", "3"),
        ("max(1, 5, 3)", "5"),
        ("min(4, 2.5)", "2.5"),
        ("round(2.567, 2)", "2.57"),
        ("round(2.5)", "2"),
        ("floor(-1.5)", "-2"),
        ("ceil(1.2)", "2"),
        ("log(e)", "1.0"),
        ("log(8, 2)", "3.0"),
        ("log10(1000)", "3.0"),
        ("pi", repr(math.pi)),
        ("tau / 2", repr(math.pi)),
        ("cos(0) + sin(0) + tan(0)", "1.0"),
        ("exp(0)", "1.0"),
        ("  1 + 1  ", "2"),
        ("2 ** 1000", str(2**1000)),
        ("123456789 * 987654321", str(123456789 * 987654321)),
    ],
)
def test_arithmetic_is_exact(expression: str, result: str) -> None:
    assert calculator(expression) == result


@pytest.mark.parametrize(
    ("expression", "message"),
    [
        ("__import__('os')", r"unknown function '__import__'"),
        ("open('x')", r"unknown function 'open'; the functions are: abs, round"),
        ("x + 1", r"unknown name 'x'; the constants are: pi, e, tau"),
        ("__builtins__", r"unknown name '__builtins__'"),
        ("(1).real", r"attribute access is not allowed"),
        ("math.sqrt(2)", r"unknown function 'attribute access'"),
        ("pi.__class__", r"attribute access is not allowed"),
        ("[1, 2][0]", r"subscripting is not allowed"),
        ("1 < 2", r"comparison is not allowed"),
        ("1 and 2", r"and/or is not allowed"),
        ("(lambda: 1)()", r"unknown function 'lambda'"),
        ("max(*[1, 2])", r"unpacking is not allowed"),
        ("'a' * 3", r"only numbers are allowed, not 'a'"),
        ("True + 1", r"only numbers are allowed, not True"),
        ("1j * 1j", r"only numbers are allowed, not 1j"),
        ("[1, 2]", r"a List expression is not allowed"),
        ("1 << 3", r"a BinOp expression is not allowed"),
        ("~1", r"a UnaryOp expression is not allowed"),
        ("round(x=1)", r"round\(\) takes no keyword arguments"),
        ("sqrt()", r"sqrt\(\): "),
        ("1 +", r"not an arithmetic expression: invalid syntax"),
        ("", r"not an arithmetic expression"),
        ("x = 1", r"not an arithmetic expression"),
        ("1; 2", r"not an arithmetic expression"),
    ],
)
def test_anything_but_arithmetic_is_refused_by_name(expression: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        calculator(expression)


@pytest.mark.parametrize(
    ("expression", "message"),
    [
        ("1 / 0", r"^division by zero$"),
        ("1 // 0", r"^division by zero$"),
        ("5 % 0", r"^division by zero$"),
        ("0 ** -1", r"^division by zero$"),
        ("sqrt(-1)", r"^sqrt\(-1\): math domain error$"),
        ("log(0)", r"^log\(0\): math domain error$"),
        ("(-8) ** 0.5", r"is not a real number"),
    ],
)
def test_undefined_results_are_clear_errors(expression: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        calculator(expression)


@pytest.mark.parametrize(
    ("expression", "message"),
    [
        ("2 ** 1001", r"exponent 1001 is beyond the limit of ±1000"),
        ("2 ** -1001", r"exponent -1001 is beyond the limit"),
        ("9 ** 9 ** 9", r"exponent 387420489 is beyond the limit"),
        ("10 ** 999 ** 999", r"999 \*\* 999 would be too large"),
        ("(10 ** 999) ** 2", r"would be too large"),
        ("99999 ** 999", r"99999 \*\* 999 would be too large"),
        ("(10 ** 900) * (10 ** 900)", r"the product would be too large"),
        ("2 ** 1000 * 2 ** 1000 * 2 ** 1000 * 2 ** 1000 * 2", r"the product would be too large"),
        ("1e308 * 10", r"^the result is too large$"),
        ("10.0 ** 400", r"^the result is too large$"),
        ("exp(1000)", r"^the result is too large$"),
        ("1e999", r"^the result is too large$"),
        ("round(10, -1000000000)", r"round: digits must be an integer within ±100"),
        ("round(1.5, 0.5)", r"round: digits must be an integer"),
        ("-" * 150 + "1", r"nested more than 100 levels deep"),
        ("1" + " + 1" * 200, r"nested more than 100 levels deep"),
        ("1" * 1001, r"expression is 1001 characters long; the limit is 1000"),
    ],
)
def test_costly_expressions_are_refused_before_they_are_computed(
    expression: str, message: str
) -> None:
    started = time.perf_counter()
    with pytest.raises(ValueError, match=message):
        calculator(expression)
    assert time.perf_counter() - started < 0.5


def test_the_largest_allowed_results_are_still_cheap() -> None:
    started = time.perf_counter()
    for expression in ["9 ** 999", "2 ** 1000 * 2 ** 1000 * 2 ** 1000", "(9 ** 999) // 7 % 1000"]:
        calculator(expression)
    assert time.perf_counter() - started < 0.5


# Expressions made of small integers and the operators, fully parenthesised, with small
# literal exponents: Python's own arithmetic is the oracle.
_leaf = st.integers(min_value=0, max_value=99).map(str)


def _combine(children: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    binary = st.tuples(children, st.sampled_from(["+", "-", "*", "/", "//", "%"]), children).map(
        lambda t: f"({t[0]} {t[1]} {t[2]})"
    )
    power = st.tuples(children, st.integers(min_value=0, max_value=3)).map(
        lambda t: f"({t[0]} ** {t[1]})"
    )
    unary = st.tuples(st.sampled_from(["-", "+"]), children).map(lambda t: f"({t[0]}{t[1]})")
    return binary | power | unary


_expressions = st.recursive(_leaf, _combine, max_leaves=8)


@settings(max_examples=300, deadline=None)
@given(_expressions)
def test_the_calculator_agrees_with_python_arithmetic(expression: str) -> None:
    try:
        expected = repr(eval(expression, {"__builtins__": {}}))
    except ZeroDivisionError:
        with pytest.raises(ValueError, match=r"^division by zero$"):
            calculator(expression)
        return
    except OverflowError:
        with pytest.raises(ValueError, match=r"too large"):
            calculator(expression)
        return
    assert calculator(expression) == expected


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=60))
def test_any_text_either_computes_a_number_or_is_refused_with_a_value_error(text: str) -> None:
    try:
        result = calculator(text)
    except ValueError as error:
        assert str(error)
    else:
        float(result)  # a number, nothing else


async def test_through_the_executor_a_refusal_is_an_error_result(bus: Bus) -> None:
    await bus.add(ToolExecutor([calculator]))
    ok = await bus.request(
        TOOL_CALL,
        ToolCallRequest(call_id="1", name="calculator", arguments='{"expression": "6*7"}'),
    )
    assert (ok.content, ok.is_error) == ("42", False)
    refused = await bus.request(
        TOOL_CALL,
        ToolCallRequest(call_id="2", name="calculator", arguments='{"expression": "2**99999"}'),
    )
    assert refused.is_error
    assert refused.content == (
        "tool 'calculator' raised ValueError: exponent 99999 is beyond the limit of ±1000"
    )


def test_the_calculator_describes_itself_to_the_model() -> None:
    function = calculator.definition()["function"]
    assert function["name"] == "calculator"
    assert "sqrt" in function["description"]
    assert function["parameters"]["required"] == ["expression"]
