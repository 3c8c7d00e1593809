"""Building blocks of SQL compilation: ``SqlNode`` (a compiled sub-expression and what is
known about it) and ``SqlCtx`` (dialect-aware helpers the operators and functions use).

Conventions that keep SQL identical to Python: blank is SQL NULL (a text node that may
hold "" is flagged ``empty_text`` and normalised to NULL by ``value``); comparisons and
logic are two-valued (never NULL), a boolean field is NULL when blank and ``two`` makes
it FALSE where NOT or AND need that. Numbers are NUMERIC on PostgreSQL and REAL on
SQLite. Every literal is a bound parameter.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import Boolean, Float, Integer, Numeric, String, cast, false, func, literal, null
from sqlalchemy.sql.elements import ColumnElement

from platform_core.expressions.errors import ExpressionError
from platform_core.expressions.types import Type
from platform_core.expressions.values import DIV_PLACES, Env

MAX_SQL_SIZE = 5000
PG_PAD = Decimal("0E-40")  # gives the dividend 40 decimals: PostgreSQL then divides exactly


@dataclass(frozen=True)
class SqlNode:
    """A compiled expression. ``agg`` (lists only) builds ``agg(kind)`` over the rows."""

    expr: Any
    type: Type
    nullable: bool = True
    empty_text: bool = False
    const: bool = False
    value: Any = None
    size: int = 1
    agg: Callable[[str], ColumnElement[Any]] | None = None


class SqlCtx:
    """Dialect-aware helpers; ``env`` gives TODAY()/NOW() (bound when compiling)."""

    def __init__(self, dialect: str, env: Env):
        if dialect not in ("sqlite", "postgresql"):
            raise ValueError(f"unsupported dialect {dialect!r}")
        self.dialect, self.env = dialect, env
        self.pg = dialect == "postgresql"
        self.num_type = Numeric() if self.pg else Float()

    # -- construction ---------------------------------------------------------------
    def node(self, expr: Any, type_: Type, *kids: SqlNode, dup: int = 1,
             **flags: Any) -> SqlNode:
        size = 1 + dup * sum(k.size for k in kids)
        if size > MAX_SQL_SIZE:
            raise TooComplex()
        return SqlNode(expr, type_, size=size, **flags)

    def lit(self, value: Any, type_: Type) -> SqlNode:
        """A constant as a bound parameter of the right SQL type."""
        return SqlNode(self.bind(value, type_), type_, nullable=value is None, const=True,
                       value=value)

    def sql_type(self, type_: Type | None) -> Any:
        if type_ is None or type_.name == "blank":
            return None
        if type_.name in ("number", "money"):
            return self.num_type
        return Boolean() if type_.name == "boolean" else String()

    def bind(self, value: Any, type_: Type | None = None) -> ColumnElement[Any]:
        if value is None:  # a typed NULL: PostgreSQL cannot guess the type of a bare one
            sql_type = self.sql_type(type_)
            return null() if sql_type is None else cast(null(), sql_type)
        if isinstance(value, bool):
            return literal(value, Boolean())
        if isinstance(value, Decimal):
            if self.pg:
                return literal(value, Numeric())
            if value == value.to_integral_value() and abs(value) < 2**62:
                return literal(int(value), Integer())
            return literal(float(value), Float())
        if isinstance(value, datetime):
            return literal(value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"), String())
        if isinstance(value, date):
            return literal(value.isoformat(), String())
        return literal(str(value), String())

    # -- views of a node ------------------------------------------------------------
    def value(self, n: SqlNode) -> Any:
        """The node as a value: blank text is NULL."""
        if n.empty_text:
            return func.nullif(n.expr, "", type_=String())
        return n.expr

    @staticmethod
    def may_be_blank(n: SqlNode) -> bool:
        """Whether ``value(n)`` can be NULL."""
        return n.nullable or n.empty_text

    def num(self, n: SqlNode) -> Any:
        """A number for arithmetic: blank counts as 0."""
        return func.coalesce(n.expr, 0, type_=self.num_type) if n.nullable else n.expr

    def text(self, n: SqlNode) -> Any:
        """Text for concatenation: blank is ''."""
        return func.coalesce(n.expr, "", type_=String()) if n.nullable else n.expr

    def two(self, n: SqlNode) -> Any:
        """A two-valued boolean (blank → FALSE)."""
        return func.coalesce(n.expr, false(), type_=Boolean()) if n.nullable else n.expr

    def present(self, n: SqlNode) -> list[Any]:
        """Conditions that hold when the node is not blank (none if it never is)."""
        conds = [n.expr.is_not(None)] if n.nullable else []
        if n.empty_text:
            conds.append(n.expr != "")
        return conds

    def divide(self, a: Any, b: Any) -> Any:
        """``a / b`` rounded to DIV_PLACES decimals (PostgreSQL); NULL when b is 0."""
        if self.pg:
            padded = a.op("+", return_type=Numeric())(literal(PG_PAD, Numeric()))
            quotient = padded.op("/", return_type=Numeric())(func.nullif(b, 0))
            return func.round(quotient, DIV_PLACES, type_=Numeric())
        return cast(a, Float()).op("/", return_type=Float())(func.nullif(b, 0))

    def const_int(self, n: SqlNode) -> int | None:
        """The integer value of a constant node (None if not a constant integer)."""
        if not n.const:
            return None
        if n.value is None:
            return 0
        if isinstance(n.value, Decimal) and n.value == n.value.to_integral_value():
            return int(n.value)
        return None


class TooComplex(Exception):
    """Raised by ``SqlCtx.node`` when the SQL would grow too large; the compiler turns it
    into an ``ExpressionError`` at the outermost call."""


def not_sql(pos: int, what: str) -> ExpressionError:
    return ExpressionError(pos, "not_sql", what=what)

