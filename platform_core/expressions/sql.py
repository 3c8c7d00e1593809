"""Typed AST → one SQLAlchemy expression over ``records`` (SQLite and PostgreSQL).

Fields are read through the store's accessors (``FieldSet.accessor`` for the form's
fields, the same ``ValueKind.accessor`` over a related record or a subtable row), so a
filter on a field compiles to the very expression its index is built on. Relations are
correlated scalar sub-queries by id; a subtable aggregate is a sub-query over the JSON
array (``json_each`` / ``jsonb_array_elements``). Constant sub-expressions — TODAY() and
NOW() included — are computed in Python and bound as parameters.

What cannot be computed identically in SQL is refused with an ``ExpressionError``.
"""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import (
    BigInteger,
    and_,
    case,
    cast,
    collate,
    false,
    func,
    literal_column,
    not_,
    or_,
    select,
    true,
)
from sqlalchemy.orm import aliased
from sqlalchemy.sql.elements import ColumnElement

from platform_core.expressions.errors import ExpressionError
from platform_core.expressions.evaluator import EMPTY, build
from platform_core.expressions.functions.base import FUNCTIONS
from platform_core.expressions.functions.logic import is_blank
from platform_core.expressions.functions.math import mod_sql
from platform_core.expressions.functions.text import concat_sql
from platform_core.expressions.nodes import (
    COMPARISONS,
    Binary,
    Call,
    Each,
    Expr,
    Field,
    In,
    Literal,
    Unary,
    is_blank_literal,
)
from platform_core.expressions.sqlbase import SqlCtx, SqlNode, TooComplex, not_sql
from platform_core.expressions.types import BOOLEAN, Type, numeric_result
from platform_core.expressions.values import DEFAULT_ENV, Env, read_date, read_datetime
from platform_core.models import Record
from platform_core.store.fields import FieldSet
from platform_core.store.kinds import KINDS, check_key

ORDER_OPS = {"<": "__lt__", "<=": "__le__", ">": "__gt__", ">=": "__ge__"}


def compile_sql(expr: Expr, fieldset: FieldSet, dialect: str, *,
                env: Env | None = None) -> ColumnElement[Any]:
    """The value of a checked expression for each row of ``records`` (NULL = blank)."""
    return _compile(expr, fieldset, dialect, env).expr


def compile_sql_filter(expr: Expr, fieldset: FieldSet, dialect: str, *,
                       env: Env | None = None) -> ColumnElement[bool]:
    """A WHERE condition: rows where the (boolean) expression is TRUE."""
    if expr.type is None or expr.type.name not in ("boolean", "blank"):
        got = expr.type or BOOLEAN
        raise ExpressionError(expr.pos, "need_boolean", got_zh=got.label("zh"),
                              got_en=got.label("en"))
    node = _compile(expr, fieldset, dialect, env)
    return node.expr if node.expr is not None else false()


def _compile(expr: Expr, fieldset: FieldSet, dialect: str, env: Env | None) -> SqlNode:
    if getattr(expr, "type", None) is None:
        raise TypeError("compile_sql needs a checked expression: call check() first")
    ctx = SqlCtx(dialect, env or DEFAULT_ENV)
    try:
        node = _Compiler(ctx, fieldset).compile(expr, None)
    except TooComplex:
        raise ExpressionError(expr.pos, "sql_too_complex") from None
    return SqlNode(ctx.value(node), node.type, ctx.may_be_blank(node))


def sql_value(raw: Any, type_: Type) -> Any:
    """A value fetched from SQL as the Python evaluator gives it (Decimal, date, …)."""
    if raw is None:
        return None
    name = type_.name
    if name in ("number", "money"):
        if isinstance(raw, float):
            return Decimal(repr(raw))
        return Decimal(raw) if not isinstance(raw, Decimal) else raw
    if name == "boolean":
        return bool(raw)
    if name == "date":
        return read_date(raw) if isinstance(raw, str) else raw
    if name == "datetime":
        return read_datetime(raw) if isinstance(raw, str) else raw
    if isinstance(raw, date | datetime | Decimal):
        return raw
    return raw or None


class _Compiler:
    """One compilation; ``scope`` is the JSON data a field is read from (None: the
    record itself, through the FieldSet)."""

    def __init__(self, ctx: SqlCtx, fieldset: FieldSet):
        self.ctx, self.fieldset = ctx, fieldset

    def compile(self, node: Expr, scope: Any) -> SqlNode:
        if node.type is not None and node.type.name == "blank":
            return self.ctx.lit(None, node.type)  # of type blank: always blank
        if isinstance(node, Literal):
            return self.ctx.lit(None if node.value == "" else node.value, node.type)
        if isinstance(node, Field):
            return self.field(node, scope)
        if isinstance(node, Each):
            return self.each(node, scope)
        kids = [self.compile(k, scope) for k in _kids(node)]
        if all(k.const for k in kids):
            fn = build(node)[0]
            return self.ctx.lit(fn(EMPTY, self.ctx.env), node.type)
        if isinstance(node, Unary):
            return self.unary(node, kids[0])
        if isinstance(node, Binary):
            return self.binary(node, kids[0], kids[1])
        if isinstance(node, In):
            return self.member(node, kids[0], kids[1:])
        return self.call(node, kids)

    # -- fields ------------------------------------------------------------------------
    def accessor(self, data: Any, key: str, kind: str) -> Any:
        if data is None and key in self.fieldset.kinds:
            if self.fieldset.kinds[key] != kind:
                raise ValueError(f"field {key!r} is {self.fieldset.kinds[key]} in the "
                                 f"FieldSet but {kind} in the expression schema")
            expr = self.fieldset.accessor(key, self.ctx.dialect).expr
        else:
            expr = KINDS.get(kind).accessor(Record.data if data is None else data, key,
                                            self.ctx.dialect)
        return expr

    def record_id(self, data: Any, key: str) -> Any:
        """A relation's stored target id, typed so the primary key index is used."""
        value = KINDS.get("number").accessor(Record.data if data is None else data, key,
                                             self.ctx.dialect)
        return cast(value, BigInteger()) if self.ctx.pg else value

    def field(self, node: Field, scope: Any) -> SqlNode:
        flags = {"empty_text": node.type.name == "text"}
        if node.outer:  # a record field inside a per-row sub-query: correlated
            scope = None
        if not node.steps:
            return self.ctx.node(self.accessor(scope, node.key, node.kind), node.type, **flags)
        data, conditions = scope, []
        for step in node.steps:
            target = aliased(Record)
            conditions += [target.id == self.record_id(data, step), target.deleted_at.is_(None)]
            data = target.data
        value = self.accessor(data, node.key, node.kind)
        query = select(value).where(*conditions)
        if scope is None:  # read from the outer records row, even from inside a sub-query
            query = query.correlate(Record)
        query = query.scalar_subquery()
        return self.ctx.node(query, node.type, **flags)

    def rows(self, scope: Any, key: str) -> Any:
        """The subtable's rows as a table-valued function with a ``value`` column."""
        check_key(key)
        data = Record.data if scope is None else scope
        if self.ctx.pg:
            array = data.op("->")(literal_column(f"'{key}'"))
            source = case((func.jsonb_typeof(array) == "array", array), else_=None)
            return func.jsonb_array_elements(source).table_valued("value")
        path = literal_column(f"'$.{key}'")
        source = case((func.json_type(data, path) == "array", func.json_extract(data, path)),
                      else_=None)
        return func.json_each(source).table_valued("value")

    def each(self, node: Each, scope: Any) -> SqlNode:
        if node.outer:
            scope = None

        def agg(kind: str) -> Any:
            rows = self.rows(scope, node.subtable)
            body = self.compile(node.body, rows.c.value)
            value = self.ctx.value(body)
            if kind == "sum":
                column = func.coalesce(func.sum(value), 0, type_=self.ctx.num_type)
            elif kind == "count":
                column = func.count(value)
            else:
                column = (func.min if kind == "min" else func.max)(value)
            query = select(column).select_from(rows)
            return (query.correlate(Record) if scope is None else query).scalar_subquery()

        agg("count")  # compile once now, so an unsupported body fails at check time
        return SqlNode(None, node.type, agg=agg, size=10)

    # -- operators ---------------------------------------------------------------------
    def unary(self, node: Unary, arg: SqlNode) -> SqlNode:
        ctx = self.ctx
        if node.op == "NOT":
            return ctx.node(not_(ctx.two(arg)), BOOLEAN, arg, nullable=False)
        expr = -ctx.num(arg) if node.op == "-" else ctx.num(arg)
        return ctx.node(expr, node.type, arg, nullable=False)

    def binary(self, node: Binary, left: SqlNode, right: SqlNode) -> SqlNode:
        ctx, op = self.ctx, node.op
        if op in ("AND", "OR"):
            join = and_ if op == "AND" else or_
            return ctx.node(join(ctx.two(left), ctx.two(right)), BOOLEAN, left, right,
                            nullable=False)
        if op == "&":
            return concat_sql(ctx, [left, right], node)
        if op in COMPARISONS:
            return self.compare(node, left, right)
        if op in ("+", "-", "*"):
            expr = ctx.num(left).op(op, return_type=ctx.num_type)(ctx.num(right))
            return ctx.node(expr, node.type, left, right, nullable=False)
        if op == "/":
            return ctx.node(ctx.divide(ctx.num(left), ctx.num(right)), node.type, left, right)
        if op == "%":
            return mod_sql(ctx, left, right, numeric_result(left.type))
        raise not_sql(node.op_pos, op)

    def compare(self, node: Binary, left: SqlNode, right: SqlNode) -> SqlNode:
        ctx = self.ctx
        if is_blank_literal(node.left) or is_blank_literal(node.right):
            other = right if is_blank_literal(node.left) else left
            test = is_blank(ctx, other)
            expr = test if node.op == "=" else not_(test)
            return ctx.node(expr, BOOLEAN, other, nullable=False)
        if (left.const and left.value is None) or (right.const and right.value is None):
            return ctx.lit(False, BOOLEAN)  # a comparison with a blank is FALSE
        a, b = left.expr, right.expr
        if node.op in ORDER_OPS:
            if ctx.pg and left.type.name in ("text", "date", "datetime"):
                a, b = collate(a, "C"), collate(b, "C")
            cmp = getattr(a, ORDER_OPS[node.op])(b)
        else:
            cmp = a == b if node.op == "=" else a != b
        conds = [*self.present_for(left, right, node.op), *self.present_for(right, left, node.op)]
        expr = and_(true(), *conds, cmp)
        return ctx.node(expr, BOOLEAN, left, right, dup=2, nullable=False)

    def present_for(self, n: SqlNode, other: SqlNode, op: str) -> list[Any]:
        """The not-blank guards of ``n``; equal to a non-blank constant, a text field
        cannot be "" anyway, so only NULL is guarded (and the index still matches)."""
        present = self.ctx.present(n)
        if op == "=" and other.const and other.value is not None and n.empty_text:
            return present[:1]
        return present

    def member(self, node: In, needle: SqlNode, items: list[SqlNode]) -> SqlNode:
        ctx = self.ctx
        items = [i for i, src in zip(items, node.items, strict=True)
                 if not is_blank_literal(src)]
        if not items:
            found: Any = false()
        elif all(not i.nullable for i in items):
            found = and_(true(), *ctx.present(needle), needle.expr.in_([i.expr for i in items]))
        else:
            found = or_(false(), *[and_(true(), *ctx.present(needle), *ctx.present(i),
                                        needle.expr == i.expr) for i in items])
        expr = not_(found) if node.negated else found
        return ctx.node(expr, BOOLEAN, needle, *items, dup=2, nullable=False)

    def call(self, node: Call, args: list[SqlNode]) -> SqlNode:
        fn = FUNCTIONS.get(node.name)
        if fn.sql is None:
            raise not_sql(node.pos, node.name)
        return fn.sql(self.ctx, args, node)


def _kids(node: Expr) -> list[Expr]:
    if isinstance(node, Unary):
        return [node.operand]
    if isinstance(node, Binary):
        return [node.left, node.right]
    if isinstance(node, In):
        return [node.needle, *node.items]
    assert isinstance(node, Call)
    return list(node.args)

