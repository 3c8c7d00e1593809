"""Field encryption: sealing, the blind index, and where the keys come from."""

from __future__ import annotations

import base64
import json
import os
import stat
from decimal import Decimal

import pytest

from platform_core.security.crypto import (
    Keyring,
    KeyringError,
    UndecryptableValue,
    is_sealed,
    key_id,
    walk_sealed,
)
from platform_core.settings import load_settings

CTX = "crm.customer.id_number"


def b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode()


K1, K2, INDEX = b64(b"\x01" * 32), b64(b"\x02" * 32), b64(b"\x03" * 32)


@pytest.mark.parametrize("value", ["110101199003071234", "", "桥 ünïcode", 42, -7, 3.5, True,
                                   0, ["a", 1], {"b": [1, {"c": None}], "a": "x"}])
def test_seal_unseal_round_trip(keyring, value):
    sealed = keyring.seal(value, context=CTX)
    assert is_sealed(sealed) and key_id(sealed) == "k1"
    assert keyring.unseal(sealed, context=CTX) == value


def test_the_plaintext_is_not_visible(keyring):
    sealed = keyring.seal("110101199003071234", context=CTX)
    token = base64.urlsafe_b64decode(sealed["$enc"].split(":", 1)[1])
    assert b"110101199003071234" not in token and "1101011990" not in json.dumps(sealed)


def test_none_is_never_sealed_and_decimal_seals_as_the_store_writes_it(keyring):
    assert keyring.seal(None, context=CTX) is None
    assert keyring.unseal(keyring.seal(Decimal("12.50"), context=CTX), context=CTX) == "12.50"


def test_a_sealed_value_survives_the_stores_json(keyring):
    from platform_core.db import dumps, loads

    sealed = keyring.seal({"n": 1}, context=CTX)
    assert keyring.unseal(loads(dumps(sealed)), context=CTX) == {"n": 1}


def test_sealing_twice_is_refused(keyring):
    with pytest.raises(ValueError, match="sealed already"):
        keyring.seal(keyring.seal("x", context=CTX), context=CTX)


def test_wrong_context_does_not_open(keyring):
    sealed = keyring.seal("secret", context=CTX)
    with pytest.raises(UndecryptableValue, match="'crm.customer.phone'"):
        keyring.unseal(sealed, context="crm.customer.phone")


def test_tampered_ciphertext_does_not_open(keyring):
    sealed = keyring.seal("secret", context=CTX)
    kid, token = sealed["$enc"].split(":")
    raw = bytearray(base64.urlsafe_b64decode(token))
    raw[-1] ^= 0x01
    tampered = {**sealed, "$enc": f"{kid}:{b64(bytes(raw))}"}
    with pytest.raises(UndecryptableValue) as err:
        keyring.unseal(tampered, context=CTX)
    assert err.value.problem()["code"] == "undecryptable_value"
    assert err.value.status == 500
    with pytest.raises(UndecryptableValue):
        keyring.unseal({**sealed, "$enc": f"{kid}:{token[:10]}"}, context=CTX)  # truncated


def test_unknown_key_id_fails_naming_it(keyring):
    sealed = keyring.seal("secret", context=CTX)
    moved = {**sealed, "$enc": "k9:" + sealed["$enc"].split(":", 1)[1]}
    with pytest.raises(UndecryptableValue, match="'k9'") as err:
        keyring.unseal(moved, context=CTX)
    assert err.value.extra == {"key_id": "k9"}


def test_nonce_is_random_but_the_blind_index_is_stable(keyring):
    a, b = keyring.seal("110101", context=CTX), keyring.seal("110101", context=CTX)
    assert a["$enc"] != b["$enc"]
    assert a["bi"] == b["bi"] == keyring.blind("110101", context=CTX)
    assert len(a["bi"]) == 32 and int(a["bi"], 16) >= 0
    assert keyring.blind("110102", context=CTX) != a["bi"]
    assert keyring.blind("110101", context="crm.customer.phone") != a["bi"]
    assert keyring.blind(1, context=CTX) != keyring.blind("1", context=CTX)
    # Canonical JSON: key order does not change the index.
    assert keyring.blind({"a": 1, "b": 2}, context=CTX) == keyring.blind({"b": 2, "a": 1},
                                                                         context=CTX)


def test_reseal_moves_to_the_current_key_and_keeps_the_index(settings, keyring):
    sealed = keyring.seal({"n": 1}, context=CTX)
    keyring.add_key(settings)
    newer = Keyring.load(settings)
    moved = newer.reseal(sealed, context=CTX)
    assert key_id(moved) == "k2" and moved["bi"] == sealed["bi"]
    assert newer.unseal(moved, context=CTX) == {"n": 1}
    with pytest.raises(UndecryptableValue, match="'k2'"):
        keyring.unseal(moved, context=CTX)  # the old keyring does not hold k2


def test_is_sealed_and_key_id():
    assert is_sealed({"$enc": "k1:abc", "bi": "00"}) and is_sealed({"$enc": "k1:abc"})
    for obj in ("k1:abc", None, {"$enc": 1}, {"$enc": "k1:a", "other": 1}, {"bi": "x"}):
        assert not is_sealed(obj)
    assert key_id({"$enc": "k7:abc"}) == "k7"
    with pytest.raises(UndecryptableValue, match="malformed"):
        key_id({"$enc": "no-colon"})


def test_walk_sealed_replaces_nested_values_in_a_copy(keyring):
    old, new = keyring.seal("a", context=CTX), keyring.seal("b", context=CTX)
    diff = {"id_number": [old, new], "name": ["x", "y"], "rows": [{"v": old}], "n": None}
    out = walk_sealed(diff, lambda s: "<" + key_id(s) + ">")
    assert out == {"id_number": ["<k1>", "<k1>"], "name": ["x", "y"], "rows": [{"v": "<k1>"}],
                   "n": None}
    assert diff["id_number"] == [old, new]  # the original is untouched


def test_key_file_is_created_0600_and_reused(settings, keyring):
    path = settings.effective_encryption_key_file
    assert path == settings.data_dir / "encryption.keys"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    doc = json.loads(path.read_text())
    assert doc["format_version"] == 1 and doc["current"] == "k1" and list(doc["keys"]) == ["k1"]
    assert base64.urlsafe_b64decode(doc["keys"]["k1"]) == keyring.keys["k1"]
    assert len(keyring.index_key) == 32 and keyring.index_key != keyring.keys["k1"]
    again = Keyring.load(settings)
    assert again == keyring and again.source == str(path)
    assert repr(again) == f"Keyring(current='k1', source='{path}')"  # no key material
    assert [p.name for p in path.parent.iterdir()] == ["encryption.keys"]  # no temp left


def test_add_key_in_file_mode(settings, keyring):
    sealed = keyring.seal("old", context=CTX)
    assert keyring.add_key(settings) == "k2"
    newer = Keyring.load(settings)
    assert newer.current == "k2" and set(newer.keys) == {"k1", "k2"}
    assert newer.keys["k1"] == keyring.keys["k1"] and newer.index_key == keyring.index_key
    assert newer.unseal(sealed, context=CTX) == "old"
    assert stat.S_IMODE(settings.effective_encryption_key_file.stat().st_mode) == 0o600
    # A stale in-memory keyring adds after what is on disk, never over it.
    assert keyring.add_key(settings) == "k3"
    assert set(Keyring.load(settings).keys) == {"k1", "k2", "k3"}
    assert sorted(p.name for p in settings.data_dir.iterdir()) == ["encryption.keys"]


def test_env_keys_win_over_the_file(settings, tmp_path):
    Keyring.load(settings)  # creates the file
    env = load_settings(data_dir=settings.data_dir,
                        encryption_keys=f"k1={K1}, index={INDEX}, k2={K2}")
    keyring = Keyring.load(env)
    assert keyring.source == "env" and keyring.current == "k2"  # the last data key
    assert keyring.keys == {"k1": b"\x01" * 32, "k2": b"\x02" * 32}
    assert keyring.index_key == b"\x03" * 32


def test_env_key_without_padding_reads(tmp_path):
    unpadded = b64(b"\x05" * 32).rstrip("=")
    keyring = Keyring.load(load_settings(data_dir=tmp_path,
                                         encryption_keys=f"k1={unpadded},index={INDEX}"))
    assert keyring.keys["k1"] == b"\x05" * 32
    assert not (tmp_path / "encryption.keys").exists()  # env mode writes no file


def test_add_key_in_env_mode_tells_what_to_append(tmp_path):
    env = load_settings(data_dir=tmp_path, encryption_keys=f"k1={K1},index={INDEX}")
    with pytest.raises(KeyringError, match="QIAO_ENCRYPTION_KEYS: append a new entry k2="):
        Keyring.load(env).add_key(env)


@pytest.mark.parametrize(("text", "message"), [
    (f"k1{K1}", "entry 1 is not <key id>=<base64>"),
    (f"k1={K1},index={INDEX},k:2={K2}", "entry 3 is not <key id>=<base64>"),
    (f"k1={K1},k1={K2},index={INDEX}", "entry 2 repeats the key id 'k1'"),
    (f"k1=not*base64,index={INDEX}", "entry 1 (k1) is not base64"),
    (f"k1={b64(b'short')},index={INDEX}", "entry 1 (k1) must be 32 bytes of base64, not 5"),
    (f"k1={K1}", "no blind-index key (index=<base64>)"),
    (f"index={INDEX}", "no data key"),
    (f"k1={K1},index={INDEX},", "entry 3 is not <key id>=<base64>"),
])
def test_env_errors_are_one_clear_line(tmp_path, text, message):
    with pytest.raises(KeyringError) as err:
        Keyring.load(load_settings(data_dir=tmp_path, encryption_keys=text))
    line = str(err.value)
    assert line.startswith("invalid setting QIAO_ENCRYPTION_KEYS: ") and message in line
    assert "\n" not in line and K1 not in line and K2 not in line and INDEX not in line


@pytest.mark.parametrize(("content", "message"), [
    ("not json", "not JSON"),
    ('{"format_version": 2}', "format_version must be 1"),
    (json.dumps({"format_version": 1, "current": "k2", "keys": {"k1": K1}, "index": INDEX}),
     "'current' must name one of 'keys'"),
    (json.dumps({"format_version": 1, "current": "k1", "keys": {"k1": K1}}),
     "index key must be 32 bytes"),
    (json.dumps({"format_version": 1, "current": "k1", "keys": {"k1": b64(b"ab")}, "index": INDEX}),
     "key k1 must be 32 bytes"),
])
def test_a_bad_key_file_is_one_line_naming_it(settings, content, message):
    path = settings.effective_encryption_key_file
    path.parent.mkdir(parents=True)
    path.write_text(content)
    with pytest.raises(KeyringError) as err:
        Keyring.load(settings)
    assert str(err.value).startswith(f"invalid encryption key file {path}: ")
    assert message in str(err.value) and "\n" not in str(err.value)


def test_a_key_file_that_cannot_be_read_is_one_line(settings):
    path = settings.effective_encryption_key_file
    path.mkdir(parents=True)  # a directory where the file should be
    with pytest.raises(KeyringError, match=f"invalid encryption key file {path}: "):
        Keyring.load(settings)


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads any file")
def test_an_unreadable_key_file(settings, keyring):
    path = settings.effective_encryption_key_file
    path.chmod(0)
    with pytest.raises(KeyringError, match="Permission denied"):
        Keyring.load(settings)
