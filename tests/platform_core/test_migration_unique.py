"""Migration 0010 limits the unique indexes made before it to their own form: two records
of another form that share a value are accepted after the upgrade, duplicates in the form
still are not."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest
from sqlalchemy import text
from sqlalchemy.exc import IntegrityError

from platform_core.db import make_engine
from platform_core.migrate import upgrade
from tests.conftest import scratch_database

PG_URL = os.environ.get("QIAO_TEST_DATABASE_URL", "")
OLD = ('CREATE UNIQUE INDEX "ux_rec_ticket_code_0123456789" ON records (app, form, {expr}) '
       "WHERE deleted_at IS NULL")


@pytest.fixture
def scratch_url(tmp_path) -> Iterator[str]:
    if not PG_URL:
        yield f"sqlite:///{tmp_path / 'old.db'}"
        return
    with scratch_database(PG_URL, f"{os.getpid()}_mig") as url:
        yield url


def _insert(conn, form: str, code: str) -> None:  # noqa: ANN001
    conn.execute(text(
        "INSERT INTO records (app, form, data, schema_version, row_version, created_at, "
        "updated_at) VALUES ('ops', :form, :data, 1, 1, CURRENT_TIMESTAMP, "
        "CURRENT_TIMESTAMP)"), {"form": form, "data": f'{{"code": "{code}"}}'})


def test_old_unique_indexes_are_limited_to_their_form(scratch_url):
    engine = make_engine(scratch_url)
    try:
        upgrade(engine, "0009")
        pg = engine.dialect.name == "postgresql"
        expr = "(data ->> 'code')" if pg else "json_extract(data, '$.code')"
        with engine.begin() as conn:
            conn.execute(text(OLD.format(expr=expr)))
            conn.execute(text(
                "INSERT INTO store_indexes (name, app, form, field, kind, \"unique\", created_at) "
                "VALUES "
                "('ux_rec_ticket_code_0123456789', 'ops', 'ticket', 'code', 'text', :yes, "
                "CURRENT_TIMESTAMP)"),
                {"yes": True})
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
