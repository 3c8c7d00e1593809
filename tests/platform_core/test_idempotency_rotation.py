"""A kept ``Idempotency-Key`` response outlives key rotation: ``qiao keys rotate``
re-encrypts it, so once the old key is dropped a retry still gets the first answer."""

from __future__ import annotations

import json
import os
from datetime import timedelta

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select, update
from typer.testing import CliRunner

from platform_core.app import create_app
from platform_core.cli import app as cli
from platform_core.models import IdempotencyKey
from platform_core.security.crypto import key_id
from platform_core.settings import load_settings
from tests.engine_forms.forms_setup import ok
from tests.security_setup import client_as

TOKENS = "/api/v1/me/tokens"


@pytest.fixture
def cli_env(database_url, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    for name in [n for n in os.environ if n.startswith("QIAO_")]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("QIAO_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("QIAO_DATABASE_URL", database_url)
    return load_settings()


def _stored_keys(db) -> list[str]:
    with db.read() as s:
        return [key_id(json.loads(b)) for b in s.execute(
            select(IdempotencyKey.body).order_by(IdempotencyKey.id)).scalars()]


def test_rotate_then_drop_the_old_key_and_the_retry_gets_the_same_answer(db, cli_env):
    admin = client_as(create_app(cli_env, db=db), db, "admin")
    key = {"Idempotency-Key": "token-erp-1"}
    first = ok(admin.post(TOKENS, json={"name": "erp"}, headers=key), 201)
    assert _stored_keys(db) == ["k1"]

    rotated = CliRunner().invoke(cli, ["keys", "rotate"])
    assert rotated.exit_code == 0, rotated.output
    assert "idempotent responses 1;" in rotated.stdout
    assert _stored_keys(db) == ["k2"]
    status = CliRunner().invoke(cli, ["keys", "status"])
    assert "  k1: 0 sealed values" in status.stdout
    assert "idempotent responses 1)" in status.stdout

    path = cli_env.effective_encryption_key_file
    doc = json.loads(path.read_text())
    del doc["keys"]["k1"]
    path.write_text(json.dumps(doc))

    restarted = TestClient(create_app(load_settings(), db=db), raise_server_exceptions=False)
    restarted.headers["Authorization"] = admin.headers["Authorization"]
    again = restarted.post(TOKENS, json={"name": "erp"}, headers=key)
    assert again.status_code == 201, again.text
    assert again.headers["Idempotent-Replayed"] == "true"
    assert again.json() == first  # the token shown once, shown again — not a second token


def test_expired_responses_are_dropped_not_rotated(db, cli_env):
    admin = client_as(create_app(cli_env, db=db), db, "admin")
    ok(admin.post(TOKENS, json={"name": "a"}, headers={"Idempotency-Key": "old"}), 201)
    ok(admin.post(TOKENS, json={"name": "b"}, headers={"Idempotency-Key": "new"}), 201)
    with db.write() as s:
        s.execute(update(IdempotencyKey).where(IdempotencyKey.key == "old").values(
            expires_at=IdempotencyKey.expires_at - timedelta(hours=25)))
    rotated = CliRunner().invoke(cli, ["keys", "rotate"])
    assert rotated.exit_code == 0, rotated.output
    assert "idempotent responses 1;" in rotated.stdout
    with db.read() as s:
        assert s.execute(select(IdempotencyKey.key)).scalars().all() == ["new"]
    assert _stored_keys(db) == ["k2"]
