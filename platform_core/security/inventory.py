"""Which keys an installation's sealed values need, and which values no key opens.

- ``sealing_keys``: the key ids sealing the values, with how many each seals and a one-way
  fingerprint of the key held under that id (``Keyring.fingerprint``) — never a key. A
  backup's manifest carries it.
- ``key_problems``: a manifest's keys against a keyring — ids it lacks, or holds as
  another key (a fresh data directory mints its own ``k1``), and a different blind-index
  key. ``qiao restore`` refuses on any unless told to go on.
- ``unopenable``: every sealed value tried with a keyring; those that do not open, per
  field (``qiao keys status``, and after a restore).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from platform_core.db import Database
from platform_core.security.crypto import Keyring, UndecryptableValue, key_id
from platform_core.security.rotation import sealed_values

IDEMPOTENCY = "idempotent responses"  # one line for them all, not one per user


@dataclass(frozen=True)
class KeyProblem:
    """A key of an archive this keyring cannot stand in for."""

    key_id: str  # "index": the blind-index key
    reason: str  # "missing" or "different"
    values: int  # how many of the archive's values need it (0 for the index key)

    def words(self) -> str:
        if self.key_id == "index":
            return ("the blind-index key differs (searches and unique checks on encrypted "
                    "fields would miss the archive's values)")
        what = "not there" if self.reason == "missing" else "another key under that id"
        return f"{self.key_id} ({what}; {self.values} values)"


def sealing_keys(db: Database, keyring: Keyring | None) -> dict[str, Any]:
    """``{"index": <fingerprint>, "keys": {kid: {"values": n, "fingerprint": …}}}``."""
    per_key: Counter[str] = Counter()
    for _table, _context, sealed in sealed_values(db):
        per_key[key_id(sealed)] += 1
    return {"index": keyring.fingerprint("index") if keyring else None,
            "keys": {kid: {"values": n,
                           "fingerprint": keyring.fingerprint(kid) if keyring else None}
                     for kid, n in sorted(per_key.items())}}


def key_problems(recorded: Mapping[str, Any] | None, keyring: Keyring | None
                 ) -> list[KeyProblem]:
    """What ``keyring`` lacks to open the values ``recorded`` (``sealing_keys`` of an
    archive) describes; empty when it holds every key, or nothing is known."""
    if not recorded:
        return []
    problems = []
    keys = recorded.get("keys") or {}
    for kid, info in sorted(keys.items()):
        values = int(info.get("values") or 0)
        held = keyring.fingerprint(kid) if keyring else None
        if held is None:
            problems.append(KeyProblem(kid, "missing", values))
        elif info.get("fingerprint") and info["fingerprint"] != held:
            problems.append(KeyProblem(kid, "different", values))
    index = recorded.get("index")
    if keys and keyring is not None and index and index != keyring.fingerprint("index"):
        problems.append(KeyProblem("index", "different", 0))
    return problems


def unopenable(db: Database, keyring: Keyring | None) -> Counter[tuple[str, str, str, str]]:
    """The sealed values ``keyring`` does not open, counted by ``(where, table, key id,
    why)``: ``where`` is ``app.form.field`` (or the secret's context, or
    ``idempotent responses``), ``why`` is ``not in the keyring`` or ``does not open``."""
    found: Counter[tuple[str, str, str, str]] = Counter()
    for table, context, sealed in sealed_values(db):
        if context is None:
            continue  # a formless event's value: nothing could open it in any case
        where = IDEMPOTENCY if table == "idempotency" else context
        try:
            kid = key_id(sealed)
        except UndecryptableValue:
            found[(where, table, "?", "malformed")] += 1
            continue
        if keyring is None or kid not in keyring.keys:
            found[(where, table, kid, "not in the keyring")] += 1
            continue
        try:
            keyring.unseal(sealed, context=context)
        except UndecryptableValue:
            found[(where, table, kid, "does not open")] += 1
    return found


def by_field(found: Counter[tuple[str, str, str, str]]) -> list[str]:
    """``unopenable``'s count as lines: one per field and key, the tables in brackets."""
    groups: dict[tuple[str, str, str], Counter[str]] = {}
    for (where, table, kid, why), n in found.items():
        groups.setdefault((where, kid, why), Counter())[table] += n
    names = {"records": "records", "record_history": "history", "outbox": "outbox",
             "secrets": "secrets", "idempotency": "kept"}
    return [f"{where}: {sum(tables.values())} (" + ", ".join(
        f"{names.get(t, t)} {n}" for t, n in sorted(tables.items())) + f") under key {kid}, {why}"
        for (where, kid, why), tables in sorted(groups.items())]
