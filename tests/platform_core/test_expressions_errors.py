"""Save-time errors: each bad expression gives exactly this message at this column."""

from __future__ import annotations

import pytest

from platform_core.expressions import (
    MESSAGES,
    ExpressionError,
    ExprSchema,
    check,
    parse,
    register_builtins,
)


@pytest.fixture(autouse=True, scope="module")
def _functions() -> None:
    register_builtins()


SCHEMA = ExprSchema.of(
    {"loan_amount": "money", "rate": "number", "city": "text", "sign_date": "date",
     "approved": "boolean", "created": "datetime"},
    relations={"customer": ExprSchema.of({"name": "text", "level": "number"})},
    subtables={"items": ExprSchema.of({"qty": "number", "price": "money"}),
               "fees": ExprSchema.of({"amount": "money"})})

# text, column, 中文, English
BAD = [
    ("IF(loan_amount > 0, loan_amout, 0)", 21, "未知字段 loan_amout",
     "unknown field loan_amout"),
    ("IF(loan_amount >= 1000000, loan_amout, 0)", 28, "未知字段 loan_amout",
     "unknown field loan_amout"),
    ("customer.nme", 10, "未知字段 customer.nme", "unknown field customer.nme"),
    ("FOO(1)", 1, "未知函数 FOO", "unknown function FOO"),
    ("1 + vlookup(1)", 5, "未知函数 VLOOKUP", "unknown function VLOOKUP"),
    ("ROUND(1, 2, 3)", 1, "函数 ROUND 需要 1 到 2 个参数, 实际为 3 个",
     "ROUND takes 1 to 2 arguments, got 3"),
    ("MID(city, 1)", 1, "函数 MID 需要 3 个参数, 实际为 2 个", "MID takes 3 arguments, got 2"),
    ("TODAY(1)", 1, "函数 TODAY 需要 0 个参数, 实际为 1 个", "TODAY takes 0 arguments, got 1"),
    ("AND()", 1, "函数 AND 需要 至少 1 个参数, 实际为 0 个",
     "AND takes at least 1 argument, got 0"),
    ("DATE(2024, 1)", 1, "函数 DATE 需要 1 或 3 个参数, 实际为 2 个",
     "DATE takes 1 or 3 arguments, got 2"),
    ("LEFT(loan_amount, 2)", 6, "函数 LEFT 的第 1 个参数应为文本, 实际为金额",
     "argument 1 of LEFT must be text, got an amount of money"),
    ("ROUND(city)", 7, "函数 ROUND 的第 1 个参数应为数字或金额, 实际为文本",
     "argument 1 of ROUND must be a number or an amount of money, got text"),
    ("DAYS_BETWEEN(created, sign_date)", 14, "函数 DAYS_BETWEEN 的第 1 个参数应为日期, "
     "实际为日期时间", "argument 1 of DAYS_BETWEEN must be a date, got a date-time"),
    ("IF(city, 1, 2)", 4, "函数 IF 的第 1 个参数应为真/假值, 实际为文本",
     "argument 1 of IF must be TRUE/FALSE, got text"),
    ("city + 1", 6, "运算符 + 不能用于文本和数字",
     "operator + cannot be used with text and a number"),
    ("city > 1", 6, "运算符 > 不能用于文本和数字",
     "operator > cannot be used with text and a number"),
    ("approved < TRUE", 10, "运算符 < 不能用于真/假值和真/假值",
     "operator < cannot be used with TRUE/FALSE and TRUE/FALSE"),
    ("NOT city", 1, "运算符 NOT 不能用于文本", "operator NOT cannot be used with text"),
    ("approved AND 1", 10, "运算符 AND 不能用于数字", "operator AND cannot be used with a number"),
    ('1 IN ("a")', 7, "运算符 IN 不能用于数字和文本",
     "operator IN cannot be used with a number and text"),
    ("sign_date + 1", 11, "日期不能直接加减, 请用 ADD_DAYS 或 DAYS_BETWEEN",
     "dates cannot be added or subtracted directly; use ADD_DAYS or DAYS_BETWEEN"),
    ("loan_amount < BLANK()", 13, 'BLANK() 和 "" 只能用 = 或 <> 比较',
     'BLANK() and "" can only be compared with = or <>'),
    ('city >= ""', 6, 'BLANK() 和 "" 只能用 = 或 <> 比较',
     'BLANK() and "" can only be compared with = or <>'),
    ('IF(approved, 1, "a")', 17, "IF 的各个值类型不一致: 数字 与 文本",
     "IF mixes values of different types: a number and text"),
    ('COALESCE(1, "a")', 13, "COALESCE 的各个值类型不一致: 数字 与 文本",
     "COALESCE mixes values of different types: a number and text"),
    ("IFS(approved, 1, 2)", 1, "函数 IFS 的参数应成对出现 (条件, 值)",
     "IFS takes its arguments in pairs (condition, value)"),
    ("city.x", 1, "city 不是关联字段或子表, 不能用 . 引用",
     "city is not a relation or subtable field; it has no parts to name"),
    ("items.qty + 1", 1, "子表列 items.qty 只能用在汇总函数中 (SUM AVG COUNT MIN MAX)",
     "subtable column items.qty can only be used inside an aggregate (SUM AVG COUNT MIN MAX)"),
    ("SUM(items)", 5, "子表 items 需要指定列, 例如 items.amount",
     "subtable items needs a column, e.g. items.amount"),
    ("SUM(items.qty * fees.amount)", 17, "汇总参数中不能同时使用子表 items 和 fees.amount",
     "an aggregate argument cannot use both subtable items and fees.amount"),
    ("", 1, "表达式为空", "the expression is empty"),
    ("1 +", 4, "语法错误: 表达式不完整", "syntax error: the expression is incomplete"),
    ("(1", 3, "语法错误: 表达式不完整", "syntax error: the expression is incomplete"),
    ("1)", 2, "语法错误: 意外的 )", "syntax error: unexpected )"),
    ("city = = 1", 8, "语法错误: 意外的 =", "syntax error: unexpected ="),
    ("a < b < c", 7, "语法错误: 意外的 <", "syntax error: unexpected <"),
    ('"abc', 1, "字符串缺少结束引号", "unterminated string (missing closing quote)"),
    ("city = “北京”", 8, '请使用英文双引号 " 而不是 “',
     'use the ASCII double quote " instead of “'),
    ("city = 'x'", 8, '请使用英文双引号 " 而不是 \'', 'use the ASCII double quote " instead of \''),
    ("x # y", 3, "无法识别的字符 #", "unexpected character #"),
    ("__import__(\"os\")", 1, "函数名无效 __import__", "invalid function name __import__"),
    ("loan_amount.__class__", 13, "名称无效 __class__ (字段请用键: 小写英文字母、数字和下划线)",
     "invalid name __class__ (use the field key: lower-case ASCII letters, digits and "
     "underscores)"),
    ("贷款金额 > 1", 1, "名称无效 贷款金额 (字段请用键: 小写英文字母、数字和下划线)",
     "invalid name 贷款金额 (use the field key: lower-case ASCII letters, digits and "
     "underscores)"),
    ("a.b.c.d", 1, "引用层级过多 a.b.c.d (最多 3 层)",
     "reference a.b.c.d has too many parts (at most 3)"),
    ("1" * 31, 1, "数字过长 (最多 30 位)", "number is too long (at most 30 digits)"),
]


@pytest.mark.parametrize("text, column, zh, en", BAD)
def test_error_message_and_column(text: str, column: int, zh: str, en: str) -> None:
    with pytest.raises(ExpressionError) as info:
        check(parse(text), SCHEMA)
    err = info.value
    assert (err.column, err.message_zh, err.message_en) == (column, zh, en)
    assert str(err) == f"第 {column} 列: {zh} / column {column}: {en}"


# need_sql: refused at save time, naming what cannot run in the database
SQL_BAD = [
    ("UPPER(city) = \"A\"", 1, "UPPER 不能用于数据库查询 (筛选或报表)",
     "UPPER cannot be used in a database query (filter or report)"),
    ("loan_amount ^ 2 > 1", 13, "^ 不能用于数据库查询 (筛选或报表)",
     "^ cannot be used in a database query (filter or report)"),
    ("ROUND(loan_amount, rate) > 1", 20,
     "在数据库查询中, ROUND 的第 2 个参数必须是 0..10 之间的常数",
     "in a database query, argument 2 of ROUND must be a constant number 0..10"),
    ("LEFT(city, rate) = \"a\"", 12, "在数据库查询中, LEFT 的第 2 个参数必须是 0..10000 之间的常数",
     "in a database query, argument 2 of LEFT must be a constant number 0..10000"),
    ("city & rate", 8, "在数据库查询中, & 和 CONCAT 只能连接文本和日期, 不能连接数字",
     "in a database query, & and CONCAT can only join text and dates, not a number"),
    ("YEAR(created) = 2024", 6, "在数据库查询中, YEAR 只能用于日期, 不能用于日期时间",
     "in a database query, YEAR only takes a date, not a date-time"),
    ("ADD_MONTHS(sign_date, 1)", 1, "ADD_MONTHS 不能用于数据库查询 (筛选或报表)",
     "ADD_MONTHS cannot be used in a database query (filter or report)"),
    ("SUM(items.qty ^ 2)", 15, "^ 不能用于数据库查询 (筛选或报表)",
     "^ cannot be used in a database query (filter or report)"),
]


@pytest.mark.parametrize("text, column, zh, en", SQL_BAD)
def test_not_compilable_to_sql(text: str, column: int, zh: str, en: str) -> None:
    typed = check(parse(text), SCHEMA)  # fine for Python
    with pytest.raises(ExpressionError) as info:
        check(parse(text), SCHEMA, need_sql=True)
    assert typed.type is not None
    assert (info.value.column, info.value.message_zh, info.value.message_en) == (column, zh, en)


def test_constants_are_fine_in_sql() -> None:
    """Python-only functions of constants are computed once and bound."""
    for text in ['UPPER("abc") = "ABC"', "ADD_MONTHS(DATE(2024, 1, 31), 1) < sign_date",
                 "2 ^ 10 < loan_amount", 'city = TEXT(12)']:
        check(parse(text), SCHEMA, need_sql=True)


def test_every_message_has_both_languages() -> None:
    for key, (zh, en) in MESSAGES.items():
        assert zh and en and zh != en, key
