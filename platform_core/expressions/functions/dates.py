"""Dates: TODAY NOW DATE DATETIME YEAR MONTH DAY WEEKDAY DAYS_BETWEEN ADD_DAYS ADD_MONTHS
EOMONTH NETWORKDAYS.

TODAY()/NOW() use the evaluation's time zone (``Env.tz``, Asia/Shanghai by default);
date-times are stored in UTC and read in that zone by YEAR/MONTH/DAY/WEEKDAY/TEXT.
DATE(y, m, d) rolls over like Excel (month 13 is January next year, day 0 the last
day of the previous month). A date outside 0001-01-01..9999-12-31 is blank.
"""

from __future__ import annotations

import calendar
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import Date, Integer, String, and_, case, cast, extract, func, literal

from platform_core.expressions.errors import ExpressionError
from platform_core.expressions.functions.base import Function, TypeProblem, p
from platform_core.expressions.nodes import Call
from platform_core.expressions.sqlbase import SqlCtx, SqlNode
from platform_core.expressions.types import DATE, DATETIME, NUMBER, Type
from platform_core.expressions.values import ZERO, Env, read_datetime

MAX_SHIFT = 4_000_000  # days: any larger shift leaves the calendar (blank) in Python too


def _int(v: Decimal | None) -> int:
    return int(ZERO if v is None else v)


def _local(v: date | datetime, env: Env) -> date:
    return v.astimezone(env.tz).date() if isinstance(v, datetime) else v


def make_date(y: int, m: int, d: int) -> date:
    """Excel's DATE: months and days roll over."""
    years, month0 = divmod(y * 12 + m - 1, 12)
    return date(years, month0 + 1, 1) + timedelta(days=d - 1)


def date_(*args: Any) -> date | None:
    if len(args) == 1:
        return date.fromisoformat(args[0]) if args[0] else None
    return make_date(*(_int(a) for a in args))


def datetime_(env: Env, *args: Any) -> datetime | None:
    if len(args) == 1:
        if not args[0]:
            return None
        parsed = datetime.fromisoformat(args[0])
        if parsed.tzinfo is None:
            parsed = parsed.replace(tzinfo=env.tz)
        return read_datetime(parsed.astimezone(UTC).isoformat())
    y, m, d, *hms = (_int(a) for a in args)
    day = make_date(y, m, d)
    h, mi, s = (hms + [0, 0, 0])[:3]
    local = datetime(day.year, day.month, day.day, tzinfo=env.tz)
    return (local + timedelta(hours=h, minutes=mi, seconds=s)).astimezone(UTC)


def _parts_type(name: str, sizes: tuple[int, ...]) -> Any:
    def result(types: list[Type]) -> Type:
        if len(types) == 1:
            if types[0].name not in ("text", "blank"):
                raise _problem(0, "文本", "text", types[0])
        elif len(types) in sizes:
            for i, t in enumerate(types):
                if t.name not in ("number", "blank"):
                    raise _problem(i, "数字", "a number", t)
        else:
            many = "-".join(dict.fromkeys((str(sizes[0]), str(sizes[-1]))))
            raise TypeProblem("arg_count", None, expected_zh=f"1 或 {many}",
                              expected_en=f"1 or {many} arguments", got=len(types))
        return DATE if name == "DATE" else DATETIME

    return result


def _problem(index: int, zh: str, en: str, got: Type) -> TypeProblem:
    return TypeProblem("arg_type", index, index=index + 1, expected_zh=zh, expected_en=en,
                       got_zh=got.label("zh"), got_en=got.label("en"))


def weekday(env: Env, v: date | datetime | None, *kind: Decimal | None) -> Decimal | None:
    if v is None:
        return None
    mode = _int(kind[0]) if kind else 1
    iso = _local(v, env).isoweekday()  # Monday 1 … Sunday 7
    table = {1: iso % 7 + 1, 2: iso, 3: iso - 1}
    return Decimal(table[mode]) if mode in table else None


def days_between(start: date | None, end: date | None) -> Decimal | None:
    return None if start is None or end is None else Decimal((end - start).days)


def add_days(d: date | None, n: Decimal | None) -> date | None:
    return None if d is None else d + timedelta(days=_int(n))


def add_months(d: date | None, n: Decimal | None) -> date | None:
    if d is None:
        return None
    first = make_date(d.year, d.month + _int(n), 1)
    last = calendar.monthrange(first.year, first.month)[1]
    return first.replace(day=min(d.day, last))


def eomonth(d: date | None, n: Decimal | None) -> date | None:
    if d is None:
        return None
    first = make_date(d.year, d.month + _int(n), 1)
    return first.replace(day=calendar.monthrange(first.year, first.month)[1])


def networkdays(start: date | None, end: date | None, *holidays: Any) -> Decimal | None:
    """Monday–Friday days from start to end inclusive, minus holidays (negative when
    end is before start), like Excel's NETWORKDAYS."""
    if start is None or end is None:
        return None
    sign = 1
    if end < start:
        start, end, sign = end, start, -1
    days = (end - start).days + 1
    weeks, rest = divmod(days, 7)
    count = weeks * 5 + sum(1 for i in range(rest)
                            if (start + timedelta(days=i)).weekday() < 5)
    off: set[date] = set()
    for h in holidays:
        off.update(h if h.__class__ is list else [h])
    count -= sum(1 for h in off if h is not None and start <= h <= end and h.weekday() < 5)
    return Decimal(sign * count)


def _part_sql(start: int, length: int) -> Any:
    def sql(ctx: SqlCtx, args: list[SqlNode], call: Call) -> SqlNode:
        arg = args[0]
        if arg.type.name == "datetime":
            raise ExpressionError(call.args[0].pos, "not_sql_datetime", name=call.name)
        expr = cast(func.substr(arg.expr, start, length), Integer())
        return ctx.node(expr, NUMBER, arg)

    return sql


def _as_date(ctx: SqlCtx, expr: Any) -> Any:
    return cast(expr, Date()) if ctx.pg else func.julianday(expr)


def _days_between_sql(ctx: SqlCtx, args: list[SqlNode], _call: Call) -> SqlNode:
    start, end = (_as_date(ctx, a.expr) for a in args)
    diff = end - start if ctx.pg else cast(end - start, Integer())
    return ctx.node(diff, NUMBER, *args)


def _add_days_sql(ctx: SqlCtx, args: list[SqlNode], _call: Call) -> SqlNode:
    """Nested CASEs: PostgreSQL evaluates them in order, so a huge shift never reaches
    the integer cast, and a date off the calendar is blank as in Python."""
    d, n = args
    small = func.abs(ctx.num(n)) < MAX_SHIFT
    if ctx.pg:
        moved = cast(d.expr, Date()) + cast(func.trunc(ctx.num(n)), Integer())
        in_range = and_(moved >= literal(date.min, Date()), moved <= literal(date.max, Date()))
        text = func.to_char(moved, "YYYY-MM-DD", type_=String())
    else:
        shift = cast(ctx.num(n), Integer())
        text = func.date(d.expr, func.printf("%+d days", shift), type_=String())
        in_range = text >= "0001-01-01"  # SQLite gives NULL past 9999, "-0001-…" before 0
    expr = case((small, case((in_range, text), else_=None)), else_=None)
    return ctx.node(expr, DATE, d, n, dup=4)


def _weekday_sql(ctx: SqlCtx, args: list[SqlNode], call: Call) -> SqlNode:
    arg = args[0]
    mode = ctx.const_int(args[1]) if len(args) > 1 else 1
    if arg.type.name == "datetime":
        raise ExpressionError(call.args[0].pos, "not_sql_datetime", name="WEEKDAY")
    if mode not in (1, 2, 3):
        raise ExpressionError(call.args[1].pos, "not_sql_const", name="WEEKDAY", index=2,
                              range="1..3")
    if ctx.pg:
        dow = cast(extract("dow", cast(arg.expr, Date())), Integer())
    else:
        dow = cast(func.strftime("%w", arg.expr), Integer())  # Sunday 0 … Saturday 6
    expr = {1: dow + 1, 2: (dow + 6) % 7 + 1, 3: (dow + 6) % 7}[mode]
    return ctx.node(case((arg.expr.is_not(None), expr), else_=None), NUMBER, arg, dup=2)


D = p("date", "date")
DT = p("date", frozenset({"date", "datetime"}))
N = p("days", "number")
DEFS = [
    Function("TODAY", "date", (), DATE, py=lambda env: env.today(), env=True, volatile=True,
             zh="今天 (按配置的时区, 默认 Asia/Shanghai)",
             en="today, in the configured time zone (Asia/Shanghai by default)",
             example="DAYS_BETWEEN(TODAY(), maturity_date) <= 30"),
    Function("NOW", "date", (), DATETIME, py=lambda env: env.now(), env=True, volatile=True,
             zh="当前时刻 (精确到秒)", en="the current moment (to the second)",
             example="NOW() > deadline"),
    Function("DATE", "date", (p("year_or_text", frozenset({"number", "text"})),
                              p("month", "number", optional=True),
                              p("day", "number", optional=True)),
             _parts_type("DATE", (3,)), py=date_,
             zh="日期: DATE(年, 月, 日) 或 DATE(\"2024-01-31\")",
             en='a date: DATE(year, month, day) or DATE("2024-01-31")',
             example="DATE(2024, 12, 31)"),
    Function("DATETIME", "date", (p("year_or_text", frozenset({"number", "text"})),) +
             tuple(p(n, "number", optional=True) for n in ("month", "day", "hour", "minute",
                                                            "second")),
             _parts_type("DATETIME", (3, 4, 5, 6)), py=datetime_, env=True,
             zh="日期时间 (按配置的时区): DATETIME(年, 月, 日, [时, 分, 秒]) 或 ISO 文本",
             en="a date-time in the configured zone: DATETIME(y, m, d, [h, mi, s]) or ISO text",
             example='DATETIME("2024-01-31T09:30:00")'),
    Function("YEAR", "date", (DT,), NUMBER, py=lambda e, v: v and Decimal(_local(v, e).year),
             env=True, sql=_part_sql(1, 4), zh="年份", en="the year", example="YEAR(sign_date)"),
    Function("MONTH", "date", (DT,), NUMBER,
             py=lambda e, v: v and Decimal(_local(v, e).month), env=True, sql=_part_sql(6, 2),
             zh="月份 (1-12)", en="the month (1-12)", example="MONTH(sign_date)"),
    Function("DAY", "date", (DT,), NUMBER, py=lambda e, v: v and Decimal(_local(v, e).day),
             env=True, sql=_part_sql(9, 2), zh="日 (1-31)", en="the day of the month",
             example="DAY(sign_date)"),
    Function("WEEKDAY", "date", (DT, p("type", "number", optional=True)), NUMBER, py=weekday,
             env=True, sql=_weekday_sql,
             zh="星期几: 类型 1 周日=1…周六=7 (默认), 2 周一=1…周日=7, 3 周一=0…周日=6",
             en="day of week: type 1 Sun=1…Sat=7 (default), 2 Mon=1…Sun=7, 3 Mon=0…Sun=6",
             example="WEEKDAY(TODAY(), 2) <= 5"),
    Function("DAYS_BETWEEN", "date", (p("start", "date"), p("end", "date")), NUMBER,
             py=days_between, sql=_days_between_sql, zh="从开始到结束的天数 (结束 - 开始)",
             en="days from start to end (end - start)",
             example="DAYS_BETWEEN(TODAY(), maturity_date)"),
    Function("ADD_DAYS", "date", (D, N), DATE, py=add_days, sql=_add_days_sql,
             zh="加减天数", en="add (or subtract) days", example="ADD_DAYS(sign_date, 30)"),
    Function("ADD_MONTHS", "date", (D, p("months", "number")), DATE, py=add_months,
             zh="加减月数, 日超出月末时取月末 (1月31日 + 1 个月 = 2月末)",
             en="add months, clamped to the month's end (Jan 31 + 1 month = end of Feb)",
             example="ADD_MONTHS(sign_date, term_months)"),
    Function("EOMONTH", "date", (D, p("months", "number")), DATE, py=eomonth,
             zh="若干个月后的月末", en="the last day of the month, months away",
             example="EOMONTH(TODAY(), 0)"),
    Function("NETWORKDAYS", "date", (p("start", "date"), p("end", "date"),
                                     p("holidays", "date", optional=True, list_ok=True)),
             NUMBER, py=networkdays, variadic=True,
             zh="工作日天数 (周一至周五, 含首尾, 可排除节假日)",
             en="working days Monday–Friday, both ends included, minus holidays",
             example="NETWORKDAYS(apply_date, TODAY(), DATE(2024, 10, 1))"),
]
