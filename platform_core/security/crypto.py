"""Field encryption: AES-256-GCM sealed values, a blind index, and the keyring.

A sealed value replaces the plain value inside a record's JSON ``data``::

    {"$enc": "<key id>:<urlsafe base64 of 12-byte nonce + ciphertext + tag>", "bi": "<hex>"}

The plaintext is the canonical JSON of the value, so any JSON value can be sealed. The
caller's context (``"<app>.<form>.<field>"``) is the associated data: a ciphertext copied
into another field does not open. ``bi`` is an HMAC of the value under the separate index
key, so equal values can be found without decrypting; it survives re-encryption because
the index key is never rotated with the data keys.

Keys never go in the database. They come from ``QIAO_ENCRYPTION_KEYS`` (which wins) or
from the key file (``Settings.effective_encryption_key_file``, created 0600 on first use).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import os
import re
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from platform_core.errors import DomainError
from platform_core.settings import Settings

ENV_NAME = "QIAO_ENCRYPTION_KEYS"
FORMAT_VERSION = 1
KEY_BYTES = 32
NONCE_BYTES = 12
BLIND_CHARS = 32
_KEY_ID = re.compile(r"[A-Za-z0-9_-]{1,32}")
_SEALED_KEYS = frozenset({"$enc", "bi"})


class KeyringError(RuntimeError):
    """The key source (``QIAO_ENCRYPTION_KEYS`` or the key file) is malformed; one line."""


class UndecryptableValue(DomainError):
    """A sealed value does not open: unknown key id, wrong context, or tampered bytes."""

    status, code, title = 500, "undecryptable_value", "Undecryptable value"


def _b64encode(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode("ascii")


def _b64decode(text: str) -> bytes:
    # Padding is optional so a key pasted without its trailing "=" still reads.
    padded = text + "=" * (-len(text) % 4)
    return base64.b64decode(padded, altchars=b"-_", validate=True)


def _key(text: Any, where: str) -> bytes:
    """A 32-byte key from its base64 text; ``where`` names it (never the key) on error."""
    try:
        raw = _b64decode(text) if isinstance(text, str) else b""
    except (binascii.Error, ValueError):
        raise KeyringError(f"{where} is not base64") from None
    if len(raw) != KEY_BYTES:
        raise KeyringError(f"{where} must be {KEY_BYTES} bytes of base64, not {len(raw)}")
    return raw


_CANONICAL = json.JSONEncoder(ensure_ascii=False, sort_keys=True, separators=(",", ":"),
                              default=lambda v: str(v) if isinstance(v, Decimal)
                              else _refuse(v))
_quoted = json.encoder.encode_basestring  # type: ignore[attr-defined]


def _canonical(value: Any) -> bytes:
    # Decimal as its string, as the store's encoder (db.dumps) writes it. A text (the
    # common case: phones, ID numbers) is quoted directly, as the encoder would.
    if type(value) is str:
        return _quoted(value).encode()
    return _CANONICAL.encode(value).encode()


def _refuse(value: Any) -> Any:
    raise TypeError(f"{type(value).__name__} cannot be sealed (not a JSON value)")


def is_sealed(obj: Any) -> bool:
    """Whether ``obj`` is a sealed value (``{"$enc": "...", "bi": "..."}``)."""
    return (isinstance(obj, dict) and isinstance(obj.get("$enc"), str)
            and obj.keys() <= _SEALED_KEYS)


def key_id(sealed: dict[str, Any]) -> str:
    """The id of the key a sealed value was encrypted under."""
    if not is_sealed(sealed) or ":" not in sealed["$enc"]:
        raise UndecryptableValue("malformed sealed value (no key id)")
    return sealed["$enc"].split(":", 1)[0]


def walk_sealed(obj: Any, fn: Callable[[dict[str, Any]], Any]) -> Any:
    """A copy of a JSON structure with every sealed value ``s`` replaced by ``fn(s)``."""
    if is_sealed(obj):
        return fn(obj)
    if isinstance(obj, dict):
        return {k: walk_sealed(v, fn) for k, v in obj.items()}
    if isinstance(obj, list):
        return [walk_sealed(v, fn) for v in obj]
    return obj


@dataclass(frozen=True)
class Keyring:
    """The installation's data keys (by id), the current one, and the blind-index key.

    ``source`` is ``"env"`` or the key file's path. Build it with ``Keyring.load``.
    """

    keys: dict[str, bytes] = field(repr=False)  # never in a log line or a traceback
    current: str
    index_key: bytes = field(repr=False)
    source: str

    # -- loading ----------------------------------------------------------------------

    @classmethod
    def load(cls, settings: Settings) -> Keyring:
        """The keyring from ``QIAO_ENCRYPTION_KEYS`` or else the key file (created if absent)."""
        if settings.encryption_keys.strip():
            return cls._from_env(settings.encryption_keys)
        path = settings.effective_encryption_key_file
        if not path.exists():
            _create_file(path)
        return cls._from_file(path)

    @classmethod
    def find(cls, settings: Settings) -> Keyring | None:
        """Like ``load`` but never creates a key file: None when there is none (a restore
        into a fresh data directory must not mint keys that open nothing)."""
        if settings.encryption_keys.strip():
            return cls._from_env(settings.encryption_keys)
        path = settings.effective_encryption_key_file
        return cls._from_file(path) if path.exists() else None

    def fingerprint(self, kid: str) -> str | None:
        """A short one-way fingerprint of data key ``kid`` (``"index"``: the blind-index
        key), None when the keyring lacks it. It tells whether two keyrings hold the same
        key under an id — a backup's manifest records it — and reveals nothing of it."""
        key = self.index_key if kid == "index" else self.keys.get(kid)
        if key is None:
            return None
        return hmac.new(key, b"qiao key fingerprint v1", hashlib.sha256).hexdigest()[:16]

    @classmethod
    def _from_env(cls, text: str) -> Keyring:
        keys: dict[str, bytes] = {}
        index: bytes | None = None
        for n, entry in enumerate(text.split(","), start=1):
            kid, sep, b64 = (part.strip() for part in entry.partition("="))
            where = f"invalid setting {ENV_NAME}: entry {n}"
            if not sep or not _KEY_ID.fullmatch(kid):
                raise KeyringError(f"{where} is not <key id>=<base64>")
            if kid in keys or (kid == "index" and index is not None):
                raise KeyringError(f"{where} repeats the key id {kid!r}")
            if kid == "index":
                index = _key(b64, f"{where} ({kid})")
            else:
                keys[kid] = _key(b64, f"{where} ({kid})")
        if not keys:
            raise KeyringError(f"invalid setting {ENV_NAME}: no data key (k1=<base64>)")
        if index is None:
            raise KeyringError(f"invalid setting {ENV_NAME}: no blind-index key "
                               "(index=<base64>)")
        return cls(keys=keys, current=list(keys)[-1], index_key=index, source="env")

    @classmethod
    def _from_file(cls, path: Path) -> Keyring:
        where = f"invalid encryption key file {path}"
        try:
            doc = json.loads(path.read_text(encoding="utf-8"))
        except OSError as exc:
            raise KeyringError(f"{where}: {exc.strerror}") from None
        except ValueError:
            raise KeyringError(f"{where}: not JSON") from None
        if not isinstance(doc, dict) or doc.get("format_version") != FORMAT_VERSION:
            raise KeyringError(f"{where}: format_version must be {FORMAT_VERSION}")
        raw_keys, current = doc.get("keys"), doc.get("current")
        if not isinstance(raw_keys, dict) or current not in raw_keys:
            raise KeyringError(f"{where}: 'current' must name one of 'keys'")
        keys = {}
        for kid, b64 in raw_keys.items():
            if not _KEY_ID.fullmatch(kid) or kid == "index":
                raise KeyringError(f"{where}: bad key id {kid!r}")
            keys[kid] = _key(b64, f"{where}: key {kid}")
        index = _key(doc.get("index"), f"{where}: index key")
        return cls(keys=keys, current=current, index_key=index, source=str(path))

    def add_key(self, settings: Settings) -> str:
        """Write a new data key to the key file and make it current; its id.

        Only in file mode: keys from the environment are the operator's to change. The
        file is read again first, so a key another process added is never dropped; the
        old keys stay, since values sealed under them need them until ``rotate`` has
        re-encrypted everything. Load the keyring again to use the new key.
        """
        if settings.encryption_keys.strip():
            raise KeyringError(f"keys come from {ENV_NAME}: append a new entry "
                               f"{_next_id(self.keys)}=<base64 of 32 random bytes> after "
                               f"{self.current}=… and run again")
        on_disk = Keyring.load(settings)
        new = _next_id(on_disk.keys)
        keys = {kid: _b64encode(raw) for kid, raw in on_disk.keys.items()}
        keys[new] = _b64encode(secrets.token_bytes(KEY_BYTES))
        _write_file(Path(on_disk.source), {"format_version": FORMAT_VERSION, "current": new,
                                           "keys": keys,
                                           "index": _b64encode(on_disk.index_key)},
                    replace=True)
        return new

    # -- sealing ----------------------------------------------------------------------

    def seal(self, value: Any, *, context: str) -> dict[str, Any] | None:
        """Encrypt ``value`` under the current key, bound to ``context``. None stays None."""
        if value is None:
            return None
        if is_sealed(value):
            raise ValueError("value is sealed already")
        plain = _canonical(value)
        return {"$enc": self._encrypt(plain, context), "bi": self._blind(plain, context)}

    def unseal(self, sealed: dict[str, Any], *, context: str) -> Any:
        """The value inside ``sealed``; ``UndecryptableValue`` when it does not open."""
        return json.loads(self._decrypt(sealed, context))

    def reseal(self, sealed: dict[str, Any], *, context: str) -> dict[str, Any]:
        """``sealed`` re-encrypted under the current key (``bi`` kept as it is)."""
        out = {"$enc": self._encrypt(self._decrypt(sealed, context), context)}
        if "bi" in sealed:
            out["bi"] = sealed["bi"]
        return out

    def seal_text(self, value: Any, *, context: str) -> str:
        """A secret (a password, an API key, a TOTP seed) sealed as compact JSON text for
        a text column: like ``seal`` but with no blind index, since nobody looks a secret
        up by its value (and an index would only help someone guessing it)."""
        return json.dumps({"$enc": self._encrypt(_canonical(value), context)},
                          separators=(",", ":"))

    def open_text(self, stored: str, *, context: str) -> Any:
        """The value inside ``seal_text``'s text; ``UndecryptableValue`` when it does not
        open."""
        try:
            sealed = json.loads(stored)
        except ValueError:
            raise UndecryptableValue("malformed sealed value (not JSON)") from None
        return self.unseal(sealed, context=context)

    def blind(self, value: Any, *, context: str) -> str:
        """The blind index of ``value`` in ``context``: equal values, equal indexes."""
        return self._blind(_canonical(value), context)

    def _blind(self, plain: bytes, context: str) -> str:
        return hmac.digest(self.index_key, context.encode() + b"\x00" + plain,
                           "sha256").hex()[:BLIND_CHARS]

    def _encrypt(self, plain: bytes, context: str) -> str:
        nonce = os.urandom(NONCE_BYTES)
        sealed = _cipher(self.keys[self.current]).encrypt(nonce, plain, context.encode())
        return f"{self.current}:{_b64encode(nonce + sealed)}"

    def _decrypt(self, sealed: dict[str, Any], context: str) -> bytes:
        kid = key_id(sealed)
        key = self.keys.get(kid)
        if key is None:
            # no key source in the words: an API client may read them (an update of a
            # record whose value no key opens), and the server's paths are not theirs
            raise UndecryptableValue(f"value is sealed under key {kid!r}, which the keyring "
                                     "does not hold", key_id=kid)
        try:
            raw = _b64decode(sealed["$enc"].split(":", 1)[1])
            return _cipher(key).decrypt(raw[:NONCE_BYTES], raw[NONCE_BYTES:],
                                        context.encode())
        except (binascii.Error, ValueError, InvalidTag):
            raise UndecryptableValue(f"value under key {kid!r} does not open in {context!r}: "
                                     "tampered, or copied from another field",
                                     key_id=kid) from None


_ciphers: dict[bytes, AESGCM] = {}


def _cipher(key: bytes) -> AESGCM:
    """The AES-GCM object of ``key``, made once: building it costs twice the sealing of
    a short value, and an import seals hundreds of thousands."""
    cipher = _ciphers.get(key)
    if cipher is None:
        if len(_ciphers) >= 64:  # keys come and go only with rotation; stay small anyway
            _ciphers.clear()
        cipher = _ciphers[key] = AESGCM(key)
    return cipher


def _next_id(keys: dict[str, bytes]) -> str:
    numbers = [int(kid[1:]) for kid in keys if re.fullmatch(r"k\d+", kid)]
    return f"k{max(numbers, default=0) + 1}"


def _create_file(path: Path) -> None:
    doc = {"format_version": FORMAT_VERSION, "current": "k1",
           "keys": {"k1": _b64encode(secrets.token_bytes(KEY_BYTES))},
           "index": _b64encode(secrets.token_bytes(KEY_BYTES))}
    try:
        _write_file(path, doc, replace=False)
    except FileExistsError:
        pass  # another process created it first: use theirs


def _write_file(path: Path, doc: dict[str, Any], *, replace: bool) -> None:
    """Write the key file 0600 through a temp file, so no reader ever sees half a file.

    ``replace`` swaps it in (``os.replace``); otherwise it is linked in place, which fails
    with ``FileExistsError`` when another process created the file first.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    temp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump(doc, fh, indent=2)
            fh.write("\n")
            fh.flush()
            os.fsync(fh.fileno())
        if replace:
            os.replace(temp, path)
        else:
            os.link(temp, path)
    finally:
        temp.unlink(missing_ok=True)
