"""Typed AST → Python closures, built once and cached. No ``eval``/``exec``; field names
are only ever dictionary keys; every operator is a fixed function chosen at compile time.

Each closure is ``fn(data, env)``. Sub-expressions without fields and without TODAY()/
NOW() are folded into constants. Arithmetic faults (division by zero, overflow, an
impossible date) give blank, never an exception.
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Mapping
from dataclasses import replace
from datetime import date
from decimal import Decimal
from functools import lru_cache
from typing import Any

from platform_core.expressions.functions.base import FUNCTIONS, Fn
from platform_core.expressions.nodes import (
    Binary,
    Call,
    Each,
    Expr,
    Field,
    In,
    Literal,
    Unary,
    is_blank_literal,
    walk,
)
from platform_core.expressions.values import (
    CTX,
    DEFAULT_ENV,
    FROM_STORAGE,
    TO_TEXT,
    ZERO,
    Env,
    divide,
    modulo,
    power,
)

EMPTY: Mapping[str, Any] = {}
FAULTS = (ArithmeticError, ValueError, OverflowError)


def compile_python(expr: Expr) -> Callable[..., Any]:
    """``evaluate(data, env=None)`` for a checked expression (see ``check``)."""
    if getattr(expr, "type", None) is None:
        raise TypeError("compile_python needs a checked expression: call check() first")
    fn = compiled(expr)

    def evaluate(data: Mapping[str, Any], env: Env | None = None) -> Any:
        return fn(data, env or DEFAULT_ENV)

    return evaluate


@lru_cache(maxsize=4096)
def compiled(expr: Expr) -> Fn:
    """The cached closure ``fn(data, env)`` of a checked expression (env required)."""
    return build(expr)[0]


def build(node: Expr) -> tuple[Fn, bool]:
    """``(closure, is_constant)``; constant sub-trees are evaluated once, here."""
    fn, const = _BUILDERS[type(node)](node)
    if const and not isinstance(node, Literal):
        value = fn(EMPTY, DEFAULT_ENV)
        return _const(value), True
    return fn, const


def _const(value: Any) -> Fn:
    def fn(_d: Mapping[str, Any], _e: Env) -> Any:
        return value

    return fn


def _literal(node: Literal) -> tuple[Fn, bool]:
    return _const(None if node.value == "" else node.value), True


def follow(value: Any, env: Env) -> Mapping[str, Any] | None:
    """The record a relation value points at: an expanded mapping, or an id for
    ``env.related``; anything else (blank, a bad id) is no record."""
    if isinstance(value, Mapping):
        return value
    if value.__class__ is int and env.related is not None:
        return env.related(value)
    return None


class Row(dict):  # type: ignore[type-arg]
    """A subtable row that also knows its record, for record fields read inside a
    per-row aggregate argument (``SUM(IF(items.qty > limit, items.qty, 0))``)."""

    __slots__ = ("record",)


def _field(node: Field) -> tuple[Fn, bool]:
    if node.outer:
        inner = _field(replace(node, outer=False))[0]
        return (lambda d, e: inner(d.record, e)), False
    read, key, steps = FROM_STORAGE[node.kind], node.key, node.steps
    if not steps and node.kind == "text":
        def text_field(d: Mapping[str, Any], _e: Env) -> Any:
            v = d.get(key)
            return v if v.__class__ is str and v else None

        return text_field, False
    if not steps and node.kind == "date":  # inlined: dates are read a lot
        def date_field(d: Mapping[str, Any], _e: Env) -> Any:
            v = d.get(key)
            if v.__class__ is str:
                try:
                    return date.fromisoformat(v)
                except ValueError:
                    return None
            return None

        return date_field, False
    if not steps:
        def field(d: Mapping[str, Any], _e: Env) -> Any:
            return read(d.get(key))

        return field, False

    def related(d: Mapping[str, Any], e: Env) -> Any:
        target: Mapping[str, Any] | None = d
        for step in steps:
            target = follow(target.get(step), e)
            if target is None:
                return None
        return read(target.get(key))

    return related, False


def _each(node: Each) -> tuple[Fn, bool]:
    body, sub, outer = build(node.body)[0], node.subtable, node.outer
    with_record = any(isinstance(n, Field | Each) and n.outer for n in walk(node.body))

    def each(d: Mapping[str, Any], e: Env) -> list[Any]:
        rows = (d.record if outer else d).get(sub)
        if rows.__class__ is not list:
            return []
        return [body(r if isinstance(r, Mapping) else EMPTY, e) for r in rows]

    def each_with_record(d: Mapping[str, Any], e: Env) -> list[Any]:
        record = d.record if outer else d
        rows = record.get(sub)
        if rows.__class__ is not list:
            return []
        out = []
        for r in rows:
            row = Row(r) if isinstance(r, Mapping) else Row()
            row.record = record
            out.append(body(row, e))
        return out

    return (each_with_record if with_record else each), False


def _unary(node: Unary) -> tuple[Fn, bool]:
    inner, const = build(node.operand)
    if node.op == "NOT":
        def not_(d: Mapping[str, Any], e: Env) -> bool:
            return inner(d, e) is not True

        return not_, const
    sign = CTX.minus if node.op == "-" else CTX.plus

    def signed(d: Mapping[str, Any], e: Env) -> Decimal:
        v = inner(d, e)
        return sign(ZERO if v is None else v)

    return signed, const


ARITH: dict[str, Callable[[Decimal, Decimal], Decimal | None]] = {
    "+": CTX.add, "-": CTX.subtract, "*": CTX.multiply, "/": divide, "%": modulo, "^": power,
}
COMPARE: dict[str, Callable[[Any, Any], bool]] = {
    "=": operator.eq, "<>": operator.ne, "<": operator.lt, "<=": operator.le,
    ">": operator.gt, ">=": operator.ge,
}


def _binary(node: Binary) -> tuple[Fn, bool]:
    (left, lc), (right, rc) = build(node.left), build(node.right)
    op, const = node.op, lc and rc
    if op in ("AND", "OR"):
        return logical(op == "AND", [left, right]), const
    if op == "&":
        lt, rt = TO_TEXT[node.left.type.name], TO_TEXT[node.right.type.name]
        return (lambda d, e: (lt(left(d, e), e) + rt(right(d, e), e)) or None), const
    if op in COMPARE:
        return _comparison(node, left, right, rc), const
    return _arithmetic(ARITH[op], left, right), const


def logical(want_all: bool, args: list[Fn]) -> Fn:
    """AND / OR: TRUE only counts when it is TRUE (blank is FALSE); stops early."""
    if len(args) == 2:
        a0, a1 = args
        if want_all:
            return lambda d, e: a0(d, e) is True and a1(d, e) is True
        return lambda d, e: a0(d, e) is True or a1(d, e) is True
    if want_all:
        return lambda d, e: all(a(d, e) is True for a in args)
    return lambda d, e: any(a(d, e) is True for a in args)


def _arithmetic(fn: Callable[[Decimal, Decimal], Decimal | None], left: Fn, right: Fn) -> Fn:
    def arith(d: Mapping[str, Any], e: Env) -> Decimal | None:
        a, b = left(d, e), right(d, e)
        try:
            return fn(ZERO if a is None else a, ZERO if b is None else b)
        except ArithmeticError:
            return None

    return arith


def _comparison(node: Binary, left: Fn, right: Fn, right_const: bool) -> Fn:
    if is_blank_literal(node.left) or is_blank_literal(node.right):
        other = right if is_blank_literal(node.left) else left
        want_blank = node.op == "="
        return lambda d, e: (other(d, e) is None) is want_blank
    cmp = COMPARE[node.op]
    if right_const:  # the common `field > 100`: no call for the constant
        b = right(EMPTY, DEFAULT_ENV)
        if b is None:
            return _const(False)
        return lambda d, e: (a := left(d, e)) is not None and cmp(a, b)

    def compare(d: Mapping[str, Any], e: Env) -> bool:
        a = left(d, e)
        if a is None:
            return False
        b = right(d, e)
        return b is not None and cmp(a, b)

    return compare


def _in(node: In) -> tuple[Fn, bool]:
    needle, const = build(node.needle)
    items = []
    for item in node.items:
        fn, c = build(item)
        items.append(fn)
        const = const and c
    negated = node.negated

    def member(d: Mapping[str, Any], e: Env) -> bool:
        v = needle(d, e)
        found = v is not None and any(v == i(d, e) for i in items)
        return found is not negated

    return member, const


def _call(node: Call) -> tuple[Fn, bool]:
    fn = FUNCTIONS.get(node.name)
    built = [build(a) for a in node.args]
    args = [b[0] for b in built]
    const = all(b[1] for b in built) and not fn.volatile and not fn.env
    if fn.make_py is not None:
        return fn.make_py(args, [a.type for a in node.args]), const
    return _strict(fn.py, args, fn.env), const


def _strict(py: Callable[..., Any], args: list[Fn], with_env: bool) -> Fn:
    """Evaluate every argument, then call ``py``; a fault in ``py`` gives blank."""
    if with_env:
        def call_env(d: Mapping[str, Any], e: Env) -> Any:
            try:
                return py(e, *[a(d, e) for a in args])
            except FAULTS:
                return None

        return call_env
    if len(args) == 1:
        (a0,) = args

        def call1(d: Mapping[str, Any], e: Env) -> Any:
            try:
                return py(a0(d, e))
            except FAULTS:
                return None

        return call1
    if len(args) == 2:
        a0, a1 = args

        def call2(d: Mapping[str, Any], e: Env) -> Any:
            try:
                return py(a0(d, e), a1(d, e))
            except FAULTS:
                return None

        return call2

    def call(d: Mapping[str, Any], e: Env) -> Any:
        try:
            return py(*[a(d, e) for a in args])
        except FAULTS:
            return None

    return call


_BUILDERS: dict[type, Callable[[Any], tuple[Fn, bool]]] = {
    Literal: _literal, Field: _field, Each: _each, Unary: _unary, Binary: _binary,
    In: _in, Call: _call,
}
