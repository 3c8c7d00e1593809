"""Operators and blanks, relations and subtables, typing, caching and the ``Formula``
facade — the documented semantics (docs/expressions.md), tested."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

import pytest

from platform_core.expressions import (
    Env,
    ExpressionError,
    ExprSchema,
    Formula,
    check,
    compile_python,
    parse,
    register_builtins,
)
from platform_core.expressions.evaluator import compiled
from platform_core.store import FieldSet


@pytest.fixture(autouse=True, scope="module")
def _functions() -> None:
    register_builtins()


CUSTOMER = ExprSchema.of({"city": "text", "level": "number"},
                         relations={"manager": ExprSchema.of({"name": "text"})})
SCHEMA = ExprSchema.of(
    {"a": "number", "b": "number", "m": "money", "t": "text", "u": "text", "d": "date",
     "e": "date", "dt": "datetime", "f": "boolean", "g": "boolean"},
    relations={"customer": CUSTOMER},
    subtables={"items": ExprSchema.of({"qty": "number", "price": "money",
                                        "buyer": "number"},
                                       relations={"product": ExprSchema.of(
                                           {"name": "text"})})})
D = Decimal


def ev(text: str, data: dict[str, Any] | None = None, env: Env | None = None) -> Any:
    return compile_python(check(parse(text), SCHEMA))(data or {}, env)


@pytest.mark.parametrize("text, data, expected", [
    # blank counts as 0 in arithmetic, as "" in text
    ("a + 1", {}, D(1)),
    ("a + b", {}, D(0)),
    ("a * 5", {}, D(0)),
    ("-a", {}, D(0)),
    ("m - 1", {"m": "1.50"}, D("0.50")),
    ('t & "x"', {}, "x"),
    ('t & u', {}, None),  # "" & "" is empty text, i.e. blank
    # comparisons with a blank are FALSE — both ways
    ("a = 0", {}, False),
    ("a <> 0", {}, False),
    ("a < 1", {}, False),
    ("a >= a", {}, False),
    ('t = ""', {}, True),  # except against "" or BLANK(): a test for blank
    ('t = ""', {"t": ""}, True),
    ('t <> ""', {"t": "x"}, True),
    ("a = BLANK()", {}, True),
    ("a <> BLANK()", {"a": 0}, True),
    ("BLANK() = d", {"d": "2024-01-01"}, False),
    ("t = u", {}, False),
    # IN / NOT IN: NOT IN is NOT (… IN …), so a blank is NOT IN anything
    ("a IN (1, 2)", {"a": 2}, True),
    ("a IN (1, 2)", {}, False),
    ("a NOT IN (1, 2)", {}, True),
    ("a NOT IN (1, 2)", {"a": 1}, False),
    ("a IN (b, 3)", {"a": 1}, False),
    ("a IN (m, 3)", {"a": 1.5, "m": "1.50"}, True),
    ('t IN ("北京", "上海")', {"t": "上海"}, True),
    # division by zero is blank; division rounds to 16 places
    ("a / 0", {"a": 1}, None),
    ("a / b", {"a": 1}, None),
    ("1 / 3", {}, D("0.3333333333333333")),
    ("2 / 3", {}, D("0.6666666666666667")),
    ("(0 - 2) / 3", {}, D("-0.6666666666666667")),
    ("0.1 + 0.2 = 0.3", {}, True),
    ("a * b", {"a": 0.1, "b": 3}, D("0.3")),
    # logic: blank is FALSE; NOT blank is TRUE
    ("f AND TRUE", {}, False),
    ("f OR g", {"g": True}, True),
    ("NOT f", {}, True),
    ("f = g", {}, False),
    ("f = FALSE", {"f": False}, True),
    ("(a > 1) = (b > 1)", {"a": 2, "b": 3}, True),
    # text compares by code point, case-sensitive
    ('"a" < "b"', {}, True),
    ('"B" < "a"', {}, True),
    ('"北京" > "上海"', {}, True),
    ('t = "A"', {"t": "a"}, False),
    # dates and date-times
    ("d < e", {"d": "2024-01-31", "e": "2024-02-01"}, True),
    ("d = DATE(2024, 1, 31)", {"d": "2024-01-31"}, True),
    ('dt > DATETIME("2024-01-01T00:00:00Z")', {"dt": "2024-01-01T00:00:01Z"}, True),
    # money and number mix
    ("m = 1", {"m": "1.00"}, True),
    ("m > a", {"m": "1.01", "a": 1}, True),
])
def test_operators_and_blanks(text: str, data: dict[str, Any], expected: Any) -> None:
    assert ev(text, data) == expected


def test_relations_follow_ids_through_env() -> None:
    records = {7: {"city": "上海", "level": 2, "manager": 9}, 9: {"name": "王经理"}}
    env = Env(related=records.get)
    assert ev("customer.city", {"customer": 7}, env) == "上海"
    assert ev("customer.manager.name", {"customer": 7}, env) == "王经理"
    assert ev("customer.level * 2", {"customer": 7}, env) == D(4)
    assert ev("customer.city", {"customer": 8}, env) is None  # gone: blank
    assert ev("customer.city", {}, env) is None
    assert ev("customer.city", {"customer": 7}) is None  # no resolver: blank
    assert ev("customer.city", {"customer": "7"}, env) is None
    assert ev("customer", {"customer": 7}) == D(7)  # the relation alone is the id
    # an already expanded related record works without a resolver
    assert ev("customer.city", {"customer": {"city": "北京"}}) == "北京"


def test_subtable_rows() -> None:
    data = {"items": [{"qty": 2, "price": "10.00", "product": 1}, {"qty": 1, "price": "0.50"},
                      {"price": "1.00"}]}
    env = Env(related={1: {"name": "笔"}}.get)
    assert ev("SUM(items.qty * items.price)", data) == D("20.50")
    assert ev("COUNT(items.qty)", data) == D(2)
    assert ev("MAX(items.qty * 2, a)", data | {"a": 5}) == D(5)
    assert ev('COUNT(items.product.name)', data, env) == D(1)
    assert ev("SUM(items.price, m)", data | {"m": "0.25"}) == D("11.75")
    assert ev("SUM(IF(items.qty > 1, items.price, 0))", data) == D("10.00")
    # inside a per-row argument, other names are the record's fields …
    assert ev("SUM(IF(items.qty > a, items.price, 0))", data | {"a": 1}) == D("10.00")
    assert ev("SUM(items.qty * customer.level)", data | {"customer": 7},
              Env(related={7: {"level": 2}}.get)) == D(6)
    # … and a subtable column belongs to the nearest aggregate around it
    assert ev("SUM(MAX(items.qty, 1))", data) == D(2)
    assert ev("MAX(items.qty / SUM(items.qty))", data) == D("0.6666666666666667")


def test_types() -> None:
    def t(text: str) -> str:
        return str(check(parse(text), SCHEMA).type)

    assert t("a + m") == "money"
    assert t("m / a") == "money"
    assert t("m / m") == "number"
    assert t("a ^ 2") == "number"
    assert t('t & a') == "text"
    assert t("IF(f, 1, BLANK())") == "number"
    assert t("IF(f, a, m)") == "money"
    assert t("BLANK()") == "blank"
    assert t("SUM(items.price)") == "money"
    assert t("COUNT(items)") == "number"
    assert t("a > 1") == "boolean"
    assert t("customer.city") == "text"
    assert t("MIN(d, e)") == "date"


def test_checked_tree_and_cache() -> None:
    typed = check(parse("a + 1"), SCHEMA)
    assert typed.type is not None and typed.left.kind == "number"
    assert compiled(typed) is compiled(check(parse("a + 1"), SCHEMA))
    with pytest.raises(TypeError, match="check"):
        compile_python(parse("a + 1"))
    assert parse("a + 1") is parse("a + 1")  # parsing is cached too


def test_constants_are_folded() -> None:
    typed = check(parse('IF(LEN("abc") = 3, UPPER("x"), "y") & t'), SCHEMA)
    assert ev('IF(LEN("abc") = 3, UPPER("x"), "y") & t', {"t": "!"}) == "X!"
    assert compile_python(typed)({}) == "X"


def test_formula_facade() -> None:
    f = Formula.build('IF(a >= 1000000, "大额", "普通")', SCHEMA)
    assert f.type.name == "text"
    assert f.evaluate({"a": 2_000_000}) == "大额"
    assert f.evaluate({}) == "普通"
    with pytest.raises(ExpressionError):
        Formula.build("a +", SCHEMA)
    frozen = Env(clock=lambda: datetime(2024, 1, 1, tzinfo=UTC))
    assert Formula.build("TODAY()", SCHEMA).evaluate({}, frozen) == date(2024, 1, 1)


def test_schema_from_fieldset() -> None:
    fs = FieldSet("crm", "loan", {"amount": "money", "customer": "number", "city": "text"})
    schema = ExprSchema.from_fieldset(fs, relations={"customer": CUSTOMER})
    assert schema.lookup("amount") == ("field", "money")
    assert schema.lookup("customer")[0] == "relation"
    assert schema.fieldset() == FieldSet("crm", "loan", {"amount": "money", "city": "text"})
    assert hash(schema) == hash(ExprSchema.from_fieldset(fs, relations={"customer": CUSTOMER}))
    with pytest.raises(ValueError, match="twice"):
        ExprSchema.of({"a": "text"}, relations={"a": CUSTOMER})
    with pytest.raises(ValueError, match="not a valid key"):
        ExprSchema.of({"Bad": "text"})


def test_evaluation_never_raises_on_bad_data() -> None:
    bad = {"a": "x", "b": True, "m": "NaN", "t": 5, "d": "2024-13-01", "dt": "yesterday",
           "f": "yes", "items": [None, 3, {"qty": "many"}], "customer": True}
    for text in ["a + b + m", "LEN(t)", "ADD_DAYS(d, 1)", "YEAR(dt)", "NOT f",
                 "SUM(items.qty)", "customer.city", "m / a"]:
        ev(text, bad)
