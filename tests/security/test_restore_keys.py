"""A restore cannot strand encrypted data silently: a real ``qiao backup`` archive names
the keys its values need (never the keys), ``qiao restore`` refuses where they are
missing unless told to go on, ``qiao keys status`` counts what no key opens, and a value
that does not open is unavailable in the API and on pages — the rest stays readable."""

from __future__ import annotations

import json
import logging
import os
import shutil
import subprocess
import sys
import tarfile

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from engine_forms import sealing
from platform_core.app import create_app
from platform_core.db import Database
from platform_core.migrate import upgrade
from platform_core.models import Record
from platform_core.security.crypto import Keyring, is_sealed
from platform_core.settings import load_settings
from tests.conftest import scratch_database
from tests.engine_forms.forms_setup import ok
from tests.security_setup import client_as, token_for

PEOPLE = "/api/v1/apps/kyc/forms/person/records"
PERSON = {"key": "person", "name": "客户身份", "fields": [
    {"key": "name", "label": "姓名", "type": "text"},
    {"key": "id_no", "label": "身份证号", "type": "id_card",
     "sensitive": {"mask": True, "encrypt": True}},
    {"key": "income", "label": "月收入", "type": "money", "sensitive": {"encrypt": True}}]}
IDS = ["110101199003071233", "110101199003071241", "44030419851231002X"]


@pytest.fixture
def url(database_url, tmp_path):
    """A database of its own: a restore replaces all of it."""
    if not database_url.startswith("postgresql"):
        yield f"sqlite:///{tmp_path / 'qiao.db'}"
        return
    with scratch_database(database_url, "restorekeys") as fresh:
        yield fresh


@pytest.fixture
def env(url, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    for name in [n for n in os.environ if n.startswith("QIAO_")]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("QIAO_DATABASE_URL", url)
    monkeypatch.setattr(sealing, "_reported", set())  # this test's log lines, not others'

    def use(data_dir: str):
        monkeypatch.setenv("QIAO_DATA_DIR", str(tmp_path / data_dir))
        return load_settings()

    return use


def qiao(*args: str) -> subprocess.CompletedProcess[str]:
    """The command as an operator runs it: its own process (a restore needs the server —
    here, this test's connections — stopped)."""
    return subprocess.run([sys.executable, "-m", "platform_core", *args], text=True,
                          capture_output=True, timeout=120, check=False)


def _people(url: str) -> int:
    db = Database.from_url(url)
    try:
        with db.read() as s:
            return s.execute(select(func.count()).select_from(Record)).scalar_one()
    finally:
        db.dispose()


def _with_kyc(settings, url):
    """The kyc app with three people (history too: one is edited) on ``url``."""
    db = Database.from_url(url)
    upgrade(db.engine)
    admin = client_as(create_app(settings, db=db), db, "admin")
    ok(admin.post("/api/v1/apps", json={"key": "kyc", "name": "KYC"}), 201)
    ok(admin.post("/api/v1/apps/kyc/forms", json=PERSON), 201)
    ok(admin.post("/api/v1/apps/kyc/forms/person/publish"))
    made = [ok(admin.post(PEOPLE, json={"name": f"客户{i}", "id_no": v, "income": "8888.88"}),
               201) for i, v in enumerate(IDS)]
    ok(admin.patch(f"{PEOPLE}/{made[0]['id']}", json={"income": "9999.99"},
                   headers={"If-Match": '"1"'}))
    return db, admin


def test_restore_refuses_without_the_keys_then_shows_what_it_cannot_open(env, url, tmp_path,
                                                                         caplog):
    source = env("source")
    db, admin = _with_kyc(source, url)
    archive = tmp_path / "backups" / "kyc.tar.gz"
    made = qiao("backup", str(archive))
    assert made.returncode == 0, made.stderr
    assert "its encrypted values are sealed with the keys k1 (" in made.stdout
    with tarfile.open(archive) as tar:
        manifest = json.loads(tar.extractfile("manifest.json").read())
    keys = json.loads(source.effective_encryption_key_file.read_text())
    assert manifest["encryption"]["keys"]["k1"]["values"] >= 6
    assert len(manifest["encryption"]["keys"]["k1"]["fingerprint"]) == 16
    for secret in [*keys["keys"].values(), keys["index"]]:  # the keys themselves: never
        assert secret.rstrip("=") not in json.dumps(manifest)
    ok(admin.post(PEOPLE, json={"name": "备份之后"}), 201)
    db.dispose()  # the server stops for a restore
    assert _people(url) == 4

    # A fresh data directory: no key file at all. Nothing is replaced.
    fresh = env("fresh")
    refused = qiao("restore", str(archive))
    assert refused.returncode == 2, refused.stderr
    where = str(fresh.effective_encryption_key_file.resolve())
    assert f"the key file {where} does not hold: k1 (not there;" in refused.stderr
    assert "--allow-missing-keys" in refused.stderr and "nothing restored" in refused.stderr
    assert _people(url) == 4 and not fresh.effective_encryption_key_file.exists()

    # Its own new keys (what a first start makes): same id, another key — refused too.
    Keyring.load(fresh)
    refused = qiao("restore", str(archive))
    assert refused.returncode == 2
    assert "k1 (another key under that id;" in refused.stderr
    assert "the blind-index key differs" in refused.stderr
    assert _people(url) == 4

    # Told to go on: restored, with a warning per field.
    forced = qiao("restore", str(archive), "--allow-missing-keys")
    assert forced.returncode == 0, forced.stderr
    assert _people(url) == 3
    assert "encrypted values cannot be opened with the keys of the key file" in forced.stderr
    assert "  kyc.person.id_no: 3 (records 3) under key k1, does not open" in forced.stderr
    assert "  kyc.person.income: " in forced.stderr

    status = qiao("keys", "status")
    assert status.returncode == 1
    assert "sealed values cannot be opened with these keys" in status.stdout
    lines = status.stdout.splitlines()
    income = [line for line in lines if line.startswith("  kyc.person.income: ")]
    assert len(income) == 1 and "history 2" in income[0] and "records 3" in income[0]
    assert income[0].endswith("under key k1, does not open")

    # The API: every record readable, the unopenable cells null and named, logged once.
    db = Database.from_url(url)
    app = create_app(load_settings(), db=db)
    reader = TestClient(app, raise_server_exceptions=False)
    reader.headers["Authorization"] = admin.headers["Authorization"]
    caplog.set_level(logging.WARNING, logger="qiao.security")
    for _ in range(2):
        page = reader.get(PEOPLE)
        assert page.status_code == 200, page.text
    items = page.json()["items"]
    assert sorted(i["data"]["name"] for i in items) == ["客户0", "客户1", "客户2"]
    for item in items:
        assert item["data"]["id_no"] is None and item["data"]["income"] is None
        assert sorted(item["_unavailable"]) == ["id_no", "income"]
    one = reader.get(f"{PEOPLE}/{items[0]['id']}")
    assert one.status_code == 200 and one.json()["_unavailable"]
    history = reader.get(f"{PEOPLE}/{items[0]['id']}/history")
    assert history.status_code in (200, 404)  # where the route exists: no 500
    logged = [r for r in caplog.records if "cannot be opened" in r.getMessage()]
    assert len(logged) == 2  # one per field and key, not one per row or request
    assert "kyc.person.id_no" in logged[0].getMessage() + logged[1].getMessage()

    # A change to such a record is refused: the sealed value is never blanked.
    first = items[0]
    refused = reader.patch(f"{PEOPLE}/{first['id']}", json={"name": "改名"},
                           headers={"If-Match": f'"{first["row_version"]}"'})
    assert refused.json()["code"] == "undecryptable_value"
    with db.read() as s:
        kept = s.get(Record, first["id"]).data
    assert is_sealed(kept["id_no"]) and kept["name"] == first["data"]["name"]

    # The pages: the list and the record show a marker, the names stay.
    html = reader.get("/apps/kyc/forms/person", headers={"Accept": "text/html"})
    assert html.status_code == 200 and html.text.count("data-unavailable") >= 6
    assert "客户1" in html.text
    record = reader.get(f"/apps/kyc/forms/person/records/{items[0]['id']}",
                        headers={"Accept": "text/html"})
    assert record.status_code == 200 and "data-unavailable" in record.text

    # The right keys back: status is clean, and a plain restore goes through.
    db.dispose()
    shutil.copy(source.effective_encryption_key_file, fresh.effective_encryption_key_file)
    assert qiao("keys", "status").returncode == 0
    again = qiao("restore", str(archive))
    assert again.returncode == 0, again.stderr
    assert "cannot be opened" not in again.stderr
    db = Database.from_url(url)
    app = create_app(load_settings(), db=db)
    back = TestClient(app)
    back.headers["Authorization"] = f"Bearer {token_for(db, admin.user_id, None)}"
    items = ok(back.get(PEOPLE))["items"]
    assert sorted(i["data"]["id_no"] for i in items) == sorted(IDS)
    assert all("_unavailable" not in i for i in items)
    db.dispose()
