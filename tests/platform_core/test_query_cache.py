"""The list-query path caches SQL per query *shape*: values never leak from one call into
another, shapes never collide, and pages are what the uncached statement returns."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest
from sqlalchemy import event
from sqlalchemy.exc import DBAPIError

from platform_core import db as db_module
from platform_core.db import loads, loads_many
from platform_core.errors import QueryError
from platform_core.models import Record
from platform_core.store import (
    SYSTEM,
    Actor,
    FieldSet,
    Query,
    RecordRow,
    create_records,
    delete_record,
    get_record,
    query_records,
    update_record,
)
from platform_core.store import query as query_module
from platform_core.store.query import SHAPES, ShapeCache, fetch

LOANS = FieldSet("crm", "loan", {"city": "text", "amount": "money", "term": "number",
                                 "signed": "date", "secured": "boolean", "at": "datetime"})
CITIES = ["北京", "上海", "广州", "深圳"]
ALICE = Actor(user_id=7, department_id=3, name="alice")


def _seed(db, n: int = 24) -> list[int]:
    items = [{"city": CITIES[i % 4], "amount": f"{100 + i}.50", "term": i % 5,
              "signed": f"2024-01-{1 + i % 28:02d}", "secured": i % 2 == 0}
             for i in range(n)]
    if n > 5:
        items[3]["city"] = None
        del items[5]["term"]
    with db.write() as s:
        return create_records(s, app="crm", form="loan", items=items, actor=ALICE)


def _ids(s, **kwargs) -> list[int]:
    return [r.id for r in query_records(s, Query(LOANS, **kwargs)).records]


def _reference(s, query: Query) -> list[tuple]:
    """The page as the uncached statement returns it through SQLAlchemy (no cache)."""
    stmt, _ = query.select(s.get_bind().dialect.name)
    rows = s.execute(stmt).all()
    blanks = query.blanks_select(s.get_bind().dialect.name)
    if blanks is not None and len(rows) <= query.limit:  # the page goes on with the blanks
        rows += s.execute(blanks).all()
    rows = rows[: query.limit]
    out = []
    for row in rows:
        values = dict(row._mapping)
        values["data"] = json.loads(bytes(values["data"]))
        values.setdefault("deleted_at", None)
        out.append(tuple(values[f] for f in RecordRow.__slots__ if f not in ("app", "form")))
    return out


def _plain(records: list[RecordRow]) -> list[tuple]:
    return [tuple(getattr(r, f) for f in RecordRow.__slots__ if f not in ("app", "form"))
            for r in records]


def test_the_same_shape_with_other_values_returns_its_own_rows(db):
    ids = _seed(db)
    with db.read() as s:
        by_city = {c: _ids(s, filter={"field": "city", "op": "eq", "value": c},
                           sort=["id"], limit=100) for c in CITIES}
        shapes = len(SHAPES)
        # Same shape again, values in another order: still each its own rows.
        for c in reversed(CITIES):
            assert _ids(s, filter={"field": "city", "op": "eq", "value": c}, sort=["id"],
                        limit=100) == by_city[c]
        assert len(SHAPES) == shapes  # no new shape: the SQL was reused
    for c in CITIES:
        assert by_city[c] == [rid for i, rid in enumerate(ids) if i != 3 and i % 4 ==
                              CITIES.index(c)]
    # and the cached SQL holds none of the values
    for entry in list(SHAPES._entries.values()):
        assert not any(c in entry.sql for c in CITIES)


def test_values_of_every_kind_are_bound_per_call(db):
    ids = _seed(db)
    cases = [
        ({"field": "amount", "op": "gte", "value": "120.50"}, lambda i: 100 + i >= 120),
        ({"field": "amount", "op": "gte", "value": "110.50"}, lambda i: 100 + i >= 110),
        ({"field": "term", "op": "eq", "value": 2}, lambda i: i != 5 and i % 5 == 2),
        ({"field": "term", "op": "eq", "value": 3}, lambda i: i != 5 and i % 5 == 3),
        ({"field": "term", "op": "eq", "value": 3.0}, lambda i: i != 5 and i % 5 == 3),
        ({"field": "secured", "op": "eq", "value": True}, lambda i: i % 2 == 0),
        ({"field": "secured", "op": "eq", "value": False}, lambda i: i % 2 == 1),
        ({"field": "signed", "op": "between", "value": ["2024-01-03", "2024-01-05"]},
         lambda i: 3 <= 1 + i % 28 <= 5),
        ({"field": "signed", "op": "between", "value": ["2024-01-10", "2024-01-11"]},
         lambda i: 10 <= 1 + i % 28 <= 11),
        ({"field": "city", "op": "starts_with", "value": "北"},
         lambda i: i != 3 and i % 4 == 0),
        ({"field": "city", "op": "starts_with", "value": "上海"},
         lambda i: i != 3 and i % 4 == 1),
        ({"field": "city", "op": "contains", "value": "州"}, lambda i: i != 3 and i % 4 == 2),
        ({"field": "id", "op": "gt", "value": ids[20]}, lambda i: i > 20),
        ({"field": "id", "op": "gt", "value": ids[10]}, lambda i: i > 10),
    ]
    with db.read() as s:
        for _round in range(2):  # cold, then warm cache
            for node, want in cases:
                got = _ids(s, filter=node, sort=["id"], limit=100)
                assert got == [rid for i, rid in enumerate(ids) if want(i)], node


def test_in_lists_of_any_length_reuse_padded_shapes(db):
    ids = _seed(db)
    with db.read() as s:
        for n in range(0, 9):
            values = list(range(n))
            got = _ids(s, filter={"field": "term", "op": "in", "value": values}, sort=["id"],
                       limit=100)
            assert got == [rid for i, rid in enumerate(ids) if i != 5 and i % 5 in values]
            got = _ids(s, filter={"field": "term", "op": "not_in", "value": values},
                       sort=["id"], limit=100)
            assert got == [rid for i, rid in enumerate(ids) if i == 5 or i % 5 not in values]
    assert query_module._padded([1, 2, 3]) == [1, 2, 3, 3]
    assert query_module._padded([1]) == [1] and query_module._padded([]) == []


def test_different_shapes_do_not_collide(db):
    _seed(db)
    city = {"field": "city", "op": "eq", "value": "北京"}
    with db.read() as s:
        results = {
            "eq": _ids(s, filter=city, sort=["id"], limit=100),
            "ne": _ids(s, filter={**city, "op": "ne"}, sort=["id"], limit=100),
            "not": _ids(s, filter={"not": city}, sort=["id"], limit=100),
            "desc": _ids(s, filter=city, sort=["-id"], limit=100),
            "limit": _ids(s, filter=city, sort=["id"], limit=2),
            "and": _ids(s, filter={"and": [city, {"field": "term", "op": "gte", "value": 2}]},
                        sort=["id"], limit=100),
            "or": _ids(s, filter={"or": [city, {"field": "term", "op": "gte", "value": 2}]},
                       sort=["id"], limit=100),
        }
        assert results["ne"] == results["not"]
        assert results["desc"] == results["eq"][::-1]
        assert results["limit"] == results["eq"][:2]
        assert not set(results["eq"]) & set(results["ne"])
        assert set(results["and"]) < set(results["eq"]) < set(results["or"])


def test_a_field_of_another_kind_is_another_shape(db):
    """Same app, form, field and operator, another value kind: other SQL."""
    with db.write() as s:
        ids = create_records(s, app="crm", form="mixed",
                             items=[{"v": "10"}, {"v": "9"}, {"v": "100"}], actor=SYSTEM)
    as_text = FieldSet("crm", "mixed", {"v": "text"})
    as_money = FieldSet("crm", "mixed", {"v": "money"})
    with db.read() as s:
        for _ in range(2):
            text_order = [r.id for r in query_records(s, Query(as_text, sort=["v"])).records]
            money_order = [r.id for r in query_records(s, Query(as_money, sort=["v"])).records]
            assert text_order == [ids[0], ids[2], ids[1]]  # "10" < "100" < "9"
            assert money_order == [ids[1], ids[0], ids[2]]  # 9 < 10 < 100


def test_deleted_modes_are_distinct_shapes(db):
    ids = _seed(db, 4)
    with db.write() as s:
        delete_record(s, ids[1], actor=SYSTEM)
    with db.read() as s:
        for _ in range(2):
            assert _ids(s, sort=["id"]) == [ids[0], ids[2], ids[3]]
            assert _ids(s, sort=["id"], deleted="only") == [ids[1]]
            assert _ids(s, sort=["id"], deleted="include") == ids


@pytest.mark.parametrize("sort", [["id"], ["-id"], ["city", "-id"], ["-amount"], ["term"],
                                  ["-signed", "city"], ["secured", "-term"], ["-updated_at"]])
def test_cursor_pages_equal_the_uncached_statement(db, sort):
    ids = _seed(db)
    with db.write() as s:  # some blanks and a later update, for the cursor's blank branches
        update_record(s, ids[7], changes={"amount": None, "term": None}, expected_version=1,
                      actor=ALICE)
    for cold in (True, False):
        if cold:
            SHAPES.clear()
        seen: list[int] = []
        cursor = None
        with db.read() as s:
            while True:
                query = Query(LOANS, sort=sort, cursor=cursor, limit=5)
                page = query_records(s, query)
                assert _plain(page.records) == _reference(s, query)
                seen += [r.id for r in page.records]
                if page.next_cursor is None:
                    break
                cursor = page.next_cursor
        assert sorted(seen) == sorted(ids) and len(seen) == len(ids)


def test_rows_equal_what_get_record_returns(db):
    ids = _seed(db, 6)
    with db.write() as s:
        update_record(s, ids[2], changes={"city": "杭州"}, expected_version=1, actor=ALICE,
                      schema_version=3)
        delete_record(s, ids[4], actor=ALICE)
    with db.read() as s:
        page = query_records(s, Query(LOANS, sort=["id"], deleted="include"))
        assert [r.id for r in page.records] == ids
        for row in page.records:
            assert type(row) is RecordRow
            rec = get_record(s, row.id, include_deleted=True)
            for name in RecordRow._fields:
                got, want = getattr(row, name), getattr(rec, name)
                assert got == want and type(got) is type(want), name
                if isinstance(want, datetime):  # aware on PostgreSQL, as the ORM reads it
                    assert got.tzinfo == want.tzinfo
                    assert got.utcoffset() == want.utcoffset()
        assert page.records[2].row_version == 2 and page.records[2].schema_version == 3
        assert page.records[2].updated_at > page.records[2].created_at
        assert page.records[4].deleted_at is not None
        assert all(r.deleted_at is None for i, r in enumerate(page.records) if i != 4)
        if db.dialect == "postgresql":
            assert page.records[0].created_at.tzinfo is not None


def test_record_rows_are_read_only(db):
    _seed(db, 2)
    with db.read() as s:
        row = query_records(s, Query(LOANS)).records[0]
    with pytest.raises(AttributeError):
        row.id = 5  # type: ignore[misc]
    assert row == RecordRow(*(getattr(row, f) for f in RecordRow._fields))
    assert row._asdict()["data"] == row.data


def test_huge_numbers_and_unicode_come_back_exactly(db):
    doc = {"big": 123456789012345678901234567890, "neg": -9223372036854775809,
           "u64": 18446744073709551615, "f": 0.1, "e": 1.5e300, "nested": {"l": [2**70, 1.5]},
           "text": "北京 \u00e9 \U0001f600", "t": True, "n": None}
    with db.write() as s:
        (rid,) = create_records(s, app="crm", form="loan", items=[doc], actor=SYSTEM)
    with db.read() as s:
        (row,) = query_records(s, Query(LOANS)).records
        assert row.id == rid
        assert repr(row.data) == repr(get_record(s, rid).data)
        if db.dialect == "postgresql":  # jsonb writes 1.5e300 as its 301 digits
            assert row.data.pop("e") == 15 * 10**299 and doc.pop("e") == 1.5e300
        assert row.data == doc
        assert type(row.data["big"]) is int and type(row.data["nested"]["l"][0]) is int


@pytest.mark.parametrize("text", [
    '{"a":1}', '{"a":123456789012345678901234567890}', '[-9223372036854775809, 2.5]',
    '{"a":{"b":[1e19, 18446744073709551616]}}', "NaN", '{"x": Infinity}', '"\\ud800"',
    '{"a":1.7976931348623159e308}', "12345678901234567890123", "-0",
    '{"a":"1234567890123456789012"}',
])
@pytest.mark.parametrize("fast", [True, False], ids=["orjson", "json"])
def test_loads_is_json_loads(text, fast, monkeypatch):
    if not fast:
        monkeypatch.setattr(db_module, "_orjson_loads", None)
    elif db_module._orjson_loads is None:
        pytest.skip("orjson is not installed")
    want = json.loads(text)
    for got in (loads(text), loads(text.encode()), loads_many([text.encode()])[0],
                loads_many([text])[0]):
        assert repr(got) == repr(want)
    assert loads_many([None, text.encode(), b'{"k":[1,2]}']) == [None, want, {"k": [1, 2]}]


def test_malformed_filters_fail_the_same_with_a_warm_cache(db):
    with db.read() as s:
        query_records(s, Query(LOANS, filter={"field": "amount", "op": "eq", "value": "1.00"}))
        with pytest.raises(QueryError) as err:
            query_records(s, Query(LOANS, filter={"field": "amount", "op": "eq",
                                                  "value": "1.234"}))
        assert err.value.detail == ("filter.value: '1.234' has more than 2 decimal places "
                                    "for field 'amount'")
        with pytest.raises(QueryError, match="filter.value: operator 'in' needs a list"):
            query_records(s, Query(LOANS, filter={"field": "amount", "op": "in",
                                                  "value": "1.00"}))


def test_the_cache_is_bounded_and_evicts_least_recently_used(db, monkeypatch):
    cache = ShapeCache(size=3)
    monkeypatch.setattr(query_module, "SHAPES", cache)
    ids = _seed(db)
    with db.read() as s:
        for limit in range(1, 8):  # seven shapes
            assert _ids(s, sort=["id"], limit=limit) == ids[:limit]
            assert len(cache) <= 3
        assert [k[-2] for k in cache._entries] == [5, 6, 7]  # the limits of the last three
        assert _ids(s, sort=["id"], limit=1) == ids[:1]  # evicted: compiled again
        assert len(cache) == 3


def test_pending_changes_are_flushed_first_as_session_execute_does(db):
    with db.write() as s:
        s.add(Record(app="crm", form="loan", data={"city": "北京"}, owner_id=None,
                     department_id=None, created_by=None, updated_by=None))
        got = query_records(s, Query(LOANS, filter={"field": "city", "op": "eq",
                                                    "value": "北京"}))
        assert [r.data for r in got.records] == [{"city": "北京"}]


def test_observed_statements_go_through_sqlalchemy(db):
    _seed(db, 3)
    seen: list[str] = []

    def watch(conn, cursor, statement, *args):
        seen.append(statement)

    with db.read() as s:
        quiet = query_records(s, Query(LOANS, sort=["id"]))
    event.listen(db.engine, "before_cursor_execute", watch)
    try:
        with db.read() as s:
            watched = query_records(s, Query(LOANS, sort=["id"]))
    finally:
        event.remove(db.engine, "before_cursor_execute", watch)
    assert any("FROM records" in sql for sql in seen)
    assert watched == quiet


def test_driver_errors_are_wrapped_as_sqlalchemy_wraps_them(db):
    with db.read() as s:
        conn = s.connection()
        with pytest.raises(DBAPIError) as err:
            fetch(conn, "SELECT nope FROM no_such_table", {} if db.dialect == "postgresql"
                  else ())
        assert "no_such_table" in str(err.value)


def test_timestamps_are_read_as_the_orm_reads_them(db):
    """SQLite stores text in SQLAlchemy's DateTime format; PostgreSQL timestamptz."""
    when = datetime(2024, 2, 29, 23, 59, 58, 123456, tzinfo=UTC)
    with db.write() as s:
        (rid,) = create_records(s, app="crm", form="loan", items=[{}], actor=SYSTEM)
        rec = get_record(s, rid)
        rec.created_at = when
        s.flush()
    with db.read() as s:
        (row,) = query_records(s, Query(LOANS)).records
        orm = get_record(s, rid).created_at
        assert row.created_at == orm and type(row.created_at) is type(orm)
        assert row.created_at.replace(tzinfo=UTC) == when
