"""The expression AST: small frozen nodes, each with the 0-based ``pos`` where it starts.

``parse`` builds untyped nodes (``type`` is None). ``check`` returns a copy of the tree in
which every node carries its static ``type`` and field references are resolved; the
Python and SQL compilers only accept such typed trees.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from typing import Union

from platform_core.expressions.types import Type

_meta = {"compare": False, "repr": False}


@dataclass(frozen=True)
class Literal:
    """A number (Decimal), text, TRUE/FALSE, or blank (None)."""

    pos: int
    value: Decimal | str | bool | None
    type: Type | None = None
    depth: int = field(default=1, **_meta)
    size: int = field(default=1, **_meta)


@dataclass(frozen=True)
class Field:
    """``loan_amount``, ``customer.city`` or (inside an aggregate) ``items.amount``.

    Typed: ``steps`` are the relation keys to follow first, ``key`` the field read at the
    end and ``kind`` its value kind ("number" for a relation read as its record id);
    ``outer`` marks a field of the record read inside a per-row aggregate argument.
    """

    pos: int
    path: tuple[str, ...]
    seg_pos: tuple[int, ...] = field(default=(), **_meta)
    type: Type | None = None
    steps: tuple[str, ...] = ()
    key: str = ""
    kind: str = ""
    outer: bool = False
    depth: int = field(default=1, **_meta)
    size: int = field(default=1, **_meta)

    @property
    def name(self) -> str:
        return ".".join(self.path)


@dataclass(frozen=True)
class Unary:
    """``-x``, ``+x`` or ``NOT x``."""

    pos: int
    op: str
    operand: Expr
    type: Type | None = None
    depth: int = field(default=1, **_meta)
    size: int = field(default=1, **_meta)


@dataclass(frozen=True)
class Binary:
    """Arithmetic, ``&``, ``AND``/``OR`` and comparisons; ``op_pos`` is the operator's."""

    pos: int
    op: str
    left: Expr
    right: Expr
    op_pos: int = 0
    type: Type | None = None
    depth: int = field(default=1, **_meta)
    size: int = field(default=1, **_meta)


@dataclass(frozen=True)
class In:
    """``x IN (a, b, …)`` / ``x NOT IN (…)``."""

    pos: int
    needle: Expr
    items: tuple[Expr, ...]
    negated: bool = False
    type: Type | None = None
    depth: int = field(default=1, **_meta)
    size: int = field(default=1, **_meta)


@dataclass(frozen=True)
class Call:
    """A function call; ``name`` is upper-case."""

    pos: int
    name: str
    args: tuple[Expr, ...]
    type: Type | None = None
    depth: int = field(default=1, **_meta)
    size: int = field(default=1, **_meta)


@dataclass(frozen=True)
class Each:
    """Typed only: ``body`` evaluated once per row of subtable ``subtable``, giving a list —
    the argument of an aggregate (``SUM(items.qty * items.price)``). ``outer``: nested in
    another per-row argument, it reads the subtable of the record, not of the row."""

    pos: int
    subtable: str
    body: Expr
    outer: bool = False
    type: Type | None = None
    depth: int = field(default=1, **_meta)
    size: int = field(default=1, **_meta)


Expr = Union[Literal, Field, Unary, Binary, In, Call, Each]  # noqa: UP007 - runtime alias

COMPARISONS = frozenset({"=", "<>", "<", "<=", ">", ">="})
ARITHMETIC = frozenset({"+", "-", "*", "/", "%", "^"})
LOGICAL = frozenset({"AND", "OR"})


def children(node: Expr) -> tuple[Expr, ...]:
    if isinstance(node, Unary):
        return (node.operand,)
    if isinstance(node, Binary):
        return (node.left, node.right)
    if isinstance(node, In):
        return (node.needle, *node.items)
    if isinstance(node, Call):
        return node.args
    if isinstance(node, Each):
        return (node.body,)
    return ()


def walk(node: Expr) -> list[Expr]:
    """``node`` and all its descendants (iteratively: trees may be deep)."""
    out: list[Expr] = []
    stack = [node]
    while stack:
        current = stack.pop()
        out.append(current)
        stack.extend(children(current))
    return out


def is_blank_literal(node: Expr) -> bool:
    """``BLANK()`` or ``""``: comparing with one of these is a test for blank."""
    if isinstance(node, Call):
        return node.name == "BLANK" and not node.args
    return isinstance(node, Literal) and node.value in (None, "")
