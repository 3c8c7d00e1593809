"""Migration 0010 limits the unique indexes made before it to their own form: two records
of another form that share a value are accepted after the upgrade, duplicates in the form
still are not."""

from __future__ import annotations

import os

import pytest
from sqlalchemy import text
from sqlalchemy.exc import IntegrityError

from platform_core.migrate import upgrade

# runs in CI's PostgreSQL pass too: ``old_database`` makes its own scratch database there
PG_URL = os.environ.get("QIAO_TEST_DATABASE_URL", "")
OLD = ('CREATE UNIQUE INDEX "ux_rec_ticket_code_0123456789" ON records (app, form, {expr}) '
       "WHERE deleted_at IS NULL")


def _insert(conn, form: str, code: str) -> None:  # noqa: ANN001
    conn.execute(text(
        "INSERT INTO records (app, form, data, schema_version, row_version, created_at, "
        "updated_at) VALUES ('ops', :form, :data, 1, 1, CURRENT_TIMESTAMP, "
        "CURRENT_TIMESTAMP)"), {"form": form, "data": f'{{"code": "{code}"}}'})


def test_old_unique_indexes_are_limited_to_their_form(old_database):
    engine = old_database("0009", OLD, "ux_rec_ticket_code_0123456789", unique=True)
    try:
        with engine.begin() as conn:
            _insert(conn, "note", "same")
        with pytest.raises(IntegrityError), engine.begin() as conn:
            _insert(conn, "note", "same")  # the old index: two notes collide
        upgrade(engine)
        with engine.begin() as conn:
            _insert(conn, "note", "same")
            _insert(conn, "ticket", "same")
        with pytest.raises(IntegrityError), engine.begin() as conn:
            _insert(conn, "ticket", "same")
    finally:
        engine.dispose()
