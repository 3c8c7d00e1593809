"""The audit log: append-only and hash-chained.

Each entry's ``hash`` is SHA-256 over its canonical content and the previous entry's
hash (``prev_hash``), so editing or deleting any entry breaks the chain at that point;
``verify`` walks the chain and names the first broken entry. Appends are serialised
(PostgreSQL: a transaction advisory lock; SQLite: the write lock of ``BEGIN IMMEDIATE``)
so the chain never forks.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select, text
from sqlalchemy.orm import Session

from platform_core.models import utcnow
from platform_core.security.models import AuditEntry
from platform_core.store import Actor

GENESIS = "0" * 64
AUDIT_LOCK = 0x51A0_A0D1  # PostgreSQL advisory lock key of the audit chain


def _moment(at: datetime) -> str:
    aware = at if at.tzinfo else at.replace(tzinfo=UTC)
    return aware.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def entry_hash(entry: AuditEntry) -> str:
    body = {"at": _moment(entry.at), "actor_id": entry.actor_id, "actor_name": entry.actor_name,
            "action": entry.action, "target": entry.target, "detail": entry.detail,
            "client": entry.client, "prev": entry.prev_hash}
    canonical = json.dumps(body, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


def append(session: Session, *, actor: Actor, action: str, target: str | None = None,
           detail: dict[str, Any] | None = None, client: str | None = None) -> AuditEntry:
    """Add one entry in the caller's transaction (it commits or rolls back with it)."""
    if session.get_bind().dialect.name == "postgresql":
        session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": AUDIT_LOCK})
    last = session.execute(select(AuditEntry.hash).order_by(AuditEntry.id.desc()).limit(1)
                           ).scalar_one_or_none()
    entry = AuditEntry(at=utcnow(), actor_id=actor.user_id, actor_name=actor.name,
                       action=action, target=target, detail=detail or {}, client=client,
                       prev_hash=last or GENESIS)
    entry.hash = entry_hash(entry)
    session.add(entry)
    session.flush()
    return entry


@dataclass(frozen=True)
class Broken:
    """The first entry where the chain does not hold, and why."""

    entry_id: int
    reason: str


def verify(session: Session, batch: int = 1000) -> tuple[int, Broken | None]:
    """Walk the whole chain: (entries checked, the first broken entry or None)."""
    expected_prev, checked, after = GENESIS, 0, 0
    while True:
        rows = list(session.execute(select(AuditEntry).where(AuditEntry.id > after)
                                    .order_by(AuditEntry.id).limit(batch)).scalars())
        if not rows:
            return checked, None
        for entry in rows:
            if entry.prev_hash != expected_prev:
                return checked, Broken(entry.id, "the entry before it was changed or deleted")
            if entry_hash(entry) != entry.hash:
                return checked, Broken(entry.id, "its content was changed")
            expected_prev, checked = entry.hash, checked + 1
        after = rows[-1].id
