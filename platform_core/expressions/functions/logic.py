"""Logic: IF IFS SWITCH AND OR ISBLANK COALESCE BLANK (NOT is the operator ``NOT x``,
which also reads as ``NOT(x)``). Conditions are TRUE only when they are TRUE: a blank
condition counts as FALSE. IF/IFS/SWITCH/AND/OR/COALESCE only evaluate what they need.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sqlalchemy import and_, case, false, func, or_, true

from platform_core.expressions.functions.base import ANY, Fn, Function, TypeProblem, p
from platform_core.expressions.nodes import Call
from platform_core.expressions.sqlbase import SqlCtx, SqlNode
from platform_core.expressions.types import BLANK, BOOLEAN, Type, unify

Data = Mapping[str, Any]


def _same(items: list[tuple[int, Type]]) -> Type:
    """The common type of ``(arg index, type)`` items; a TypeProblem at the first misfit."""
    found = BLANK
    for index, t in items:
        common = unify([found, t])
        if common is None:
            raise TypeProblem("mixed_types", index, a_zh=found.label("zh"),
                              b_zh=t.label("zh"), a_en=found.label("en"), b_en=t.label("en"))
        found = common
    return found


def _if_type(types: list[Type]) -> Type:
    return _same(list(enumerate(types))[1:])


def _if_py(args: list[Fn], _types: list[Type]) -> Fn:
    cond, yes = args[0], args[1]
    no = args[2] if len(args) > 2 else None

    def if_(d: Data, e: Any) -> Any:
        if cond(d, e) is True:
            return yes(d, e)
        return no(d, e) if no is not None else None

    return if_


def _case(ctx: SqlCtx, whens: list[tuple[SqlNode, SqlNode]], default: SqlNode | None,
          type_: Type) -> SqlNode:
    values = [v for _, v in whens] + ([default] if default is not None else [])
    expr = case(*[(ctx.two(c), ctx.value(v)) for c, v in whens],
                else_=ctx.value(default) if default is not None else None)
    nullable = default is None or any(ctx.may_be_blank(v) for v in values)
    kids = [c for c, _ in whens] + values
    return ctx.node(expr, type_, *kids, nullable=nullable)


def _if_sql(ctx: SqlCtx, args: list[SqlNode], call: Call) -> SqlNode:
    default = args[2] if len(args) > 2 else None
    return _case(ctx, [(args[0], args[1])], default, call.type)


def _ifs_type(types: list[Type]) -> Type:
    if len(types) % 2:
        raise TypeProblem("pairs")
    for i in range(0, len(types), 2):
        if types[i].name not in ("boolean", "blank") or types[i].is_list:
            raise _bool_problem(i, types[i])
    return _same([(i, types[i]) for i in range(1, len(types), 2)])


def _bool_problem(index: int, got: Type) -> TypeProblem:
    return TypeProblem("arg_type", index, index=index + 1, expected_zh="真/假值",
                       expected_en="TRUE/FALSE", got_zh=got.label("zh"),
                       got_en=got.label("en"))


def _ifs_py(args: list[Fn], _types: list[Type]) -> Fn:
    pairs = [(args[i], args[i + 1]) for i in range(0, len(args), 2)]

    def ifs(d: Data, e: Any) -> Any:
        for cond, value in pairs:
            if cond(d, e) is True:
                return value(d, e)
        return None

    return ifs


def _ifs_sql(ctx: SqlCtx, args: list[SqlNode], call: Call) -> SqlNode:
    return _case(ctx, [(args[i], args[i + 1]) for i in range(0, len(args), 2)], None,
                 call.type)


def _switch_type(types: list[Type]) -> Type:
    if len(types) < 3:
        raise TypeProblem("pairs")
    has_default = (len(types) - 1) % 2 == 1
    last = len(types) - 1 if has_default else len(types)
    for i in range(1, last, 2):
        _same([(0, types[0]), (i, types[i])])
    results = [(i, types[i]) for i in range(2, last, 2)]
    if has_default:
        results.append((last, types[last]))
    return _same(results)


def _switch_parts(args: list[Any]) -> tuple[list[tuple[Any, Any]], Any]:
    rest = args[1:]
    default = rest[-1] if len(rest) % 2 else None
    body = rest[:-1] if len(rest) % 2 else rest
    return [(body[i], body[i + 1]) for i in range(0, len(body), 2)], default


def _switch_py(args: list[Fn], _types: list[Type]) -> Fn:
    subject, (pairs, default) = args[0], _switch_parts(args)

    def switch(d: Data, e: Any) -> Any:
        v = subject(d, e)
        if v is not None:
            for match, value in pairs:
                if v == match(d, e):
                    return value(d, e)
        return default(d, e) if default is not None else None

    return switch


def _switch_sql(ctx: SqlCtx, args: list[SqlNode], call: Call) -> SqlNode:
    subject, (pairs, default) = args[0], _switch_parts(args)
    whens = []
    for match, value in pairs:
        cond = and_(true(), *ctx.present(subject), *ctx.present(match),
                    ctx.value(subject) == ctx.value(match))
        whens.append((ctx.node(cond, BOOLEAN, subject, match, nullable=False), value))
    return _case(ctx, whens, default, call.type)


def _logic_py(want_all: bool) -> Any:
    def make(args: list[Fn], _types: list[Type]) -> Fn:
        from platform_core.expressions.evaluator import logical

        return logical(want_all, args)

    return make


def _logic_sql(want_all: bool) -> Any:
    def sql(ctx: SqlCtx, args: list[SqlNode], _call: Call) -> SqlNode:
        parts = [ctx.two(a) for a in args]
        expr = and_(true(), *parts) if want_all else or_(false(), *parts)
        return ctx.node(expr, BOOLEAN, *args, nullable=False)

    return sql


def _isblank_sql(ctx: SqlCtx, args: list[SqlNode], _call: Call) -> SqlNode:
    return ctx.node(is_blank(ctx, args[0]), BOOLEAN, args[0], nullable=False)


def is_blank(_ctx: SqlCtx, n: SqlNode) -> Any:
    """TRUE when ``n`` is blank (NULL, or "" for text); never NULL itself."""
    tests = [n.expr.is_(None)] if n.nullable else []
    if n.empty_text:
        tests.append(n.expr == "")
    if not tests:
        return false()
    return or_(*tests) if len(tests) > 1 else tests[0]


def _coalesce_py(args: list[Fn], _types: list[Type]) -> Fn:
    def coalesce(d: Data, e: Any) -> Any:
        for a in args:
            v = a(d, e)
            if v is not None:
                return v
        return None

    return coalesce


def _coalesce_sql(ctx: SqlCtx, args: list[SqlNode], call: Call) -> SqlNode:
    expr = func.coalesce(*[ctx.value(a) for a in args])
    return ctx.node(expr, call.type, *args,
                    nullable=all(ctx.may_be_blank(a) for a in args))


BOOL = p("condition", "boolean")
DEFS = [
    Function("IF", "logic", (BOOL, p("then", ANY), p("else", ANY, optional=True)), _if_type,
             make_py=_if_py, sql=_if_sql, zh="条件为真时取第二个参数, 否则取第三个 (省略则为空)",
             en="the second argument when the condition is TRUE, else the third (blank "
                "if omitted)", example='IF(loan_amount >= 1000000, "大额", "普通")'),
    Function("IFS", "logic", (BOOL, p("value", ANY)), _ifs_type, variadic=True,
             make_py=_ifs_py, sql=_ifs_sql, zh="依次判断条件, 取第一个为真的条件对应的值",
             en="the value paired with the first TRUE condition (blank if none)",
             example='IFS(score >= 90, "A", score >= 60, "B", TRUE, "C")'),
    Function("SWITCH", "logic", (p("value", ANY), p("case", ANY)), _switch_type,
             variadic=True, make_py=_switch_py, sql=_switch_sql,
             zh="按值匹配: SWITCH(值, 匹配1, 结果1, …, [默认])",
             en="match a value: SWITCH(value, match1, result1, …, [default])",
             example='SWITCH(status, "new", "新建", "done", "完成", "其他")'),
    Function("AND", "logic", (BOOL,), BOOLEAN, variadic=True, make_py=_logic_py(True),
             sql=_logic_sql(True), zh="所有条件都为真", en="TRUE when every condition is TRUE",
             example="AND(loan_amount > 0, approved)"),
    Function("OR", "logic", (BOOL,), BOOLEAN, variadic=True, make_py=_logic_py(False),
             sql=_logic_sql(False), zh="任一条件为真", en="TRUE when any condition is TRUE",
             example='OR(city = "北京", city = "上海")'),
    Function("ISBLANK", "logic", (p("value", ANY),), BOOLEAN, py=lambda v: v is None,
             sql=_isblank_sql, zh="值为空 (空文本也算空)", en="TRUE when the value is blank "
             '(empty text counts as blank)', example="ISBLANK(phone)"),
    Function("COALESCE", "logic", (p("value", ANY),),
             lambda types: _same(list(enumerate(types))), variadic=True, make_py=_coalesce_py,
             sql=_coalesce_sql, zh="第一个非空的值", en="the first value that is not blank",
             example='COALESCE(nickname, name, "未命名")'),
    Function("BLANK", "logic", (), BLANK, py=lambda: None,
             zh="空值; x = BLANK() 判断是否为空", en="the blank value; x = BLANK() tests for "
             "blank", example="IF(amount > 0, amount, BLANK())"),
]
