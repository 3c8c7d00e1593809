"""Key rotation: re-encrypt every sealed value still under an old key.

Sealed values live in three places: ``records.data`` (``{field: value}``),
``record_history.diff`` (``{field: [old, new]}``) and ``outbox.payload`` (its ``changes``
are a diff too). Each is read in batches by id, one ``Database.write()`` transaction per
batch, and only rows that hold a value under another key than ``keyring.current`` are
written. Beside them: the sealed secrets of users, webhooks and channels (text columns,
one transaction) and the kept responses of ``Idempotency-Key`` requests (batched like the
records, expired ones deleted first), so no key is still needed once rotation is done.
``row_version`` and ``updated_at`` stay as they are: this is not a user's change.
Running it again after an interruption only touches what is still under an old key.

A value's context is ``"<app>.<form>.<field>"`` where ``field`` is the top-level key it
sits under, however deep (a diff's ``[old, new]`` pair shares its field's context).
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Select, Text, bindparam, cast, delete, func, select, update
from sqlalchemy.orm import Session

from platform_core.db import Database
from platform_core.idempotency import context as idempotency_context
from platform_core.models import (
    IdempotencyKey,
    OutboxEvent,
    Record,
    RecordHistory,
    utcnow,
)
from platform_core.security.auth import TOTP_CONTEXT
from platform_core.security.crypto import Keyring, is_sealed, key_id, walk_sealed

Resealer = Callable[[dict[str, Any], str], dict[str, Any]]


@dataclass(frozen=True)
class _Place:
    """Where sealed values are kept: a table's JSON column and how to reach its rows."""

    name: str
    model: Any
    column: str
    lock: bool  # records change under users' hands; history and payloads never do

    def rows(self) -> Select[Any]:
        """``(id, app, form, document)`` of rows whose document may hold a sealed value."""
        doc = getattr(self.model, self.column)
        if self.model is RecordHistory:
            stmt = select(RecordHistory.id, Record.app, Record.form, doc).join(
                Record, Record.id == RecordHistory.record_id)
        else:
            stmt = select(self.model.id, self.model.app, self.model.form, doc)
        # A cheap pre-filter: a document without the marker needs no decoding at all.
        return stmt.where(cast(doc, Text).like('%"$enc"%'))


PLACES = (
    _Place("records", Record, "data", lock=True),
    _Place("record_history", RecordHistory, "diff", lock=False),
    _Place("outbox", OutboxEvent, "payload", lock=False),
)


@dataclass
class RotationResult:
    """What ``rotate`` did, per table: rows scanned and values re-encrypted."""

    current: str
    scanned: dict[str, int] = field(default_factory=dict)
    reencrypted: dict[str, int] = field(default_factory=dict)

    @property
    def total_scanned(self) -> int:
        return sum(self.scanned.values())

    @property
    def total_reencrypted(self) -> int:
        return sum(self.reencrypted.values())


def _fields(doc: dict[str, Any], prefix: str | None, fn: Resealer) -> dict[str, Any]:
    """``doc`` with each field's sealed values passed to ``fn`` with the field's context."""
    if prefix is None:  # an event of no form: no context to open its values with
        return doc
    return {k: walk_sealed(v, lambda s, k=k: fn(s, f"{prefix}.{k}")) for k, v in doc.items()}


def _payload(doc: dict[str, Any], prefix: str | None, fn: Resealer) -> dict[str, Any]:
    """An outbox payload: a nested object (``changes``) is keyed by field; a value at the
    top level sits under its own key."""
    if prefix is None:
        return doc
    return {k: _fields(v, prefix, fn) if isinstance(v, dict) and not is_sealed(v)
            else _fields({k: v}, prefix, fn)[k] for k, v in doc.items()}


def _walk(place: _Place, doc: Any, prefix: str | None, fn: Resealer) -> Any:
    if not isinstance(doc, dict):
        return doc
    return (_payload if place.name == "outbox" else _fields)(doc, prefix, fn)


def _prefix(app: str | None, form: str | None) -> str | None:
    return f"{app}.{form}" if app and form else None


def _batch(session: Session, place: _Place, keyring: Keyring, after: int, size: int
           ) -> tuple[list[int], int]:
    """Re-encrypt one batch of rows after id ``after``: (their ids, values re-encrypted)."""
    stmt = place.rows().where(place.model.id > after).order_by(place.model.id).limit(size)
    if place.lock:
        stmt = stmt.with_for_update(of=place.model)  # no-op on SQLite (BEGIN IMMEDIATE)
    rows = session.execute(stmt).all()
    count = 0

    def reseal(sealed: dict[str, Any], context: str) -> dict[str, Any]:
        nonlocal count
        if key_id(sealed) == keyring.current:
            return sealed
        count += 1
        return keyring.reseal(sealed, context=context)

    changed = []
    for rid, app, form, doc in rows:
        before = count
        new = _walk(place, doc, _prefix(app, form), reseal)
        if count != before:
            changed.append({"rid": rid, "doc": new})
    if changed:
        table = place.model.__table__
        session.execute(update(table).where(table.c.id == bindparam("rid"))
                        .values({place.column: bindparam("doc")}), changed)
    return [r[0] for r in rows], count


def _candidates(db: Database) -> int:
    with db.read() as session:
        return sum(session.execute(select(func.count()).select_from(p.rows().subquery()))
                   .scalar_one() for p in PLACES)


def _secret_columns(session: Session) -> Iterator[tuple[Any, str, str]]:
    """Every sealed secret kept as JSON text outside records: (row, column, context) —
    TOTP secrets of users, the signing secrets of webhooks and the channels' secrets."""
    from platform_core.channels.models import ChannelSetting
    from platform_core.channels.store import secret_context as channel_context
    from platform_core.security.models import User
    from platform_core.webhooks.models import WebhookSubscription
    from platform_core.webhooks.signing import secret_context

    for user in session.execute(select(User).where(
            (User.totp_secret.is_not(None)) | (User.totp_pending.is_not(None)))).scalars():
        for column in ("totp_secret", "totp_pending"):
            if getattr(user, column):
                yield user, column, TOTP_CONTEXT
    for hook in session.execute(select(WebhookSubscription)).scalars():
        yield hook, "secret", secret_context(hook.app)
    for channel in session.execute(select(ChannelSetting).where(
            ChannelSetting.secrets.is_not(None))).scalars():
        yield channel, "secrets", channel_context(channel.channel)


def _rotate_secrets(db: Database, keyring: Keyring) -> tuple[int, int]:
    """Re-encrypt the sealed secrets (few rows: one transaction): (scanned, re-encrypted)."""
    scanned = changed = 0
    with db.write() as session:
        for row, column, context in list(_secret_columns(session)):
            scanned += 1
            sealed = json.loads(getattr(row, column))
            if key_id(sealed) != keyring.current:
                setattr(row, column, json.dumps(keyring.reseal(sealed, context=context),
                                                separators=(",", ":")))
                changed += 1
    return scanned, changed


def rotate(db: Database, keyring: Keyring, *, batch: int = 500,
           progress: Callable[[int, int], None] | None = None) -> RotationResult:
    """Re-encrypt under ``keyring.current`` every sealed value under another key.

    ``progress(done, total)`` is called after each batch with the rows scanned so far and
    the rows to scan in all three tables. A value that does not open (its key is not in
    the keyring, or it was tampered with) stops the run with ``UndecryptableValue``;
    batches already done stay done.
    """
    if batch < 1:
        raise ValueError("batch must be at least 1")
    result = RotationResult(current=keyring.current)
    total, done = _candidates(db), 0
    for place in PLACES:
        result.scanned[place.name] = result.reencrypted[place.name] = 0
        after = 0
        while True:
            with db.write() as session:
                ids, count = _batch(session, place, keyring, after, batch)
            if not ids:
                break
            after = ids[-1]
            result.scanned[place.name] += len(ids)
            result.reencrypted[place.name] += count
            done += len(ids)
            if progress is not None:
                progress(done, max(total, done))
    result.scanned["secrets"], result.reencrypted["secrets"] = _rotate_secrets(db, keyring)
    result.scanned["idempotency"], result.reencrypted["idempotency"] = _rotate_responses(
        db, keyring, batch)
    return result


def _rotate_responses(db: Database, keyring: Keyring, batch: int) -> tuple[int, int]:
    """Re-encrypt the kept responses of ``Idempotency-Key`` requests (a retry within their
    24 hours replays them, so they must open with the keys left after rotation): expired
    ones are deleted, the rest re-encrypted in batches by id. (scanned, re-encrypted)."""
    with db.write() as session:
        session.execute(delete(IdempotencyKey).where(IdempotencyKey.expires_at < utcnow()))
    scanned = changed = after = 0
    while True:
        with db.write() as session:
            rows = list(session.execute(
                select(IdempotencyKey).where(IdempotencyKey.id > after,
                                             IdempotencyKey.body.is_not(None))
                .order_by(IdempotencyKey.id).limit(batch).with_for_update()).scalars())
            for row in rows:
                sealed = json.loads(row.body)
                if key_id(sealed) != keyring.current:
                    row.body = json.dumps(keyring.reseal(
                        sealed, context=idempotency_context(row.user_id)))
                    changed += 1
        if not rows:
            return scanned, changed
        scanned += len(rows)
        after = rows[-1].id


def sealed_values(db: Database, *, batch: int = 1000
                  ) -> Iterator[tuple[str, str | None, dict[str, Any]]]:
    """Every sealed value of the installation as ``(table, context, sealed)``, read in
    batches (a read-only scan). ``context`` is what the value opens in; None for a value
    of an event of no form, which nothing can open."""
    for place in PLACES:
        after = 0
        while True:
            with db.read() as session:
                stmt = place.rows().where(place.model.id > after).order_by(place.model.id)
                rows = session.execute(stmt.limit(batch)).all()
            if not rows:
                break
            after = rows[-1][0]
            for _rid, app, form, doc in rows:
                found: list[tuple[str | None, dict[str, Any]]] = []
                prefix = _prefix(app, form)

                def note(sealed: dict[str, Any], context: str, found: list[Any] = found,
                         formless: bool = prefix is None) -> dict[str, Any]:
                    found.append((None if formless else context, sealed))
                    return sealed

                _walk(place, doc, prefix or "?", note)
                for context, sealed in found:
                    yield place.name, context, sealed
    with db.read() as session:
        secrets = [(json.loads(getattr(row, column)), context)
                   for row, column, context in _secret_columns(session)]
        kept = session.execute(select(IdempotencyKey.user_id, IdempotencyKey.body).where(
            IdempotencyKey.body.is_not(None), IdempotencyKey.expires_at >= utcnow())).all()
    for sealed, context in secrets:
        yield "secrets", context, sealed
    for user_id, body in kept:
        yield "idempotency", idempotency_context(user_id), json.loads(body)


def sealed_counts(db: Database, *, batch: int = 1000) -> dict[str, Counter[str]]:
    """Per table, how many sealed values are under each key id (a read-only scan)."""
    counts: dict[str, Counter[str]] = {p.name: Counter() for p in PLACES}
    counts |= {"secrets": Counter(), "idempotency": Counter()}
    for table, _context, sealed in sealed_values(db, batch=batch):
        counts[table][key_id(sealed)] += 1
    return counts
