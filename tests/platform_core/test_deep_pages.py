"""Keyset pages of a sort by an indexed field stay index seeks however deep (issue 23).

A sort whose first key can be blank reads its rows in two regions — the key's values,
then its blanks (last in both directions) — each one range of the field's index, so a
cursor deep in either region seeks to it instead of reading the form from the start.
"""

from __future__ import annotations

import pytest
from sqlalchemy import event

from platform_core.store import SYSTEM, FieldSet, Query, create_records, ensure_index
from platform_core.store import query_records as run_query

DEALS = FieldSet("crm", "deal", {"amount": "money", "stage": "text", "name": "text"})
STAGES = ["lead", "won", "lost"]


def _seed(db, n: int = 150) -> list[int]:
    items = [{"name": f"d{i}", "stage": STAGES[i % 3],
              **({} if i % 4 == 0 else {"amount": f"{(i * 37) % 50}.00"})} for i in range(n)]
    with db.write() as s:
        ensure_index(s, DEALS, "amount")
        ensure_index(s, DEALS, "stage")
        return create_records(s, app="crm", form="deal", items=items, actor=SYSTEM)


def _walk(db, sort, limit: int, filter_=None) -> tuple[list[int], list[str]]:
    """Every page of the query: the ids in order, and the cursor of each page after the
    first."""
    ids, cursors, cursor = [], [], None
    with db.read() as s:
        while True:
            page = run_query(s, Query(DEALS, sort=sort, filter=filter_, cursor=cursor,
                                      limit=limit))
            ids += [r.id for r in page.records]
            if page.next_cursor is None:
                return ids, cursors
            cursor = page.next_cursor
            cursors.append(cursor)


def _plan(db, query: Query) -> str:
    """The plan of the page's own SQL with its bound values, as ``query_records`` runs it
    (sequential scans off on PostgreSQL: the test's table is small)."""
    with db.engine.connect() as conn:
        entry, params, _keys = query.compiled(conn.dialect)
        raw = conn.connection.dbapi_connection
        cur = raw.cursor()
        # a pooled SQLite connection learns of indexes made on another one when it reads
        cur.execute("SELECT count(*) FROM records")
        cur.fetchall()
        if db.dialect == "postgresql":
            cur.execute("SET LOCAL enable_seqscan = off")
            cur.execute("ANALYZE records")  # statistics, as a running database has them
            cur.execute("EXPLAIN " + entry.sql, params)
            plan = "\n".join(r[0] for r in cur.fetchall())
        else:
            cur.execute("EXPLAIN QUERY PLAN " + entry.sql, params)
            plan = "\n".join(r[3] for r in cur.fetchall())
        raw.rollback()
        cur.close()
    return plan


def _python_order(db, sort: list[str]) -> list[int]:
    """The order docs/query.md promises: blanks last in both directions, then id."""
    with db.read() as s:
        rows = [(r.id, r.data) for r in run_query(s, Query(DEALS, sort=["id"], limit=1000)
                                                  ).records]
    def key(row):
        out = []
        for k in sort:
            name, desc = k.lstrip("-"), k.startswith("-")
            v = row[1].get(name)
            if name == "amount" and v is not None:
                v = float(v)
            if v is None:
                out.append((1, 0))
            elif isinstance(v, str):
                out.append((0, tuple(-ord(c) for c in v) + (1,) if desc else v))
            else:
                out.append((0, -v if desc else v))
        return (*out, row[0])
    return [rid for rid, _ in sorted(rows, key=key)]


@pytest.mark.parametrize("sort", [["amount"], ["-amount"], ["stage", "-amount"],
                                  ["-stage", "amount", "-name"]])
@pytest.mark.parametrize("limit", [1, 7, 50])
def test_every_page_of_a_blankable_sort_equals_the_full_sort(db, sort, limit):
    ids = _seed(db)
    got, _ = _walk(db, sort, limit)
    assert sorted(got) == sorted(ids) and len(got) == len(ids)
    assert got == _python_order(db, sort)


def test_a_filter_that_rules_out_blanks_reads_no_blank_region(db):
    _seed(db)
    with db.read() as s:
        amounts = {r.id: r.data.get("amount") for r in run_query(
            s, Query(DEALS, sort=["id"], limit=1000)).records}
    flt = {"field": "amount", "op": "gte", "value": "20.00"}
    statements: list[str] = []

    def seen(_conn, _cursor, statement, *_):  # noqa: ANN001
        statements.append(statement)

    event.listen(db.engine, "before_cursor_execute", seen)
    try:
        got, cursors = _walk(db, ["-amount"], 9, flt)
    finally:
        event.remove(db.engine, "before_cursor_execute", seen)
    assert got == [i for i in _python_order(db, ["-amount"])
                   if amounts[i] is not None and float(amounts[i]) >= 20]
    assert len(statements) == len(cursors) + 1  # one per page: no SELECT of blanks
    assert Query(DEALS, sort=["-amount"], filter=flt, cursor=cursors[0]
                 ).blanks_select(db.dialect) is None
    assert Query(DEALS, sort=["-amount"], filter={"not": flt}, cursor=cursors[0]
                 ).blanks_select(db.dialect) is not None


def test_the_default_order_seeks_to_a_deep_cursor(db):
    _seed(db)
    _ids, cursors = _walk(db, ["-id"], 10)
    plan = _plan(db, Query(DEALS, sort=["-id"], cursor=cursors[-3], limit=10))
    if db.dialect == "sqlite":  # no "OR 0 = 1" beside the bound: a seek, not a walk
        assert "id<?" in plan or "rowid<?" in plan, plan
    else:
        assert "Index Cond" in plan and "id <" in plan, plan


@pytest.mark.parametrize("sort", [["amount"], ["-amount"]])
def test_a_deep_page_seeks_the_fields_index(db, sort):
    _seed(db)
    _ids, cursors = _walk(db, sort, 10)
    with db.read() as s:
        deep_value = next(c for c in cursors[3:] if run_query(
            s, Query(DEALS, sort=sort, cursor=c, limit=1)).records[0].data.get("amount"))
        deep_blank = cursors[-2]
        assert run_query(s, Query(DEALS, sort=sort, cursor=deep_blank, limit=1)
                         ).records[0].data.get("amount") is None
    for cursor in (deep_value, deep_blank):
        plan = _plan(db, Query(DEALS, sort=sort, cursor=cursor, limit=10))
        if db.dialect == "sqlite":
            assert "ix_rec_deal_amount" in plan, plan
            assert ("<expr>>?" in plan or "<expr><?" in plan or "<expr>=? AND id>?" in plan
                    ) and "TEMP B-TREE FOR ORDER BY" not in plan, plan
        else:
            # an index range that starts at the cursor (on a table this small the
            # planner may take the (app, form, id) index for the blanks, also a seek,
            # and sort the few rows it expects instead of an incremental sort)
            assert "Seq Scan" not in plan, plan
            cond = next(line for line in plan.splitlines() if "Index Cond" in line)
            assert "id >" in cond or ">=" in cond or "<=" in cond, plan


@pytest.mark.parametrize("sort", [["amount"], ["-amount"]])
def test_the_blanks_after_the_last_value_are_read_in_index_order(db, sort):
    """The page where the values end goes on with the first blanks: read from the
    field's (key, id) index in order, not every blank read and sorted for a page."""
    _seed(db)
    _ids, cursors = _walk(db, sort, 10)
    blanks = Query(DEALS, sort=sort, cursor=cursors[3], limit=10).blanks_select(db.dialect)
    assert blanks is not None
    with db.engine.connect() as conn:
        sql = str(blanks.compile(conn, compile_kwargs={"literal_binds": True}))
        raw = conn.connection.dbapi_connection
        cur = raw.cursor()
        cur.execute("SELECT count(*) FROM records")  # see the index made on another connection
        cur.fetchall()
        if db.dialect == "postgresql":
            cur.execute("SET LOCAL enable_seqscan = off")
            cur.execute("ANALYZE records")
            cur.execute("EXPLAIN " + sql)
            plan = "\n".join(r[0] for r in cur.fetchall())
            assert "ix_rec_deal_amount" in plan and "Sort" not in plan, plan
        else:
            cur.execute("EXPLAIN QUERY PLAN " + sql)
            plan = "\n".join(r[3] for r in cur.fetchall())
            assert "ix_rec_deal_amount" in plan and "TEMP B-TREE" not in plan, plan
        raw.rollback()
        cur.close()
