"""Records through a form: validation, auto numbers, uniqueness, relations, attachments
and the read-time fields (lookup, rollup).

A write, in order: validate (``engine_forms.validation``) → check relation targets and
attachments → number auto-number fields → write through the store (history + outbox in
the same transaction) → sync relation links → bind attachments. The caller's
``Database.write()`` block is the one transaction.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import date
from typing import Any

from sqlalchemy import BigInteger, DateTime, String, any_, cast, insert, literal, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from engine_forms.fieldtypes.computed import period_of, render_number
from engine_forms.forms import Published, published
from engine_forms.models import Attachment, AutoNumberCounter
from engine_forms.sealing import FieldCrypt
from engine_forms.validation import Problem, RecordInvalid, validate_record
from platform_core.errors import Conflict, NotFound
from platform_core.expressions.values import Env
from platform_core.models import Record, RecordLink, utcnow
from platform_core.security.principal import Principal, row_filter
from platform_core.store import (
    Actor,
    compile_filter,
    create_record,
    create_records,
    delete_record,
    get_record,
    links_to,
    restore_record,
    set_links,
    this_form,
    update_record,
)
from platform_core.store.indexes import index_name
from platform_core.store.kinds import json_text


class DuplicateValue(Conflict):
    """A unique field's value is already used by a live record of the form."""

    code, title = "duplicate_value", "Duplicate value"


def env_for(session: Session) -> Env:
    """Evaluation environment whose ``customer.city`` reads the linked record's data."""
    cache: dict[int, Mapping[str, Any] | None] = {}

    def related(record_id: int) -> Mapping[str, Any] | None:
        if record_id not in cache:
            row = session.execute(select(Record.data).where(
                Record.id == record_id, Record.deleted_at.is_(None))).first()
            cache[record_id] = row[0] if row else None
        return cache[record_id]

    return Env(related=related)


def load_record(session: Session, pub: Published, record_id: int, *,
                include_deleted: bool = False) -> Record:
    """The record ``record_id`` if it belongs to this app and form (else NotFound)."""
    rec = get_record(session, record_id, include_deleted=include_deleted)
    if rec.app != pub.app or rec.form != pub.spec.key:
        raise NotFound(f"record {record_id} does not exist", record_id=record_id)
    return rec


def _linkable(session: Session, pub: Published, form: str, ids: Iterable[int],
              reader: Principal | None) -> set[int]:
    """Of ``ids``, the live records of ``form`` (in this app) — with a ``reader``, only
    those inside the reader's read scope there: a record they may not read is as missing
    as one that does not exist, so a relation value cannot probe for ids."""
    stmt = select(Record.id).where(Record.id.in_(list(ids)), Record.app == pub.app,
                                   Record.form == form, Record.deleted_at.is_(None))
    if reader is not None:
        scope = row_filter(session, reader, reader.access(pub.app, form), "read")
        if scope is not None:
            stmt = stmt.where(compile_filter(scope, published(session, pub.app, form).fields,
                                             session.get_bind().dialect.name))
    return set(session.execute(stmt).scalars())


def _targets(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [] if value is None else [value]


def _relation_problems(session: Session, pub: Published, data: Mapping[str, Any], *,
                       reader: Principal | None = None,
                       old: Mapping[str, Any] | None = None) -> list[Problem]:
    """A problem per relation value that is not a live record of the target form. With a
    ``reader`` the ids a write adds must also be inside their read scope; the ids the
    record already links (``old``) need only exist, whoever linked them, and a value the
    write leaves as it was is not looked up again."""
    problems = []
    for field in pub.spec.fields:
        value = data.get(field.key)
        if field.type != "relation" or value is None:
            continue
        if old is not None and value == old.get(field.key):
            # unchanged: checked when it was linked, and a target cannot go away while
            # linked (deleting it applies the relation's on_delete to this record first)
            continue
        wanted = _targets(value)
        kept = set(_targets((old or {}).get(field.key))) if reader is not None else set()
        added = [w for w in wanted if w not in kept]
        form = field.config["target"]
        found = _linkable(session, pub, form, added, reader) if added else set()
        if kept & set(wanted):
            found |= _linkable(session, pub, form, kept & set(wanted), None)
        for missing in [w for w in wanted if w not in found]:
            problems.append(Problem(field.key, "not_found",
                                    f"{field.label}: 关联的记录 {missing} 不存在",
                                    f"{field.key}: linked {field.config['target']} record "
                                    f"{missing} does not exist"))
    return problems


def _attachment_problems(session: Session, pub: Published, data: Mapping[str, Any],
                         record_id: int | None) -> list[Problem]:
    problems = []
    for field in pub.spec.fields:
        ids = data.get(field.key) if field.type == "attachment" else None
        if not ids:
            continue
        rows = {a.id: a for a in session.execute(select(Attachment).where(
            Attachment.id.in_(ids))).scalars()}
        for aid in ids:
            a = rows.get(aid)
            if a is None or (a.app, a.form, a.field) != (pub.app, pub.spec.key, field.key) \
                    or a.record_id not in (None, record_id):
                problems.append(Problem(field.key, "not_found",
                                        f"{field.label}: 附件 {aid} 不存在或不属于此字段",
                                        f"{field.key}: attachment {aid} does not exist or "
                                        "belongs elsewhere"))
    return problems


def _compared(value: Any) -> Any:
    """A unique field's value as its index holds it (a sealed value: its blind index)."""
    return value["bi"] if isinstance(value, dict) and "bi" in value else value


def _duplicate_problems(session: Session, pub: Published, data: Mapping[str, Any],
                        record_id: int | None, *, old: Mapping[str, Any] | None = None
                        ) -> list[Problem]:
    """Friendly pre-check; the unique index is what guarantees it under concurrency.
    ``old``: the stored data of the record being updated — a value it keeps needs no
    look-up (a rule setting a customer's status looked up their mobile and ID number)."""
    problems = []
    dialect = session.get_bind().dialect.name
    for field in pub.spec.fields:
        if not field.unique or data.get(field.key) is None:
            continue
        value = _compared(data[field.key])
        if old is not None and _compared(old.get(field.key)) == value:
            continue
        acc = pub.fields.accessor(field.key, dialect)
        stmt = select(Record.id).where(  # app and form in the SQL: the partial indexes
            *this_form(pub.fields), Record.deleted_at.is_(None),
            acc.expr == acc.bind(value, dialect))
        if record_id is not None:
            stmt = stmt.where(Record.id != record_id)
        if session.execute(stmt.limit(1)).first():
            problems.append(Problem(field.key, "duplicate", f"{field.label}: 该值已存在",
                                    f"{field.key}: this value is already used"))
    return problems


def _take_numbers(session: Session, pub: Published, key: str, period: str, count: int) -> int:
    """Atomically take ``count`` counter values; the last one. The counter row stays
    locked until commit and rolls back with the action, so numbers are gap-free."""
    dialect = session.get_bind().dialect.name
    ins = (postgresql.insert if dialect == "postgresql" else sqlite.insert)(AutoNumberCounter)
    stmt = ins.values(app=pub.app, form=pub.spec.key, field=key, period=period, value=count)
    stmt = stmt.on_conflict_do_update(
        index_elements=["app", "form", "field", "period"],
        set_={"value": AutoNumberCounter.value + count}).returning(AutoNumberCounter.value)
    return session.execute(stmt).scalar_one()


def _number(session: Session, pub: Published, docs: list[dict[str, Any]], today: date) -> None:
    for field in pub.spec.fields:
        if field.type == "auto_number" and docs:
            pattern = field.config["pattern"]
            last = _take_numbers(session, pub, field.key, period_of(pattern, today), len(docs))
            first = last - len(docs) + 1
            if len(docs) == 1:
                docs[0][field.key] = render_number(pattern, today, first)
                continue
            # Render the date parts once; only the counter changes from record to record.
            marker = 10 ** 12
            head, _, tail = render_number(pattern, today, marker).partition(str(marker))
            width = len(render_number(pattern, today, 1)) - len(head) - len(tail)
            for n, data in enumerate(docs, start=first):
                data[field.key] = f"{head}{n:0{width}d}{tail}"


def _refuse(problems: list[Problem]) -> None:
    if problems:
        raise RecordInvalid(problems)


def _validate(session: Session, pub: Published, payload: Mapping[str, Any], *,
              old: Mapping[str, Any] | None, env: Env,
              reader: Principal | None = None) -> dict[str, Any]:
    """``validate_record``, adding the database checks of relation values to its errors
    so the user sees every problem at once."""
    try:
        return validate_record(pub.compiled, payload, old=old, env=env)
    except RecordInvalid as exc:
        relations = {}
        for field in pub.spec.fields:
            if field.type == "relation" and payload.get(field.key) is not None:
                try:
                    relations[field.key] = field.field_type.coerce(payload[field.key], field)
                except ValueError:
                    continue
        known = {p.field for p in exc.problems}
        extra = [p for p in _relation_problems(session, pub, relations, reader=reader, old=old)
                 if p.field not in known]
        raise RecordInvalid(exc.problems + extra) from None


def _sealed(crypt: FieldCrypt | None, data: dict[str, Any]) -> dict[str, Any]:
    return crypt.seal(data) if crypt else data


def _map_integrity(pub: Published, exc: IntegrityError) -> Exception:
    text = str(exc.orig)
    for field in pub.spec.fields:
        if field.unique and index_name(pub.app, pub.spec.key, field.key, unique=True) in text:
            return DuplicateValue(f"{field.key}: the value is already used by another record",
                                  field=field.key)
    return exc


def _sync_links(session: Session, pub: Published, record_id: int,
                data: Mapping[str, Any], before: Mapping[str, Any] | None = None) -> None:
    """Make the link rows mirror ``data``'s relation values; with ``before`` (the values the
    links already mirror), only the relations whose value changed (3 statements each)."""
    for field in pub.spec.fields:
        if field.type == "relation":
            value = data.get(field.key)
            if before is not None and value == before.get(field.key):
                continue
            targets = value if isinstance(value, list) else ([] if value is None else [value])
            set_links(session, record_id, field.key, targets)


def _bind_attachments(session: Session, pub: Published, record_id: int,
                      data: Mapping[str, Any]) -> None:
    ids = [a for f in pub.spec.fields if f.type == "attachment" for a in data.get(f.key) or []]
    if ids:
        for a in session.execute(select(Attachment).where(Attachment.id.in_(ids))).scalars():
            a.record_id = record_id
        session.flush()


def create(session: Session, pub: Published, payload: Mapping[str, Any], *,
           actor: Actor, crypt: FieldCrypt | None = None,
           reader: Principal | None = None) -> Record:
    """Validate and create one record of ``pub``'s form (encrypted fields sealed by
    ``crypt`` after validation, before anything is written); with a ``reader`` (the user
    writing) relation values must be records they may read."""
    env = env_for(session)
    data = _sealed(crypt, _validate(session, pub, payload, old=None, env=env, reader=reader))
    _refuse(_relation_problems(session, pub, data, reader=reader)
            + _attachment_problems(session, pub, data, None)
            + _duplicate_problems(session, pub, data, None))
    _number(session, pub, [data], env.today())
    try:
        rec = create_record(session, app=pub.app, form=pub.spec.key, data=data, actor=actor,
                            schema_version=pub.version)
    except IntegrityError as exc:
        raise _map_integrity(pub, exc) from None
    _sync_links(session, pub, rec.id, data)
    _bind_attachments(session, pub, rec.id, data)
    return rec


def create_many(session: Session, pub: Published, payloads: Sequence[Mapping[str, Any]], *,
                actor: Actor, crypt: FieldCrypt | None = None,
                reader: Principal | None = None) -> list[int]:
    """Validate and create many records (an import) with a constant number of queries.

    All-or-nothing: any invalid item raises ``BulkInvalid`` listing every problem with
    its item index, and nothing is written.
    """
    env = env_for(session)
    docs, problems = [], []
    for i, payload in enumerate(payloads):
        try:
            docs.append(_sealed(crypt, validate_record(pub.compiled, payload, env=env)))
        except RecordInvalid as exc:
            problems += [(i, p) for p in exc.problems]
    if problems:
        raise BulkInvalid(problems)
    _refuse_bulk(_bulk_relation_problems(session, pub, docs, reader))
    _number(session, pub, docs, env.today())
    try:
        ids = create_records(session, app=pub.app, form=pub.spec.key, items=docs, actor=actor,
                             schema_version=pub.version)
    except IntegrityError as exc:
        raise _map_integrity(pub, exc) from None
    _bulk_links(session, pub, ids, docs)
    if any(f.type == "attachment" for f in pub.spec.fields):
        for rid, data in zip(ids, docs, strict=True):
            _bind_attachments(session, pub, rid, data)
    return ids


def _bulk_links(session: Session, pub: Published, ids: list[int],
                docs: list[dict[str, Any]]) -> None:
    """Link rows of new records: single relations by one INSERT … SELECT each, read from
    the stored documents; multiple relations row by row."""
    dialect = session.get_bind().dialect.name
    now = utcnow()
    which = (Record.id == any_(literal(ids, ARRAY(BigInteger()))) if dialect == "postgresql"
             else Record.id.between(ids[0], ids[-1]))
    many = []
    for field in (f for f in pub.spec.fields if f.type == "relation"):
        if field.config.get("multiple"):
            many += [{"source_id": rid, "field": field.key, "target_id": t, "created_at": now}
                     for rid, data in zip(ids, docs, strict=True)
                     for t in data.get(field.key) or []]
            continue
        target = cast(json_text(Record.data, field.key, dialect), BigInteger())
        rows = select(Record.id, literal(field.key, String()), target,
                      literal(now, DateTime(timezone=True))).where(which, target.is_not(None))
        session.execute(insert(RecordLink).from_select(
            ["source_id", "field", "target_id", "created_at"], rows))
    if many:
        session.execute(insert(RecordLink), many)


class BulkInvalid(RecordInvalid):
    """Items of a bulk write that do not validate; every error carries its ``index``."""

    def __init__(self, problems: list[tuple[int, Problem]]):
        super().__init__([p for _, p in problems])
        self.extra["errors"] = [{"index": i, **p.as_dict()} for i, p in problems]
        self.detail = f"{len({i for i, _ in problems})} item(s) are not valid; " + self.detail


def _refuse_bulk(problems: list[tuple[int, Problem]]) -> None:
    if problems:
        raise BulkInvalid(problems)


def _bulk_relation_problems(session: Session, pub: Published, docs: list[dict[str, Any]],
                            reader: Principal | None = None) -> list[tuple[int, Problem]]:
    """Relation targets of every item (inside the ``reader``'s read scope, if given),
    checked with one query per relation field and 5,000 ids."""
    problems = []
    for field in (f for f in pub.spec.fields if f.type == "relation"):
        per_item = [(i, d[field.key] if isinstance(d[field.key], list) else [d[field.key]])
                    for i, d in enumerate(docs) if d.get(field.key) is not None]
        wanted = {t for _, ts in per_item for t in ts}
        found: set[int] = set()
        for chunk in _chunks(sorted(wanted), 5000):
            found |= _linkable(session, pub, field.config["target"], chunk, reader)
        for i, targets in per_item:
            for missing in (t for t in targets if t not in found):
                problems.append((i, Problem(field.key, "not_found",
                                            f"{field.label}: 关联的记录 {missing} 不存在",
                                            f"{field.key}: linked {field.config['target']} "
                                            f"record {missing} does not exist")))
    return problems


def _chunks(items: list[int], size: int) -> list[list[int]]:
    return [items[i: i + size] for i in range(0, len(items), size)]


def update(session: Session, pub: Published, record_id: int, payload: Mapping[str, Any], *,
           expected_version: int, actor: Actor, crypt: FieldCrypt | None = None,
           reader: Principal | None = None, current: Record | None = None) -> Record:
    """Validate a patch against the record's current data and apply it (optimistic lock);
    with a ``reader``, the links it adds must be to records they may read. ``current``:
    the record as the caller has just read it in this transaction (a flow step holding
    it locked), instead of reading it again."""
    if current is not None and current.id == record_id and current.deleted_at is None \
            and (current.app, current.form) == (pub.app, pub.spec.key):
        rec = current
    else:
        rec = load_record(session, pub, record_id)
    old = crypt.open(rec.data) if crypt else rec.data
    data = _validate(session, pub, payload, old=old, env=env_for(session), reader=reader)
    if crypt:
        data = crypt.seal(data, previous=rec.data)
    _refuse(_relation_problems(session, pub, data, reader=reader, old=rec.data)
            + _attachment_problems(session, pub, data, record_id)
            + _duplicate_problems(session, pub, data, record_id, old=rec.data))
    changes = {k: data.get(k) for k in set(rec.data) | set(data)}
    linked = {f.key: rec.data.get(f.key) for f in pub.spec.fields if f.type == "relation"}
    try:
        new = update_record(session, record_id, changes=changes,
                            expected_version=expected_version, actor=actor,
                            schema_version=pub.version, current=rec)
    except IntegrityError as exc:
        raise _map_integrity(pub, exc) from None
    _sync_links(session, pub, record_id, data, before=linked)
    _bind_attachments(session, pub, record_id, data)
    return new


def _referrers(session: Session, pub: Published) -> dict[tuple[str, str], Any]:
    """(source form, field) → relation field spec, for relations that target this form."""
    from engine_forms.forms import list_forms

    found = {}
    for form in list_forms(session, pub.app):
        if form.published_version is None:
            continue
        source = published(session, pub.app, form.key)
        for field in source.spec.fields:
            if field.type == "relation" and field.config["target"] == pub.spec.key:
                found[(form.key, field.key)] = (source, field)
    return found


def delete(session: Session, pub: Published, record_id: int, *, actor: Actor,
           expected_version: int | None = None) -> Record:
    """Soft-delete, applying each referring relation's ``on_delete`` policy first."""
    load_record(session, pub, record_id)
    referrers = _referrers(session, pub)
    for field_key, source_rec in links_to(session, record_id):
        entry = referrers.get((source_rec.form, field_key))
        if entry is None:
            continue
        _source, field = entry
        if field.config.get("on_delete", "restrict") == "restrict":
            raise Conflict(f"record {record_id} is still linked from {source_rec.form} "
                           f"record {source_rec.id} ({field_key}); unlink it first",
                           record_id=record_id, linked_from=source_rec.id)
        value = source_rec.data.get(field_key)
        kept = [v for v in value if v != record_id] if isinstance(value, list) else []
        update_record(session, source_rec.id, changes={field_key: kept or None},
                      expected_version=source_rec.row_version, actor=actor)
        set_links(session, source_rec.id, field_key, kept)
    return delete_record(session, record_id, actor=actor, expected_version=expected_version)


def restore(session: Session, pub: Published, record_id: int, *, actor: Actor) -> Record:
    load_record(session, pub, record_id, include_deleted=True)
    try:
        return restore_record(session, record_id, actor=actor)
    except IntegrityError as exc:
        raise _map_integrity(pub, exc) from None


def ids_of(records: Iterable[Any]) -> list[int]:
    return [r.id for r in records]
