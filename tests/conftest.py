"""Test fixtures shared by every package's tests.

The suite runs on SQLite by default and on PostgreSQL when ``QIAO_TEST_DATABASE_URL``
names one (CI runs it both ways). On PostgreSQL each test run gets a scratch database of
its own (``<name>_<pid>``), dropped at the end, so parallel runs never collide. Under
``CI=true`` a PostgreSQL that cannot be reached fails the run instead of skipping it.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session

import engine_flows.models  # noqa: F401 - the flow engine's tables, likewise
import engine_forms.models  # noqa: F401 - the form engine's tables, for the per-test reset
import engine_reports.models  # noqa: F401 - the report engine's tables, likewise
import engine_rules.models  # noqa: F401 - the rules engine's tables, likewise
import platform_core.channels.models  # noqa: F401 - channel settings, likewise
import platform_core.security.models  # noqa: F401 - identity and audit tables, likewise
import platform_core.webhooks.models  # noqa: F401 - webhook tables, likewise
from platform_core.db import Database, make_engine
from platform_core.migrate import upgrade
from platform_core.models import Base
from platform_core.store import kinds
from platform_core.store.projection import drop_projection

PG_URL = os.environ.get("QIAO_TEST_DATABASE_URL", "")
# Tests drive the outbox dispatcher and webhook deliveries themselves (deterministically);
# no app started by a test runs the background loop unless the test turns it on.
os.environ.setdefault("QIAO_BACKGROUND_JOBS", "false")
kinds.register_builtins()  # before collection: test modules build FieldSets at import


def pytest_report_header() -> str:
    where = f"{make_url(PG_URL).database} (postgresql)" if PG_URL else "sqlite"
    if DATABASE_PASS:
        where += ", database pass: only the tests that touch the database"
    return f"qiao test database: {where}"


# CI runs the suite twice: in full on SQLite (the README's command), then on PostgreSQL with
# QIAO_TEST_PASS=database, which runs only what can differ between the two databases. A
# test that never opens the database (parsers, expression evaluation in Python, page
# helpers) proves nothing new the second time, and the browser tests check the pages, which
# run the same engine calls the API tests already run on both databases. A test marked
# ``database_pass`` runs there too: the pages whose own queries (360° view, lists,
# dashboards, search) go beyond the API's, and the checks of the installed wheel.
DATABASE_PASS = os.environ.get("QIAO_TEST_PASS") == "database"


def _touches_database(item: pytest.Item) -> bool:
    if item.get_closest_marker("database_pass") is not None:
        return True
    names = set(getattr(item, "fixturenames", ()))
    if {"_migrated", "database_url"} & names:
        return "browser" not in names
    module = getattr(item, "module", None)
    return module is not None and "PG_URL" in vars(module)  # runs PostgreSQL itself


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if not DATABASE_PASS:
        return
    keep = [item for item in items if _touches_database(item)]
    gone = [item for item in items if not _touches_database(item)]
    if gone:
        config.hook.pytest_deselected(items=gone)
        items[:] = keep


class _Undo(Exception):
    """Raised to roll ``rolled_back``'s transaction back."""


@contextmanager
def rolled_back(db: Database) -> Iterator[Session]:
    """A write session whose changes (records, projections) are all undone at the end:
    a test's scratch work. (``db.read()`` refuses writes on PostgreSQL.)"""
    with suppress(_Undo), db.write() as s:
        yield s
        raise _Undo


@contextmanager
def scratch_database(url: str, suffix: str) -> Iterator[str]:
    """A new, empty PostgreSQL database beside ``url``'s (named with ``suffix``), dropped
    afterwards: its URL."""
    base = make_url(url)
    name = f"{base.database}_{suffix}"
    admin = create_engine(base, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}"'))
            conn.execute(text(f'CREATE DATABASE "{name}"'))
    except Exception as exc:  # noqa: BLE001
        admin.dispose()
        if os.environ.get("CI") == "true":
            pytest.fail(f"PostgreSQL at {base.render_as_string()} is required in CI: {exc}")
        raise
    try:
        yield base.set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture(scope="session")
def database_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A migrated, empty database for this test run: its URL."""
    if PG_URL:
        with scratch_database(PG_URL, str(os.getpid())) as url:
            yield url
        return
    path: Path = tmp_path_factory.mktemp("db") / "qiao.db"
    yield f"sqlite:///{path}"


@pytest.fixture(scope="session")
def _migrated(database_url: str) -> Iterator[Database]:
    engine = make_engine(database_url)
    upgrade(engine)
    database = Database(engine)
    yield database
    database.dispose()


def _reset(database: Database) -> None:
    tables = [t.name for t in reversed(Base.metadata.sorted_tables)]
    with database.write() as s:  # typed projections: their tables and triggers
        rows = s.execute(text("SELECT app, form FROM store_projections")).all()
        for app, form in rows:
            drop_projection(s, app, form)
    with database.engine.begin() as conn:
        names = [r[0] for r in conn.execute(text("SELECT name FROM store_indexes"))]
        for name in names:
            conn.execute(text(f'DROP INDEX IF EXISTS "{name}"'))
        # DELETE, children first, not TRUNCATE: a test leaves a few rows, and PostgreSQL's
        # TRUNCATE of 51 tables gives each a new file (0.4 s a test against 0.02 s: most
        # of CI's PostgreSQL pass went to emptying tables between tests).
        for table in tables:
            conn.execute(text(f"DELETE FROM {table}"))
        if database.dialect == "postgresql":  # ids start at 1 again, as on a new database
            conn.execute(text(
                "SELECT setval(c.oid, 1, false) FROM pg_class c JOIN pg_namespace n"
                " ON n.oid = c.relnamespace WHERE c.relkind = 'S'"
                " AND n.nspname = current_schema()"))
        elif _has_sequence(conn):
            conn.execute(text("DELETE FROM sqlite_sequence"))


def _has_sequence(conn) -> bool:  # noqa: ANN001
    return conn.execute(text(
        "SELECT 1 FROM sqlite_master WHERE name='sqlite_sequence'")).first() is not None


@pytest.fixture
def db(_migrated: Database) -> Iterator[Database]:
    """The test database, emptied after each test."""
    yield _migrated
    _reset(_migrated)
