"""Webhook secrets and signatures.

Each delivery carries ``X-Qiao-Timestamp: <unix seconds>`` and
``X-Qiao-Signature: sha256=<hex>``, the HMAC-SHA256 under the subscription's secret (its
UTF-8 bytes, ``whsec_`` prefix included) of ``<timestamp>.<raw body bytes>``. A receiver
recomputes it over the body exactly as received, compares in constant time, and refuses a
timestamp too far from its clock (replayed captures) — ``verify`` is that recipe.

Secrets are stored sealed (AES-GCM, the field-encryption keyring) under a context no form
field can have, so a sealed secret copied into a record does not open.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
import time

from platform_core.security.crypto import Keyring

PREFIX = "sha256="
TOLERANCE_SECONDS = 300


def new_secret() -> str:
    """A fresh signing secret (shown to the caller once)."""
    return "whsec_" + secrets.token_urlsafe(32)


def sign(secret: str, timestamp: int | str, body: bytes) -> str:
    """The ``X-Qiao-Signature`` value of ``body`` sent at ``timestamp``."""
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    return PREFIX + mac.hexdigest()


def verify(secret: str, timestamp: str, body: bytes, signature: str, *,
           tolerance: int = TOLERANCE_SECONDS, now: float | None = None) -> bool:
    """What a receiver does: the signature matches and the timestamp is recent."""
    try:
        age = abs((time.time() if now is None else now) - int(timestamp))
    except ValueError:
        return False
    return age <= tolerance and hmac.compare_digest(sign(secret, timestamp, body), signature)


def secret_context(app: str) -> str:
    return f"webhook-secret:{app}"  # ":" and "-" never occur in "<app>.<form>.<field>"


def seal_secret(keyring: Keyring, app: str, secret: str) -> str:
    """The secret as stored in ``WebhookSubscription.secret`` (sealed JSON text)."""
    return json.dumps(keyring.seal(secret, context=secret_context(app)), separators=(",", ":"))


def open_secret(keyring: Keyring, app: str, stored: str) -> str:
    """The plain secret; ``UndecryptableValue`` when the keyring cannot open it."""
    return str(keyring.unseal(json.loads(stored), context=secret_context(app)))
