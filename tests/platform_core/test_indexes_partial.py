"""An indexed field's index covers its own form's rows only (migration 0020), and the
store's queries — which bind app and form as parameters — still read from it."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest
from sqlalchemy import text

from platform_core.db import make_engine
from platform_core.migrate import upgrade
from platform_core.store import SYSTEM, FieldSet, Query, create_records, ensure_index
from tests.conftest import scratch_database

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
    else:
        rows = conn.connection.driver_connection.execute("EXPLAIN QUERY PLAN " + stmt,
                                                         params).fetchall()
    return "\n".join(str(r[-1]) for r in rows)


def test_a_field_index_is_limited_to_its_form_and_still_used(db):
    seen: list[tuple[str, object]] = []
    with db.write() as s:
        name = ensure_index(s, LEADS, "city")
        create_records(s, app="crm", form="lead", actor=SYSTEM,
                       items=[{"city": c} for c in ("北京", "上海", "广州") * 10])
        create_records(s, app="crm", form="other", actor=SYSTEM,
                       items=[{"city": "北京"}] * 10)
        ddl = _definition(s.connection(), name)
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
                                                         "value": "北京"}, limit=50))
    finally:
        event.remove(db.engine, "before_cursor_execute", capture)
    assert len(page.records) == 10  # the other form's 北京 rows are not this form's
    assert seen
    stmt, params = seen[-1]
    # app and form are in the statement's text, so the plan never depends on bound values
    assert "'crm'" in stmt and "'lead'" in stmt
    with db.engine.begin() as conn:
        assert name in _plan(conn, stmt, params)


@pytest.fixture
def scratch_url(tmp_path) -> Iterator[str]:
    if not PG_URL:
        yield f"sqlite:///{tmp_path / 'old.db'}"
        return
    with scratch_database(PG_URL, f"{os.getpid()}_partial") as url:
        yield url


def test_the_upgrade_limits_existing_field_indexes_to_their_form(scratch_url):
    engine = make_engine(scratch_url)
    try:
        upgrade(engine, "0019")
        pg = engine.dialect.name == "postgresql"
        expr = "(data ->> 'code')" if pg else "json_extract(data, '$.code')"
        with engine.begin() as conn:
            conn.execute(text(OLD.format(expr=expr)))
            conn.execute(text(
                "INSERT INTO store_indexes (name, app, form, field, kind, \"unique\", "
                "created_at) VALUES ('ix_rec_ticket_code_0123456789', 'ops', 'ticket', "
                "'code', 'text', :no, CURRENT_TIMESTAMP)"), {"no": False})
        upgrade(engine)
        with engine.connect() as conn:
            ddl = _definition(conn, "ix_rec_ticket_code_0123456789")
        assert "WHERE" in ddl.upper() and "'ticket'" in ddl and "'ops'" in ddl, ddl
    finally:
        engine.dispose()
