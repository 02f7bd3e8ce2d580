from __future__ import annotations

import math
import random

import pytest

from ..expr import Binary, Num, ParseError, Var, calc, evaluate, parse, tokenize


@pytest.mark.parametrize(("text", "expected"), [
    ("1 + 2 * 3", 7.0), ("(1 + 2) * 3", 9.0), ("2 ** 3 ** 2", 512.0), ("-2 ** 2", -4.0),
    ("10 / 4", 2.5), ("10 % 4", 2.0), ("sqrt(16) + abs(-3)", 7.0), ("max(1, 5, 3)", 5.0),
    ("min(4, 2) * .5", 1.0), ("+-+3", -3.0), ("1.50", 1.5),
])
def test_calc(text: str, expected: float) -> None:
    assert calc(text) == pytest.approx(expected)


def test_variables() -> None:
    assert calc("a * x ** 2 + b", a=2, x=3, b=1) == 19.0
    with pytest.raises(NameError, match="'y'"):
        calc("y + 1")


def test_tree_shape() -> None:
    assert parse("a - 1 - 2") == Binary("-", Binary("-", Var("a"), Num(1.0)), Num(2.0))


@pytest.mark.parametrize("text", ["1 +", "(1", "1 2", "2 $ 3", "f(1,", ")"])
def test_errors(text: str) -> None:
    with pytest.raises(ParseError):
        parse(text)


def test_tokens() -> None:
    assert tokenize(" 3.5*(x_1 ** 2) ") == ["3.5", "*", "(", "x_1", "**", "2", ")"]


def random_expression(rng: random.Random, depth: int) -> str:
    if depth == 0 or rng.random() < 0.2:
        return str(rng.randint(1, 9))
    op = rng.choice(["+", "-", "*"])
    return f"({random_expression(rng, depth - 1)} {op} {random_expression(rng, depth - 1)})"


def test_agrees_with_python() -> None:
    rng = random.Random(7)
    for _ in range(2500):
        text = random_expression(rng, 5)
        assert calc(text) == eval(text)  # noqa: S307 - digits and + - * only


def test_newton_sqrt() -> None:
    # a small computation driven by parsed expressions
    step = parse("x - (x * x - n) / (2 * x)")
    for n in range(1, 400):
        x = float(n)
        for _ in range(30):
            x = evaluate(step, {"x": x, "n": float(n)})
        assert math.isclose(x, math.sqrt(n), rel_tol=1e-9)
