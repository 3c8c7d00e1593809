"""Fixtures of the platform-core tests: settings in a scratch data dir, its keyring."""

from __future__ import annotations

import pytest

from platform_core.security.crypto import Keyring
from platform_core.settings import load_settings


@pytest.fixture
def settings(tmp_path):
    """Settings whose data dir (and so key files) is the test's own."""
    return load_settings(data_dir=tmp_path / "data", encryption_keys="")


@pytest.fixture
def keyring(settings):
    """The field-encryption keyring of ``settings`` (its key file made on first use)."""
    return Keyring.load(settings)


@pytest.fixture
def old_database(tmp_path):
    """A scratch database (SQLite file, or a PostgreSQL scratch beside
    ``QIAO_TEST_DATABASE_URL``) for migration tests: a function that migrates it to a
    revision and makes ops.ticket's ``code`` index the way that revision's Qiao made it
    (``ddl`` with ``{expr}`` for the field's expression, registered in ``store_indexes``);
    it returns the engine (disposed afterwards)."""
    import os
    from contextlib import ExitStack

    from sqlalchemy import text

    from platform_core.db import make_engine
    from platform_core.migrate import upgrade
    from tests.conftest import scratch_database

    pg_url = os.environ.get("QIAO_TEST_DATABASE_URL", "")
    with ExitStack() as stack:
        url = (stack.enter_context(scratch_database(pg_url, f"{os.getpid()}_old")) if pg_url
               else f"sqlite:///{tmp_path / 'old.db'}")
        engines = []

        def make(revision: str, ddl: str, name: str, *, unique: bool):
            engine = make_engine(url)
            engines.append(engine)
            upgrade(engine, revision)
            pg = engine.dialect.name == "postgresql"
            expr = "(data ->> 'code')" if pg else "json_extract(data, '$.code')"
            with engine.begin() as conn:
                conn.execute(text(ddl.format(expr=expr)))
                conn.execute(text(
                    'INSERT INTO store_indexes (name, app, form, field, kind, "unique", '
                    "created_at) VALUES (:name, 'ops', 'ticket', 'code', 'text', :unique, "
                    "CURRENT_TIMESTAMP)"), {"name": name, "unique": unique})
            return engine

        try:
            yield make
        finally:
            for engine in engines:
                engine.dispose()
