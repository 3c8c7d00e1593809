"""``ExpressionError``: a bilingual message that names the problem and its column.

Every message lives in ``MESSAGES`` under a stable key (``unknown_field`` …) so the API,
the designers and the tests can rely on the key while the wording stays editable.
"""

from __future__ import annotations

from typing import Any

from platform_core.errors import InvalidInput

# key → (中文, English); ``{…}`` fields are filled from the error's parameters.
MESSAGES: dict[str, tuple[str, str]] = {
    "empty": ("表达式为空", "the expression is empty"),
    "not_text": ("表达式必须是文本", "an expression must be text"),
    "too_long": ("表达式过长 (最多 {max} 个字符)",
                 "the expression is too long (at most {max} characters)"),
    "too_deep": ("嵌套过深 (最多 {max} 层)", "nesting is too deep (at most {max} levels)"),
    "too_many_nodes": ("表达式过于复杂 (最多 {max} 个元素)",
                       "the expression is too complex (at most {max} elements)"),
    "syntax": ("语法错误: 意外的 {token}", "syntax error: unexpected {token}"),
    "incomplete": ("语法错误: 表达式不完整", "syntax error: the expression is incomplete"),
    "bad_char": ("无法识别的字符 {char}", "unexpected character {char}"),
    "curly_quote": ("请使用英文双引号 \" 而不是 {char}",
                    "use the ASCII double quote \" instead of {char}"),
    "unterminated": ("字符串缺少结束引号", "unterminated string (missing closing quote)"),
    "number_too_long": ("数字过长 (最多 {max} 位)", "number is too long (at most {max} digits)"),
    "string_too_long": ("文本常量过长 (最多 {max} 个字符)",
                        "text literal is too long (at most {max} characters)"),
    "too_many_args": ("参数过多 (最多 {max} 个)", "too many arguments (at most {max})"),
    "invalid_name": ("名称无效 {name} (字段请用键: 小写英文字母、数字和下划线)",
                     "invalid name {name} (use the field key: lower-case ASCII letters, "
                     "digits and underscores)"),
    "invalid_function": ("函数名无效 {name}", "invalid function name {name}"),
    "path_too_long": ("引用层级过多 {name} (最多 {max} 层)",
                      "reference {name} has too many parts (at most {max})"),
    "unknown_field": ("未知字段 {name}", "unknown field {name}"),
    "unknown_function": ("未知函数 {name}", "unknown function {name}"),
    "not_relation": ("{name} 不是关联字段或子表, 不能用 . 引用",
                     "{name} is not a relation or subtable field; it has no parts to name"),
    "subtable_column": ("子表 {name} 需要指定列, 例如 {name}.amount",
                        "subtable {name} needs a column, e.g. {name}.amount"),
    "subtable_outside": ("子表列 {name} 只能用在汇总函数中 (SUM AVG COUNT MIN MAX)",
                         "subtable column {name} can only be used inside an aggregate "
                         "(SUM AVG COUNT MIN MAX)"),
    "subtable_mix": ("汇总参数中不能同时使用子表 {name} 和 {other}",
                     "an aggregate argument cannot use both subtable {name} and {other}"),
    "arg_count": ("函数 {name} 需要 {expected_zh} 个参数, 实际为 {got} 个",
                  "{name} takes {expected_en}, got {got}"),
    "arg_type": ("函数 {name} 的第 {index} 个参数应为{expected_zh}, 实际为{got_zh}",
                 "argument {index} of {name} must be {expected_en}, got {got_en}"),
    "op_type": ("运算符 {op} 不能用于{left_zh}和{right_zh}",
                "operator {op} cannot be used with {left_en} and {right_en}"),
    "op_type_one": ("运算符 {op} 不能用于{got_zh}", "operator {op} cannot be used with {got_en}"),
    "date_arith": ("日期不能直接加减, 请用 ADD_DAYS 或 DAYS_BETWEEN",
                   "dates cannot be added or subtracted directly; use ADD_DAYS or "
                   "DAYS_BETWEEN"),
    "blank_order": ('BLANK() 和 "" 只能用 = 或 <> 比较',
                    'BLANK() and "" can only be compared with = or <>'),
    "mixed_types": ("{name} 的各个值类型不一致: {a_zh} 与 {b_zh}",
                    "{name} mixes values of different types: {a_en} and {b_en}"),
    "pairs": ("函数 {name} 的参数应成对出现 (条件, 值)",
              "{name} takes its arguments in pairs (condition, value)"),
    "need_boolean": ("条件的结果应为真/假, 实际为{got_zh}",
                     "a condition must give TRUE or FALSE, got {got_en}"),
    "not_sql": ("{what} 不能用于数据库查询 (筛选或报表)",
                "{what} cannot be used in a database query (filter or report)"),
    "not_sql_const": ("在数据库查询中, {name} 的第 {index} 个参数必须是 {range} 之间的常数",
                      "in a database query, argument {index} of {name} must be a constant "
                      "number {range}"),
    "not_sql_datetime": ("在数据库查询中, {name} 只能用于日期, 不能用于日期时间",
                         "in a database query, {name} only takes a date, not a date-time"),
    "not_sql_text": ("在数据库查询中, & 和 CONCAT 只能连接文本和日期, 不能连接{got_zh}",
                     "in a database query, & and CONCAT can only join text and dates, "
                     "not {got_en}"),
    "sql_too_complex": ("表达式过于复杂, 不能转换为数据库查询",
                        "the expression is too complex to run as a database query"),
}


class ExpressionError(InvalidInput):
    """A bad expression: ``column`` (1-based, counted from the start of the text) and the
    message in Chinese and English. ``reason`` is the stable key of ``MESSAGES``."""

    code, title = "invalid_expression", "Invalid expression"

    def __init__(self, position: int, reason: str, **params: Any):
        zh, en = MESSAGES[reason]
        self.column = position + 1
        self.reason = reason
        self.params = params
        self.message_zh = zh.format(**params)
        self.message_en = en.format(**params)
        detail = (f"第 {self.column} 列: {self.message_zh} / "
                  f"column {self.column}: {self.message_en}")
        super().__init__(detail, column=self.column, reason=reason,
                         message_zh=self.message_zh, message_en=self.message_en)
