"""Math: ROUND ROUNDUP ROUNDDOWN ABS MIN MAX SUM AVG COUNT MOD POWER.

Blank counts as 0 in ROUND, ABS, MOD and POWER; SUM, AVG, MIN, MAX and COUNT skip blanks
(SUM of nothing is 0, AVG/MIN/MAX of nothing is blank). The aggregates also take a
subtable column (``SUM(items.amount)``) or a per-row expression of one subtable
(``SUM(items.qty * items.price)``). Money stays money and stays exact.
"""

from __future__ import annotations

from decimal import ROUND_DOWN, ROUND_HALF_UP, ROUND_UP, Decimal
from typing import Any

from sqlalchemy import and_, case, collate, func, literal, or_

from platform_core.expressions.errors import ExpressionError
from platform_core.expressions.functions.base import ANY, Function, TypeProblem, p
from platform_core.expressions.nodes import Call
from platform_core.expressions.sqlbase import SqlCtx, SqlNode
from platform_core.expressions.types import NUMBER, NUMERIC, Type, numeric_result, unify
from platform_core.expressions.values import CTX, ZERO, divide, modulo, power

MAX_PLACES = 30
SQL_PLACES = (0, 10)


def _n(v: Decimal | None) -> Decimal:
    return ZERO if v is None else v


QUANTA = {n: Decimal(1).scaleb(-n) for n in range(-MAX_PLACES, MAX_PLACES + 1)}


def _rounder(mode: str) -> Any:
    def round_(x: Decimal | None, places: Decimal | None = None) -> Decimal | None:
        quantum = QUANTA.get(0 if places is None else int(places))
        if quantum is None:
            return None
        return (ZERO if x is None else x).quantize(quantum, rounding=mode, context=CTX)

    return round_


def _round_sql(ctx: SqlCtx, args: list[SqlNode], call: Call) -> SqlNode:
    places = ctx.const_int(args[1]) if len(args) > 1 else 0
    low, high = SQL_PLACES
    if places is None or not low <= places <= high:
        raise ExpressionError(call.args[1].pos, "not_sql_const", name="ROUND", index=2,
                              range=f"{low}..{high}")
    expr = func.round(ctx.num(args[0]), places, type_=ctx.num_type)
    return ctx.node(expr, call.type, args[0], nullable=False)


def values(args: tuple[Any, ...]) -> list[Any]:
    """The non-blank values of an aggregate's arguments (lists flattened)."""
    out: list[Any] = []
    for a in args:
        if a.__class__ is list:
            out.extend(v for v in a if v is not None)
        elif a is not None:
            out.append(a)
    return out


def sum_(*args: Any) -> Decimal:
    total = ZERO
    for v in values(args):
        total = CTX.add(total, v)
    return total


def avg(*args: Any) -> Decimal | None:
    found = values(args)
    return divide(sum_(*found), Decimal(len(found))) if found else None


def _extreme(pick: Any) -> Any:
    def extreme(*args: Any) -> Any:
        found = values(args)
        return pick(found) if found else None

    return extreme


def _sum_sql(ctx: SqlCtx, args: list[SqlNode]) -> Any:
    parts = [a.agg("sum") if a.agg else ctx.num(a) for a in args]
    total = parts[0]
    for part in parts[1:]:
        total = total.op("+", return_type=ctx.num_type)(part)
    return total


def _count_sql(ctx: SqlCtx, args: list[SqlNode]) -> Any:
    parts = []
    for a in args:
        if a.agg:
            parts.append(a.agg("count"))
        elif ctx.present(a):
            parts.append(case((and_(*ctx.present(a)), 1), else_=0))
        else:
            parts.append(literal(1))
    total = parts[0]
    for part in parts[1:]:
        total = total + part
    return total


def _agg_sql(kind: str) -> Any:
    def sql(ctx: SqlCtx, args: list[SqlNode], call: Call) -> SqlNode:
        if kind == "sum":
            return ctx.node(_sum_sql(ctx, args), call.type, *args, nullable=False)
        if kind == "count":
            return ctx.node(_count_sql(ctx, args), call.type, *args, nullable=False)
        if kind == "avg":
            expr = ctx.divide(_sum_sql(ctx, args), _count_sql(ctx, args))
            return ctx.node(expr, call.type, *args, dup=2)
        return _extreme_sql(ctx, args, call, kind)

    return sql


def _extreme_sql(ctx: SqlCtx, args: list[SqlNode], call: Call, kind: str) -> SqlNode:
    parts = [a.agg(kind) if a.agg else ctx.value(a) for a in args]
    if call.type.name in ("date", "datetime") and ctx.pg:
        parts = [collate(x, "C") for x in parts]  # code-point order, as in Python
    if len(parts) == 1:
        expr = parts[0]
    elif ctx.pg:
        expr = (func.least if kind == "min" else func.greatest)(*parts)
    else:  # SQLite's multi-argument min/max is NULL if any argument is: skip blanks
        pick = func.min if kind == "min" else func.max
        expr = pick(*[func.coalesce(x, *parts[:i], *parts[i + 1:])
                      for i, x in enumerate(parts)])
    return ctx.node(expr, call.type, *args, dup=len(parts))


def mod_sql(ctx: SqlCtx, a: SqlNode, b: SqlNode, type_: Type) -> SqlNode:
    """Excel's MOD in SQL: the remainder takes the divisor's sign; NULL when b is 0."""
    divisor = ctx.num(b)
    r = func.mod(ctx.num(a), func.nullif(divisor, 0), type_=ctx.num_type)
    wrong_sign = or_(and_(r < 0, divisor > 0), and_(r > 0, divisor < 0))
    expr = case((wrong_sign, r.op("+", return_type=ctx.num_type)(divisor)), else_=r)
    return ctx.node(expr, type_, a, b, dup=4)


def _aggregate_type(kind: str) -> Any:
    def result(types: list[Type]) -> Type:
        if kind == "count":
            return NUMBER
        if kind in ("sum", "avg"):
            return numeric_result(*types)
        common = unify([t.item for t in types])
        if common is None:
            raise TypeProblem("mixed_types", len(types) - 1, a_zh=types[0].label("zh"),
                              b_zh=types[-1].label("zh"), a_en=types[0].label("en"),
                              b_en=types[-1].label("en"))
        return common

    return result


NUM = p("number", NUMERIC)
PLACES = p("places", "number", optional=True)
ORDERED_VALUES = frozenset({"number", "money", "date", "datetime"})
DEFS = [
    Function("ROUND", "math", (NUM, PLACES), lambda t: numeric_result(t[0]),
             py=_rounder(ROUND_HALF_UP), sql=_round_sql,
             zh="四舍五入到指定小数位 (默认 0; 可为负数)",
             en="round half away from zero to the given places (default 0; may be negative)",
             example="ROUND(loan_amount * rate / 12, 2)"),
    Function("ROUNDUP", "math", (NUM, PLACES), lambda t: numeric_result(t[0]),
             py=_rounder(ROUND_UP), zh="向远离零的方向舍入", en="round away from zero",
             example="ROUNDUP(3.141, 2)"),
    Function("ROUNDDOWN", "math", (NUM, PLACES), lambda t: numeric_result(t[0]),
             py=_rounder(ROUND_DOWN), zh="向零的方向舍入 (截断)", en="round toward zero",
             example="ROUNDDOWN(3.149, 2)"),
    Function("ABS", "math", (NUM,), lambda t: numeric_result(t[0]),
             py=lambda x: CTX.abs(_n(x)),
             sql=lambda ctx, a, c: ctx.node(func.abs(ctx.num(a[0]), type_=ctx.num_type),
                                            c.type, a[0], nullable=False),
             zh="绝对值", en="absolute value", example="ABS(balance)"),
    Function("MIN", "math", (p("value", ORDERED_VALUES, list_ok=True),), _aggregate_type("min"),
             variadic=True, py=_extreme(min), sql=_agg_sql("min"),
             zh="最小值 (忽略空值)", en="the smallest value (blanks ignored)",
             example="MIN(items.price)"),
    Function("MAX", "math", (p("value", ORDERED_VALUES, list_ok=True),), _aggregate_type("max"),
             variadic=True, py=_extreme(max), sql=_agg_sql("max"),
             zh="最大值 (忽略空值)", en="the largest value (blanks ignored)",
             example="MAX(loan_amount, 100000)"),
    Function("SUM", "math", (p("value", NUMERIC, list_ok=True),), _aggregate_type("sum"),
             variadic=True, py=sum_, sql=_agg_sql("sum"),
             zh="求和 (忽略空值); 可对子表列或逐行表达式求和",
             en="the sum (blanks ignored); also of a subtable column or per-row expression",
             example="SUM(items.qty * items.price)"),
    Function("AVG", "math", (p("value", NUMERIC, list_ok=True),), _aggregate_type("avg"),
             variadic=True, py=avg, sql=_agg_sql("avg"),
             zh="平均值 (忽略空值; 没有值时为空)", en="the average (blanks ignored; blank if none)",
             example="AVG(items.amount)"),
    Function("COUNT", "math", (p("value", ANY, list_ok=True),), _aggregate_type("count"),
             variadic=True, py=lambda *a: Decimal(len(values(a))), sql=_agg_sql("count"),
             zh="非空值的个数; COUNT(子表) 为行数", en="how many values are not blank; "
             "COUNT(subtable) counts its rows", example="COUNT(items)"),
    Function("MOD", "math", (NUM, p("divisor", NUMERIC)), lambda t: numeric_result(t[0]),
             py=lambda a, b: modulo(_n(a), _n(b)),
             sql=lambda ctx, a, c: mod_sql(ctx, a[0], a[1], c.type),
             zh="余数, 符号与除数相同 (除数为 0 时为空)",
             en="the remainder, with the divisor's sign (blank when dividing by 0)",
             example="MOD(term_months, 12)"),
    Function("POWER", "math", (NUM, p("exponent", NUMERIC)), NUMBER,
             py=lambda a, b: power(_n(a), _n(b)), zh="乘方, 同 ^", en="a power, like ^",
             example="POWER(1 + rate, 12)"),
]

