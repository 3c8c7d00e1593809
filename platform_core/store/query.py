"""The store's query language: a JSON filter AST, sorts and keyset cursors → one SELECT.

Filter leaves are ``{"field": "amount", "op": "gte", "value": 1000000}``; nodes combine
them with ``{"and": [...]}``, ``{"or": [...]}`` and ``{"not": {...}}``. Values are always
bound parameters. Semantics (the same on SQLite and PostgreSQL, documented in
docs/query.md): a missing or null value never satisfies ``eq gt gte lt lte in between
contains starts_with`` and always satisfies ``ne not_in``; every leaf is TRUE or FALSE
(never SQL NULL), so ``not`` is plain negation. Blanks sort last in both directions;
``id`` breaks ties.

A query is read in two steps. ``_Compiler`` validates it on every call (so errors name
the bad part, whatever was cached) and reduces it to its *shape* — structure, fields and
their kinds, operators, sort, which cursor values are blank, page size — plus the list of
values to bind. The SQL of a shape is built and compiled once (``_Builder``, named bind
parameters ``q0``, ``q1`` … for every value) and kept in a bounded LRU cache
(``SHAPES``); a call then only binds its values and runs the cached SQL text on the
session's connection. Values never enter the SQL text or the cache key.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import logging
import math
import threading
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from contextlib import suppress
from dataclasses import dataclass, replace
from datetime import datetime
from decimal import Decimal
from functools import lru_cache
from typing import Any

from sqlalchemy import (
    BigInteger,
    Integer,
    LargeBinary,
    Select,
    Text,
    and_,
    bindparam,
    cast,
    false,
    func,
    literal,
    literal_column,
    not_,
    or_,
    select,
    true,
)
from sqlalchemy.engine import Connection, Dialect
from sqlalchemy.exc import DBAPIError
from sqlalchemy.sql import operators
from sqlalchemy.sql.elements import BindParameter, ColumnElement
from sqlalchemy.sql.util import ClauseAdapter

from platform_core.errors import QueryError
from platform_core.models import Record, RecordLink
from platform_core.store.fields import Accessor, FieldSet
from platform_core.store.kinds import check_key, json_text

MAX_DEPTH = 16
MAX_NODES = 500
MAX_IN_VALUES = 1000
MAX_LIMIT = 1000
CACHE_SIZE = 512  # query shapes whose compiled SQL is kept (LRU)

# A leaf's SQL from its accessor and its bind parameters (which: ``_leaf_params``).
Leaf = Callable[[Accessor, list[Any], str], ColumnElement[bool]]


def _blank(acc: Accessor) -> ColumnElement[bool]:
    if acc.text_ops:
        return or_(acc.expr.is_(None), acc.expr == "")
    return acc.expr.is_(None) if acc.nullable else false()


def _ne(acc: Accessor, p: list[Any], _d: str) -> ColumnElement[bool]:
    return or_(acc.expr.is_(None), acc.expr != p[0]) if acc.nullable else acc.expr != p[0]


def _contains(acc: Accessor, p: list[Any], dialect: str) -> ColumnElement[bool]:
    fn = func.strpos if dialect == "postgresql" else func.instr
    return fn(acc.expr, p[0]) > 0


def _in(acc: Accessor, p: list[Any], _d: str) -> ColumnElement[bool]:
    return acc.expr.in_(p) if p else false()


def _not_in(acc: Accessor, p: list[Any], _d: str) -> ColumnElement[bool]:
    if not p:
        return true()
    return or_(acc.expr.is_(None), acc.expr.not_in(p)) if acc.nullable else acc.expr.not_in(p)


OPS: dict[str, Leaf] = {
    "eq": lambda a, p, _d: a.expr == p[0],
    "ne": _ne,
    "gt": lambda a, p, _d: a.expr > p[0],
    "gte": lambda a, p, _d: a.expr >= p[0],
    "lt": lambda a, p, _d: a.expr < p[0],
    "lte": lambda a, p, _d: a.expr <= p[0],
    "in": _in,
    "not_in": _not_in,
    "contains": _contains,
    # p = [text, its length]
    "starts_with": lambda a, p, _d: func.substr(a.expr, 1, p[1]) == p[0],
    "between": lambda a, p, _d: and_(a.expr >= p[0], a.expr <= p[1]),
    "is_empty": lambda a, _p, _d: _blank(a),
    "is_not_empty": lambda a, _p, _d: not_(_blank(a)),
}
# A relation to many records: eq/in — it links to that record / one of those;
# ne/not_in — it does not (a blank never links); is_empty — it links to none.
LINK_OPS = ("eq", "ne", "in", "not_in", "is_empty", "is_not_empty")
NO_VALUE = {"is_empty", "is_not_empty"}
LIST_VALUE = {"in", "not_in"}
TEXT_ONLY = {"contains", "starts_with"}
ORDERED = {"gt", "gte", "lt", "lte", "between"}
POSITIVE = {"eq", "gt", "gte", "lt", "lte", "in", "contains", "starts_with", "between"}
# Parameters compared with the field take the field's SQL type, as ``expr == value`` does;
# these (function arguments) are typed from the Python value, as SQLAlchemy does.
VALUE_TYPED = {"contains", "starts_with"}
# The operator each parameter of a leaf is compared with (SQLAlchemy's type coercion).
COMPARATOR = {"eq": operators.eq, "ne": operators.ne, "gt": operators.gt,
              "gte": operators.ge, "lt": operators.lt, "lte": operators.le,
              "in": operators.in_op, "not_in": operators.not_in_op}


def _padded(values: list[Any]) -> list[Any]:
    """An IN list repeated up to a power of two: fewer shapes, the same rows."""
    n = len(values)
    if n < 2:
        return values
    size = 1 << (n - 1).bit_length()
    return values + [values[-1]] * (size - n)


def _leaf_params(op: str, value: Any) -> list[Any]:
    """The SQL parameters of a leaf, in the order its SQL uses them (see OPS)."""
    if op in NO_VALUE:
        return []
    if op in LIST_VALUE:
        return _padded(value)
    if op == "between":
        return value
    if op == "starts_with":
        return [value, len(value)]
    return [value]


def _sig(value: Any) -> Any:
    """What of a bound value decides its SQL type (and so the SQL text): its type."""
    if isinstance(value, datetime):
        return datetime, value.tzinfo is None
    return type(value)


def _operator(op: Any, path: str) -> str:
    if not isinstance(op, str) or op not in OPS:
        shown = op if isinstance(op, str | None) else f"a JSON {_json_type(op)}"
        raise QueryError(f"unknown operator {shown!r} (known: {', '.join(OPS)})",
                         path=f"{path}.op")
    return op


def _json_type(value: Any) -> str:
    return {dict: "object", list: "array", bool: "boolean", int: "number",
            float: "number", str: "string"}.get(type(value), type(value).__name__)


def check_shape(node: Any, path: str = "filter") -> None:
    """The structure of a filter — nodes, leaves' keys, operators, depth and size — for
    code that reads a filter before the store compiles it (permissions, sealing): after
    this every leaf is a dict whose ``field`` and ``op`` are strings."""
    if node is None:
        return
    budget = [MAX_NODES]

    def walk(node: Any, path: str, depth: int) -> None:
        budget[0] -= 1
        if depth > MAX_DEPTH or budget[0] < 0:
            raise QueryError(f"filter is too deep or too large (max depth {MAX_DEPTH}, "
                             f"max {MAX_NODES} nodes)", path=path)
        if not isinstance(node, dict):
            raise QueryError("expected an object", path=path)
        if "field" in node:
            extra = set(node) - {"field", "op", "value"}
            if extra:
                raise QueryError(f"unexpected key {sorted(extra)[0]!r} in a leaf", path=path)
            if not isinstance(node["field"], str):
                raise QueryError(f"a field is named by its key (a string), not a JSON "
                                 f"{_json_type(node['field'])}", path=f"{path}.field")
            _operator(node.get("op"), path)
            return
        if len(node) != 1:
            raise QueryError("expected one of 'and', 'or', 'not' or a leaf with 'field'",
                             path=path)
        (combinator, body), = node.items()
        if combinator == "not":
            walk(body, f"{path}.not", depth + 1)
            return
        if combinator not in ("and", "or") or not isinstance(body, list):
            raise QueryError(f"unknown combinator {combinator!r} (expected and/or with a "
                             "list, or not)", path=path)
        for i, child in enumerate(body):
            walk(child, f"{path}.{combinator}[{i}]", depth + 1)

    walk(node, path, 0)


class _Compiler:
    """Validates a filter AST; returns its shape and appends its values to ``values``.

    A leaf's shape is ``("leaf", field, kind, op, (signature of each parameter, …))``;
    nodes are ``("and"|"or", (child, …))`` and ``("not", child)``.
    """

    def __init__(self, fields: FieldSet, dialect: str, values: list[Any] | None = None):
        self.fields, self.dialect, self.nodes = fields, dialect, 0
        self.values = [] if values is None else values

    def node(self, node: Any, path: str, depth: int) -> tuple[Any, ...]:
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
            return ("not", self.node(body, f"{path}.not", depth + 1))
        if combinator not in ("and", "or") or not isinstance(body, list):
            raise QueryError(f"unknown combinator {combinator!r} (expected and/or with a "
                             "list, or not)", path=path)
        return (combinator, tuple([self.node(n, f"{path}.{combinator}[{i}]", depth + 1)
                                   for i, n in enumerate(body)]))

    def leaf(self, node: dict[str, Any], path: str) -> tuple[Any, ...]:
        extra = set(node) - {"field", "op", "value"}
        if extra:
            raise QueryError(f"unexpected key {sorted(extra)[0]!r} in a leaf", path=path)
        acc = self.accessor(node["field"], f"{path}.field")
        op = _operator(node.get("op"), path)
        if op in TEXT_ONLY and not acc.text_ops:
            raise QueryError(f"operator {op!r} needs a text field; {acc.name!r} is not",
                             path=f"{path}.op")
        if acc.links and op not in LINK_OPS:
            raise QueryError(f"operator {op!r} does not apply to {acc.name!r}, a relation "
                             f"to many records (use {', '.join(LINK_OPS)})",
                             path=f"{path}.op")
        if op in ORDERED and acc.kind is not None and acc.kind.key == "boolean":
            raise QueryError(f"operator {op!r} does not apply to the yes/no field "
                             f"{acc.name!r} (use eq or ne)", path=f"{path}.op")
        value = None if op in NO_VALUE else self.value(acc, op, node, f"{path}.value")
        params = _leaf_params(op, value)
        self.values += params
        return ("leaf", acc.name, acc.kind, op, tuple([_sig(p) for p in params]))

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
            return bindable(acc.bind(raw, self.dialect))
        except (ValueError, ArithmeticError) as exc:
            raise QueryError(f"{exc} for field {acc.name!r}", path=path) from None


def bindable(value: Any) -> Any:
    """``value`` as every driver can bind it: text that is valid Unicode (no lone
    surrogate), a finite number, an integer past 64 bits as a float; ``ValueError``."""
    if isinstance(value, str):
        try:
            value.encode()
        except UnicodeEncodeError:
            raise ValueError("text with a lone surrogate is not valid Unicode") from None
    elif isinstance(value, int) and not isinstance(value, bool):
        if not -(2**63) <= value < 2**63:
            try:
                return float(value)
            except OverflowError:
                raise ValueError("the number is too large") from None
    elif isinstance(value, float | Decimal) and not math.isfinite(value):
        raise ValueError("expected a finite number")
    return value


class _Builder:
    """The SQL of a shape: one bind parameter per value, taken from ``values`` in order.

    ``named`` binds are ``q0``, ``q1`` … (the cached statement); otherwise anonymous.
    ``where``: the condition goes straight into a WHERE clause. There a leaf outside any
    ``not`` may be NULL for a blank — WHERE drops NULL as it drops FALSE, and and/or
    without a ``not`` are TRUE on the same rows either way — so only leaves under a
    ``not`` get the ``IS NOT NULL`` guard that makes them two-valued. (On SQLite the
    guard costs a ``json_extract`` per row the index already matched.)
    """

    def __init__(self, fields: FieldSet, dialect: str, values: Sequence[Any], named: bool,
                 where: bool = False):
        self.fields, self.dialect, self.values, self.named, self.next = (
            fields, dialect, values, named, 0)
        self.positive = where  # no ``not`` above the node being built

    def param(self, type_: Any = None) -> BindParameter[Any]:
        """The next value as a bind parameter of ``type_`` (None: typed by its value)."""
        i, self.next = self.next, self.next + 1
        if self.named:
            return bindparam(f"q{i}", self.values[i], type_=type_)
        return bindparam(None, self.values[i], type_=type_, unique=True)

    def compared(self, expr: Any, op: Any = operators.eq) -> BindParameter[Any]:
        """The next value as a bind parameter typed as ``expr <op> value`` types it."""
        return self.param(expr.type.coerce_compared_value(op, self.values[self.next]))

    def node(self, shape: tuple[Any, ...]) -> ColumnElement[bool]:
        tag = shape[0]
        if tag == "leaf":
            return self.leaf(shape)
        if tag == "not":
            positive, self.positive = self.positive, False
            try:
                return not_(self.node(shape[1]))
            finally:
                self.positive = positive
        parts = [self.node(child) for child in shape[1]]
        if not parts:
            return true() if tag == "and" else false()
        return and_(*parts) if tag == "and" else or_(*parts)

    def leaf(self, shape: tuple[Any, ...]) -> ColumnElement[bool]:
        _, name, _kind, op, sigs = shape
        acc = self.fields.accessor(name, self.dialect)
        if acc.links:
            return self.links(acc, op, len(sigs))
        if op in VALUE_TYPED:
            params = [self.param() for _ in sigs]
        else:
            comparator = COMPARATOR.get(op)
            params = []
            for j in range(len(sigs)):
                if op == "between":
                    comparator = operators.ge if j == 0 else operators.le
                params.append(self.compared(acc.expr, comparator))
        condition = OPS[op](acc, params, self.dialect)
        if acc.nullable and op in POSITIVE and not self.positive:
            # Two-valued logic: a blank makes the leaf FALSE (not NULL), so that
            # {"not": …} of it is TRUE, as a user reading the filter expects.
            condition = and_(acc.expr.is_not(None), condition)
        return condition


    def links(self, acc: Accessor, op: str, n: int) -> ColumnElement[bool]:
        """A leaf over a relation to many records: EXISTS a row of ``record_links``
        (its unique index starts with ``source_id``)."""
        link = RecordLink.__table__.c
        ids = [self.compared(link.target_id) for _ in range(n)]
        wanted = [link.source_id == acc.expr,
                  link.field == literal_column(f"'{check_key(acc.name)}'")]
        if op in ("eq", "ne"):
            wanted.append(link.target_id == ids[0])
        elif op in ("in", "not_in"):
            wanted.append(link.target_id.in_(ids) if ids else false())
        found = select(literal_column("1")).where(*wanted).exists()
        return found if op in ("eq", "in", "is_not_empty") else not_(found)


def compile_filter(node: Any, fields: FieldSet, dialect: str, *,
                   where: bool = False) -> ColumnElement[bool]:
    """The SQL condition of a filter AST; ``QueryError`` names the bad part by path.

    It is TRUE or FALSE on every row (never NULL), whatever it is combined with; with
    ``where=True`` it may be NULL where it is not TRUE, for a caller that puts it
    straight into a WHERE clause (cheaper on SQLite: see ``_Builder``)."""
    if node is None:
        return true()
    values: list[Any] = []
    shape = _Compiler(fields, dialect, values).node(node, "filter", 0)
    return _Builder(fields, dialect, values, named=False, where=where).node(shape)


@dataclass(frozen=True)
class TitleSort:
    """Sorting by a relation to one record means by the linked record's title: field
    ``title`` (text) of the target form ``fields``, read only from a live record that
    ``scope`` (a filter over the target form; None: any) lets the reader read — any
    other link sorts as a blank (last), so the order shows nothing the reader may not
    see. The form engine decides where the reader may see the title."""

    fields: FieldSet
    title: str
    scope: Any = None


@dataclass(frozen=True)
class SortKey:
    accessor: Accessor  # for a title sort: the title's kind, named like the relation
    desc: bool
    title: TitleSort | None = None
    relation: Accessor | None = None  # for a title sort: the relation (the linked id)


def _title_key(name: str, relation: Accessor, title: TitleSort, desc: bool,
               dialect: str) -> SortKey:
    shown = title.fields.accessor(title.title, dialect)
    return SortKey(Accessor(name, shown.expr, shown.kind, True, shown.text_ops), desc,
                   title, relation)


def parse_sort(sort: Any, fields: FieldSet, dialect: str,
               titles: Mapping[str, TitleSort] | None = None) -> list[SortKey]:
    """``["-amount", "name"]`` or ``[{"field": …, "dir": "desc"}]`` → keys ending in ``id``;
    a relation named in ``titles`` sorts by the linked record's title (``TitleSort``)."""
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
        acc = compiler.accessor(name, f"sort[{i}]")
        if acc.links:
            raise QueryError(f"{acc.name!r} links to many records: it cannot be sorted by",
                             path=f"sort[{i}]")
        title = (titles or {}).get(acc.name) if acc.kind is not None else None
        keys.append(_title_key(acc.name, acc, title, desc, dialect) if title
                    else SortKey(acc, desc))
        if name == "id":
            return keys
    return [*keys, SortKey(compiler.accessor("id", "sort"), False)]


def order_by(keys: list[SortKey], exprs: Sequence[Any] | None = None) -> list[Any]:
    """The ORDER BY of ``keys``; ``exprs``: the SQL of each key where it is not its
    accessor's (a title sort's sub-select)."""
    out = []
    for i, key in enumerate(keys):
        expr = exprs[i] if exprs is not None else key.accessor.expr
        clause = expr.desc() if key.desc else expr.asc()
        out.append(clause.nulls_last() if key.accessor.nullable else clause)
    return out


def title_select(b: _Builder, key: SortKey, scope: tuple[Any, ...] | None) -> Any:
    """The linked record's title as a sub-select of the page query (NULL where there is
    no live linked record the reader may read); ``scope``: the shape of the target's
    scope filter, its values the builder's next ones."""
    assert key.title is not None and key.relation is not None
    title, records = key.title, Record.__table__
    target = records.alias("linked")
    adapt = ClauseAdapter(target).traverse
    linked = key.relation.expr
    if b.dialect == "postgresql":  # the linked id as bigint: the primary key's index
        linked = cast(json_text(records.c.data, key.accessor.name, b.dialect), BigInteger())
    where = [target.c.id == linked,
             target.c.app == literal_column(f"'{check_key(title.fields.app)}'"),
             target.c.form == literal_column(f"'{check_key(title.fields.form)}'"),
             target.c.deleted_at.is_(None)]
    if scope is not None:
        inner = _Builder(title.fields, b.dialect, b.values, b.named)
        inner.next = b.next
        where.append(adapt(inner.node(scope)))
        b.next = inner.next
    shown = adapt(title.fields.accessor(title.title, b.dialect).expr)
    return select(shown).where(*where).correlate(records).scalar_subquery()


@lru_cache(maxsize=1024)
def _digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def _signature(keys: list[SortKey]) -> str:
    return _digest(",".join([("-" if k.desc else "") + k.accessor.name
                             + ("~title" if k.title else "") for k in keys]))


# json.dumps(…, separators=(",", ":"), ensure_ascii=False), without an encoder per call.
_CURSOR_JSON = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False)


def encode_cursor(keys: list[SortKey], record: Any, titles: Sequence[Any] = ()) -> str:
    """The cursor after ``record``; ``titles``: the value of each title sort key, in order
    (selected with the page: ``Compiled.extra``)."""
    shown = iter(titles)
    payload = {"s": _signature(keys), "v": [next(shown) if k.title else
                                            k.accessor.sort_value(record) for k in keys]}
    raw = _CURSOR_JSON.encode(payload).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str, keys: list[SortKey], dialect: str) -> list[Any]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        payload = json.loads(raw)
        values = payload["v"]
        assert payload["s"] == _signature(keys) and len(values) == len(keys)
        return [None if v is None else bindable(k.accessor.bind(v, dialect))
                for k, v in zip(keys, values, strict=True)]
    except (binascii.Error, ValueError, ArithmeticError, KeyError, TypeError,
            AssertionError, RecursionError):
        raise QueryError("not a cursor of this query (it was made for another sort, "
                         "or is damaged)", path="cursor") from None


def _after(keys: list[SortKey], params: list[Any],
           exprs: Sequence[Any] | None = None) -> ColumnElement[bool]:
    """Rows strictly after the cursor row; ``params``: a bind per key, None for a blank;
    ``exprs`` as for ``order_by``."""
    if not keys:
        return false()
    exprs = exprs if exprs is not None else [k.accessor.expr for k in keys]
    key, value, rest = keys[0], params[0], _after(keys[1:], params[1:], exprs[1:])
    expr = exprs[0]
    if value is None:
        return and_(expr.is_(None), rest)
    beyond = expr < value if key.desc else expr > value
    # the last key (id) has no ties: ``OR 0 = 1`` would keep SQLite from seeking to it
    parts = [beyond, and_(expr == value, rest)] if len(keys) > 1 else [beyond]
    if key.accessor.nullable:
        parts.append(expr.is_(None))
    return or_(*parts)


def split(keys: list[SortKey]) -> bool:
    """Whether pages of this sort are read in two *regions*: the rows whose first key has
    a value, then those where it is blank. Blanks sort last, so one statement for both
    needs ``… OR <key> IS NULL`` after a cursor, which no index can seek (a deep page
    read the whole form: 300 ms at 200,000 records). A region is one index range."""
    return keys[0].accessor.nullable and keys[0].title is None


def _keyset(keys: list[SortKey], params: list[Any], exprs: Sequence[Any],
            region: str | None) -> ColumnElement[bool]:
    """Rows after the cursor row, within ``region`` (``split``): ``value`` — the first
    key has a value (it is not blank in the cursor either); ``blank`` — it is blank
    (``IS NULL`` is in the WHERE clause); None — no regions (the first key cannot be
    blank, or is a title's sub-select).

    The first key's value bounds the rows from one side (``key >= v`` ascending,
    ``<= v`` descending) besides the exact condition, so the database seeks its index to
    the cursor and reads on from there; only the cursor's ties are filtered row by row.
    """
    if region == "blank":
        return _after(keys[1:], params[1:], exprs[1:])
    key, value, expr = keys[0], params[0], exprs[0]
    if value is None or len(keys) == 1:
        return _after(keys, params, exprs)
    reach = expr <= value if key.desc else expr >= value
    beyond = expr < value if key.desc else expr > value
    cond = and_(reach, or_(beyond, and_(expr == value,
                                        _after(keys[1:], params[1:], exprs[1:]))))
    if region is None and key.accessor.nullable:  # a title sort: its blanks come next
        return or_(cond, expr.is_(None))
    return cond


def _region_order(keys: list[SortKey], exprs: Sequence[Any], region: str | None,
                  dialect: str) -> list[Any]:
    """The ORDER BY within a region: in ``value`` the first key has no blanks to place
    (plain ASC/DESC is the order an index scan gives on both databases; PostgreSQL's
    backward scan gives DESC NULLS FIRST, which NULLS LAST would make a full sort); in
    ``blank`` the first key is constant and left out — on PostgreSQL it stays, in the
    direction of the key after it: PostgreSQL does not take ``IS NULL`` as fixing a
    column, so the tie-breakers alone would not match the field's (key, id) index and
    every blank would be read and sorted for a page (bench/store.py's deep pages: 2,000
    blanks for 31 rows)."""
    order = order_by(keys, exprs)
    if region == "value":
        order[0] = exprs[0].desc() if keys[0].desc else exprs[0].asc()
    elif region == "blank" and dialect == "postgresql" and len(keys) > 1:
        order[0] = exprs[0].desc() if keys[1].desc else exprs[0].asc()
    elif region == "blank":
        order = order[1:]
    return order


def excludes_blanks(shape: tuple[Any, ...] | None, name: str) -> bool:
    """Whether the filter ``shape`` is FALSE wherever field ``name`` is blank (a positive
    leaf on it in every branch): the blank region of a sort by it is then empty."""
    if shape is None:
        return False
    tag = shape[0]
    if tag == "leaf":
        return shape[1] == name and (shape[3] in POSITIVE or shape[3] == "is_not_empty")
    if tag == "and":
        return any(excludes_blanks(child, name) for child in shape[1])
    if tag == "or":
        return bool(shape[1]) and all(excludes_blanks(child, name) for child in shape[1])
    return False


def after_cursor(keys: list[SortKey], values: list[Any]) -> ColumnElement[bool]:
    """Rows strictly after the cursor row in ``order_by(keys)`` order (blanks last)."""
    # A bound parameter of the key's type (also for True/False).
    return _after(keys, [None if v is None else literal(v, k.accessor.expr.type)
                         for k, v in zip(keys, values, strict=True)])


_RECORDS = Record.__table__.c


def this_form(fields: FieldSet) -> tuple[ColumnElement[bool], ColumnElement[bool]]:
    """``app = '…' AND form = '…'`` with the (checked) keys written into the SQL, not
    bound: a form's field indexes are partial (its own rows), and a database proves that
    an index applies from the statement's text — SQLite would otherwise re-prepare the
    statement with the bound values on every run, and PostgreSQL could not use the index
    in a generic plan. The cached shapes are per form already."""
    return (_RECORDS.app == literal_column(f"'{check_key(fields.app)}'"),
            _RECORDS.form == literal_column(f"'{check_key(fields.form)}'"))
# What a page selects. ``app`` and ``form`` are the query's own (they are in the WHERE
# clause) and ``deleted_at`` is NULL when deleted records are excluded: not transferred.
PAGE_COLUMNS = ("id", "data", "schema_version", "row_version", "owner_id", "department_id",
                "created_at", "created_by", "updated_at", "updated_by")


def _document_bytes(dialect: str) -> ColumnElement[Any]:
    """``data`` as the UTF-8 bytes of its JSON text: the driver makes no str or dict of
    it, and the page's documents are decoded together (``db.loads_many``)."""
    if dialect == "postgresql":
        text = func.convert_to(cast(_RECORDS.data, Text()), literal_column("'UTF8'"))
        return text.label("data")
    return cast(_RECORDS.data, LargeBinary()).label("data")


@dataclass(frozen=True)
class _Plan:
    """A validated query: its cache key, its values (in bind order), its sort keys."""

    key: tuple[Any, ...]
    values: list[Any]
    keys: list[SortKey]
    filter: tuple[Any, ...] | None
    cursor: tuple[bool, ...] | None  # per sort key: is the cursor's value blank
    scopes: tuple[Any, ...] = ()  # per title sort key: the shape of its scope filter
    region: str | None = None  # "value" | "blank" when the sort is ``split``
    n_cursor: int = 0  # how many of ``values`` are the cursor's (before the limit)

    def blanks(self, rows: int | None = None) -> _Plan:
        """The plan of the blank region from its start: the rest of a page that reached
        the end of the ``value`` region (``rows``: how many it still wants, default a
        whole page and one)."""
        assert self.region == "value"
        end = len(self.values) - 1 - self.n_cursor
        return _Plan((*self.key, "blanks"), [*self.values[:end], rows or self.values[-1]],
                     self.keys, self.filter, None, self.scopes, "blank")

    def statement(self, query: Query, dialect: str, named: bool) -> Select[Any]:
        """The page's SELECT. Values are bound in this order: app, form, the title sorts'
        scopes, the filter, the cursor, the limit (``Query.plan`` lists them so)."""
        b = _Builder(query.fields, dialect, self.values, named, where=True)
        columns: list[Any] = [_RECORDS[c] for c in PAGE_COLUMNS]
        columns[1] = _document_bytes(dialect)
        if query.deleted != "exclude":
            columns.append(_RECORDS.deleted_at)
        b.next += 2  # app and form: written into the SQL (``this_form``), not bound
        scopes = iter(self.scopes)
        exprs = [title_select(b, k, next(scopes)) if k.title else k.accessor.expr
                 for k in self.keys]
        columns += [e.label(f"sort_{i}") for i, (k, e) in enumerate(zip(
            self.keys, exprs, strict=True)) if k.title]
        stmt = select(*columns).where(*this_form(query.fields))
        if self.filter is not None:
            stmt = stmt.where(b.node(self.filter))
        if query.deleted == "exclude":
            stmt = stmt.where(_RECORDS.deleted_at.is_(None))
        elif query.deleted == "only":
            stmt = stmt.where(_RECORDS.deleted_at.is_not(None))
        if self.region == "blank":
            stmt = stmt.where(exprs[0].is_(None))
        elif self.region == "value" and self.cursor is None:
            stmt = stmt.where(exprs[0].is_not(None))  # (after a cursor: its bound says so)
        if self.cursor is not None:
            params = [None if blank else b.param(k.accessor.expr.type)
                      for k, blank in zip(self.keys, self.cursor, strict=True)]
            stmt = stmt.where(_keyset(self.keys, params, exprs, self.region))
        limit = b.param(Integer())
        assert b.next == len(self.values), "the shape and its values disagree"
        return stmt.order_by(*_region_order(self.keys, exprs, self.region, dialect)).limit(limit)


@dataclass(frozen=True)
class Compiled:
    """The cached SQL of one query shape, and how to lay out a call's values for it.

    ``layout`` has one ``(value index, bind processor, constant)`` per driver parameter
    (positional) or ``(name, value index, bind processor, constant)`` (named); a
    constant of the SQL (an index of None) was processed when the shape was compiled.
    """

    sql: str
    positional: bool
    layout: tuple[tuple[Any, ...], ...]
    columns: tuple[str, ...]
    binary: bool  # fetch in binary format (psycopg): no text formatting of timestamps
    extra: int = 0  # the last columns are title sort values (for the cursor), not records
    then_blanks: bool = False  # a short page goes on with the blank region (``split``)

    def params(self, values: list[Any]) -> Any:
        if self.positional:
            return tuple([const if i is None else proc(values[i]) if proc else values[i]
                          for i, proc, const in self.layout])
        return {name: const if i is None else proc(values[i]) if proc else values[i]
                for name, i, proc, const in self.layout}


def _compile(stmt: Select[Any], dialect: Dialect, n_values: int) -> Compiled:
    compiled = stmt.compile(dialect=dialect)
    if compiled.literal_execute_params or compiled.post_compile_params:
        raise AssertionError("a cached query shape must not need per-call SQL rendering")
    ours = {f"q{i}": i for i in range(n_values)}
    by_name = {name: bind for bind, name in compiled.bind_names.items()}
    names = compiled.positiontup if compiled.positional else list(by_name)
    assert names is not None
    escaped = compiled.escaped_bind_names or {}
    first = compiled.construct_params(escape_names=False)  # constants (drop this call's values)
    layout = []
    for name in names:
        bind = by_name[name]
        proc = bind.type.dialect_impl(dialect).bind_processor(dialect)
        i = ours.get(name)
        const = None
        if i is None:
            const = proc(first[name]) if proc else first[name]
        entry = (i, proc, const)
        layout.append(entry if compiled.positional else (escaped.get(name, name), *entry))
    columns = tuple(c.name for c in stmt.selected_columns)
    binary = dialect.driver == "psycopg"
    extra = sum(1 for c in columns if c.startswith("sort_"))
    return Compiled(compiled.string, compiled.positional, tuple(layout), columns, binary,
                    extra)


class ShapeCache:
    """A bounded, thread-safe LRU map: query shape → ``Compiled``."""

    def __init__(self, size: int = CACHE_SIZE):
        self.size = size
        self._entries: OrderedDict[tuple[Any, ...], Compiled] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: tuple[Any, ...]) -> Compiled | None:
        with self._lock:
            entry = self._entries.get(key)
            if entry is not None:
                self._entries.move_to_end(key)
            return entry

    def put(self, key: tuple[Any, ...], entry: Compiled) -> None:
        with self._lock:
            self._entries[key] = entry
            self._entries.move_to_end(key)
            while len(self._entries) > self.size:
                self._entries.popitem(last=False)

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()

    def __len__(self) -> int:
        return len(self._entries)


SHAPES = ShapeCache()


def _dialect_key(dialect: Dialect) -> tuple[Any, ...]:
    return (dialect.name, dialect.driver, dialect.paramstyle, dialect.server_version_info)


@dataclass(frozen=True)
class Query:
    """A validated list query over one form: filter, sort, cursor, page size."""

    fields: FieldSet
    filter: Any = None
    sort: Any = None
    cursor: str | None = None
    limit: int = 50
    deleted: str = "exclude"  # exclude | only | include
    titles: Mapping[str, TitleSort] | None = None  # relations sorted by the linked title

    def plan(self, dialect: str, dialect_key: Any = None) -> _Plan:
        """Validate (every call: the errors don't depend on any cache) and take the shape."""
        if not isinstance(self.limit, int) or not 1 <= self.limit <= MAX_LIMIT:
            raise QueryError(f"limit must be 1..{MAX_LIMIT}", path="limit")
        if self.deleted not in ("exclude", "only", "include"):
            raise QueryError("deleted must be exclude, only or include", path="deleted")
        keys = parse_sort(self.sort, self.fields, dialect, self.titles)
        values: list[Any] = [self.fields.app, self.fields.form]
        scopes = tuple([None if k.title.scope is None else _Compiler(
            k.title.fields, dialect, values).node(k.title.scope, "scope", 0)
            for k in keys if k.title])
        shape = (None if self.filter is None else
                 _Compiler(self.fields, dialect, values).node(self.filter, "filter", 0))
        cursor, n_cursor = None, 0
        if self.cursor:
            after = decode_cursor(self.cursor, keys, dialect)
            cursor = tuple([v is None for v in after])
            given = [v for v in after if v is not None]
            values += given
            n_cursor = len(given)
        values.append(self.limit + 1)
        region = None
        if split(keys) and (cursor is not None or dialect == "postgresql"):
            # A first page on SQLite stays one statement over both regions: its
            # ``ASC NULLS LAST`` seeks past the blanks (which an ascending index holds
            # first) and DESC holds them last; an expression's IS NOT NULL is no seek
            # there. PostgreSQL's backward scan holds them first: DESC NULLS LAST
            # sorted the whole form (170 ms at 200,000 records).
            region = "blank" if cursor is not None and cursor[0] else "value"
        sort = tuple([(k.accessor.name, k.accessor.kind, k.desc) + (
            (k.title.fields.form, k.title.title) if k.title else ()) for k in keys])
        key = (dialect_key or dialect, self.fields.app, self.fields.form, shape, sort,
               scopes, cursor, self.limit, self.deleted)
        return _Plan(key, values, keys, shape, cursor, scopes, region, n_cursor)

    def select(self, dialect: str) -> tuple[Select[Any], list[SortKey]]:
        """The SELECT ``query_records`` runs (values bound, uncached) and its sort keys."""
        plan = self.plan(dialect)
        return plan.statement(self, dialect, named=True), plan.keys

    def blanks_select(self, dialect: str) -> Select[Any] | None:
        """The SELECT of the blank region that ``query_records`` runs after a short page
        of ``select`` (values bound, uncached); None where it never does."""
        plan = self.plan(dialect)
        if plan.region != "value" or excludes_blanks(plan.filter, plan.keys[0].accessor.name):
            return None
        return plan.blanks().statement(self, dialect, named=True)

    def compiled(self, dialect: Dialect) -> tuple[Compiled, Any, list[SortKey]]:
        """The cached SQL of this query's shape, the driver parameters, the sort keys.

        With ``Compiled.then_blanks`` a page that comes back short goes on with
        ``blanks_compiled``: the rows where the first sort key is blank."""
        plan = self.plan(dialect.name, _dialect_key(dialect))
        entry = self._entry(plan, dialect)
        return entry, entry.params(plan.values), plan.keys

    def blanks_compiled(self, dialect: Dialect, rows: int) -> tuple[Compiled, Any]:
        """The cached SQL of the blank region from its start, and its parameters for its
        first ``rows`` rows."""
        plan = self.plan(dialect.name, _dialect_key(dialect)).blanks(rows)
        entry = self._entry(plan, dialect)
        return entry, entry.params(plan.values)

    def _entry(self, plan: _Plan, dialect: Dialect) -> Compiled:
        entry = SHAPES.get(plan.key)
        if entry is None:
            stmt = plan.statement(self, dialect.name, named=True)
            entry = _compile(stmt, dialect, len(plan.values))
            if plan.region == "value" and not excludes_blanks(
                    plan.filter, plan.keys[0].accessor.name):
                entry = replace(entry, then_blanks=True)
            SHAPES.put(plan.key, entry)
        return entry


_ENGINE_LOG = logging.getLogger("sqlalchemy.engine")


def _observed(conn: Connection) -> bool:
    """Whether someone watches statements (echo, logging, cursor events, error hooks)."""
    return bool(conn.engine.echo or _ENGINE_LOG.isEnabledFor(logging.INFO)
                or conn.dispatch.before_cursor_execute or conn.dispatch.after_cursor_execute
                or conn.dialect.dispatch.handle_error)


def fetch(conn: Connection, sql: str, params: Any, *, binary: bool = False) -> list[Any]:
    """Run ``sql`` on ``conn`` (in its transaction) on a DB-API cursor; all the rows.

    SQLAlchemy's per-call statement work (execution context, result metadata, rows) is
    skipped; errors are wrapped as SQLAlchemy wraps them (``DBAPIError`` subclasses, a
    lost connection invalidated). When statements are observed it runs the SQL through
    ``exec_driver_sql`` so that logging and events see it (in text format: the same
    values).
    """
    if _observed(conn):
        return list(conn.exec_driver_sql(sql, params))
    dbapi_conn = conn.connection.dbapi_connection
    assert dbapi_conn is not None
    cursor = dbapi_conn.cursor(binary=True) if binary else dbapi_conn.cursor()
    try:
        cursor.execute(sql, params)
        return cursor.fetchall()
    except conn.dialect.loaded_dbapi.Error as exc:
        lost = conn.dialect.is_disconnect(exc, dbapi_conn, cursor)
        wrapped = DBAPIError.instance(sql, params, exc, conn.dialect.loaded_dbapi.Error,
                                      connection_invalidated=lost, dialect=conn.dialect)
        if lost:
            conn.invalidate(exc)
        raise wrapped from exc
    finally:
        with suppress(Exception):  # a broken connection: the error above is what counts
            cursor.close()
