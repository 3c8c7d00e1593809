"""The query language: clear errors for bad input, indexes that are really used."""

from __future__ import annotations

import pytest
from sqlalchemy import text

from platform_core.errors import QueryError
from platform_core.store import (
    SYSTEM,
    FieldSet,
    Query,
    create_records,
    ensure_index,
    indexes_of,
    query_records,
)

LOANS = FieldSet("crm", "loan", {"city": "text", "amount": "money", "signed": "date",
                                 "secured": "boolean", "term": "number"})


@pytest.mark.parametrize(("filter_", "message"), [
    ({"field": "amout", "op": "eq", "value": 1},
     "filter.field: unknown field 'amout' of form crm.loan"),
    ({"field": "amount", "op": "bigger", "value": 1},
     "filter.op: unknown operator 'bigger'"),
    ({"and": [{"field": "city", "op": "eq"}]},
     "filter.and[0].value: operator 'eq' needs a value (use is_empty for blanks)"),
    ({"or": [{"field": "city", "op": "eq", "value": "x"}, {"field": "amount", "op": "eq",
                                                            "value": "1.234"}]},
     "filter.or[1].value: '1.234' has more than 2 decimal places for field 'amount'"),
    ({"field": "amount", "op": "contains", "value": "1"},
     "filter.op: operator 'contains' needs a text field; 'amount' is not"),
    ({"field": "secured", "op": "gt", "value": True},
     "filter.op: operator 'gt' does not apply to the yes/no field 'secured'"),
    ({"field": "amount", "op": "between", "value": [1]},
     "filter.value: between needs exactly [low, high]"),
    ({"field": "city", "op": "in", "value": "北京"}, "filter.value: operator 'in' needs a list"),
    ({"field": "signed", "op": "gt", "value": "2024-13-01"},
     "filter.value: '2024-13-01' is not a date (YYYY-MM-DD) for field 'signed'"),
    ({"xor": []}, "filter: unknown combinator 'xor'"),
    ({"and": [], "or": []}, "filter: expected one of 'and', 'or', 'not'"),
    ({"field": "city", "op": "eq", "value": "a", "extra": 1},
     "filter: unexpected key 'extra' in a leaf"),
    ([1, 2], "filter: expected an object"),
    ({"field": "term", "op": "eq", "value": {"$gt": 1}},
     "filter.value: expected a single value"),
])
def test_malformed_filters_name_the_bad_part(db, filter_, message):
    with db.read() as s, pytest.raises(QueryError) as err:
        query_records(s, Query(LOANS, filter=filter_))
    assert err.value.detail.startswith(message)
    assert err.value.status == 422 and err.value.code == "invalid_query"


def test_deep_or_huge_filters_are_refused(db):
    deep: dict = {"field": "city", "op": "eq", "value": "x"}
    for _ in range(40):
        deep = {"not": deep}
    wide = {"or": [{"field": "term", "op": "eq", "value": i} for i in range(600)]}
    with db.read() as s:
        for bad in (deep, wide):
            with pytest.raises(QueryError, match="too deep or too large"):
                query_records(s, Query(LOANS, filter=bad))


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"sort": ["-nope"]}, "sort[0]: unknown field 'nope'"),
    ({"sort": [{"field": "city", "dir": "up"}]}, "sort[0]: expected 'field'"),
    ({"limit": 0}, "limit: limit must be 1..1000"),
    ({"cursor": "garbage!"}, "cursor: not a cursor of this query"),
])
def test_bad_sort_limit_and_cursor(db, kwargs, message):
    with db.read() as s, pytest.raises(QueryError) as err:
        query_records(s, Query(LOANS, **kwargs))
    assert err.value.detail.startswith(message)


def test_a_cursor_from_another_sort_is_refused(db):
    with db.write() as s:
        create_records(s, app="crm", form="loan", items=[{"city": c} for c in "abc"],
                       actor=SYSTEM)
    with db.read() as s:
        page = query_records(s, Query(LOANS, sort=["city"], limit=1))
        with pytest.raises(QueryError, match="made for another sort"):
            query_records(s, Query(LOANS, sort=["-city"], limit=1, cursor=page.next_cursor))


def test_values_are_bound_never_pasted(db):
    with db.write() as s:
        create_records(s, app="crm", form="loan",
                       items=[{"city": "x'); DROP TABLE records; --"}, {"city": "y"}],
                       actor=SYSTEM)
    with db.read() as s:
        page = query_records(s, Query(LOANS, filter={
            "field": "city", "op": "eq", "value": "x'); DROP TABLE records; --"}))
        assert [r.data["city"] for r in page.records] == ["x'); DROP TABLE records; --"]
        stmt, _ = Query(LOANS, filter={"field": "city", "op": "eq", "value": "北京"}).select(
            db.dialect)
        assert "北京" not in str(stmt.compile(dialect=s.get_bind().dialect))


def test_system_fields_filter_and_sort(db):
    with db.write() as s:
        ids = create_records(s, app="crm", form="loan", items=[{}, {}, {}], actor=SYSTEM)
    with db.read() as s:
        page = query_records(s, Query(LOANS, filter={"field": "id", "op": "gte",
                                                     "value": ids[1]}, sort=["id"]))
        assert [r.id for r in page.records] == ids[1:]
        newest = query_records(s, Query(LOANS, sort=["-created_at"], limit=3))
        assert len(newest.records) == 3


def test_deleted_records_only_in_the_recycle_bin_view(db):
    from platform_core.store import delete_record

    with db.write() as s:
        a, b = create_records(s, app="crm", form="loan", items=[{}, {}], actor=SYSTEM)
        delete_record(s, a, actor=SYSTEM)
    with db.read() as s:
        assert [r.id for r in query_records(s, Query(LOANS)).records] == [b]
        assert [r.id for r in query_records(s, Query(LOANS, deleted="only")).records] == [a]
        assert len(query_records(s, Query(LOANS, deleted="include")).records) == 2


def _plan(db, stmt) -> str:
    with db.engine.connect() as conn:
        compiled = stmt.compile(dialect=conn.dialect, compile_kwargs={"literal_binds": True})
        prefix = "EXPLAIN QUERY PLAN " if db.dialect == "sqlite" else "EXPLAIN "
        if db.dialect == "postgresql":
            conn.execute(text("SET enable_seqscan = off"))
            # statistics, as a running database has them: without any, every index
            # looks alike to the planner for a table it takes to be nearly empty
            conn.execute(text("ANALYZE records"))
        # A pooled SQLite connection learns of indexes made on another connection when it
        # next reads the database; EXPLAIN alone would show the plan of its stale schema.
        conn.execute(text("SELECT count(*) FROM records")).all()
        rows = conn.execute(text(prefix + str(compiled))).all()
    return "\n".join(str(r[-1]) for r in rows)


def test_an_indexed_field_is_answered_from_its_expression_index(db):
    with db.write() as s:
        name = ensure_index(s, LOANS, "city")
        assert ensure_index(s, LOANS, "city") == name  # idempotent
        create_records(s, app="crm", form="loan",
                       items=[{"city": c, "amount": "1.00"} for c in ("北京", "上海") * 50],
                       actor=SYSTEM)
    with db.read() as s:
        assert [i.field for i in indexes_of(s, "crm", "loan")] == ["city"]
    stmt, _ = Query(LOANS, filter={"field": "city", "op": "eq", "value": "北京"},
                    limit=50).select(db.dialect)
    plan = _plan(db, stmt)
    assert name in plan, plan
    if db.dialect == "sqlite":
        assert "TEMP B-TREE" not in plan  # the index also gives the order: no sort step
