"""The grammar: literals, names, operators and their precedence, round trips through
``unparse``, and hostile input rejected cleanly (never a crash, never code)."""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from platform_core.errors import InvalidInput
from platform_core.expressions import (
    MAX_DEPTH,
    MAX_LENGTH,
    ExpressionError,
    ExprSchema,
    check,
    parse,
    register_builtins,
    unparse,
)
from platform_core.expressions.nodes import Binary, Call, Field, In, Literal, Unary


@pytest.fixture(autouse=True, scope="module")
def _functions() -> None:
    register_builtins()


@pytest.mark.parametrize("text, value", [
    ("42", Decimal(42)), ("3.1415", Decimal("3.1415")), ('"北京"', "北京"),
    ('"say ""hi"""', 'say "hi"'), ('""', ""), ("TRUE", True), ("false", False),
])
def test_literals(text: str, value: object) -> None:
    node = parse(text)
    assert isinstance(node, Literal) and node.value == value


def test_names_and_paths() -> None:
    assert parse("loan_amount") == Field(0, ("loan_amount",))
    node = parse("customer.city")
    assert isinstance(node, Field) and node.path == ("customer", "city")
    assert node.seg_pos == (0, 9)
    call = parse("sum(items.amount)")
    assert isinstance(call, Call) and call.name == "SUM"


def test_keywords_are_case_insensitive_and_not_prefixes() -> None:
    node = parse("a and not b Or c")
    assert isinstance(node, Binary) and node.op == "OR"
    assert isinstance(parse("notes"), Field)
    assert isinstance(parse("android"), Field)
    assert isinstance(parse("index in (1)"), In)
    assert parse("AND(a, b)").name == "AND"  # the function form


@pytest.mark.parametrize("text, canonical", [
    ("1 + 2 * 3", "(1 + (2 * 3))"),
    ("(1 + 2) * 3", "((1 + 2) * 3)"),
    ("2 ^ 3 ^ 2", "((2 ^ 3) ^ 2)"),
    ("-2 ^ 2", "((-2) ^ 2)"),  # as in Excel: negation binds tighter than ^
    ("1 - 2 - 3", "((1 - 2) - 3)"),
    ('a & b = "x"', '((a & b) = "x")'),
    ("a + 1 > b AND c OR d", "((((a + 1) > b) AND c) OR d)"),
    ("NOT a AND b", "((NOT a) AND b)"),
    ("NOT a = b", "(NOT (a = b))"),
    ("a % 2 = 0", "((a % 2) = 0)"),
    ("x NOT IN (1, 2)", "(x NOT IN (1, 2))"),
    ("a != b", "(a <> b)"),
    ("a == b", "(a = b)"),
    ("IF(a, 1, BLANK())", "IF(a, 1, BLANK())"),
])
def test_precedence(text: str, canonical: str) -> None:
    assert unparse(parse(text)) == canonical


def test_positions() -> None:
    node = parse("  a +  b")
    assert isinstance(node, Binary)
    assert (node.pos, node.op_pos, node.right.pos) == (2, 4, 7)
    assert isinstance(parse("-x"), Unary)


NAMES = st.sampled_from(["a", "b", "loan_amount", "customer.city"])
LEAVES = st.one_of(NAMES, st.integers(0, 10**6).map(str), st.sampled_from(
    ['"北京"', '""', "TRUE", "FALSE", "BLANK()", "1.25"]))


def _tree(children: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    ops = st.sampled_from(["+", "-", "*", "/", "%", "^", "&", "=", "<>", "<", ">=", "AND",
                           "OR"])
    return st.one_of(
        st.tuples(children, ops, children).map(lambda t: f"({t[0]} {t[1]} {t[2]})"),
        children.map(lambda c: f"(-{c})"), children.map(lambda c: f"(NOT {c})"),
        st.lists(children, min_size=1, max_size=3).map(lambda a: f"IF({', '.join(a)})"),
        st.tuples(children, st.lists(children, min_size=1, max_size=3)).map(
            lambda t: f"({t[0]} IN ({', '.join(t[1])}))"),
    )


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.recursive(LEAVES, _tree, max_leaves=12))
def test_unparse_round_trip(text: str) -> None:
    first = unparse(parse(text))
    assert unparse(parse(first)) == first


# -- hostile input ---------------------------------------------------------------------
SCHEMA = ExprSchema.of({"a": "number", "t": "text"})


@pytest.mark.parametrize("text, reason", [
    ("__import__('os')", "invalid_function"),
    ('__import__("os").system("ls")', "invalid_function"),
    ("a.__class__", "invalid_name"),
    ("a.__class__.__bases__", "invalid_name"),
    ("__builtins__", "invalid_name"),
    ("_private", "invalid_name"),
    ("eval(\"1\")", "unknown_function"),
    ("exec(\"1\")", "unknown_function"),
    ("getattr(a, \"x\")", "unknown_function"),
    ("open(\"/etc/passwd\")", "unknown_function"),
    ("lambda: 1", "bad_char"),
    ("lambda x", "syntax"),
    ("a; b", "bad_char"),
    ("a[0]", "bad_char"),
    ("{}", "bad_char"),
    ("`ls`", "bad_char"),
    ("a\\x00", "bad_char"),
    ("f'{a}'", "curly_quote"),
])
def test_code_is_never_run(text: str, reason: str) -> None:
    with pytest.raises(ExpressionError) as info:
        check(parse(text), SCHEMA)
    assert info.value.reason == reason


def test_deep_nesting_is_rejected_without_recursion() -> None:
    for text in ["IF(TRUE, " * 390 + "1" + ")" * 390,
                 "-" * 3999 + "1", "+".join(["1"] * 1900), "NOT " * 900 + "TRUE",
                 "a." * 1999 + "b", "(" * 3999]:
        with pytest.raises(ExpressionError) as info:
            parse(text)
        assert info.value.reason in ("too_deep", "incomplete", "path_too_long")
    with pytest.raises(ExpressionError, match="deep"):
        parse("(" * 1900 + "-" * 70 + "1" + ")" * 1900)
    # deep but within bounds is fine
    assert parse("(" * 1990 + "1" + ")" * 1990) == Literal(1990, Decimal(1))
    assert parse("-" * (MAX_DEPTH - 1) + "1").depth == MAX_DEPTH


def test_limits() -> None:
    with pytest.raises(ExpressionError) as info:
        parse("1" * (MAX_LENGTH + 1))
    assert (info.value.reason, info.value.column) == ("too_long", MAX_LENGTH + 1)
    with pytest.raises(ExpressionError, match="number is too long"):
        parse("9" * 31)
    with pytest.raises(ExpressionError, match="text literal is too long"):
        parse('"' + "字" * 1001 + '"')
    with pytest.raises(ExpressionError, match="too many arguments"):
        parse("SUM(" + ", ".join(["1"] * 101) + ")")
    with pytest.raises(ExpressionError, match="too complex"):
        parse("SUM(" + ", ".join(["SUM(1,1,1,1,1,1,1,1,1,1)"] * 99) + ")")
    with pytest.raises(ExpressionError, match="not_text|must be text"):
        parse(123)  # type: ignore[arg-type]


def test_huge_values_stay_bounded() -> None:
    from platform_core.expressions import compile_python

    for text in ["9" * 30 + " ^ " + "9" * 30, "10 ^ 999999 * 10 ^ 999999", "POWER(2, 10^7)",
                 "1 / 0.000000000000000000000000001", "(0 - 1) ^ 0.5", "0.5 ^ 10^20",
                 "1.1 ^ " + "9" * 30, "10 ^ 200 * 10"]:
        fn = compile_python(check(parse(text), SCHEMA))
        assert fn({}) is None or isinstance(fn({}), Decimal)
    for text in ['TEXT(0.5 ^ 10^20 + a) & TEXT(10^199, "#,##0.00") & a', 'TEXT(a, "0.' +
                 "0" * 900 + '")', 'LEN(TEXT(10 ^ 199))']:
        value = compile_python(check(parse(text), SCHEMA))({"a": 1})
        assert value is None or len(str(value)) < 1000


def test_error_is_invalid_input_problem() -> None:
    with pytest.raises(InvalidInput) as info:
        parse("1 +")
    problem = info.value.problem()
    assert problem["code"] == "invalid_expression" and problem["status"] == 422
    assert problem["column"] == 4 and problem["reason"] == "incomplete"
    assert problem["message_zh"] == "语法错误: 表达式不完整"


@settings(max_examples=200, deadline=None)
@given(st.text(alphabet=st.sampled_from(list("ab1 .,()+-*/^&<>=\"'_IFNOT北京\n")),
               max_size=60))
def test_fuzz_never_crashes(text: str) -> None:
    try:
        check(parse(text), SCHEMA)
    except ExpressionError as exc:
        assert 1 <= exc.column <= len(text) + 1
