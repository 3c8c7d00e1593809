"""A list sorted by creation time is read from an index, not sorted whole (migration 0019)."""

from __future__ import annotations

import pytest
from sqlalchemy import text

from platform_core.store import SYSTEM, FieldSet, Query, create_records, query_records

NOTES = FieldSet("crm", "note", {"title": "text"})


def _plan(db, stmt) -> str:
    with db.engine.connect() as conn:
        compiled = stmt.compile(dialect=conn.dialect, compile_kwargs={"literal_binds": True})
        prefix = "EXPLAIN QUERY PLAN " if db.dialect == "sqlite" else "EXPLAIN "
        if db.dialect == "postgresql":
            conn.execute(text("SET enable_seqscan = off"))
        conn.execute(text("SELECT count(*) FROM records")).all()
        rows = conn.execute(text(prefix + str(compiled))).all()
    return "\n".join(str(r[-1]) for r in rows)


@pytest.mark.parametrize("sort", [["created_at"], ["-created_at"]])
def test_a_sort_by_creation_time_uses_the_forms_created_index(db, sort):
    with db.write() as s:
        create_records(s, app="crm", form="note",
                       items=[{"title": f"n{i}"} for i in range(30)], actor=SYSTEM)
    stmt, _keys = Query(NOTES, sort=sort, limit=10).select(db.dialect)
    assert "ix_records_app_form_created" in _plan(db, stmt)


def test_pages_sorted_by_creation_time_cover_every_record_once(db):
    with db.write() as s:
        create_records(s, app="crm", form="note",
                       items=[{"title": f"n{i}"} for i in range(25)], actor=SYSTEM)
    seen, cursor = [], None
    while True:
        with db.read() as s:
            page = query_records(s, Query(NOTES, sort=["-created_at"], limit=10, cursor=cursor))
        seen += [r.data["title"] for r in page.records]
        cursor = page.next_cursor
        if cursor is None:
            break
    assert sorted(seen) == sorted(f"n{i}" for i in range(25)) and len(seen) == 25
