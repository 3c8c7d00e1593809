"""The audit log API (admins only, filtered, paged) and the HTTP hardening of the app."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from platform_core.app import create_app
from platform_core.settings import load_settings
from tests.engine_forms.forms_setup import make_crm, ok
from tests.security_setup import client_as


@pytest.fixture
def app(db, tmp_path):
    return create_app(load_settings(data_dir=tmp_path, max_request_bytes=64 * 1024), db=db)


def test_audit_log_is_filtered_paged_and_for_admins_only(db, app):
    admin = client_as(app, db, "boss")
    make_crm(admin)
    for i in range(3):
        ok(admin.post("/api/v1/apps/crm/forms/customer/records", json={"name": f"客户{i}"}),
           201)
    staff = client_as(app, db, "staff", roles=("staff",))
    assert staff.get("/api/v1/audit").status_code == 403
    records = ok(admin.get("/api/v1/audit", params={"action": "record.", "limit": 2}))
    assert [e["action"] for e in records["items"]] == ["record.create"] * 2
    assert records["items"][0]["id"] > records["items"][1]["id"]  # newest first
    older = ok(admin.get("/api/v1/audit", params={"action": "record.",
                                                  "before": records["next_before"]}))
    assert len(older["items"]) == 1 and older["next_before"] is None
    schema = ok(admin.get("/api/v1/audit", params={"action": "form.publish"}))["items"]
    assert {e["target"] for e in schema} == {"crm.customer", "crm.loan_case"}
    assert all(e["actor_name"] == "boss" for e in schema)
    mine = ok(admin.get("/api/v1/audit", params={"actor": "boss", "target": "app:crm"}))
    assert [e["action"] for e in mine["items"]] == ["app.create"]
    later = ok(admin.get("/api/v1/audit", params={"since": "2999-01-01T00:00:00Z"}))
    assert later["items"] == []


def test_security_headers_on_api_and_pages(app):
    anon = TestClient(app, raise_server_exceptions=False)
    for response in (anon.get("/healthz"), anon.get("/api/v1/apps"),
                     anon.get("/nope"), anon.get("/login")):
        csp = response.headers["content-security-policy"]
        assert "frame-ancestors 'none'" in csp and "unsafe-inline" not in csp
        assert "script-src 'self'" in csp
        assert response.headers["x-content-type-options"] == "nosniff"
    assert anon.get("/api/v1/apps").headers["cache-control"] == "no-store"


def test_oversized_requests_are_refused_before_the_app(db, app):
    admin = client_as(app, db, "boss")
    big = admin.post("/api/v1/apps", content=b"{" + b" " * 70_000 + b"}",
                     headers={"Content-Type": "application/json"})
    assert big.status_code == 413 and big.json()["code"] == "payload_too_large"
    assert admin.post("/api/v1/apps", json={"key": "ok", "name": "OK"}).status_code == 201
