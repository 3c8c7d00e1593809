"""An indexed field's index covers its own form's rows only (migration 0020), and the
store's queries — which name app and form in their SQL — still read from it."""

from __future__ import annotations

import os

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


def test_a_field_index_is_limited_to_its_form_and_still_used(db):
    seen: list[tuple[str, object]] = []
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

    from sqlalchemy import event

    def capture(conn, cursor, statement, parameters, context, executemany):  # noqa: ANN001, ARG001
        if statement.lstrip().startswith("SELECT records.id"):
            seen.append((statement, parameters))

    from platform_core.store import query_records

    event.listen(db.engine, "before_cursor_execute", capture)
    try:
        with db.read() as s:
            page = query_records(s, Query(LEADS, filter={"field": "city", "op": "eq",
                                                         "value": "北京"}, sort=["city"],
                                          limit=50))
    finally:
        event.remove(db.engine, "before_cursor_execute", capture)
    assert len(page.records) == 10  # the other form's 北京 rows are not this form's
    assert seen
    stmt, params = seen[-1]
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
