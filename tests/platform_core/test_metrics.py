"""/metrics: Prometheus text an operator scrapes, and only an operator may read."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from platform_core.app import create_app
from platform_core.metrics import route_kind
from platform_core.models import OutboxEvent
from platform_core.settings import load_settings
from tests.security_setup import add_user, token_for

REMOTE = ("203.0.113.7", 40000)


@pytest.fixture
def app(db, tmp_path):
    return create_app(load_settings(data_dir=tmp_path), db=db)


def test_loopback_scrape_shows_latency_outbox_and_pool(app, db):
    with db.write() as s:
        s.add(OutboxEvent(event_type="record.created", app="crm", form="deal", payload={}))
        s.add(OutboxEvent(event_type="record.created", app="crm", form="deal", payload={},
                          attempts=10))
    with TestClient(app, client=("127.0.0.1", 40000)) as c:
        c.get("/healthz")
        r = c.get("/metrics")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/plain")
    lines = r.text.splitlines()
    assert "qiao_outbox_pending 1" in lines and "qiao_outbox_dead_letters 1" in lines
    assert any(line.startswith('qiao_request_seconds_count{kind="other"')
               and not line.endswith(" 0") for line in lines)
    assert any(line.startswith("qiao_db_pool_size{") for line in lines)
    assert any(line.startswith("qiao_scheduler_leader{") for line in lines)
    assert any(line.startswith("qiao_scheduler_leaders ") for line in lines)
    assert "/healthz" not in r.text  # labels are route kinds, never paths


def test_remote_scrape_needs_the_scrape_token_or_an_admin(app, db, monkeypatch):
    monkeypatch.setenv("QIAO_METRICS_TOKEN", "scrape-secret")
    admin = token_for(db, add_user(db, "ops"))
    plain = token_for(db, add_user(db, "clerk", roles=()))
    with TestClient(app, client=REMOTE, raise_server_exceptions=False) as c:
        assert c.get("/metrics").status_code == 403
        assert c.get("/metrics", headers={"Authorization": "Bearer wrong"}).status_code == 403
        assert c.get("/metrics", headers={"Authorization": f"Bearer {plain}"}
                     ).status_code == 403
        assert c.get("/metrics", headers={"Authorization": "Bearer scrape-secret"}
                     ).status_code == 200
        assert c.get("/metrics", headers={"Authorization": f"Bearer {admin}"}
                     ).status_code == 200


@pytest.mark.parametrize(("method", "template", "kind"), [
    ("GET", "/api/v1/apps/{app}/forms/{form}/records", "list"),
    ("POST", "/api/v1/apps/{app}/forms/{form}/records", "create"),
    ("PATCH", "/api/v1/apps/{app}/forms/{form}/records/{record_id}", "record"),
    ("POST", "/api/v1/apps/{app}/forms/{form}/records/bulk", "bulk"),
    ("GET", "/api/v1/apps/{app}/reports/{report}", "report"),
    ("GET", "/apps/{app}/dashboards/{dashboard}", "page"),
    ("GET", "/api/v1/apps/{app}/dashboards/{dashboard}", "dashboard"),
    ("POST", "/api/v1/auth/login", "auth"),
    ("GET", None, "other"),
])
def test_route_kinds_come_from_templates(method, template, kind):
    assert route_kind(method, template) == kind
