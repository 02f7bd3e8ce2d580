"""Arithmetic expressions: tokenizer, recursive-descent parser and evaluator."""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass

TOKEN = re.compile(r"\s*(?:(\d+\.\d*|\.\d+|\d+)|([A-Za-z_]\w*)|(\*\*|[-+*/%(),]))")
FUNCTIONS: dict[str, Callable[..., float]] = {"sqrt": math.sqrt, "abs": abs, "min": min,
                                              "max": max}


class ParseError(ValueError):
    """The text is not an expression; says where."""


@dataclass(frozen=True)
class Num:
    value: float


@dataclass(frozen=True)
class Var:
    name: str


@dataclass(frozen=True)
class Unary:
    op: str
    operand: Node


@dataclass(frozen=True)
class Binary:
    op: str
    left: Node
    right: Node


@dataclass(frozen=True)
class Call:
    name: str
    args: tuple[Node, ...]


Node = Num | Var | Unary | Binary | Call


def tokenize(text: str) -> list[str]:
    tokens, pos = [], 0
    while pos < len(text):
        if text[pos:].strip() == "":
            break
        match = TOKEN.match(text, pos)
        if match is None:
            raise ParseError(f"unexpected {text[pos:].strip()[0]!r} at {pos}")
        tokens.append(next(g for g in match.groups() if g is not None))
        pos = match.end()
    return tokens


class _Parser:
    def __init__(self, tokens: list[str]) -> None:
        self.tokens = tokens
        self.pos = 0

    def peek(self) -> str | None:
        return self.tokens[self.pos] if self.pos < len(self.tokens) else None

    def take(self, expected: str | None = None) -> str:
        token = self.peek()
        if token is None or (expected is not None and token != expected):
            raise ParseError(f"expected {expected or 'a term'} at token {self.pos}, got {token!r}")
        self.pos += 1
        return token

    def expression(self) -> Node:
        node = self.term()
        while self.peek() in ("+", "-"):
            op = self.take()
            node = Binary(op, node, self.term())
        return node

    def term(self) -> Node:
        node = self.factor()
        while self.peek() in ("*", "/", "%"):
            op = self.take()
            node = Binary(op, node, self.factor())
        return node

    def factor(self) -> Node:
        if self.peek() in ("+", "-"):
            op = self.take()
            return Unary(op, self.factor())
        base = self.atom()
        if self.peek() == "**":  # right-associative, binds tighter than unary minus on its left
            self.take()
            return Binary("**", base, self.factor())
        return base

    def atom(self) -> Node:
        lexeme = self.take()
        if lexeme == "(":
            node = self.expression()
            self.take(")")
            return node
        if lexeme[0].isdigit() or lexeme[0] == ".":
            return Num(float(lexeme))
        if lexeme[0].isalpha() or lexeme[0] == "_":
            if self.peek() != "(":
                return Var(lexeme)
            self.take("(")
            args = [] if self.peek() == ")" else [self.expression()]
            while self.peek() == ",":
                self.take()
                args.append(self.expression())
            self.take(")")
            return Call(lexeme, tuple(args))
        raise ParseError(f"unexpected {lexeme!r} at lexeme {self.pos - 1}")


def parse(text: str) -> Node:
    parser = _Parser(tokenize(text))
    node = parser.expression()
    if parser.peek() is not None:
        raise ParseError(f"trailing {parser.peek()!r} at token {parser.pos}")
    return node


def evaluate(node: Node, env: Mapping[str, float] | None = None) -> float:
    env = env or {}
    match node:
        case Num(value):
            return value
        case Var(name):
            if name not in env:
                raise NameError(f"undefined variable {name!r}")
            return env[name]
        case Unary(op, operand):
            value = evaluate(operand, env)
            return -value if op == "-" else value
        case Binary(op, left, right):
            a, b = evaluate(left, env), evaluate(right, env)
            if op == "+":
                return a + b
            if op == "-":
                return a - b
            if op == "*":
                return a * b
            if op == "/":
                return a / b
            if op == "%":
                return a % b
            return float(a**b)
        case Call(name, args):
            if name not in FUNCTIONS:
                raise NameError(f"unknown function {name!r}")
            return float(FUNCTIONS[name](*(evaluate(a, env) for a in args)))
    raise TypeError(f"not a node: {node!r}")


def calc(text: str, **env: float) -> float:
    return evaluate(parse(text), env)
