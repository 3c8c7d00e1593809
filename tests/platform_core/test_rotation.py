"""Key rotation over records, history and the outbox; ``qiao keys status`` and ``rotate``."""

from __future__ import annotations

import base64
import os

import pytest
from sqlalchemy import select, update
from typer.testing import CliRunner

from platform_core.cli import app as cli
from platform_core.models import OutboxEvent, Record, RecordHistory
from platform_core.security.crypto import Keyring, UndecryptableValue, is_sealed, key_id
from platform_core.security.rotation import rotate, sealed_counts
from platform_core.settings import load_settings
from platform_core.store import SYSTEM, create_record, delete_record, update_record

APP, FORM = "crm", "customer"
CTX = f"{APP}.{FORM}.id_number"


def _seed(db, keyring):
    """Three customers (one updated, one deleted); their plain ids by record id."""
    plain = {}
    with db.write() as s:
        for n in range(3):
            rec = create_record(s, app=APP, form=FORM, actor=SYSTEM, data={
                "name": f"c{n}", "id_number": keyring.seal(f"11010{n}", context=CTX),
                "phones": [keyring.seal(f"138{n}", context=f"{APP}.{FORM}.phones")]})
            plain[rec.id] = f"11010{n}"
        first, last = sorted(plain)[0], sorted(plain)[-1]
        update_record(s, first, actor=SYSTEM, expected_version=1,
                      changes={"id_number": keyring.seal("110109", context=CTX)})
        delete_record(s, last, actor=SYSTEM)
    plain[first] = "110109"
    return plain


def _sealed_everywhere(db):
    """Every sealed value in the three tables, with the context it opens in."""
    found = []
    with db.read() as s:
        for rec in s.execute(select(Record).order_by(Record.id)).scalars():
            found += [(v, CTX) for v in [rec.data["id_number"]]]
            found += [(v, f"{APP}.{FORM}.phones") for v in rec.data["phones"]]
        for h in s.execute(select(RecordHistory).order_by(RecordHistory.id)).scalars():
            found += [(v, CTX) for v in h.diff.get("id_number", [])]
        for e in s.execute(select(OutboxEvent).order_by(OutboxEvent.id)).scalars():
            found += [(v, CTX) for v in e.payload.get("changes", {}).get("id_number", [])]
    assert all(is_sealed(v) for v, _ in found)
    return found


def _versions(db):
    with db.read() as s:
        return s.execute(select(Record.id, Record.row_version, Record.updated_at)
                         .order_by(Record.id)).all()


def test_rotate_reencrypts_records_history_and_outbox(db, settings, keyring):
    plain = _seed(db, keyring)
    before = _versions(db)
    old = _sealed_everywhere(db)
    assert len(old) == 3 + 3 + 2 + 2 and {key_id(v) for v, _ in old} == {"k1"}
    keyring.add_key(settings)
    newer = Keyring.load(settings)

    calls = []
    result = rotate(db, newer, batch=2, progress=lambda d, t: calls.append((d, t)))
    assert result.current == "k2"
    assert result.reencrypted == {"records": 6, "record_history": 2, "outbox": 2, "secrets": 0,
                                  "idempotency": 0}
    assert result.scanned == {"records": 3, "record_history": 1, "outbox": 1, "secrets": 0,
                              "idempotency": 0}
    assert calls == [(2, 5), (3, 5), (4, 5), (5, 5)]

    after = _sealed_everywhere(db)
    assert len(after) == len(old) and {key_id(v) for v, _ in after} == {"k2"}
    assert [newer.unseal(v, context=c) for v, c in after] == [
        keyring.unseal(v, context=c) for v, c in old]
    assert [v["bi"] for v, _ in after] == [v["bi"] for v, _ in old]  # the index stays valid
    with db.read() as s:
        for rid, value in plain.items():
            data = s.get(Record, rid).data
            assert newer.unseal(data["id_number"], context=CTX) == value
            assert data["name"].startswith("c")
    assert _versions(db) == before  # not a user's change: no version bump, no new time

    # A keyring without k1 opens everything: the values really were re-encrypted.
    only_new = Keyring(keys={"k2": newer.keys["k2"]}, current="k2",
                       index_key=newer.index_key, source="test")
    assert all(only_new.unseal(v, context=c) is not None for v, c in after)
    with pytest.raises(UndecryptableValue, match="'k1'"):
        only_new.unseal(old[0][0], context=old[0][1])

    again = rotate(db, newer)
    assert again.total_reencrypted == 0 and again.total_scanned == 5


def test_rotation_is_resumable(db, settings, keyring):
    _seed(db, keyring)
    keyring.add_key(settings)
    newer = Keyring.load(settings)

    def stop(done, _total):
        if done == 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        rotate(db, newer, batch=2, progress=stop)
    kids = [key_id(v) for v, _ in _sealed_everywhere(db)]
    assert "k1" in kids and "k2" in kids  # the first batch was committed
    rest = rotate(db, newer, batch=2)
    assert rest.reencrypted == {"records": 2, "record_history": 2, "outbox": 2, "secrets": 0,
                                "idempotency": 0}
    assert {key_id(v) for v, _ in _sealed_everywhere(db)} == {"k2"}


def test_rows_without_sealed_values_are_not_scanned(db, settings, keyring):
    with db.write() as s:
        create_record(s, app=APP, form=FORM, data={"name": "plain"}, actor=SYSTEM)
        # Looks like the marker to the SQL pre-filter: read, found plain, left alone.
        lookalike = create_record(s, app=APP, form=FORM, actor=SYSTEM,
                                  data={"$enc": "k1:not sealed", "x": 1})
        sealed = create_record(s, app=APP, form=FORM, actor=SYSTEM,
                               data={"id_number": keyring.seal("1", context=CTX)})
    result = rotate(db, keyring)
    assert result.scanned == {"records": 2, "record_history": 0, "outbox": 0, "secrets": 0,
                              "idempotency": 0}
    assert result.total_reencrypted == 0  # already under the current key
    keyring.add_key(settings)
    assert rotate(db, Keyring.load(settings)).reencrypted["records"] == 1
    with db.read() as s:
        assert s.get(Record, lookalike.id).data == {"$enc": "k1:not sealed", "x": 1}
        assert key_id(s.get(Record, sealed.id).data["id_number"]) == "k2"


def test_a_value_that_does_not_open_stops_the_run_naming_the_key(db, settings, keyring):
    with db.write() as s:
        good = create_record(s, app=APP, form=FORM, actor=SYSTEM,
                             data={"id_number": keyring.seal("1", context=CTX)})
        # A ciphertext copied into another field is bound to its own field's context.
        bad = create_record(s, app=APP, form=FORM, actor=SYSTEM,
                            data={"other": keyring.seal("2", context=CTX)})
    keyring.add_key(settings)
    newer = Keyring.load(settings)
    with pytest.raises(UndecryptableValue, match="'k1' does not open in 'crm.customer.other'"):
        rotate(db, newer, batch=1)
    with db.read() as s:
        assert key_id(s.get(Record, good.id).data["id_number"]) == "k2"  # batch 1 committed
        assert key_id(s.get(Record, bad.id).data["other"]) == "k1"
    without_k1 = Keyring(keys={"k2": newer.keys["k2"]}, current="k2",
                         index_key=newer.index_key, source="test")
    with pytest.raises(UndecryptableValue, match="key 'k1', which the keyring"):
        rotate(db, without_k1)


def test_outbox_values_at_the_payload_top_level_and_formless_events(db, keyring, settings):
    top = keyring.seal("x", context=f"{APP}.{FORM}.secret")
    with db.write() as s:
        s.add(OutboxEvent(event_type="custom", app=APP, form=FORM, payload={"secret": top}))
        s.add(OutboxEvent(event_type="system", payload={"secret": top}))
    keyring.add_key(settings)
    newer = Keyring.load(settings)
    result = rotate(db, newer)
    assert result.reencrypted["outbox"] == 1  # an event of no form has no context: left
    with db.read() as s:
        payloads = [e.payload["secret"] for e in s.execute(
            select(OutboxEvent).order_by(OutboxEvent.id)).scalars()]
    assert newer.unseal(payloads[0], context=f"{APP}.{FORM}.secret") == "x"
    assert key_id(payloads[1]) == "k1"


def test_sealed_counts(db, settings, keyring):
    _seed(db, keyring)
    counts = sealed_counts(db, batch=1)
    assert {t: dict(c) for t, c in counts.items()} == {
        "records": {"k1": 6}, "record_history": {"k1": 2}, "outbox": {"k1": 2}, "secrets": {},
        "idempotency": {}}


# -- the command line ---------------------------------------------------------------------


@pytest.fixture
def cli_env(db, database_url, tmp_path, monkeypatch):
    """The CLI's settings: this test's data dir and the test database."""
    monkeypatch.chdir(tmp_path)
    for name in [n for n in os.environ if n.startswith("QIAO_")]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("QIAO_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("QIAO_DATABASE_URL", database_url)
    return load_settings()


def _run(*args):
    return CliRunner().invoke(cli, list(args))


def test_cli_keys_status_and_rotate(db, cli_env):
    keyring = Keyring.load(cli_env)
    _seed(db, keyring)

    status = _run("keys", "status")
    assert status.exit_code == 0, status.output
    path = cli_env.effective_encryption_key_file
    assert f"keys from the key file {path}; current key k1" in status.stdout
    assert ("k1 (current): 10 sealed values (records 6, history 2, outbox 2, secrets 0, "
            "idempotent responses 0)" in status.stdout)

    rotated = _run("keys", "rotate", "--batch", "2")
    assert rotated.exit_code == 0, rotated.output
    lines = rotated.stdout.splitlines()
    assert f"qiao: added key k2 to {path}; it is now the current key" in lines
    assert "qiao: rotated 2/5 rows…" in lines and "qiao: rotated 5/5 rows…" in lines
    assert ("qiao: re-encrypted 10 values under k2 (records 6, history 2, outbox 2, secrets 0, "
            "idempotent responses 0; 5 rows scanned)") in lines
    assert "keep the old keys until rotation has finished" in rotated.stdout
    assert {key_id(v) for v, _ in _sealed_everywhere(db)} == {"k2"}

    status = _run("keys", "status")
    assert "current key k2" in status.stdout and "keys known: k1, k2" in status.stdout
    assert "  k1: 0 sealed values" in status.stdout
    assert "k2 (current): 10 sealed values" in status.stdout
    assert "older keys may be removed" in status.stdout

    again = _run("keys", "rotate", "--no-new-key")
    assert again.exit_code == 0 and "re-encrypting to the current key k2" in again.stdout
    assert "re-encrypted 0 values under k2" in again.stdout


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode()


def test_cli_rotate_with_keys_from_the_environment(db, cli_env, monkeypatch):
    k1, k2, index = _b64(b"\x01" * 32), _b64(b"\x02" * 32), _b64(b"\x03" * 32)
    monkeypatch.setenv("QIAO_ENCRYPTION_KEYS", f"k1={k1},index={index}")
    _seed(db, Keyring.load(load_settings()))

    refused = _run("keys", "rotate", "--new-key")
    assert refused.exit_code == 2
    assert "QIAO_ENCRYPTION_KEYS: append a new entry k2=" in refused.stderr
    assert not cli_env.effective_encryption_key_file.exists()

    monkeypatch.setenv("QIAO_ENCRYPTION_KEYS", f"k1={k1},k2={k2},index={index}")
    done = _run("keys", "rotate")
    assert done.exit_code == 0, done.output
    assert "keys come from QIAO_ENCRYPTION_KEYS; re-encrypting to its last key k2" in done.stdout
    assert "re-encrypted 10 values under k2" in done.stdout
    assert {key_id(v) for v, _ in _sealed_everywhere(db)} == {"k2"}
    assert "keys from QIAO_ENCRYPTION_KEYS; current key k2" in _run("keys", "status").stdout


def test_cli_bad_keys_are_one_line(db, cli_env, monkeypatch):
    monkeypatch.setenv("QIAO_ENCRYPTION_KEYS", "k1=no*pe")
    result = _run("keys", "status")
    assert result.exit_code == 2
    assert result.stderr.splitlines() == [
        "qiao: invalid setting QIAO_ENCRYPTION_KEYS: entry 1 (k1) is not base64"]


def test_rotation_leaves_user_columns_alone(db, settings, keyring):
    """Only the JSON column changes; a concurrent-looking bump of row_version survives."""
    _seed(db, keyring)
    with db.write() as s:
        s.execute(update(Record).values(row_version=Record.row_version + 10))
    before = _versions(db)
    keyring.add_key(settings)
    rotate(db, Keyring.load(settings))
    assert _versions(db) == before
