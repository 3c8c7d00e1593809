"""Text: CONCAT LEFT RIGHT MID LEN UPPER LOWER TRIM CONTAINS STARTS_WITH REPLACE TEXT.

Positions and lengths count characters (a Chinese character is one). Empty text is
blank. A blank count counts as 0; LEFT/RIGHT without a count take one character.
TRIM removes leading and trailing spaces only (Excel also squeezes inner runs).
REPLACE replaces every occurrence (Excel's SUBSTITUTE; not Excel's positional REPLACE).
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal
from typing import Any

from sqlalchemy import and_, case, func, true

from platform_core.expressions.errors import ExpressionError
from platform_core.expressions.functions.base import ANY, Fn, Function, p
from platform_core.expressions.functions.textformat import format_value
from platform_core.expressions.nodes import Call
from platform_core.expressions.sqlbase import SqlCtx, SqlNode
from platform_core.expressions.types import BOOLEAN, NUMBER, TEXT, Type
from platform_core.expressions.values import TO_TEXT, ZERO

Data = Mapping[str, Any]
SQL_TEXT_TYPES = frozenset({"text", "date", "blank"})
MAX_COUNT = 10_000


def _count(v: Decimal | None) -> int:
    return int(ZERO if v is None else v)


def concat_py(args: list[Fn], types: list[Type]) -> Fn:
    parts = [(a, TO_TEXT[t.name]) for a, t in zip(args, types, strict=True)]

    def concat(d: Data, e: Any) -> str | None:
        return "".join(conv(a(d, e), e) for a, conv in parts) or None

    return concat


def concat_sql(ctx: SqlCtx, args: list[SqlNode], node: Any) -> SqlNode:
    """``a & b & …`` for text and dates (ISO text in both Python and SQL)."""
    expr = None
    for arg, sub in zip(args, node.args if isinstance(node, Call) else
                        (node.left, node.right), strict=True):
        if arg.type.name not in SQL_TEXT_TYPES:
            raise ExpressionError(sub.pos, "not_sql_text", got_zh=arg.type.label("zh"),
                                  got_en=arg.type.label("en"))
        part = ctx.text(arg)
        expr = part if expr is None else expr.concat(part)
    return ctx.node(expr, TEXT, *args, nullable=False, empty_text=True)


def left(s: str | None, *n: Decimal | None) -> str | None:
    k = _count(n[0]) if n else 1
    return s[:k] or None if s and k > 0 else None


def right(s: str | None, *n: Decimal | None) -> str | None:
    k = _count(n[0]) if n else 1
    return s[-k:] or None if s and k > 0 else None


def mid(s: str | None, start: Decimal | None, n: Decimal | None) -> str | None:
    first, k = _count(start), _count(n)
    if not s or first < 1 or k < 1:
        return None
    return s[first - 1: first - 1 + k] or None


def _const_count(ctx: SqlCtx, args: list[SqlNode], call: Call, index: int, low: int,
                 default: int) -> int:
    """A count argument that must be a constant inside a query (``MID(x, 2, 3)``)."""
    if index >= len(args):
        return default
    value = ctx.const_int(args[index])
    if value is None or not -MAX_COUNT <= value <= MAX_COUNT:
        raise ExpressionError(call.args[index].pos, "not_sql_const", name=call.name,
                              index=index + 1, range=f"{low}..{MAX_COUNT}")
    return value


def _substr_sql(kind: str) -> Any:
    def sql(ctx: SqlCtx, args: list[SqlNode], call: Call) -> SqlNode:
        s = args[0]
        if kind == "mid":
            start = _const_count(ctx, args, call, 1, 1, 1)
            count = _const_count(ctx, args, call, 2, 0, 1)
        else:
            start, count = 1, _const_count(ctx, args, call, 1, 0, 1)
        if count < 1 or start < 1:
            return ctx.lit(None, TEXT)
        if kind == "right":
            expr = func.right(s.expr, count) if ctx.pg else func.substr(s.expr, -count)
        else:
            expr = func.substr(s.expr, start, count)
        return ctx.node(expr, TEXT, s, empty_text=True)

    return sql


def contains(s: str | None, part: str | None) -> bool:
    return s is not None and part is not None and part in s


def starts_with(s: str | None, prefix: str | None) -> bool:
    return s is not None and prefix is not None and s.startswith(prefix)


def _contains_sql(ctx: SqlCtx, args: list[SqlNode], _call: Call) -> SqlNode:
    s, part = args
    found = (func.strpos if ctx.pg else func.instr)(s.expr, part.expr) > 0
    expr = and_(true(), *ctx.present(s), *ctx.present(part), found)
    return ctx.node(expr, BOOLEAN, s, part, dup=2, nullable=False)


def _starts_sql(ctx: SqlCtx, args: list[SqlNode], _call: Call) -> SqlNode:
    s, prefix = args
    head = func.substr(s.expr, 1, func.length(prefix.expr))
    expr = and_(true(), *ctx.present(s), *ctx.present(prefix), head == prefix.expr)
    return ctx.node(expr, BOOLEAN, s, prefix, dup=3, nullable=False)


def replace_text(s: str | None, old: str | None, new: str | None) -> str | None:
    if s is None or old is None:
        return s
    return s.replace(old, new or "") or None


def _replace_sql(ctx: SqlCtx, args: list[SqlNode], _call: Call) -> SqlNode:
    s, old, new = args
    if old.const and old.value is None:
        return s  # nothing to replace
    replaced = func.replace(s.expr, old.expr, ctx.text(new))
    if old.const:
        expr = replaced
    else:
        expr = case((and_(true(), *ctx.present(old)), replaced), else_=s.expr)
    return ctx.node(expr, TEXT, s, old, new, dup=2, empty_text=True)


def _text_py(args: list[Fn], types: list[Type]) -> Fn:
    value, type_name = args[0], types[0].name
    pattern = args[1] if len(args) > 1 else None

    def text(d: Data, e: Any) -> str | None:
        fmt = pattern(d, e) if pattern is not None else None
        try:
            return format_value(value(d, e), type_name, fmt, e)
        except ArithmeticError:  # e.g. more decimal places than a number can hold
            return None

    return text


def _len_sql(ctx: SqlCtx, args: list[SqlNode], _call: Call) -> SqlNode:
    expr = func.coalesce(func.length(args[0].expr), 0)
    return ctx.node(expr, NUMBER, args[0], nullable=False)


def _trim_sql(ctx: SqlCtx, args: list[SqlNode], _call: Call) -> SqlNode:
    return ctx.node(func.trim(args[0].expr), TEXT, args[0], empty_text=True)


S = p("text", "text")
COUNT = p("count", "number", optional=True)
DEFS = [
    Function("CONCAT", "text", (p("value", ANY),), TEXT, variadic=True, make_py=concat_py,
             sql=concat_sql, zh="连接文本, 同 &; 数字、日期会转为文本",
             en="join values as text, like &; numbers and dates are converted",
             example='CONCAT(name, "(", city, ")")'),
    Function("LEFT", "text", (S, COUNT), TEXT, py=left, sql=_substr_sql("left"),
             zh="左边的若干个字符 (默认 1)", en="the first characters (default 1)",
             example="LEFT(id_number, 6)"),
    Function("RIGHT", "text", (S, COUNT), TEXT, py=right, sql=_substr_sql("right"),
             zh="右边的若干个字符 (默认 1)", en="the last characters (default 1)",
             example="RIGHT(phone, 4)"),
    Function("MID", "text", (S, p("start", "number"), p("count", "number")), TEXT, py=mid,
             sql=_substr_sql("mid"), zh="从第 start 个字符起取 count 个字符",
             en="count characters from position start (1-based)",
             example="MID(id_number, 7, 8)"),
    Function("LEN", "text", (S,), NUMBER, py=lambda s: Decimal(len(s or "")), sql=_len_sql,
             zh="字符数 (空为 0)", en="the number of characters (0 for blank)",
             example="LEN(phone) = 11"),
    Function("UPPER", "text", (S,), TEXT, py=lambda s: s.upper() if s else None,
             zh="转为大写", en="upper case", example="UPPER(code)"),
    Function("LOWER", "text", (S,), TEXT, py=lambda s: s.lower() if s else None,
             zh="转为小写", en="lower case", example="LOWER(email)"),
    Function("TRIM", "text", (S,), TEXT, py=lambda s: s.strip(" ") or None if s else None,
             sql=_trim_sql, zh="去掉首尾空格", en="remove leading and trailing spaces",
             example="TRIM(name)"),
    Function("CONTAINS", "text", (S, p("part", "text")), BOOLEAN, py=contains,
             sql=_contains_sql, zh="是否包含 (区分大小写)",
             en="TRUE when the text contains the part (case-sensitive)",
             example='CONTAINS(address, "北京")'),
    Function("STARTS_WITH", "text", (S, p("prefix", "text")), BOOLEAN, py=starts_with,
             sql=_starts_sql, zh="是否以…开头 (区分大小写)",
             en="TRUE when the text starts with the prefix (case-sensitive)",
             example='STARTS_WITH(phone, "138")'),
    Function("REPLACE", "text", (S, p("old", "text"), p("new", "text")), TEXT,
             py=replace_text, sql=_replace_sql, zh="把所有 old 替换为 new",
             en="replace every occurrence of old with new",
             example='REPLACE(phone, "-", "")'),
    Function("TEXT", "text", (p("value", ANY), p("format", "text", optional=True)), TEXT,
             make_py=_text_py, zh="按格式转为文本: 0.00 #,##0 0% yyyy-mm-dd hh:mm:ss",
             en="format as text: 0.00 #,##0 0% yyyy-mm-dd hh:mm:ss",
             example='TEXT(loan_amount, "#,##0.00")'),
]
