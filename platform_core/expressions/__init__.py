"""Qiao's expression language: one safe, Excel-like language for formula fields,
conditions, validation rules, flow edges, rule actions and report measures.

    expr = parse('IF(loan_amount >= 1000000, "大额", "普通")')   # syntax → AST
    typed = check(expr, schema, need_sql=False)                  # names + types
    compile_python(typed)(record.data)                           # → "大额"
    compile_sql(typed, fieldset, "postgresql")                   # → SQLAlchemy expression

Every error is an ``ExpressionError`` (``invalid_expression``) with the column where the
problem starts, in Chinese and English. The semantics (blanks, money, dates, what runs
in SQL) are documented in docs/expressions.md. ``register_builtins()`` must have run
(the app factory calls it) before expressions are checked.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from platform_core.expressions.checker import check
from platform_core.expressions.errors import MESSAGES, ExpressionError
from platform_core.expressions.evaluator import compile_python, compiled
from platform_core.expressions.functions import FUNCTIONS, Function, register_builtins
from platform_core.expressions.nodes import Expr
from platform_core.expressions.parser import MAX_DEPTH, MAX_LENGTH, parse
from platform_core.expressions.printer import unparse
from platform_core.expressions.related import RelatedRecords
from platform_core.expressions.schema import ExprSchema
from platform_core.expressions.sql import compile_sql, compile_sql_filter, sql_value
from platform_core.expressions.types import Type
from platform_core.expressions.values import DEFAULT_ENV, Env


@dataclass(frozen=True)
class Formula:
    """A parsed and checked expression, ready to run: what a spec stores beside its text.

    ``Formula.build`` is the save-time step (it raises ``ExpressionError``); ``evaluate``
    and ``to_sql`` never fail to parse afterwards.
    """

    text: str
    typed: Expr
    _fn: Callable[..., Any] = field(compare=False, repr=False)

    @classmethod
    def build(cls, text: str, schema: ExprSchema, *, need_sql: bool | str = False) -> Formula:
        typed = check(parse(text), schema, need_sql=need_sql)
        compile_python(typed)
        return cls(text, typed, compiled(typed))

    @property
    def type(self) -> Type:
        return self.typed.type  # type: ignore[return-value]

    def evaluate(self, data: Mapping[str, Any], env: Env | None = None) -> Any:
        return self._fn(data, env or DEFAULT_ENV)

    def to_sql(self, fieldset: Any, dialect: str, *, env: Env | None = None) -> Any:
        return compile_sql(self.typed, fieldset, dialect, env=env)


__all__ = [
    "FUNCTIONS", "MAX_DEPTH", "MAX_LENGTH", "MESSAGES", "Env", "ExprSchema", "Expr",
    "ExpressionError", "Formula", "Function", "RelatedRecords", "Type", "check",
    "compile_python",
    "compile_sql", "compile_sql_filter", "parse", "register_builtins", "sql_value",
    "unparse",
]
