"""The store's query language: a JSON filter AST, sorts and keyset cursors → one SELECT.

Filter leaves are ``{"field": "amount", "op": "gte", "value": 1000000}``; nodes combine
them with ``{"and": [...]}``, ``{"or": [...]}`` and ``{"not": {...}}``. Values are always
bound parameters. Semantics (the same on SQLite and PostgreSQL, documented in
docs/query.md): a missing or null value never satisfies ``eq gt gte lt lte in between
contains starts_with`` and always satisfies ``ne not_in``; every leaf is TRUE or FALSE
(never SQL NULL), so ``not`` is plain negation. Blanks sort last in both directions;
``id`` breaks ties.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Select, and_, false, func, literal, not_, or_, select, true
from sqlalchemy.sql.elements import ColumnElement

from platform_core.errors import QueryError
from platform_core.models import Record
from platform_core.store.fields import Accessor, FieldSet

MAX_DEPTH = 16
MAX_NODES = 500
MAX_IN_VALUES = 1000
MAX_LIMIT = 1000

Leaf = Callable[[Accessor, Any, str], ColumnElement[bool]]


def _blank(acc: Accessor) -> ColumnElement[bool]:
    if acc.text_ops:
        return or_(acc.expr.is_(None), acc.expr == "")
    return acc.expr.is_(None) if acc.nullable else false()


def _eq(acc: Accessor, v: Any, _d: str) -> ColumnElement[bool]:
    return acc.expr == v


def _ne(acc: Accessor, v: Any, _d: str) -> ColumnElement[bool]:
    return or_(acc.expr.is_(None), acc.expr != v) if acc.nullable else acc.expr != v


def _contains(acc: Accessor, v: Any, dialect: str) -> ColumnElement[bool]:
    fn = func.strpos if dialect == "postgresql" else func.instr
    return fn(acc.expr, v) > 0


def _starts_with(acc: Accessor, v: Any, _d: str) -> ColumnElement[bool]:
    return func.substr(acc.expr, 1, len(v)) == v


def _in(acc: Accessor, v: Any, _d: str) -> ColumnElement[bool]:
    return acc.expr.in_(v) if v else false()


def _not_in(acc: Accessor, v: Any, _d: str) -> ColumnElement[bool]:
    if not v:
        return true()
    return or_(acc.expr.is_(None), acc.expr.not_in(v)) if acc.nullable else acc.expr.not_in(v)


OPS: dict[str, Leaf] = {
    "eq": _eq,
    "ne": _ne,
    "gt": lambda a, v, _d: a.expr > v,
    "gte": lambda a, v, _d: a.expr >= v,
    "lt": lambda a, v, _d: a.expr < v,
    "lte": lambda a, v, _d: a.expr <= v,
    "in": _in,
    "not_in": _not_in,
    "contains": _contains,
    "starts_with": _starts_with,
    "between": lambda a, v, _d: and_(a.expr >= v[0], a.expr <= v[1]),
    "is_empty": lambda a, _v, _d: _blank(a),
    "is_not_empty": lambda a, _v, _d: not_(_blank(a)),
}
NO_VALUE = {"is_empty", "is_not_empty"}
LIST_VALUE = {"in", "not_in"}
TEXT_ONLY = {"contains", "starts_with"}
ORDERED = {"gt", "gte", "lt", "lte", "between"}
POSITIVE = {"eq", "gt", "gte", "lt", "lte", "in", "contains", "starts_with", "between"}


class _Compiler:
    def __init__(self, fields: FieldSet, dialect: str):
        self.fields, self.dialect, self.nodes = fields, dialect, 0

    def node(self, node: Any, path: str, depth: int) -> ColumnElement[bool]:
        self.nodes += 1
        if depth > MAX_DEPTH or self.nodes > MAX_NODES:
            raise QueryError(f"filter is too deep or too large (max depth {MAX_DEPTH}, "
                             f"max {MAX_NODES} nodes)", path=path)
        if not isinstance(node, dict):
            raise QueryError("expected an object", path=path)
        if "field" in node:
            return self.leaf(node, path)
        if len(node) != 1:
            raise QueryError("expected one of 'and', 'or', 'not' or a leaf with 'field'",
                             path=path)
        (combinator, body), = node.items()
        if combinator == "not":
            return not_(self.node(body, f"{path}.not", depth + 1))
        if combinator not in ("and", "or") or not isinstance(body, list):
            raise QueryError(f"unknown combinator {combinator!r} (expected and/or with a "
                             "list, or not)", path=path)
        parts = [self.node(n, f"{path}.{combinator}[{i}]", depth + 1)
                 for i, n in enumerate(body)]
        if not parts:
            return true() if combinator == "and" else false()
        return and_(*parts) if combinator == "and" else or_(*parts)

    def leaf(self, node: dict[str, Any], path: str) -> ColumnElement[bool]:
        extra = set(node) - {"field", "op", "value"}
        if extra:
            raise QueryError(f"unexpected key {sorted(extra)[0]!r} in a leaf", path=path)
        acc = self.accessor(node["field"], f"{path}.field")
        op = node.get("op")
        if op not in OPS:
            raise QueryError(f"unknown operator {op!r} (known: {', '.join(OPS)})",
                             path=f"{path}.op")
        if op in TEXT_ONLY and not acc.text_ops:
            raise QueryError(f"operator {op!r} needs a text field; {acc.name!r} is not",
                             path=f"{path}.op")
        if op in ORDERED and acc.kind is not None and acc.kind.key == "boolean":
            raise QueryError(f"operator {op!r} does not apply to the yes/no field "
                             f"{acc.name!r} (use eq or ne)", path=f"{path}.op")
        value = None if op in NO_VALUE else self.value(acc, op, node, f"{path}.value")
        condition = OPS[op](acc, value, self.dialect)
        if acc.nullable and op in POSITIVE:
            # Two-valued logic: a blank makes the leaf FALSE (not NULL), so that
            # {"not": …} of it is TRUE, as a user reading the filter expects.
            condition = and_(acc.expr.is_not(None), condition)
        return condition

    def accessor(self, key: Any, path: str) -> Accessor:
        try:
            return self.fields.accessor(key, self.dialect)
        except (KeyError, TypeError):
            raise QueryError(f"unknown field {key!r} of form "
                             f"{self.fields.app}.{self.fields.form}", path=path) from None

    def value(self, acc: Accessor, op: str, node: dict[str, Any], path: str) -> Any:
        if "value" not in node or node["value"] is None:
            raise QueryError(f"operator {op!r} needs a value (use is_empty for blanks)",
                             path=path)
        raw = node["value"]
        if op in LIST_VALUE or op == "between":
            if not isinstance(raw, list):
                raise QueryError(f"operator {op!r} needs a list", path=path)
            if op == "between" and len(raw) != 2:
                raise QueryError("between needs exactly [low, high]", path=path)
            if len(raw) > MAX_IN_VALUES:
                raise QueryError(f"at most {MAX_IN_VALUES} values", path=path)
            return [self.scalar(acc, v, f"{path}[{i}]") for i, v in enumerate(raw)]
        return self.scalar(acc, raw, path)

    def scalar(self, acc: Accessor, raw: Any, path: str) -> Any:
        if raw is None or isinstance(raw, list | dict):
            raise QueryError("expected a single value", path=path)
        try:
            return acc.bind(raw, self.dialect)
        except ValueError as exc:
            raise QueryError(f"{exc} for field {acc.name!r}", path=path) from None


def compile_filter(node: Any, fields: FieldSet, dialect: str) -> ColumnElement[bool]:
    """The SQL condition of a filter AST; ``QueryError`` names the bad part by path."""
    if node is None:
        return true()
    return _Compiler(fields, dialect).node(node, "filter", 0)


@dataclass(frozen=True)
class SortKey:
    accessor: Accessor
    desc: bool


def parse_sort(sort: Any, fields: FieldSet, dialect: str) -> list[SortKey]:
    """``["-amount", "name"]`` or ``[{"field": …, "dir": "desc"}]`` → keys ending in ``id``."""
    if sort is None:
        sort = ["-id"]
    if isinstance(sort, str):
        sort = [s for s in sort.split(",") if s]
    if not isinstance(sort, list) or len(sort) > 8:
        raise QueryError("expected a list of at most 8 sort keys", path="sort")
    compiler = _Compiler(fields, dialect)
    keys: list[SortKey] = []
    for i, item in enumerate(sort):
        if isinstance(item, str):
            name, desc = item.removeprefix("-"), item.startswith("-")
        elif isinstance(item, dict) and item.get("dir", "asc") in ("asc", "desc"):
            name, desc = item.get("field"), item.get("dir") == "desc"
        else:
            raise QueryError("expected 'field', '-field' or {field, dir}", path=f"sort[{i}]")
        keys.append(SortKey(compiler.accessor(name, f"sort[{i}]"), desc))
        if name == "id":
            return keys
    return [*keys, SortKey(compiler.accessor("id", "sort"), False)]


def order_by(keys: list[SortKey]) -> list[Any]:
    out = []
    for key in keys:
        clause = key.accessor.expr.desc() if key.desc else key.accessor.expr.asc()
        out.append(clause.nulls_last() if key.accessor.nullable else clause)
    return out


def _signature(keys: list[SortKey]) -> str:
    text = ",".join(("-" if k.desc else "") + k.accessor.name for k in keys)
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def encode_cursor(keys: list[SortKey], record: Any) -> str:
    payload = {"s": _signature(keys), "v": [k.accessor.sort_value(record) for k in keys]}
    raw = json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str, keys: list[SortKey], dialect: str) -> list[Any]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        payload = json.loads(raw)
        values = payload["v"]
        assert payload["s"] == _signature(keys) and len(values) == len(keys)
        return [None if v is None else k.accessor.bind(v, dialect)
                for k, v in zip(keys, values, strict=True)]
    except (binascii.Error, ValueError, KeyError, TypeError, AssertionError):
        raise QueryError("not a cursor of this query (it was made for another sort, "
                         "or is damaged)", path="cursor") from None


def after_cursor(keys: list[SortKey], values: list[Any]) -> ColumnElement[bool]:
    """Rows strictly after the cursor row in ``order_by(keys)`` order (blanks last)."""
    if not keys:
        return false()
    key, value, rest = keys[0], values[0], after_cursor(keys[1:], values[1:])
    expr = key.accessor.expr
    if value is None:
        return and_(expr.is_(None), rest)
    value = literal(value, expr.type)  # a bound parameter; also for True/False
    beyond = expr < value if key.desc else expr > value
    parts = [beyond, and_(expr == value, rest)]
    if key.accessor.nullable:
        parts.append(expr.is_(None))
    return or_(*parts)


@dataclass(frozen=True)
class Query:
    """A validated list query over one form: filter, sort, cursor, page size."""

    fields: FieldSet
    filter: Any = None
    sort: Any = None
    cursor: str | None = None
    limit: int = 50
    deleted: str = "exclude"  # exclude | only | include

    def select(self, dialect: str) -> tuple[Select[Any], list[SortKey]]:
        if not isinstance(self.limit, int) or not 1 <= self.limit <= MAX_LIMIT:
            raise QueryError(f"limit must be 1..{MAX_LIMIT}", path="limit")
        if self.deleted not in ("exclude", "only", "include"):
            raise QueryError("deleted must be exclude, only or include", path="deleted")
        keys = parse_sort(self.sort, self.fields, dialect)
        # Core columns, not ORM entities: a list page needs no identity map.
        stmt = select(*Record.__table__.c).where(
            Record.app == self.fields.app,
            Record.form == self.fields.form,
            compile_filter(self.filter, self.fields, dialect),
        )
        if self.deleted == "exclude":
            stmt = stmt.where(Record.deleted_at.is_(None))
        elif self.deleted == "only":
            stmt = stmt.where(Record.deleted_at.is_not(None))
        if self.cursor:
            stmt = stmt.where(after_cursor(keys, decode_cursor(self.cursor, keys, dialect)))
        return stmt.order_by(*order_by(keys)).limit(self.limit + 1), keys
