"""A form's projection is indexed on the row scopes' columns: a salesperson's report
(``owner_id = me``) and a team lead's (``department_id IN …``) read their twentieth of
the form through an index instead of scanning all of it; migration 0022 adds the indexes
to projections built before."""

from __future__ import annotations

import os

from sqlalchemy import inspect, select, text

from platform_core.migrate import upgrade
from platform_core.models import StoreProjection
from platform_core.store import Actor, FieldSet, create_records
from platform_core.store.projection import drop_projection, ensure_projection, projection_name

PG_URL = os.environ.get("QIAO_TEST_DATABASE_URL", "")  # the migration test runs PostgreSQL too
FIELDS = FieldSet("crm", "deal", {"name": "text", "amount": "money"})
NAME = projection_name("crm", "deal")


def _seed(s) -> None:
    for owner in range(1, 21):  # twenty salespeople in four departments
        create_records(s, app="crm", form="deal", actor=Actor(owner, (owner - 1) // 5 + 1,
                                                              f"u{owner}"),
                       items=[{"name": f"d{owner}-{i}", "amount": f"{i}.00"}
                              for i in range(30)])


def _plan(conn, where: str) -> str:
    sql = f'SELECT count(*), sum(amount) FROM "{NAME}" WHERE {where}'
    if conn.dialect.name == "postgresql":
        conn.execute(text(f'ANALYZE "{NAME}"'))
        conn.execute(text("SET LOCAL enable_seqscan = off"))
        return "\n".join(r[0] for r in conn.execute(text("EXPLAIN " + sql)))
    return "\n".join(r[3] for r in conn.execute(text("EXPLAIN QUERY PLAN " + sql)))


def _indexes(conn) -> set[str]:
    # a pooled SQLite connection learns of indexes made on another one when it reads
    conn.execute(text(f'SELECT count(*) FROM "{NAME}"'))
    return {i["name"] for i in inspect(conn).get_indexes(NAME)}


def test_a_scoped_read_of_a_projection_uses_its_owner_and_department_indexes(db):
    try:
        with db.write() as s:
            ensure_projection(s, FIELDS)
            _seed(s)
        with db.engine.begin() as conn:
            assert {f"{NAME}_owner_id", f"{NAME}_department_id"} <= _indexes(conn)
            assert f"{NAME}_owner_id" in _plan(conn, "owner_id = 7")
            assert f"{NAME}_department_id" in _plan(conn, "department_id IN (2, 3)")
            assert conn.execute(text(f'SELECT count(*) FROM "{NAME}" WHERE owner_id = 7')
                                ).scalar_one() == 30
    finally:
        with db.write() as s:
            drop_projection(s, "crm", "deal")


def test_the_upgrade_indexes_projections_built_before(old_database):
    engine = old_database("0021", "SELECT 1", "ix_unused", unique=False)
    from platform_core.db import Database

    db = Database(engine)
    with db.write() as s:
        ensure_projection(s, FIELDS)
        _seed(s)
    with engine.begin() as conn:  # as Qiao before 0022 built it
        for column in ("owner_id", "department_id"):
            conn.execute(text(f'DROP INDEX "{NAME}_{column}"'))
        assert not {f"{NAME}_owner_id", f"{NAME}_department_id"} & _indexes(conn)
    upgrade(engine)
    with engine.begin() as conn:
        assert {f"{NAME}_owner_id", f"{NAME}_department_id"} <= _indexes(conn)
        assert conn.execute(select(StoreProjection.name)).scalars().all() == [NAME]
        assert f"{NAME}_owner_id" in _plan(conn, "owner_id = 7")
