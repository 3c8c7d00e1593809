"""``Database.read``: a read-only unit of work. On PostgreSQL it ends with COMMIT, because
psycopg forgets the statements it has prepared on a connection at every ROLLBACK: reads
that rolled back had every statement of every request parsed and planned anew."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select, text
from sqlalchemy.exc import DBAPIError

from platform_core.models import Record
from platform_core.store import SYSTEM, create_record

# one request's statement, run often enough that psycopg prepares it (after 5 runs)
COUNT = text("SELECT count(*) FROM records WHERE form = :form AND deleted_at IS NULL")


def _prepared(db) -> list[str]:  # noqa: ANN001
    with db.read() as s:
        return list(s.execute(text("SELECT statement FROM pg_prepared_statements")).scalars())


def test_reads_keep_the_statements_the_driver_prepared_on_postgresql(db):
    if db.dialect != "postgresql":
        pytest.skip("psycopg's prepared statements: PostgreSQL only")
    db.engine.dispose()  # one pooled connection, used by every read below
    for _ in range(8):  # eight requests, one read each
        with db.read() as s:
            assert s.execute(COUNT, {"form": "customer"}).scalar_one() == 0
    assert any("FROM records WHERE form" in statement for statement in _prepared(db))
    db.ping()  # a health check does not drop them either
    assert any("FROM records WHERE form" in statement for statement in _prepared(db))


def test_a_write_inside_a_read_is_refused_on_postgresql_and_undone_on_sqlite(db):
    def count() -> int:
        with db.read() as s:
            return s.execute(select(func.count()).select_from(Record)).scalar_one()

    if db.dialect == "postgresql":
        with pytest.raises(DBAPIError, match="read-only transaction"), db.read() as s:
            create_record(s, app="crm", form="customer", data={"name": "读中写"},
                          actor=SYSTEM)
    else:
        with db.read() as s:
            create_record(s, app="crm", form="customer", data={"name": "读中写"},
                          actor=SYSTEM)
    assert count() == 0


def test_a_read_that_fails_leaves_the_connection_ready_for_the_next(db):
    with pytest.raises(ZeroDivisionError), db.read() as s:
        s.execute(text("SELECT 1"))
        raise ZeroDivisionError
    with db.write() as s:  # the pooled connection writes again (not read only)
        create_record(s, app="crm", form="customer", data={"name": "下一位"}, actor=SYSTEM)
    with db.read() as s:
        assert s.execute(select(func.count()).select_from(Record)).scalar_one() == 1
