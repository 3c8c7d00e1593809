"""Every function of the library, with blanks and the edges that bite: month ends, leap
years, rounding halves, ID checksums, time zones."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from platform_core.expressions import (
    FUNCTIONS,
    Env,
    ExprSchema,
    check,
    compile_python,
    parse,
    register_builtins,
)
from platform_core.expressions.functions.domain import id_check_char


@pytest.fixture(autouse=True, scope="module")
def _functions() -> None:
    register_builtins()


SCHEMA = ExprSchema.of(
    {"n": "number", "m": "money", "t": "text", "d": "date", "d2": "date", "dt": "datetime",
     "b": "boolean", "id_no": "text"},
    subtables={"items": ExprSchema.of({"qty": "number", "price": "money", "name": "text",
                                        "day": "date"})})
# 2024-02-29 16:30 UTC is already 2024-03-01 00:30 in Shanghai
ENV = Env(clock=lambda: datetime(2024, 2, 29, 16, 30, 5, 123, tzinfo=UTC))


def ev(text: str, data: dict[str, Any] | None = None, env: Env = ENV) -> Any:
    return compile_python(check(parse(text), SCHEMA))(data or {}, env)


D = Decimal


def cases(*rows: tuple[Any, ...]) -> Any:
    return pytest.mark.parametrize("text, data, expected", rows)


# -- logic -----------------------------------------------------------------------------
@cases(
    ('IF(n > 1, "big", "small")', {"n": 2}, "big"),
    ('IF(n > 1, "big", "small")', {}, "small"),  # blank condition is FALSE
    ('IF(b, "y")', {"b": False}, None),
    ("IF(b, 1, m)", {"b": False, "m": "2.50"}, D("2.50")),
    ('IFS(n >= 90, "A", n >= 60, "B", TRUE, "C")', {"n": 75}, "B"),
    ('IFS(n >= 90, "A", n >= 60, "B")', {"n": 1}, None),
    ('IFS(n >= 90, "A", n >= 60, "B")', {}, None),
    ('SWITCH(t, "a", 1, "b", 2, 0)', {"t": "b"}, D(2)),
    ('SWITCH(t, "a", 1, "b", 2, 0)', {"t": "z"}, D(0)),
    ('SWITCH(t, "a", 1, "b", 2)', {"t": "z"}, None),
    ('SWITCH(t, "a", 1, 0)', {}, D(0)),  # blank matches nothing
    ("AND(b, n > 0)", {"b": True, "n": 1}, True),
    ("AND(b, n > 0)", {"b": True}, False),
    ("AND(b)", {}, False),
    ("OR(b, n > 0)", {"b": False, "n": 1}, True),
    ("OR(b, n > 0)", {}, False),
    ("NOT(b)", {}, True),
    ("NOT b", {"b": True}, False),
    ("ISBLANK(t)", {"t": ""}, True),
    ("ISBLANK(t)", {"t": " "}, False),
    ("ISBLANK(n)", {"n": 0}, False),
    ("ISBLANK(b)", {"b": False}, False),
    ("ISBLANK(d)", {"d": "not a date"}, True),
    ('COALESCE(t, "none")', {}, "none"),
    ('COALESCE(t, "none")', {"t": "x"}, "x"),
    ("COALESCE(n, m, 0)", {"m": "1.50"}, D("1.50")),
    ("BLANK()", {}, None),
)
def test_logic(text: str, data: dict[str, Any], expected: Any) -> None:
    assert ev(text, data) == expected


def test_if_is_lazy() -> None:
    # the untaken branch would be a blank division anyway; laziness shows in NOW():
    calls: list[int] = []

    def clock() -> datetime:
        calls.append(1)
        return datetime(2024, 1, 1, tzinfo=UTC)

    env = Env(clock=clock)
    assert ev("IF(TRUE, 1, YEAR(NOW()))", {}, env) == 1 and calls == []
    assert ev("OR(TRUE, YEAR(NOW()) = 1)", {}, env) is True and calls == []


# -- math ------------------------------------------------------------------------------
@cases(
    ("ROUND(2.5)", {}, D(3)),
    ("ROUND(-2.5)", {}, D(-3)),  # half away from zero
    ("ROUND(2.675, 2)", {}, D("2.68")),  # exact decimal, unlike float
    ("ROUND(1234.5678, -2)", {}, D(1200)),
    ("ROUND(m, 1)", {"m": "10.25"}, D("10.3")),
    ("ROUND(n)", {}, D(0)),
    ("ROUND(1, 100)", {}, None),
    ("ROUNDUP(3.141, 2)", {}, D("3.15")),
    ("ROUNDUP(-3.141, 2)", {}, D("-3.15")),
    ("ROUNDDOWN(3.149, 2)", {}, D("3.14")),
    ("ROUNDDOWN(-3.149, 2)", {}, D("-3.14")),
    ("ABS(0 - 4.5)", {}, D("4.5")),
    ("ABS(n)", {}, D(0)),
    ("MIN(3, n, 1)", {}, D(1)),
    ("MIN(n)", {}, None),
    ("MAX(items.price)", {"items": [{"price": "1.00"}, {"price": "9.99"}, {}]}, D("9.99")),
    ("MAX(items.price)", {"items": []}, None),
    ("MIN(d, d2)", {"d": "2024-03-01", "d2": "2023-12-31"}, date(2023, 12, 31)),
    ("MAX(items.day)", {"items": [{"day": "2024-01-02"}, {"day": "2025-01-01"}]},
     date(2025, 1, 1)),
    ("SUM(1, n, m)", {"m": "0.10"}, D("1.10")),
    ("SUM(n)", {}, D(0)),
    ("SUM(items.price)", {"items": [{"price": "0.10"}, {"price": "0.20"}, {"price": None}]},
     D("0.30")),
    ("SUM(items.qty * items.price)", {"items": [{"qty": 3, "price": "0.10"},
                                                {"qty": 0.5, "price": "0.01"}]}, D("0.305")),
    ("SUM(items.price)", {"items": "not a list"}, D(0)),
    ("SUM(items.price)", {"items": [1, None, {"price": "1.00"}]}, D("1.00")),
    ("AVG(1, 2, n)", {}, D("1.5")),
    ("AVG(items.price)", {"items": [{"price": "1.00"}, {"price": "2.00"}, {}]}, D("1.5")),
    ("AVG(n)", {}, None),
    ("AVG(1, 2, 2)", {}, D("1.6666666666666667")),
    ("COUNT(items)", {"items": [{}, {}, {"qty": 1}]}, D(3)),
    ("COUNT(items.name)", {"items": [{"name": "a"}, {"name": ""}, {}]}, D(1)),
    ("COUNT(n, t, d, 1)", {"t": "x"}, D(2)),
    ("COUNT(items)", {}, D(0)),
    ("MOD(7, 3)", {}, D(1)),
    ("MOD(-7, 3)", {}, D(2)),  # sign of the divisor, as in Excel
    ("MOD(7, -3)", {}, D(-2)),
    ("MOD(7.5, 2)", {}, D("1.5")),
    ("MOD(7, 0)", {}, None),
    ("MOD(n, 3)", {}, D(0)),
    ("-7 % 3", {}, D(2)),
    ("POWER(2, 10)", {}, D(1024)),
    ("POWER(1.1, 2)", {}, D("1.21")),
    ("POWER(4, 0.5)", {}, D(2)),
    ("POWER(0 - 4, 0.5)", {}, None),
    ("POWER(0, 0 - 1)", {}, None),
    ("2 ^ 0 - 1", {}, D(0)),
)
def test_math(text: str, data: dict[str, Any], expected: Any) -> None:
    assert ev(text, data) == expected


def test_money_stays_exact() -> None:
    items = [{"price": "0.10"} for _ in range(1000)]
    assert ev("SUM(items.price)", {"items": items}) == D("100.00")
    assert ev("m * 3", {"m": "0.10"}) == D("0.30")
    assert check(parse("SUM(items.price)"), SCHEMA).type.name == "money"
    assert check(parse("ROUND(m * n, 2)"), SCHEMA).type.name == "money"
    assert check(parse("m / m"), SCHEMA).type.name == "number"


# -- text ------------------------------------------------------------------------------
@cases(
    ('CONCAT(t, "-", n, "-", m, "-", d, "-", b)',
     {"t": "北京", "n": 1.50, "m": "3.5", "d": "2024-01-31", "b": True},
     "北京-1.5-3.50-2024-01-31-TRUE"),
    ("CONCAT(t, n)", {}, None),
    ('t & "!"', {}, "!"),
    ('"金额: " & m', {"m": "1200000"}, "金额: 1200000.00"),
    ('"" & dt', {"dt": "2024-02-29T16:30:00Z"}, "2024-03-01 00:30:00"),
    ("LEFT(t, 2)", {"t": "北京市"}, "北京"),
    ("LEFT(t)", {"t": "北京市"}, "北"),
    ("LEFT(t, 10)", {"t": "ab"}, "ab"),
    ("LEFT(t, 0)", {"t": "ab"}, None),
    ("LEFT(t, n)", {"t": "ab"}, None),
    ("LEFT(t, 2)", {}, None),
    ("RIGHT(t, 4)", {"t": "13812345678"}, "5678"),
    ("RIGHT(t)", {"t": "ab"}, "b"),
    ("RIGHT(t, 9)", {"t": "ab"}, "ab"),
    ("RIGHT(t, 0 - 1)", {"t": "ab"}, None),
    ("MID(t, 2, 2)", {"t": "abcd"}, "bc"),
    ("MID(t, 4, 9)", {"t": "abcd"}, "d"),
    ("MID(t, 5, 1)", {"t": "abcd"}, None),
    ("MID(t, 0, 1)", {"t": "abcd"}, None),
    ("MID(t, 7, 8)", {"t": "11010519491231002X"}, "19491231"),
    ("LEN(t)", {"t": "北京"}, D(2)),
    ("LEN(t)", {}, D(0)),
    ("UPPER(t)", {"t": "abc é"}, "ABC É"),
    ("LOWER(t)", {"t": "ABC"}, "abc"),
    ("UPPER(t)", {}, None),
    ("TRIM(t)", {"t": "  a  b  "}, "a  b"),
    ("TRIM(t)", {"t": "   "}, None),
    ('CONTAINS(t, "京")', {"t": "北京"}, True),
    ('CONTAINS(t, "A")', {"t": "abc"}, False),  # case-sensitive
    ('CONTAINS(t, "a")', {}, False),
    ('STARTS_WITH(t, "138")', {"t": "13812345678"}, True),
    ('STARTS_WITH(t, "139")', {"t": "13812345678"}, False),
    ('STARTS_WITH(t, "")', {"t": "x"}, False),
    ('REPLACE(t, "-", "")', {"t": "138-1234-5678"}, "13812345678"),
    ('REPLACE(t, "", "x")', {"t": "ab"}, "ab"),
    ('REPLACE(t, "ab", "")', {"t": "ab"}, None),
    ('REPLACE(t, "a", "b")', {}, None),
    ("TEXT(n)", {"n": 1234.5}, "1234.5"),
    ('TEXT(m, "#,##0.00")', {"m": "1234567.5"}, "1,234,567.50"),
    ('TEXT(m, "¥#,##0")', {"m": "1234567.5"}, "¥1,234,568"),
    ('TEXT(n, "0.0%")', {"n": 0.1234}, "12.3%"),
    ('TEXT(n, "0.00元")', {"n": 2}, "2.00元"),
    ('TEXT(d, "yyyy年m月d日")', {"d": "2024-02-09"}, "2024年2月9日"),
    ('TEXT(d, "yyyy/mm/dd")', {"d": "2024-02-09"}, "2024/02/09"),
    ('TEXT(dt, "yyyy-mm-dd hh:mm:ss")', {"dt": "2024-02-29T16:30:05Z"}, "2024-03-01 00:30:05"),
    ("TEXT(b)", {"b": False}, "FALSE"),
    ("TEXT(d)", {}, None),
)
def test_text(text: str, data: dict[str, Any], expected: Any) -> None:
    assert ev(text, data) == expected


# -- dates -----------------------------------------------------------------------------
@cases(
    ("TODAY()", {}, date(2024, 3, 1)),  # Asia/Shanghai, although UTC is still Feb 29
    ("NOW()", {}, datetime(2024, 2, 29, 16, 30, 5, tzinfo=UTC)),  # to the second
    ("DATE(2024, 2, 29)", {}, date(2024, 2, 29)),
    ("DATE(2023, 2, 29)", {}, date(2023, 3, 1)),  # rolls over like Excel
    ("DATE(2024, 13, 1)", {}, date(2025, 1, 1)),
    ("DATE(2024, 3, 0)", {}, date(2024, 2, 29)),
    ("DATE(2024, 0, 1)", {}, date(2023, 12, 1)),
    ("DATE(10000, 1, 1)", {}, None),
    ('DATE("2024-01-31")', {}, date(2024, 1, 31)),
    ('DATE("2024-02-30")', {}, None),
    ('DATE("")', {}, None),
    ('DATETIME("2024-01-31T09:30:00")', {}, datetime(2024, 1, 31, 1, 30, tzinfo=UTC)),
    ('DATETIME("2024-01-31T09:30:00Z")', {}, datetime(2024, 1, 31, 9, 30, tzinfo=UTC)),
    ("DATETIME(2024, 1, 1, 8)", {}, datetime(2024, 1, 1, 0, 0, tzinfo=UTC)),
    ("YEAR(d)", {"d": "2024-12-31"}, D(2024)),
    ("MONTH(d)", {"d": "2024-12-31"}, D(12)),
    ("DAY(d)", {"d": "2024-12-31"}, D(31)),
    ("YEAR(d)", {}, None),
    ("DAY(dt)", {"dt": "2024-02-29T16:30:00Z"}, D(1)),  # local day in Shanghai
    ("WEEKDAY(d)", {"d": "2024-06-02"}, D(1)),  # Sunday
    ("WEEKDAY(d)", {"d": "2024-06-08"}, D(7)),  # Saturday
    ("WEEKDAY(d, 2)", {"d": "2024-06-02"}, D(7)),
    ("WEEKDAY(d, 2)", {"d": "2024-06-03"}, D(1)),
    ("WEEKDAY(d, 3)", {"d": "2024-06-03"}, D(0)),
    ("WEEKDAY(d, 9)", {"d": "2024-06-03"}, None),
    ("DAYS_BETWEEN(d, d2)", {"d": "2024-02-28", "d2": "2024-03-01"}, D(2)),  # leap year
    ("DAYS_BETWEEN(d, d2)", {"d": "2023-02-28", "d2": "2023-03-01"}, D(1)),
    ("DAYS_BETWEEN(d, d2)", {"d": "2024-03-01", "d2": "2024-02-28"}, D(-2)),
    ("DAYS_BETWEEN(d, d2)", {"d": "2024-03-01"}, None),
    ("DAYS_BETWEEN(TODAY(), d) <= 30", {"d": "2024-03-31"}, True),
    ("ADD_DAYS(d, 1)", {"d": "2024-02-28"}, date(2024, 2, 29)),
    ("ADD_DAYS(d, 1)", {"d": "2023-02-28"}, date(2023, 3, 1)),
    ("ADD_DAYS(d, 0 - 1)", {"d": "2024-01-01"}, date(2023, 12, 31)),
    ("ADD_DAYS(d, 1.9)", {"d": "2024-01-01"}, date(2024, 1, 2)),  # whole days
    ("ADD_DAYS(d, n)", {"d": "2024-01-01"}, date(2024, 1, 1)),
    ("ADD_DAYS(d, 1)", {"d": "9999-12-31"}, None),
    ("ADD_MONTHS(d, 1)", {"d": "2024-01-31"}, date(2024, 2, 29)),
    ("ADD_MONTHS(d, 1)", {"d": "2023-01-31"}, date(2023, 2, 28)),
    ("ADD_MONTHS(d, 12)", {"d": "2024-02-29"}, date(2025, 2, 28)),
    ("ADD_MONTHS(d, 0 - 1)", {"d": "2024-03-31"}, date(2024, 2, 29)),
    ("ADD_MONTHS(d, 0 - 13)", {"d": "2024-01-15"}, date(2022, 12, 15)),
    ("ADD_MONTHS(d, 1)", {}, None),
    ("EOMONTH(d, 0)", {"d": "2024-02-10"}, date(2024, 2, 29)),
    ("EOMONTH(d, 0)", {"d": "2100-02-10"}, date(2100, 2, 28)),  # not a leap year
    ("EOMONTH(d, 0)", {"d": "2000-02-10"}, date(2000, 2, 29)),  # a leap year
    ("EOMONTH(d, 1)", {"d": "2024-12-31"}, date(2025, 1, 31)),
    ("EOMONTH(d, 0 - 1)", {"d": "2024-03-31"}, date(2024, 2, 29)),
    ("NETWORKDAYS(d, d2)", {"d": "2024-01-01", "d2": "2024-01-31"}, D(23)),
    ("NETWORKDAYS(d, d2)", {"d": "2024-06-01", "d2": "2024-06-02"}, D(0)),  # a weekend
    ("NETWORKDAYS(d, d2)", {"d": "2024-06-03", "d2": "2024-06-03"}, D(1)),
    ("NETWORKDAYS(d, d2)", {"d": "2024-01-31", "d2": "2024-01-01"}, D(-23)),
    ("NETWORKDAYS(d, d2, DATE(2024, 1, 1), DATE(2024, 1, 6))",
     {"d": "2024-01-01", "d2": "2024-01-31"}, D(22)),  # Jan 6 is a Saturday
    ("NETWORKDAYS(d, d2, items.day)", {"d": "2024-10-01", "d2": "2024-10-07", "items": [
        {"day": f"2024-10-0{i}"} for i in range(1, 8)]}, D(0)),
    ("NETWORKDAYS(d, d2)", {"d": "2024-01-01"}, None),
)
def test_dates(text: str, data: dict[str, Any], expected: Any) -> None:
    assert ev(text, data) == expected


def test_time_zone_is_configurable() -> None:
    utc = Env(tz=ZoneInfo("UTC"), clock=ENV.clock)
    assert ev("TODAY()", {}, utc) == date(2024, 2, 29)
    assert ev("DAY(dt)", {"dt": "2024-02-29T16:30:00Z"}, utc) == D(29)
    assert Env().tz == ZoneInfo("Asia/Shanghai")


def test_today_is_not_frozen_into_the_compiled_closure() -> None:
    fn = compile_python(check(parse("TODAY()"), SCHEMA))
    later = Env(clock=lambda: datetime(2030, 1, 1, tzinfo=UTC))
    assert fn({}, ENV) == date(2024, 3, 1)
    assert fn({}, later) == date(2030, 1, 1)


# -- domain helpers --------------------------------------------------------------------
VALID_ID = "11010519491231002X"  # the standard's example: born 1949-12-31, female


@pytest.mark.parametrize("number, birth, gender", [
    (VALID_ID, date(1949, 12, 31), "女"),
    (VALID_ID.lower(), date(1949, 12, 31), "女"),
    ("110101200002290011", None, None),  # computed below: a valid male, born on Feb 29
    ("11010519491231002Y", None, None),
    ("110105194912310021", None, None),  # wrong check digit
    ("1101051949123100", None, None),  # too short
    ("11010519490230002X", None, None),  # no 30 February
    ("", None, None),
    ("１１０１０５１９４９１２３１００２X", None, None),  # full-width digits
])
def test_id_functions(number: str, birth: date | None, gender: str | None) -> None:
    if number.startswith("1101012000"):
        number = number[:17] + id_check_char(number[:17])
        birth, gender = date(2000, 2, 29), "男"
    data = {"id_no": number}
    assert ev("ID_BIRTHDATE(id_no)", data) == birth
    assert ev("ID_GENDER(id_no)", data) == gender
    assert ev("ID_VALID(id_no)", data) is (birth is not None)


def test_id_check_char_mod_11_2() -> None:
    assert id_check_char("11010519491231002") == "X"
    assert id_check_char("44052418800101001") == "4"
    # a feb-29 in a non-leap year has a correct checksum but no birth date
    body = "11010119000229001"
    assert ev("ID_VALID(id_no)", {"id_no": body + id_check_char(body)}) is False


@cases(
    ("MASK(t)", {"t": "13812341234"}, "138****1234"),
    ("MASK(t, 4, 4)", {"t": VALID_ID}, "1101**********002X"),
    ('MASK(t, 1, 0, "#")', {"t": "张三丰"}, "张##"),
    ("MASK(t)", {"t": "1234567"}, "*******"),  # too short: all masked
    ("MASK(t)", {}, None),
)
def test_mask(text: str, data: dict[str, Any], expected: Any) -> None:
    assert ev(text, data) == expected


def test_every_function_has_a_declaration_and_a_working_example() -> None:
    from platform_core.expressions.functions.base import Function

    schema = ExprSchema.of(
        {k: "money" if k.endswith("amount") else "number" for k in (
            "loan_amount", "amount", "balance", "term_months", "score", "rate")}
        | dict.fromkeys(("name", "nickname", "city", "status", "phone", "address", "code",
                         "email", "id_number"), "text")
        | dict.fromkeys(("maturity_date", "sign_date", "apply_date"), "date")
        | {"approved": "boolean", "deadline": "datetime"},
        subtables={"items": ExprSchema.of({"qty": "number", "price": "money",
                                            "amount": "money"})})
    for name, fn in FUNCTIONS.items():
        assert isinstance(fn, Function) and fn.zh and fn.en and fn.category, name
        assert name in fn.example, name
        typed = check(parse(fn.example), schema)
        compile_python(typed)({}, ENV)
