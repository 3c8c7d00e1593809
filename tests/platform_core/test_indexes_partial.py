"""An indexed field's index covers its own form's rows only (migration 0020), and the
store's queries — which name app and form in their SQL — still read from it."""

from __future__ import annotations

import os
from typing import Any

from sqlalchemy import text

from platform_core.migrate import upgrade
from platform_core.store import SYSTEM, FieldSet, Query, create_records, ensure_index

# runs in CI's PostgreSQL pass too: its migration test makes its own scratch database there
PG_URL = os.environ.get("QIAO_TEST_DATABASE_URL", "")
LEADS = FieldSet("crm", "lead", {"city": "text"})
OLD = 'CREATE INDEX "ix_rec_ticket_code_0123456789" ON records (app, form, {expr}, id)'


def _definition(conn, name: str) -> str:  # noqa: ANN001
    if conn.dialect.name == "postgresql":
        sql = "SELECT indexdef FROM pg_indexes WHERE indexname = :n"
    else:
        sql = "SELECT sql FROM sqlite_master WHERE type = 'index' AND name = :n"
    return conn.execute(text(sql), {"n": name}).scalar() or ""


def _plan(conn, stmt, params) -> str:  # noqa: ANN001
    """The plan of ``stmt`` run as the store runs it: app and form bound, not inlined."""
    if conn.dialect.name == "postgresql":
        conn.exec_driver_sql("SET LOCAL enable_seqscan = off")
        rows = conn.exec_driver_sql("EXPLAIN " + stmt, params).all()
    else:  # a new connection: the schema and statistics as they are now
        import sqlite3

        fresh = sqlite3.connect(conn.engine.url.database)
        try:
            rows = fresh.execute("EXPLAIN QUERY PLAN " + stmt, params).fetchall()
        finally:
            fresh.close()
    return "\n".join(str(r[-1]) for r in rows)


def _page_and_statement(db, query: Query) -> tuple[Any, str, Any]:  # noqa: ANN001
    """The page of ``query`` and the SELECT (with its parameters) the store ran for it."""
    from sqlalchemy import event

    from platform_core.store import query_records

    seen: list[tuple[str, Any]] = []

    def capture(conn, cursor, statement, parameters, context, executemany):  # noqa: ANN001, ARG001
        if statement.lstrip().startswith("SELECT records.id"):
            seen.append((statement, parameters))

    event.listen(db.engine, "before_cursor_execute", capture)
    try:
        with db.read() as s:
            page = query_records(s, query)
    finally:
        event.remove(db.engine, "before_cursor_execute", capture)
    assert seen
    return page, *seen[-1]


def test_a_field_index_is_limited_to_its_form_and_still_used(db):
    with db.write() as s:
        name = ensure_index(s, LEADS, "city")
        cities = ["北京", *(f"城市{i}" for i in range(299))]  # selective, as in real use
        create_records(s, app="crm", form="lead", actor=SYSTEM,
                       items=[{"city": c} for c in cities * 10])
        create_records(s, app="crm", form="other", actor=SYSTEM,
                       items=[{"city": "北京"}] * 10)
        ddl = _definition(s.connection(), name)
    with db.engine.begin() as conn:  # statistics of these rows, not of earlier tests'
        conn.exec_driver_sql("ANALYZE records" if db.dialect == "postgresql" else "ANALYZE")
    assert "WHERE" in ddl.upper() and "'lead'" in ddl and "'crm'" in ddl, ddl

    page, stmt, params = _page_and_statement(db, Query(
        LEADS, filter={"field": "city", "op": "eq", "value": "北京"}, sort=["city"], limit=50))
    assert len(page.records) == 10  # the other form's 北京 rows are not this form's
    # app and form are in the statement's text, so the plan never depends on bound values
    assert "'crm'" in stmt and "'lead'" in stmt
    with db.engine.begin() as conn:
        assert name in _plan(conn, stmt, params)


def test_the_upgrade_limits_existing_field_indexes_to_their_form(old_database):
    engine = old_database("0019", OLD, "ix_rec_ticket_code_0123456789", unique=False)
    upgrade(engine)
    with engine.connect() as conn:
        ddl = _definition(conn, "ix_rec_ticket_code_0123456789")
    assert "WHERE" in ddl.upper() and "'ticket'" in ddl and "'ops'" in ddl, ddl


CODES = FieldSet("crm", "account", {"code": "text"})


def _buffers(node: dict) -> int:  # noqa: ANN001
    """Pages a plan node read, its children's included (EXPLAIN counts them in)."""
    return node.get("Shared Hit Blocks", 0) + node.get("Shared Read Blocks", 0)


def test_an_equality_on_a_unique_field_seeks_its_index(db):
    """``code = value`` reads a few pages of the field's index, not all of it. PostgreSQL
    leaves app and form (implied by the partial index's predicate) out of the index
    conditions, so an index led by them was read whole (migration 0021)."""
    import json

    with db.write() as s:
        name = ensure_index(s, CODES, "code", unique=True)
        create_records(s, app="crm", form="account", actor=SYSTEM,
                       items=[{"code": f"ACC-{i:06d}"} for i in range(12000)])
    with db.engine.begin() as conn:
        conn.exec_driver_sql("ANALYZE records" if db.dialect == "postgresql" else "ANALYZE")
    page, stmt, params = _page_and_statement(db, Query(
        CODES, filter={"field": "code", "op": "eq", "value": "ACC-002024"}, limit=5))
    assert [r.data["code"] for r in page.records] == ["ACC-002024"]
    with db.engine.begin() as conn:
        if db.dialect == "postgresql":
            pages = conn.execute(text("SELECT pg_relation_size(:n) / 8192"), {"n": name}
                                 ).scalar()
            plan = conn.exec_driver_sql("EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) " + stmt,
                                        params).scalar()
            plan = plan if isinstance(plan, list) else json.loads(plan)
            root = plan[0]["Plan"]
            assert name in json.dumps(root)
            # a seek: the root, an inner page, a leaf and the row's page (and a few of
            # the catalog's) — not the index's 50-odd pages
            assert pages > 40 and _buffers(root) <= 12, (pages, _buffers(root))
        else:
            assert f"{name} (app=? AND form=? AND" in _plan(conn, stmt, params)


def test_the_upgrade_leads_postgresql_field_indexes_by_the_field(old_database):
    engine = old_database("0020", OLD + " WHERE app = 'ops' AND form = 'ticket'",
                          "ix_rec_ticket_code_0123456789", unique=False)
    upgrade(engine)
    with engine.connect() as conn:
        ddl = _definition(conn, "ix_rec_ticket_code_0123456789")
    assert "'ticket'" in ddl and "'ops'" in ddl, ddl
    if engine.dialect.name == "postgresql":
        assert "btree (app, form," not in ddl and "btree (((data ->> 'code'" in ddl, ddl
    else:
        assert "(app, form," in ddl, ddl
