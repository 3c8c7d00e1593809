"""``Database.read_one``: a read of one statement (every API request's token lookup) that
PostgreSQL runs outside a transaction, and that leaves the pooled connection as
transactional as it found it — a write after it is still all or nothing."""

from __future__ import annotations

import pytest
from sqlalchemy import event, func, select, text

from platform_core.models import Record
from platform_core.security.auth import resolve_token
from platform_core.store import SYSTEM, create_record
from tests.security_setup import add_user, token_for


def _autocommit(session) -> bool:
    raw = session.connection().connection.dbapi_connection
    # psycopg: its autocommit flag; sqlite3 (isolation_level None, Qiao's own BEGIN):
    # whether a transaction is open
    return raw.autocommit if hasattr(raw, "autocommit") and not hasattr(
        raw, "in_transaction") else not raw.in_transaction


def test_a_one_statement_read_needs_no_transaction_on_postgresql_only(db):
    with db.read_one() as s:
        assert s.execute(text("SELECT 1")).scalar() == 1
        outside = _autocommit(s)
    assert outside is (db.dialect == "postgresql")
    with db.read() as s:
        s.execute(text("SELECT 1"))
        assert _autocommit(s) is False


def test_a_write_after_a_one_statement_read_is_still_all_or_nothing(db):
    db.engine.dispose()  # one pooled connection: the write gets the one the read used
    with db.read_one() as s:
        s.execute(text("SELECT 1"))
    before = _records(db)
    with pytest.raises(RuntimeError), db.write() as s:
        assert _autocommit(s) is False
        create_record(s, app="crm", form="customer", data={"name": "半途"}, actor=SYSTEM)
        raise RuntimeError("the user's action fails after its first write")
    assert _records(db) == before


def test_a_token_lookup_is_one_statement_outside_a_transaction_on_postgresql(db):
    secret = token_for(db, add_user(db, "zhao", roles=("staff",)))
    resolve_token(db, secret, client="tests")  # its first use is recorded (a write)
    seen: list[tuple[str, bool]] = []

    def look(conn, _cursor, statement, *_args) -> None:  # noqa: ANN001
        raw = conn.connection.dbapi_connection
        seen.append((statement.split()[0], getattr(raw, "autocommit", False)
                     if db.dialect == "postgresql" else raw.in_transaction))

    event.listen(db.engine, "before_cursor_execute", look)
    try:
        assert resolve_token(db, secret, client="tests").username == "zhao"
    finally:
        event.remove(db.engine, "before_cursor_execute", look)
    # PostgreSQL: autocommit, no BEGIN/ROLLBACK round trips; SQLite: in its transaction
    assert seen == [("SELECT", True)]


def _records(db) -> int:
    with db.read() as s:
        return s.execute(select(func.count()).select_from(Record)).scalar_one()
