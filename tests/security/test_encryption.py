"""Encrypted fields end to end: nothing in clear in the database, exact-match search
through the blind index, rotation keeping every value readable."""

from __future__ import annotations

import json
import os
import subprocess

import pytest
from sqlalchemy import text
from sqlalchemy.engine import make_url

from platform_core.app import create_app
from platform_core.security.crypto import Keyring
from platform_core.security.rotation import rotate
from platform_core.settings import load_settings
from tests.engine_forms.forms_setup import ok
from tests.security_setup import client_as

PEOPLE = "/api/v1/apps/kyc/forms/person/records"
IDS = ["110101199003071233", "110101199003071241", "44030419851231002X"]
PERSON = {"key": "person", "name": "客户身份", "fields": [
    {"key": "name", "label": "姓名", "type": "text"},
    {"key": "id_no", "label": "身份证号", "type": "id_card", "unique": True,
     "sensitive": {"mask": True, "encrypt": True}},
    {"key": "income", "label": "月收入", "type": "money", "sensitive": {"encrypt": True}}]}


@pytest.fixture
def kyc(db, tmp_path):
    app = create_app(load_settings(data_dir=tmp_path), db=db)
    admin = client_as(app, db, "admin")
    ok(admin.post("/api/v1/apps", json={"key": "kyc", "name": "KYC"}), 201)
    ok(admin.post("/api/v1/apps/kyc/forms", json=PERSON), 201)
    ok(admin.post("/api/v1/apps/kyc/forms/person/publish"))
    made = [ok(admin.post(PEOPLE, json={"name": f"客户{i}", "id_no": v, "income": "8888.88"}),
               201) for i, v in enumerate(IDS)]
    return app, admin, made


def _dump(db, tmp_path) -> bytes:
    if db.dialect == "sqlite":
        with db.engine.connect() as conn:  # fold the WAL into the file first
            conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
        path = make_url(str(db.engine.url)).database
        return open(path, "rb").read()
    url = make_url(db.engine.url.render_as_string(hide_password=False))
    out = tmp_path / "dump.sql"
    env = os.environ | {"PGPASSWORD": url.password or ""}
    subprocess.run(["pg_dump", "--no-owner", "-h", url.host, "-p", str(url.port), "-U",
                    url.username, "-f", str(out), url.database], check=True, env=env)
    return out.read_bytes()


def test_a_database_dump_shows_no_plaintext(db, kyc, tmp_path):
    _app, admin, made = kyc
    ok(admin.patch(f"{PEOPLE}/{made[0]['id']}", json={"id_no": "110101199001011237"},
                   headers={"If-Match": '"1"'}))  # history and outbox hold values too
    dump = _dump(db, tmp_path)
    assert "客户0".encode() in dump  # the dump is real: unencrypted fields are in it
    for value in [*IDS, "110101199001011237", "8888.88"]:
        assert value.encode() not in dump, value
    assert ok(admin.get(f"{PEOPLE}/{made[0]['id']}"))["data"]["id_no"] == "110101199001011237"


def test_exact_match_search_through_the_blind_index(kyc):
    _app, admin, made = kyc

    def search(op, value):
        found = ok(admin.get(PEOPLE, params={"filter": json.dumps(
            {"field": "id_no", "op": op, "value": value})}))["items"]
        return sorted(r["id"] for r in found)

    assert search("eq", IDS[1]) == [made[1]["id"]]
    assert search("eq", "44030419851231002x") == [made[2]["id"]]  # normalised like input
    assert search("eq", IDS[1][:-1]) == []  # exact only: no prefix match
    assert search("in", [IDS[0], IDS[2]]) == [made[0]["id"], made[2]["id"]]
    assert search("ne", IDS[0]) == [made[1]["id"], made[2]["id"]]
    for op, value in [("starts_with", "1101"), ("gt", IDS[0]), ("contains", "1990")]:
        refused = admin.get(PEOPLE, params={"filter": json.dumps(
            {"field": "id_no", "op": op, "value": value})})
        assert refused.status_code == 422 and "encrypted" in refused.json()["detail"]
    assert admin.get(PEOPLE, params={"sort": "income"}).status_code == 422


def test_a_unique_encrypted_field_refuses_a_duplicate(kyc):
    _app, admin, _made = kyc
    again = admin.post(PEOPLE, json={"name": "重复", "id_no": IDS[0]})
    assert again.status_code in (409, 422) and "id_no" in again.text


def test_rotation_keeps_every_value_readable(db, kyc, tmp_path):
    app, admin, made = kyc
    ok(admin.patch(f"{PEOPLE}/{made[1]['id']}", json={"income": "9999.99"},
                   headers={"If-Match": '"1"'}))
    settings = app.state.qiao.settings
    keyring = Keyring.load(settings)
    keyring.add_key(settings)
    rotated = rotate(db, Keyring.load(settings))
    assert rotated.total_reencrypted >= 6
    with db.read() as s:
        stored = [r[0] for r in s.execute(text("SELECT data FROM records"))]
    assert all('"k2:' in (d if isinstance(d, str) else json.dumps(d)) for d in stored)
    fresh = create_app(settings, db=db)  # a restarted server with the new keyring
    reader = client_as(fresh, db, "auditor2")
    for rec, value in zip(made, IDS, strict=True):
        assert ok(reader.get(f"{PEOPLE}/{rec['id']}"))["data"]["id_no"] == value
    history = ok(reader.get(f"{PEOPLE}/{made[1]['id']}/history"))["items"]
    assert history[1]["diff"]["income"] == ["8888.88", "9999.99"]
    found = ok(reader.get(PEOPLE, params={"filter": json.dumps(
        {"field": "id_no", "op": "eq", "value": IDS[2]})}))["items"]
    assert [r["id"] for r in found] == [made[2]["id"]]


def test_flagging_a_field_encrypt_later_seals_what_is_stored(db, tmp_path):
    app = create_app(load_settings(data_dir=tmp_path), db=db)
    admin = client_as(app, db, "admin")
    plain = json.loads(json.dumps(PERSON))
    for f in plain["fields"]:
        f.pop("sensitive", None)
    ok(admin.post("/api/v1/apps", json={"key": "kyc", "name": "KYC"}), 201)
    ok(admin.post("/api/v1/apps/kyc/forms", json=plain), 201)
    ok(admin.post("/api/v1/apps/kyc/forms/person/publish"))
    rec = ok(admin.post(PEOPLE, json={"name": "甲", "id_no": IDS[0]}), 201)
    ok(admin.patch(f"{PEOPLE}/{rec['id']}", json={"id_no": IDS[1]}, headers={"If-Match": '"1"'}))
    assert IDS[1].encode() in _dump(db, tmp_path)
    ok(admin.put("/api/v1/apps/kyc/forms/person", json=PERSON))
    ok(admin.post("/api/v1/apps/kyc/forms/person/publish"))  # sealing runs after the answer
    dump = _dump(db, tmp_path)
    assert IDS[0].encode() not in dump and IDS[1].encode() not in dump
    found = ok(admin.get(PEOPLE, params={"filter": json.dumps(
        {"field": "id_no", "op": "eq", "value": IDS[1]})}))["items"]
    assert [r["data"]["id_no"] for r in found] == [IDS[1]]
    history = ok(admin.get(f"{PEOPLE}/{rec['id']}/history"))["items"]
    assert history[1]["diff"]["id_no"] == [IDS[0], IDS[1]]
    ok(admin.put("/api/v1/apps/kyc/forms/person", json=plain))  # and back: opened again
    ok(admin.post("/api/v1/apps/kyc/forms/person/publish"))
    assert IDS[1].encode() in _dump(db, tmp_path)
    found = ok(admin.get(PEOPLE, params={"filter": json.dumps(
        {"field": "id_no", "op": "starts_with", "value": "1101"})}))["items"]
    assert [r["data"]["id_no"] for r in found] == [IDS[1]]


def test_rotation_covers_totp_and_webhook_secrets(db, tmp_path):
    import pyotp

    from platform_core.security.rotation import sealed_counts
    from platform_core.webhooks.models import WebhookSubscription
    from platform_core.webhooks.signing import open_secret

    settings = load_settings(data_dir=tmp_path, webhook_allow_hosts="127.0.0.1")
    app = create_app(settings, db=db)
    admin = client_as(app, db, "admin")
    ok(admin.post("/api/v1/apps", json={"key": "kyc", "name": "KYC"}), 201)
    hook = ok(admin.post("/api/v1/apps/kyc/webhooks", json={
        "name": "erp", "url": "http://127.0.0.1:9/hook", "event_types": ["record.created"]}),
        201)
    enrol = ok(admin.post("/api/v1/me/totp"))
    ok(admin.post("/api/v1/me/totp/confirm", json={"code": pyotp.TOTP(enrol["secret"]).now()}),
       204)
    Keyring.load(settings).add_key(settings)
    keyring = Keyring.load(settings)
    result = rotate(db, keyring)
    assert result.reencrypted["secrets"] == 2
    assert set(sealed_counts(db)["secrets"]) == {"k2"}
    with db.read() as s:
        stored = s.get(WebhookSubscription, hook["id"])
    assert open_secret(keyring, "kyc", stored.secret) == hook["secret"]
    fresh = create_app(settings, db=db)
    from fastapi.testclient import TestClient

    anon = TestClient(fresh, raise_server_exceptions=False)
    signed_in = anon.post("/api/v1/auth/token", json={
        "username": "admin", "password": "Test-Passw0rd!",
        "totp": pyotp.TOTP(enrol["secret"]).now()})
    assert signed_in.status_code == 200, signed_in.text
