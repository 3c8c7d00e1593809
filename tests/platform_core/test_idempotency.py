"""Idempotency-Key: a retried POST returns the first response and writes once."""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest
from sqlalchemy import func, select, update

from platform_core.app import create_app
from platform_core.models import IdempotencyKey, Record, utcnow
from platform_core.settings import load_settings
from tests.engine_forms.forms_setup import make_crm, ok
from tests.security_setup import client_as

RECORDS = "/api/v1/apps/crm/forms/customer/records"


@pytest.fixture
def crm(db, tmp_path):
    app = create_app(load_settings(data_dir=tmp_path), db=db)
    admin = client_as(app, db, "admin")
    make_crm(admin)
    return app, admin


def records(db) -> int:
    with db.read() as s:
        return s.execute(select(func.count()).select_from(Record)).scalar_one()


def test_a_retried_post_writes_once_and_returns_the_first_response(db, crm):
    _app, admin = crm
    key = {"Idempotency-Key": "order-2026-0001"}
    first = admin.post(RECORDS, json={"name": "张三"}, headers=key)
    again = admin.post(RECORDS, json={"name": "张三"}, headers=key)
    assert first.status_code == again.status_code == 201
    assert again.json() == first.json() and again.headers["ETag"] == first.headers["ETag"]
    assert again.headers["Location"] == first.headers["Location"]
    assert again.headers["Idempotent-Replayed"] == "true"
    assert "Idempotent-Replayed" not in first.headers
    assert records(db) == 1
    other = admin.post(RECORDS, json={"name": "李四"}, headers=key)
    assert other.status_code == 422 and other.json()["code"] == "idempotency_key_reused"
    assert ok(admin.post(RECORDS, json={"name": "李四"},
                         headers={"Idempotency-Key": "order-2026-0002"}), 201)
    assert records(db) == 2


def test_keys_are_per_user_and_expire_after_a_day(db, crm):
    app, admin = crm
    other = client_as(app, db, "other")
    key = {"Idempotency-Key": "same"}
    ok(admin.post(RECORDS, json={"name": "甲"}, headers=key), 201)
    ok(other.post(RECORDS, json={"name": "甲"}, headers=key), 201)  # not a replay
    assert records(db) == 2
    with db.write() as s:
        s.execute(update(IdempotencyKey).values(
            expires_at=IdempotencyKey.expires_at - timedelta(hours=25)))
    ok(admin.post(RECORDS, json={"name": "甲"}, headers=key), 201)
    assert records(db) == 3


def test_a_request_cut_off_mid_way_says_its_outcome_is_unknown(db, crm):
    """A first request whose process died leaves its key unanswered: a retry is told to
    wait while it could still be running, then that its outcome is unknown."""
    _app, admin = crm
    key = {"Idempotency-Key": "cut-1"}
    ok(admin.post(RECORDS, json={"name": "丙"}, headers=key), 201)
    with db.write() as s:  # as the key stands when the answer was never stored
        s.execute(update(IdempotencyKey).values(status_code=None, body=None))
    running = admin.post(RECORDS, json={"name": "丙"}, headers=key)
    assert running.status_code == 409 and running.json()["code"] == "idempotency_in_progress"
    with db.write() as s:
        s.execute(update(IdempotencyKey).values(created_at=utcnow() - timedelta(minutes=11)))
    cut = admin.post(RECORDS, json={"name": "丙"}, headers=key)
    assert cut.status_code == 409 and cut.json()["code"] == "idempotency_outcome_unknown"
    assert "Look the result up" in cut.json()["detail"]
    assert records(db) == 1


def test_errors_are_replayed_but_server_errors_are_not_stored(db, crm):
    _app, admin = crm
    key = {"Idempotency-Key": "bad-1"}
    bad = admin.post(RECORDS, json={"mobile": "12"}, headers=key)
    assert bad.status_code == 422
    replayed = admin.post(RECORDS, json={"mobile": "12"}, headers=key)
    assert replayed.status_code == 422 and replayed.json() == bad.json()
    assert replayed.headers["content-type"] == "application/problem+json"


def test_concurrent_retries_write_once(db, crm):
    _app, admin = crm
    results = []

    def post() -> None:
        results.append(admin.post(RECORDS, json={"name": "并发"},
                                  headers={"Idempotency-Key": "race"}).status_code)

    threads = [threading.Thread(target=post) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert records(db) == 1
    assert set(results) <= {201, 409} and 201 in results


def test_without_valid_credentials_the_guard_answers(crm, db):
    app, _admin = crm
    from fastapi.testclient import TestClient

    anon = TestClient(app, raise_server_exceptions=False)
    refused = anon.post(RECORDS, json={"name": "x"}, headers={"Idempotency-Key": "k"})
    assert refused.status_code == 401
    with db.read() as s:
        assert s.execute(select(func.count()).select_from(IdempotencyKey)).scalar_one() == 0


def test_a_kept_response_holding_a_secret_is_stored_sealed(db, crm):
    _app, admin = crm
    key = {"Idempotency-Key": "token-1"}
    first = ok(admin.post("/api/v1/me/tokens", json={"name": "erp"}, headers=key), 201)
    again = ok(admin.post("/api/v1/me/tokens", json={"name": "erp"}, headers=key), 201)
    assert again["token"] == first["token"]
    with db.read() as s:
        stored = s.execute(select(IdempotencyKey.body)).scalar_one()
    assert first["token"] not in stored and '"$enc"' in stored
