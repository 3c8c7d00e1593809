"""Property: for random records and random filter trees / sorts, the SQL the store
compiles returns exactly what a plain-Python reading of the same query returns."""

from __future__ import annotations

import functools
from decimal import Decimal
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import delete

from platform_core.models import OutboxEvent, Record
from platform_core.store import SYSTEM, FieldSet, Query, create_records, ensure_index, query_records

FIELDS = FieldSet("prop", "item", {"name": "text", "city": "text", "amount": "money",
                                   "n": "number", "day": "date", "flag": "boolean"})

TEXTS = st.sampled_from(["", "a", "ab", "abc", "B", "b", "张三", "张三丰", "北京", "z%_", "Ab"])
VALUES = {
    "name": TEXTS,
    "city": st.sampled_from(["北京", "上海", "深圳", "beijing", ""]),
    "amount": st.sampled_from(["0.00", "0.01", "12.50", "99.99", "100.00", "1000000.00",
                               "-5.25"]),
    "n": st.one_of(st.integers(-3, 3), st.sampled_from([0.5, 2.25, -1.5, 1e6])),
    "day": st.sampled_from(["2024-02-28", "2024-02-29", "2024-03-01", "2023-12-31"]),
    "flag": st.booleans(),
}
RECORD = st.fixed_dictionaries({}, optional=VALUES)
COMPARE = ["eq", "ne", "gt", "gte", "lt", "lte"]
OPS_BY_FIELD = {key: COMPARE + ["in", "not_in", "between", "is_empty", "is_not_empty"]
                for key in VALUES}
OPS_BY_FIELD["name"] += ["contains", "starts_with"]
OPS_BY_FIELD["city"] += ["contains", "starts_with"]
OPS_BY_FIELD["flag"] = ["eq", "ne", "in", "not_in", "is_empty", "is_not_empty"]


@st.composite
def leaves(draw: st.DrawFn) -> dict[str, Any]:
    field = draw(st.sampled_from(sorted(VALUES)))
    op = draw(st.sampled_from(OPS_BY_FIELD[field]))
    leaf: dict[str, Any] = {"field": field, "op": op}
    if op in ("in", "not_in"):
        leaf["value"] = draw(st.lists(VALUES[field], max_size=3))
    elif op == "between":
        leaf["value"] = sorted(draw(st.lists(VALUES[field], min_size=2, max_size=2)),
                               key=lambda v: _typed(field, v))
    elif op not in ("is_empty", "is_not_empty"):
        leaf["value"] = draw(VALUES[field])
    return leaf


FILTERS = st.recursive(
    leaves(),
    lambda inner: st.one_of(
        st.builds(lambda xs: {"and": xs}, st.lists(inner, max_size=3)),
        st.builds(lambda xs: {"or": xs}, st.lists(inner, max_size=3)),
        st.builds(lambda x: {"not": x}, inner)),
    max_leaves=6)


def _typed(field: str, value: Any) -> Any:
    if value is None:
        return None
    return Decimal(value) if field == "amount" else value


def matches(node: dict[str, Any], data: dict[str, Any]) -> bool:
    """The reference semantics of docs/query.md, in plain Python."""
    if "and" in node:
        return all(matches(n, data) for n in node["and"])
    if "or" in node:
        return any(matches(n, data) for n in node["or"])
    if "not" in node:
        return not matches(node["not"], data)
    field, op = node["field"], node["op"]
    v = _typed(field, data.get(field))
    p = node.get("value")
    p = [_typed(field, x) for x in p] if isinstance(p, list) else _typed(field, p)
    blank = v is None or (FIELDS.kinds[field] == "text" and v == "")
    if op == "is_empty":
        return blank
    if op == "is_not_empty":
        return not blank
    if op == "ne":
        return v is None or v != p
    if op == "not_in":
        return v is None or v not in p
    if v is None:
        return False
    return {"eq": lambda: v == p, "gt": lambda: v > p, "gte": lambda: v >= p,
            "lt": lambda: v < p, "lte": lambda: v <= p, "in": lambda: v in p,
            "between": lambda: p[0] <= v <= p[1], "contains": lambda: p in v,
            "starts_with": lambda: v.startswith(p)}[op]()


def python_order(rows: list[tuple[int, dict[str, Any]]], sort: list[str]) -> list[int]:
    def cmp(a: tuple[int, dict[str, Any]], b: tuple[int, dict[str, Any]]) -> int:
        for key in sort:
            field, desc = key.lstrip("-"), key.startswith("-")
            x, y = _typed(field, a[1].get(field)), _typed(field, b[1].get(field))
            if x == y:
                continue
            if x is None or y is None:
                return 1 if x is None else -1  # blanks last, both directions
            return (1 if x > y else -1) * (-1 if desc else 1)
        return a[0] - b[0]
    return [rid for rid, _ in sorted(rows, key=functools.cmp_to_key(cmp))]


def _insert(db, records: list[dict[str, Any]]) -> list[int]:
    with db.write() as s:
        ensure_index(s, FIELDS, "city")
        ensure_index(s, FIELDS, "amount")
        return create_records(s, app="prop", form="item", items=records, actor=SYSTEM)


def _clean(db) -> None:
    with db.write() as s:
        s.execute(delete(OutboxEvent))
        s.execute(delete(Record))


SETTINGS = settings(max_examples=150, deadline=None,
                    suppress_health_check=[HealthCheck.function_scoped_fixture,
                                           HealthCheck.too_slow])


@SETTINGS
@given(records=st.lists(RECORD, max_size=20), filters=st.lists(FILTERS, min_size=1,
                                                               max_size=4))
def test_filter_sql_equals_python(db, records, filters):
    ids = _insert(db, records)
    try:
        with db.read() as s:
            for node in filters:
                got = sorted(r.id for r in query_records(s, Query(FIELDS, filter=node,
                                                                  limit=1000)).records)
                want = sorted(i for i, data in zip(ids, records, strict=True)
                              if matches(node, data))
                assert got == want, node
    finally:
        _clean(db)


SORT_KEYS = st.lists(st.sampled_from(sorted(VALUES)), min_size=1, max_size=3, unique=True)


def _paged_ids(db, **query) -> list[int]:  # noqa: ANN001
    """The ids of every page of ``Query(FIELDS, **query)``, following the cursors."""
    seen: list[int] = []
    cursor = None
    with db.read() as s:
        while True:
            result = query_records(s, Query(FIELDS, cursor=cursor, **query))
            seen += [r.id for r in result.records]
            if result.next_cursor is None:
                return seen
            cursor = result.next_cursor


@SETTINGS
@given(records=st.lists(RECORD, max_size=20), keys=SORT_KEYS,
       desc=st.lists(st.booleans(), min_size=3, max_size=3), page=st.integers(1, 7))
def test_sorted_keyset_pages_equal_python_order(db, records, keys, desc, page):
    sort = [("-" if d else "") + k for k, d in zip(keys, desc, strict=False)]
    ids = _insert(db, records)
    try:
        seen = _paged_ids(db, sort=sort, limit=page)
        assert seen == python_order(list(zip(ids, records, strict=True)), sort)
    finally:
        _clean(db)


@SETTINGS
@given(records=st.lists(RECORD, max_size=20), node=FILTERS, keys=SORT_KEYS,
       desc=st.lists(st.booleans(), min_size=3, max_size=3), page=st.integers(1, 7))
def test_filtered_keyset_pages_equal_python_order(db, records, node, keys, desc, page):
    """Pages of a filter and a sort — blanks of the first key read as a second region
    unless the filter rules them out — are the filtered rows in the full sort's order."""
    sort = [("-" if d else "") + k for k, d in zip(keys, desc, strict=False)]
    ids = _insert(db, records)
    try:
        seen = _paged_ids(db, filter=node, sort=sort, limit=page)
        kept = [(i, data) for i, data in zip(ids, records, strict=True) if matches(node, data)]
        assert seen == python_order(kept, sort), node
    finally:
        _clean(db)
