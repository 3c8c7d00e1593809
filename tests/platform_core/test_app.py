"""The app factory: /healthz, problem+json errors, domain errors mapped to statuses."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from platform_core.app import create_app
from platform_core.errors import Conflict
from platform_core.security.guard import rule
from platform_core.settings import load_settings


@pytest.fixture
def client(db, tmp_path):
    app = create_app(load_settings(data_dir=tmp_path), db=db)

    @app.get("/boom/conflict", openapi_extra=rule("public"))
    def conflict() -> None:
        raise Conflict("record 1 was changed by someone else", record_id=1)

    @app.get("/boom/crash", openapi_extra=rule("public"))
    def crash() -> None:
        raise RuntimeError("secret internals")

    @app.get("/boom/typed", openapi_extra=rule("public"))
    def typed(n: int) -> int:
        return n

    with TestClient(app, raise_server_exceptions=False) as c:
        yield c


def test_healthz_checks_the_database(client, db):
    r = client.get("/healthz")
    assert r.status_code == 200
    body = r.json()
    assert body["status"] == "ok" and body["database"] == {**body["database"], "ok": True,
                                                           "dialect": db.dialect}


def test_home_page_renders(client):
    r = client.get("/")
    assert r.status_code == 200 and "Qiao" in r.text and "text/html" in r.headers["content-type"]


def test_unknown_route_is_problem_json(client):
    r = client.get("/nope")
    assert r.status_code == 404
    assert r.headers["content-type"] == "application/problem+json"
    assert r.json()["code"] == "not_found" and r.json()["instance"] == "/nope"


def test_domain_error_keeps_status_code_and_extra(client):
    r = client.get("/boom/conflict")
    assert r.status_code == 409 and r.headers["content-type"] == "application/problem+json"
    assert r.json() == {"type": "urn:qiao:problem:conflict", "title": "Conflict",
                        "status": 409, "detail": "record 1 was changed by someone else",
                        "code": "conflict", "record_id": 1, "instance": "/boom/conflict"}


def test_validation_error_names_the_parameter(client):
    r = client.get("/boom/typed", params={"n": "x"})
    assert r.status_code == 422 and r.json()["detail"].startswith("query.n:")


def test_unexpected_error_is_500_without_internals(client):
    r = client.get("/boom/crash")
    assert r.status_code == 500 and "secret internals" not in r.text
    assert r.json()["code"] == "internal_error"


def test_healthz_reports_503_when_the_database_is_unreachable(tmp_path):
    from platform_core.db import Database

    closed_port = "postgresql+psycopg://qiao@127.0.0.1:1/qiao?connect_timeout=2"
    app = create_app(load_settings(data_dir=tmp_path), db=Database.from_url(closed_port))
    with TestClient(app) as c:
        r = c.get("/healthz")
    assert r.status_code == 503 and r.json()["code"] == "unhealthy"
    assert r.json()["detail"].startswith("database: ")


def test_a_write_that_finds_sqlite_locked_is_503_busy_with_retry_after(tmp_path):
    """Another writer holding SQLite's lock past busy_timeout: the request wrote nothing
    and says so (503 busy, Retry-After), not a 500."""
    import sqlite3

    from platform_core.db import Database, make_engine
    from platform_core.migrate import upgrade

    url = f"sqlite:///{tmp_path / 'busy.db'}"
    engine = make_engine(url)
    upgrade(engine)
    engine.dispose()
    app = create_app(load_settings(data_dir=tmp_path, sqlite_busy_timeout_ms=50),
                     db=Database.from_url(url, busy_timeout_ms=50))
    holder = sqlite3.connect(tmp_path / "busy.db", isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    try:
        with TestClient(app, raise_server_exceptions=False) as c:
            r = c.post("/api/v1/auth/token", json={"username": "admin", "password": "x" * 12})
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    assert r.status_code == 503, r.text
    assert r.json()["code"] == "busy" and r.headers["Retry-After"] == "1"
