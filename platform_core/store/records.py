"""The generic entity store: records of any form, their links, history and events.

Every function takes the caller's ``Session`` and never commits: the caller's
``Database.write()`` block is the one transaction, so a failure anywhere leaves no row and
no event behind. Lifecycle of a change, in order: validate → write the record (a
conditional UPDATE on ``row_version`` for optimistic locking) → write the history diff →
write the outbox event.

Creation is recorded by the record row itself (``created_at``/``created_by``) and its
``record.created`` event; ``record_history`` holds one diff per later change, each diff
carrying the old values, so every earlier state can be reconstructed.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from sqlalchemy import (
    BigInteger,
    DateTime,
    Integer,
    String,
    any_,
    bindparam,
    delete,
    func,
    insert,
    literal,
    select,
    update,
)
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.orm import Session

from platform_core.db import allocate_ids, dumps
from platform_core.errors import Conflict, InvalidInput, NotFound
from platform_core.models import OutboxEvent, Record, RecordHistory, RecordLink, utcnow
from platform_core.outbox import CASCADE_DEPTH, add_event, events_held
from platform_core.store.kinds import check_key

MAX_BULK = 100_000


@dataclass(frozen=True)
class Actor:
    """Who acts. Passed down explicitly; there is no global "ignore permissions" flag."""

    user_id: int | None
    department_id: int | None = None
    name: str = "system"


SYSTEM = Actor(user_id=None, name="system")


def _event(event_type: str, record: Mapping[str, Any], actor: Actor,
           changes: dict[str, Any] | None = None) -> dict[str, Any]:
    payload: dict[str, Any] = {"record_id": record["id"], "row_version": record["row_version"],
                               "actor_id": actor.user_id}
    if changes is not None:
        payload["changes"] = changes
    return {"event_type": event_type, "app": record["app"], "form": record["form"],
            "record_id": record["id"], "payload": payload, "created_at": utcnow(),
            "available_at": utcnow(), "depth": CASCADE_DEPTH.get()}


def _created_events(session: Session, ids: list[int], actor: Actor, now: Any) -> None:
    """One ``record.created`` outbox row per new record, in one INSERT … SELECT."""
    dialect = session.get_bind().dialect.name
    build = func.jsonb_build_object if dialect == "postgresql" else func.json_object
    payload = build(literal("record_id", String()), Record.id,
                    literal("row_version", String()), literal(1, Integer()),
                    literal("actor_id", String()), literal(actor.user_id, BigInteger()))
    which = (Record.id == any_(literal(ids, ARRAY(BigInteger()))) if dialect == "postgresql"
             else Record.id.between(ids[0], ids[-1]))
    rows = select(literal("record.created", String()), Record.app, Record.form, Record.id,
                  payload, literal(CASCADE_DEPTH.get(), Integer()),
                  literal(now, DateTime(timezone=True)),
                  literal(now, DateTime(timezone=True)), literal(0, Integer())
                  ).where(which).order_by(Record.id)
    session.execute(insert(OutboxEvent).from_select(
        ["event_type", "app", "form", "record_id", "payload", "depth", "created_at",
         "available_at", "attempts"], rows))


def create_records(session: Session, *, app: str, form: str, items: Iterable[Mapping[str, Any]],
                   actor: Actor, schema_version: int = 1) -> list[int]:
    """Insert many records of one form plus one ``record.created`` event each; their ids.

    Three statements whatever the count: allocate ids, insert the records (executemany),
    insert the events (INSERT … SELECT).
    """
    check_key(app)
    check_key(form)
    docs = list(items)
    for i, data in enumerate(docs):
        if not isinstance(data, Mapping):
            raise InvalidInput(f"item {i}: a record's data must be an object", index=i)
    if len(docs) > MAX_BULK:
        raise InvalidInput(f"at most {MAX_BULK} records in one call")
    if not docs:
        return []
    now = utcnow()
    ids = allocate_ids(session, Record.__table__, len(docs))
    common = {"app": app, "form": form, "schema_version": schema_version, "row_version": 1,
              "owner_id": actor.user_id, "department_id": actor.department_id,
              "created_at": now, "created_by": actor.user_id, "updated_at": now,
              "updated_by": actor.user_id}
    _insert_rows(session, common, ids, docs)
    _created_events(session, ids, actor, now)
    return ids


_INSERT_COLUMNS = ("id", "app", "form", "data", "schema_version", "row_version", "owner_id",
                   "department_id", "created_at", "created_by", "updated_at", "updated_by")


def _insert_rows(session: Session, common: dict[str, Any], ids: list[int],
                 docs: list[Mapping[str, Any]]) -> None:
    """One executemany of the records, every shared value converted once for the driver.

    The columns shared by all rows (app, form, timestamps …) go through their type's bind
    processor once; only the id and the JSON document differ per row, and the document is
    encoded by the store's one encoder, as SQLAlchemy's JSON type would.
    """
    conn = session.connection()
    dialect = conn.dialect
    compiled = insert(Record.__table__).compile(dialect=dialect, column_keys=_INSERT_COLUMNS)
    shared = {}
    for key, value in common.items():
        process = Record.__table__.c[key].type._cached_bind_processor(dialect)
        shared[key] = process(value) if process else value
    names = compiled.positiontup if compiled.positional else None
    if names is not None:
        # one template row of the shared values; each record fills in its id and document
        template = [None if n in ("id", "data") else shared[n] for n in names]
        at_id, at_data = names.index("id"), names.index("data")
        rows: list[Any] = []
        for rid, doc in zip(ids, docs, strict=True):
            row = template.copy()
            row[at_id], row[at_data] = rid, dumps(doc)
            rows.append(tuple(row))
    else:
        rows = [{**shared, "id": rid, "data": dumps(doc)} for rid, doc in zip(ids, docs,
                                                                             strict=True)]
    conn.exec_driver_sql(compiled.string, rows)


def create_record(session: Session, *, app: str, form: str, data: Mapping[str, Any],
                  actor: Actor, schema_version: int = 1) -> Record:
    """Insert one record and its ``record.created`` event."""
    (rid,) = create_records(session, app=app, form=form, items=[data], actor=actor,
                            schema_version=schema_version)
    return get_record(session, rid)


MAX_ID = 2**63 - 1  # BIGINT; SQLite's INTEGER too


def get_record(session: Session, record_id: int, *, include_deleted: bool = False) -> Record:
    if not 0 < record_id <= MAX_ID:  # no such id can exist (the driver would overflow)
        raise NotFound(f"record {record_id} does not exist", record_id=record_id)
    stmt = select(Record).where(Record.id == record_id)
    if not include_deleted:
        stmt = stmt.where(Record.deleted_at.is_(None))
    rec = session.execute(stmt.execution_options(populate_existing=True)).scalar_one_or_none()
    if rec is None:
        raise NotFound(f"record {record_id} does not exist", record_id=record_id)
    return rec


def diff(old: Mapping[str, Any], new: Mapping[str, Any]) -> dict[str, list[Any]]:
    """``{field: [old, new]}`` for every key whose value differs (missing = null)."""
    keys = sorted(set(old) | set(new))
    return {k: [old.get(k), new.get(k)] for k in keys if old.get(k) != new.get(k)}


def _check_version(rec: Record, expected: int | None) -> None:
    if expected is not None and rec.row_version != expected:
        raise Conflict(
            f"record {rec.id} was changed by someone else (version {rec.row_version}, "
            f"you had {expected}); reload it and apply your change again",
            record_id=rec.id, current_version=rec.row_version, expected_version=expected)


def _write(session: Session, rec: Record, expected: int, actor: Actor, values: dict[str, Any],
           action: str, changes: dict[str, Any]) -> Record:
    # action → event: update → record.updated, delete → record.deleted, restore →
    # record.restored, migrate → record.migrated
    """Conditional UPDATE (optimistic lock) + history diff + outbox event.

    On PostgreSQL the three are one statement (the UPDATE … RETURNING in a WITH, the
    history row and the event inserted from it, so only when it matched): one round trip
    per change, not three. SQLite (no writing WITH) runs them one after another — calls
    within the process. The event's values are known before the UPDATE (the record's id,
    app and form do not change; its version becomes ``expected + 1``)."""
    now = utcnow()
    params = {"w_id": rec.id, "w_expected": expected, "w_next": expected + 1, "w_now": now,
              "w_by": actor.user_id, **{f"v_{key}": value for key, value in values.items()}}
    event = _event(f"record.{action}d", {"id": rec.id, "app": rec.app, "form": rec.form,
                                         "row_version": expected + 1}, actor, changes)
    keys = tuple(sorted(values))
    if session.get_bind().dialect.name == "postgresql":
        with_event = not events_held(session)  # else it joins the held ones, in order
        params |= {"h_action": action, "h_diff": changes, "h_at": now}
        if with_event:
            params |= {f"e_{key}": event[key] for key in _EVENT_KEYS}
        fresh = session.execute(_logged_update_of(keys, with_event), params).scalars().first()
        if fresh is None:
            _conflict(session, rec, expected)
        if not with_event:
            add_event(session, event)
        return fresh
    # RETURNING hands the written row back (into the session's copy too): no SELECT after
    fresh = session.execute(_update_of(keys), params).scalars().first()
    if fresh is None:
        _conflict(session, rec, expected)
    # Core INSERTs of prepared statements: the ORM's bulk-insert layer and a statement
    # built per call cost more than the write itself (a fifth of a rule dispatcher's time)
    session.execute(_HISTORY_ROW, {
        "record_id": rec.id, "row_version": expected + 1, "action": action, "diff": changes,
        "actor_id": actor.user_id, "at": now})
    add_event(session, event)
    return fresh


def _conflict(session: Session, rec: Record, expected: int) -> None:
    _check_version(get_record(session, rec.id, include_deleted=True), expected)
    raise Conflict(f"record {rec.id} was changed concurrently", record_id=rec.id)


_HISTORY_ROW = RecordHistory.__table__.insert()
_EVENT_KEYS = ("event_type", "payload", "depth", "created_at", "available_at")


def _written(target: Any, keys: tuple[str, ...]) -> Any:
    """The UPDATE of the columns ``keys`` (optimistic lock on ``row_version``), with bound
    parameters; ``target``: ``Record`` (ORM-enabled) or its table."""
    return (update(target)
            .where(Record.id == bindparam("w_id"), Record.row_version == bindparam("w_expected"))
            .values(row_version=bindparam("w_next"), updated_at=bindparam("w_now"),
                    updated_by=bindparam("w_by"), **{key: bindparam(f"v_{key}") for key in keys}))


@lru_cache(maxsize=16)
def _update_of(keys: tuple[str, ...]) -> Any:
    """``_write``'s UPDATE of the columns ``keys``, built once (building it per call cost
    as much as running it); it answers the written row."""
    return (_written(Record, keys).returning(Record)
            .execution_options(synchronize_session=False, populate_existing=True))


@lru_cache(maxsize=32)
def _logged_update_of(keys: tuple[str, ...], with_event: bool) -> Any:
    """PostgreSQL: ``_update_of`` with the history row (and the event, ``with_event``)
    inserted from the updated row in the same statement; it answers the written row."""
    table, history, outbox = Record.__table__, RecordHistory.__table__, OutboxEvent.__table__
    written = _written(table, keys).returning(*table.c).cte("written")

    def typed(name: str, column: Any) -> Any:
        return bindparam(name, type_=column.type)

    logged = [insert(history).from_select(
        ["record_id", "row_version", "action", "diff", "actor_id", "at"],
        select(written.c.id, written.c.row_version, typed("h_action", history.c.action),
               typed("h_diff", history.c.diff), written.c.updated_by,  # the actor
               typed("h_at", history.c.at))).cte("logged")]
    if with_event:
        logged.append(insert(outbox).from_select(
            ["event_type", "app", "form", "record_id", "payload", "depth", "created_at",
             "available_at", "attempts"],
            select(typed("e_event_type", outbox.c.event_type), written.c.app, written.c.form,
                   written.c.id, typed("e_payload", outbox.c.payload),
                   typed("e_depth", outbox.c.depth), typed("e_created_at", outbox.c.created_at),
                   typed("e_available_at", outbox.c.available_at),
                   literal(0, Integer()))).cte("announced"))
    return (select(Record).from_statement(select(*written.c).add_cte(*logged))
            .execution_options(populate_existing=True))


def update_record(session: Session, record_id: int, *, changes: Mapping[str, Any],
                  expected_version: int, actor: Actor,
                  schema_version: int | None = None, current: Record | None = None) -> Record:
    """Merge ``changes`` into the record's data (``None`` clears a field).

    Refused with ``Conflict`` when ``expected_version`` is stale; a change that changes
    nothing writes nothing (no version bump, no history, no event). ``schema_version``
    records the form version the new data was validated with. ``current``: the record as
    this transaction has just read it (not read again; the UPDATE's version check still
    refuses a change made meanwhile).
    """
    rec = current if current is not None and current.id == record_id \
        else get_record(session, record_id)
    _check_version(rec, expected_version)
    new = {**rec.data, **changes}
    new = {k: v for k, v in new.items() if v is not None}
    delta = diff(rec.data, new)
    if not delta:
        return rec
    values: dict[str, Any] = {"data": new}
    if schema_version is not None:
        values["schema_version"] = schema_version
    return _write(session, rec, expected_version, actor, values, "update", delta)


def transfer_record(session: Session, record_id: int, *, owner_id: int,
                    department_id: int | None, actor: Actor,
                    expected_version: int | None = None) -> Record:
    """Give a record to another owner (and their department, which the row scopes of
    "department" and "department tree" follow). History and event name the change as
    ``owner_id`` / ``department_id`` pairs; the same owner again writes nothing."""
    rec = get_record(session, record_id)
    if expected_version is not None:
        _check_version(rec, expected_version)
    changes = {k: [old, new] for k, old, new in (
        ("owner_id", rec.owner_id, owner_id),
        ("department_id", rec.department_id, department_id)) if old != new}
    if not changes:
        return rec
    return _write(session, rec, rec.row_version, actor,
                  {"owner_id": owner_id, "department_id": department_id}, "update", changes)


def migrate_record(session: Session, record_id: int, *, data: Mapping[str, Any],
                   schema_version: int, actor: Actor) -> Record:
    """Replace a record's data with its conversion to form version ``schema_version``.

    The diff (with every old value, removed fields included) goes to the history, so
    nothing a migration drops is lost.
    """
    rec = get_record(session, record_id, include_deleted=True)
    delta = diff(rec.data, data)
    return _write(session, rec, rec.row_version, actor,
                  {"data": dict(data), "schema_version": schema_version}, "migrate", delta)


def delete_record(session: Session, record_id: int, *, actor: Actor,
                  expected_version: int | None = None) -> Record:
    """Move a record to the recycle bin (soft delete); ``restore_record`` brings it back."""
    rec = get_record(session, record_id)
    _check_version(rec, expected_version)
    return _write(session, rec, rec.row_version, actor, {"deleted_at": utcnow()}, "delete", {})


def restore_record(session: Session, record_id: int, *, actor: Actor) -> Record:
    rec = get_record(session, record_id, include_deleted=True)
    if rec.deleted_at is None:
        raise Conflict(f"record {record_id} is not in the recycle bin", record_id=record_id)
    return _write(session, rec, rec.row_version, actor, {"deleted_at": None}, "restore", {})


def history(session: Session, record_id: int) -> list[RecordHistory]:
    """The record's changes after creation, oldest first."""
    get_record(session, record_id, include_deleted=True)
    stmt = select(RecordHistory).where(RecordHistory.record_id == record_id)
    return list(session.execute(stmt.order_by(RecordHistory.id)).scalars())


def set_links(session: Session, source_id: int, field: str, target_ids: Iterable[int]) -> None:
    """Make ``source.field`` point at exactly ``target_ids`` (the relation's link rows).

    Links index a relation field's value for reverse look-ups; they change in the same
    transaction as the record update that carries the new value.
    """
    check_key(field)
    wanted = list(dict.fromkeys(target_ids))
    get_record(session, source_id)
    found = set(session.execute(select(Record.id).where(Record.id.in_(wanted),
                                                        Record.deleted_at.is_(None))).scalars())
    missing = [t for t in wanted if t not in found]
    if missing:
        raise InvalidInput(f"{field}: linked record {missing[0]} does not exist",
                           field=field, missing=missing)
    current = set(links_from(session, source_id, field))
    stale = current - set(wanted)
    if stale:
        session.execute(delete(RecordLink).where(RecordLink.source_id == source_id,
                                                 RecordLink.field == field,
                                                 RecordLink.target_id.in_(stale)))
    new = [{"source_id": source_id, "field": field, "target_id": t, "created_at": utcnow()}
           for t in wanted if t not in current]
    if new:
        session.execute(insert(RecordLink), new)


def links_from(session: Session, source_id: int, field: str | None = None) -> list[int]:
    """Target ids that ``source_id`` links to (through ``field``, or any field)."""
    stmt = select(RecordLink.target_id).where(RecordLink.source_id == source_id)
    if field is not None:
        stmt = stmt.where(RecordLink.field == field)
    return list(session.execute(stmt.order_by(RecordLink.id)).scalars())


def links_to(session: Session, target_id: int, *, form: str | None = None,
             field: str | None = None) -> list[tuple[str, Record]]:
    """Reverse look-up: live records linking to ``target_id``, as ``(field, record)``."""
    stmt = (select(RecordLink.field, Record)
            .join(Record, Record.id == RecordLink.source_id)
            .where(RecordLink.target_id == target_id, Record.deleted_at.is_(None)))
    if form is not None:
        stmt = stmt.where(Record.form == form)
    if field is not None:
        stmt = stmt.where(RecordLink.field == field)
    return [(f, r) for f, r in session.execute(stmt.order_by(Record.id)).all()]
