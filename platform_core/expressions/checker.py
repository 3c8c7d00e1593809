"""Save-time checking: resolve every name against an ``ExprSchema``, type every node and
(``need_sql``) prove the expression compiles to SQL. Returns the typed tree that the
compilers run; anything wrong is an ``ExpressionError`` at the column where it starts.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from platform_core.expressions.errors import ExpressionError
from platform_core.expressions.functions.base import FUNCTIONS, Function, Param, TypeProblem
from platform_core.expressions.nodes import (
    ARITHMETIC,
    COMPARISONS,
    LOGICAL,
    Binary,
    Call,
    Each,
    Expr,
    Field,
    In,
    Literal,
    Unary,
    children,
    is_blank_literal,
)
from platform_core.expressions.schema import ExprSchema
from platform_core.expressions.types import (
    BLANK,
    BOOLEAN,
    KIND_TYPES,
    NUMBER,
    NUMERIC,
    ORDERED,
    TEXT,
    Type,
    accepts_label,
    numeric_result,
    unify,
)

DIALECTS = ("sqlite", "postgresql")


def check(expr: Expr, schema: ExprSchema, *, need_sql: bool | str = False) -> Expr:
    """The typed tree of ``expr`` (its ``.type`` is the result type).

    ``need_sql=True`` also requires that it compiles to SQL on every supported database
    (``"postgresql"`` or ``"sqlite"`` for just one), as filters and report measures need.
    """
    typed = _Checker(schema).visit(expr)
    if need_sql:
        from platform_core.expressions.sql import compile_sql

        fieldset = schema.fieldset()
        for dialect in DIALECTS if need_sql is True else (need_sql,):
            compile_sql(typed, fieldset, dialect)
    return typed


class _Checker:
    def __init__(self, schema: ExprSchema):
        self.schema = schema
        self.row: str | None = None  # the subtable whose row an aggregate argument reads

    def visit(self, node: Expr) -> Expr:
        method = getattr(self, f"visit_{type(node).__name__.lower()}")
        return method(node)

    # -- leaves ------------------------------------------------------------------------
    def visit_literal(self, node: Literal) -> Literal:
        value = node.value
        if value is None:
            t = BLANK
        elif isinstance(value, bool):
            t = BOOLEAN
        elif isinstance(value, str):
            t = TEXT
        else:
            t = NUMBER
        return replace(node, type=t)

    def visit_field(self, node: Field) -> Field:
        """Resolve a reference. Inside an aggregate's per-row argument, ``items.qty`` is a
        column of the row and any other name a field of the record (``outer``)."""
        path, seg_pos, schema, outer = node.path, node.seg_pos, self.schema, False
        if self.row is not None and path[0] == self.row:
            path, seg_pos = path[1:], seg_pos[1:]
            schema = self.schema.lookup(self.row)[1]
            if not path:
                raise ExpressionError(node.pos, "subtable_column", name=self.row)
        elif self.row is not None:
            if (self.schema.lookup(path[0]) or ("",))[0] == "subtable":
                raise ExpressionError(node.pos, "subtable_mix", name=self.row, other=node.name)
            outer = True
        steps: list[str] = []
        for i, key in enumerate(path):
            entry = schema.lookup(key)
            if entry is None:
                name = ".".join(node.path[: len(node.path) - len(path) + i + 1])
                raise ExpressionError(seg_pos[i], "unknown_field", name=name)
            role, value = entry
            last = i == len(path) - 1
            if role == "field" or (role == "relation" and last):
                if not last:
                    raise ExpressionError(seg_pos[i], "not_relation", name=key)
                kind = value if role == "field" else "number"
                return replace(node, type=KIND_TYPES[kind], steps=tuple(steps), key=key,
                               kind=kind, outer=outer)
            if role == "subtable":
                reason = "subtable_column" if last else "subtable_outside"
                name = key if last else ".".join(path[i: i + 2])
                raise ExpressionError(seg_pos[i], reason, name=name)
            steps.append(key)
            schema = value
        raise AssertionError("unreachable")  # pragma: no cover

    # -- operators ---------------------------------------------------------------------
    def visit_unary(self, node: Unary) -> Unary:
        operand = self.visit(node.operand)
        t = operand.type
        if node.op == "NOT":
            self._need(node.pos, "NOT", t, frozenset({"boolean"}))
            return replace(node, operand=operand, type=BOOLEAN)
        self._need(node.pos, node.op, t, NUMERIC)
        return replace(node, operand=operand, type=numeric_result(t))

    def _need(self, pos: int, op: str, t: Type, names: frozenset[str]) -> None:
        if t.is_list or (t.name != "blank" and t.name not in names):
            if t.name == "date" and op in "+-":
                raise ExpressionError(pos, "date_arith")
            raise ExpressionError(pos, "op_type_one", op=op, got_zh=t.label("zh"),
                                  got_en=t.label("en"))

    def visit_binary(self, node: Binary) -> Binary:
        left, right = self.visit(node.left), self.visit(node.right)
        lt, rt, op = left.type, right.type, node.op
        if op in LOGICAL:
            for t in (lt, rt):
                self._need(node.op_pos, op, t, frozenset({"boolean"}))
            t = BOOLEAN
        elif op == "&":
            for t in (lt, rt):
                self._need(node.op_pos, op, t, frozenset(KIND_TYPES))
            t = TEXT
        elif op in COMPARISONS:
            t = self._compare(node, left, right)
        elif op in ARITHMETIC:
            if "date" in (lt.name, rt.name) and op in "+-":
                raise ExpressionError(node.op_pos, "date_arith")
            self._pair(node, lt, rt, NUMERIC)
            t = self._arith_type(op, lt, rt)
        else:  # pragma: no cover - the grammar has no other operator
            raise AssertionError(op)
        return replace(node, left=left, right=right, type=t)

    def _pair(self, node: Binary, lt: Type, rt: Type, names: frozenset[str]) -> None:
        ok = all(not t.is_list and (t.name == "blank" or t.name in names) for t in (lt, rt))
        if not ok:
            raise _op_error(node.op_pos, node.op, lt, rt)

    @staticmethod
    def _arith_type(op: str, lt: Type, rt: Type) -> Type:
        if op == "^":
            return NUMBER
        if op == "/":
            return numeric_result(lt) if rt.name != "money" else NUMBER
        if op == "%":
            return numeric_result(lt)
        return numeric_result(lt, rt)

    def _compare(self, node: Binary, left: Expr, right: Expr) -> Type:
        blank_test = is_blank_literal(node.left) or is_blank_literal(node.right)
        if blank_test and node.op not in ("=", "<>"):
            raise ExpressionError(node.op_pos, "blank_order")
        names = ORDERED if node.op not in ("=", "<>") else frozenset(KIND_TYPES)
        self._pair(node, left.type, right.type, names)
        if not blank_test and unify([left.type, right.type]) is None:
            raise _op_error(node.op_pos, node.op, left.type, right.type)
        return BOOLEAN

    def visit_in(self, node: In) -> In:
        needle = self.visit(node.needle)
        items = tuple(self.visit(i) for i in node.items)
        for item in items:
            if item.type.is_list or needle.type.is_list or \
                    unify([needle.type, item.type]) is None:
                op = "NOT IN" if node.negated else "IN"
                raise _op_error(item.pos, op, needle.type, item.type)
        return replace(node, needle=needle, items=items, type=BOOLEAN)

    # -- calls -------------------------------------------------------------------------
    def visit_call(self, node: Call) -> Call:
        if node.name not in FUNCTIONS:
            raise ExpressionError(node.pos, "unknown_function", name=node.name)
        fn = FUNCTIONS.get(node.name)
        self._arity(node, fn)
        args = tuple(self._arg(fn, i, a) for i, a in enumerate(node.args))
        types = [a.type for a in args]
        try:
            result = fn.result_type(types)
        except TypeProblem as problem:
            pos = node.pos if problem.at is None else args[problem.at].pos
            raise ExpressionError(pos, problem.reason, name=fn.name, **problem.params) from None
        return replace(node, args=args, type=result)

    @staticmethod
    def _arity(node: Call, fn: Function) -> None:
        n, low, high = len(node.args), fn.min_args, fn.max_args
        if low <= n and (high is None or n <= high):
            return
        if high is None:
            zh, en = f"至少 {low}", f"at least {low} argument{'s' * (low != 1)}"
        elif low == high:
            zh, en = str(low), f"{low} argument{'s' * (low != 1)}"
        else:
            zh, en = f"{low} 到 {high}", f"{low} to {high} arguments"
        raise ExpressionError(node.pos, "arg_count", name=fn.name, expected_zh=zh,
                              expected_en=en, got=n)

    def _arg(self, fn: Function, index: int, arg: Expr) -> Expr:
        param = fn.param(index)
        typed = self._rows_arg(fn, arg) if param.list_ok else self.visit(arg)
        self._accepts(fn, index, param, typed)
        return typed

    def _accepts(self, fn: Function, index: int, param: Param, arg: Expr) -> None:
        t = arg.type
        if t.name == "blank" or (t.name in param.accepts and (param.list_ok or not t.is_list)):
            return
        raise ExpressionError(arg.pos, "arg_type", name=fn.name, index=index + 1,
                              expected_zh=accepts_label(param.accepts, "zh"),
                              expected_en=accepts_label(param.accepts, "en"),
                              got_zh=t.label("zh"), got_en=t.label("en"))

    def _rows_arg(self, fn: Function, arg: Expr) -> Expr:
        """An aggregate's argument: per-row (``Each``) if it names a subtable column.

        A subtable column belongs to the nearest aggregate around it: in
        ``SUM(items.qty / SUM(items.qty))`` the inner SUM is the total over all rows, so
        an aggregate nested in a per-row argument reads the record again (``outer``).
        """
        subtables = [f for f in _fields(arg) if (self.schema.lookup(f.path[0]) or ("",))[0]
                     == "subtable"]
        if not subtables:
            return self.visit(arg)
        sub, outer, saved = subtables[0].path[0], self.row is not None, self.row
        if isinstance(arg, Field) and arg.path == (sub,):
            if fn.name != "COUNT":
                raise ExpressionError(arg.pos, "subtable_column", name=sub)
            body: Expr = Literal(arg.pos, True, type=BOOLEAN)
        else:
            self.row = sub
            try:
                body = self.visit(arg)
            finally:
                self.row = saved
        return Each(arg.pos, sub, body, outer=outer, type=Type(body.type.name, True))


def _op_error(pos: int, op: str, lt: Type, rt: Type) -> ExpressionError:
    return ExpressionError(pos, "op_type", op=op, left_zh=lt.label("zh"),
                           right_zh=rt.label("zh"), left_en=lt.label("en"),
                           right_en=rt.label("en"))


def _fields(node: Expr) -> list[Field]:
    """The field references that ``node`` itself reads — not those inside the list
    arguments of a nested aggregate, which that aggregate reads per row on its own."""
    found: list[Field] = []
    stack: list[Any] = [node]
    while stack:
        current = stack.pop()
        if isinstance(current, Field):
            found.append(current)
        elif isinstance(current, Call) and current.name in FUNCTIONS:
            fn = FUNCTIONS.get(current.name)
            stack.extend(a for i, a in enumerate(current.args)
                         if not fn.param(i).list_ok)
        else:
            stack.extend(children(current))
    return sorted(found, key=lambda f: f.pos)
