"""Publishing a form version: the diff, the migration plan, the dry run, the migration.

Keys are a field's identity, so a rename is declared on the new field
(``"renamed_from": "old_key"``). Converting one record, in order: move renamed values →
drop removed fields → re-coerce fields whose type changed → check values of changed
options → recompute formulas. A record that cannot be converted keeps its old version and
data, and is listed in the job's failures; the others are converted in batches, each
batch one transaction, with progress, a cursor and a lease on the ``FormMigration`` row:
a job whose process died is claimed again (the background tick of ``qiao serve`` or
``qiao worker``) and continues after its cursor.
"""

from __future__ import annotations

import os
import socket
import threading
from collections.abc import Callable, Mapping
from datetime import timedelta
from typing import Any

from sqlalchemy import func, or_, select
from sqlalchemy.orm import Session

from engine_forms.expr import CompiledForm, to_storage
from engine_forms.fieldtypes import FieldError
from engine_forms.models import FormMigration
from engine_forms.spec import FormSpec
from platform_core.db import Database
from platform_core.models import Record, utcnow
from platform_core.store import SYSTEM, Actor, migrate_record

BATCH = 500
MAX_FAILURES = 1000
LEASE = timedelta(seconds=60)  # renewed by every batch; past it, the job is anyone's


def _options(field: Any) -> set[str]:
    return {o["value"] for o in field.config.get("options", [])}


def diff_specs(old: FormSpec | None, new: FormSpec) -> dict[str, list[Any]]:
    """Added, removed, renamed, type-changed and options-changed fields."""
    out: dict[str, list[Any]] = {"added": [], "removed": [], "renamed": [],
                                 "type_changed": [], "options_changed": [],
                                 "formula_changed": []}
    old_fields = {f.key: f for f in (old.fields if old else ())}
    renamed = {f.renamed_from: f.key for f in new.fields
               if f.renamed_from in old_fields and f.renamed_from not in
               {g.key for g in new.fields}}
    for field in new.fields:
        before = old_fields.get(field.key) or old_fields.get(
            next((o for o, n in renamed.items() if n == field.key), ""))
        if before is None:
            out["added"].append(field.key)
            continue
        if before.key != field.key:
            out["renamed"].append({"from": before.key, "to": field.key})
        if before.type != field.type:
            out["type_changed"].append({"field": field.key, "from": before.type,
                                        "to": field.type})
        elif field.type == "formula" and before.config != field.config:
            out["formula_changed"].append(field.key)
        elif field.type in ("select", "multiselect") and _options(before) != _options(field):
            out["options_changed"].append({
                "field": field.key, "removed": sorted(_options(before) - _options(field)),
                "added": sorted(_options(field) - _options(before))})
    new_keys = {f.key for f in new.fields}
    out["removed"] = sorted(k for k in old_fields if k not in new_keys and k not in renamed)
    return out


def needs_migration(changes: Mapping[str, list[Any]]) -> bool:
    return any(changes.get(k) for k in ("removed", "renamed", "type_changed", "options_changed",
                                        "formula_changed"))


def _recoerce(field: Any, value: Any) -> Any:
    try:
        return field.field_type.coerce(value, field)
    except FieldError:
        if isinstance(value, str):
            raise
        return field.field_type.from_text(str(value), field)


def convert(data: Mapping[str, Any], changes: Mapping[str, list[Any]],
            compiled: CompiledForm) -> tuple[dict[str, Any], list[dict[str, str]]]:
    """One record's data converted to the new version, and what could not be converted."""
    spec, out, errors = compiled.spec, dict(data), []
    for move in changes["renamed"]:
        if move["from"] in out:
            out[move["to"]] = out.pop(move["from"])
    for key in changes["removed"]:
        out.pop(key, None)
    checks = [c["field"] for c in changes["type_changed"] + changes["options_changed"]]
    for key in checks:
        field, value = spec.field(key), out.get(key)
        if value is None or field.field_type.computed:
            out.pop(key, None) if field.field_type.computed else None
            continue
        try:
            out[key] = _recoerce(field, value)
        except FieldError as exc:
            errors.append({"field": key, "value": str(value)[:100], "message": exc.zh,
                           "message_en": exc.en})
    for field, fn, kind in compiled.formulas:
        out[field.key] = to_storage(fn(out), kind)
    return {k: v for k, v in out.items() if v is not None}, errors


Chain = list[tuple[Mapping[str, list[Any]], CompiledForm]]


def convert_chain(data: Mapping[str, Any], chain: Chain
                  ) -> tuple[dict[str, Any], list[dict[str, str]]]:
    """Convert through every version after the record's own, stopping at the first error."""
    out: dict[str, Any] = dict(data)
    for changes, compiled in chain:
        out, errors = convert(out, changes, compiled)
        if errors:
            return dict(data), errors
    return out, []


def _pending(session: Session, app: str, form: str, version: int, after: int,
             limit: int) -> list[Record]:
    stmt = (select(Record).where(Record.app == app, Record.form == form,
                                 Record.schema_version < version, Record.id > after)
            .order_by(Record.id).limit(limit))
    return list(session.execute(stmt).scalars())


def count_pending(session: Session, app: str, form: str, version: int) -> int:
    return session.execute(select(func.count()).select_from(Record).where(
        Record.app == app, Record.form == form, Record.schema_version < version)).scalar_one()


LoadChain = Callable[[Session, str, str, int, int], Chain]


def dry_run(session: Session, *, app: str, form: str, version: int, load: LoadChain
            ) -> dict[str, Any]:
    """What converting the records older than ``version`` would do; writes nothing."""
    total, failing, failures, after = 0, 0, [], 0
    chains: dict[int, Chain] = {}
    while batch := _pending(session, app, form, version, after, BATCH):
        for rec in batch:
            total += 1
            if rec.schema_version not in chains:
                chains[rec.schema_version] = load(session, app, form, rec.schema_version,
                                                  version)
            _, errors = convert_chain(rec.data, chains[rec.schema_version])
            if errors:
                failing += 1
                if len(failures) < MAX_FAILURES:
                    failures.append({"record_id": rec.id, "errors": errors})
        after = batch[-1].id
    return {"records": total, "would_convert": total - failing, "would_fail": failing,
            "failures": failures}


def migration_worker(prefix: str = "serve") -> str:
    return f"{prefix}:{socket.gethostname()}:{os.getpid()}:{threading.get_ident()}"


def claim_migration(db: Database, worker: str, *, job_id: int | None = None) -> int | None:
    """Take an unfinished job nobody runs — pending, or running under a lease that ran out
    (its process died) — ``job_id`` or the oldest; its id, or None. ``FOR UPDATE SKIP
    LOCKED`` on PostgreSQL; SQLite's writer lock makes the select-then-update atomic."""
    now = utcnow()
    stmt = select(FormMigration).where(
        FormMigration.status.in_(("pending", "running")),
        or_(FormMigration.lease_until.is_(None), FormMigration.lease_until <= now))
    if job_id is not None:
        stmt = stmt.where(FormMigration.id == job_id)
    with db.read() as session:  # the usual answer, without taking the write lock
        if session.execute(stmt.with_only_columns(FormMigration.id).limit(1)).first() is None:
            return None
    with db.write() as session:
        job = session.execute(stmt.order_by(FormMigration.id).limit(1)
                              .with_for_update(skip_locked=True)).scalars().first()
        if job is None:
            return None
        job.worker, job.lease_until, job.status = worker, now + LEASE, "running"
        return job.id


def run_migration(db: Database, job_id: int, *, load: LoadChain, actor: Actor | None = None,
                  worker: str | None = None) -> FormMigration | None:
    """Claim the job and convert its records in batches; the job as it ends (as it is, when
    another process runs it or it is done already).

    Each batch is one transaction that also moves the job's cursor (``last_id``) and
    renews its lease, so a process killed mid-job leaves whole batches only and the next
    runner (``resume_migrations`` at start-up) continues after the cursor. The batch
    first locks the job row and stops if another worker took it over. A record that
    cannot be converted keeps its version and data and is listed in the job's failures;
    it is retried by the next migration to a later version. The records' history names
    ``actor``, else who published (kept on the job), else the system.
    """
    worker = worker or migration_worker()
    if claim_migration(db, worker, job_id=job_id) is None:
        with db.read() as session:
            return session.get(FormMigration, job_id)
    return run_claimed(db, job_id, worker, load=load, actor=actor)


def run_claimed(db: Database, job_id: int, worker: str, *, load: LoadChain,
                actor: Actor | None = None) -> FormMigration | None:
    """Run a job ``worker`` has claimed (``claim_migration``) to its end."""
    while True:
        with db.write() as session:
            job = session.execute(select(FormMigration).where(FormMigration.id == job_id)
                                  .with_for_update()).scalar_one_or_none()
            if job is None or job.status == "done" or job.worker != worker:
                return job  # gone, or taken over: this process was thought dead
            batch = _pending(session, job.app, job.form, job.to_version, job.last_id, BATCH)
            _convert(session, job, batch, load, actor or _publisher(job))
            job.updated_at = utcnow()
            if not batch:
                job.status, job.worker, job.lease_until = "done", None, None
                return job
            job.last_id, job.lease_until = batch[-1].id, utcnow() + LEASE


def _publisher(job: FormMigration) -> Actor:
    return SYSTEM if not job.actor else Actor(**job.actor)


def _convert(session: Session, job: FormMigration, batch: list[Record], load: LoadChain,
             actor: Actor) -> None:
    chains: dict[int, Chain] = {}
    for rec in batch:
        if rec.schema_version not in chains:
            chains[rec.schema_version] = load(session, job.app, job.form,
                                              rec.schema_version, job.to_version)
        new, errors = convert_chain(rec.data, chains[rec.schema_version])
        if errors:
            job.failed += 1
            if len(job.failures) < MAX_FAILURES:
                job.failures = [*job.failures, {"record_id": rec.id, "errors": errors}]
            continue
        migrate_record(session, rec.id, data=new, schema_version=job.to_version,
                       actor=actor)
        job.done += 1


def resume_migrations(db: Database, worker: str, *, load: LoadChain) -> int:
    """Run every unfinished job nobody runs, one after the other (a start-up, or a tick
    of ``qiao worker``); how many were run."""
    ran = 0
    while (job_id := claim_migration(db, worker)) is not None:
        run_claimed(db, job_id, worker, load=load)
        ran += 1
    return ran


EXAMPLES = 5


def _filled(value: Any) -> bool:
    return value not in (None, "", [], {})


def _impact_tests(changes: Mapping[str, list[Any]], old: FormSpec, new: CompiledForm
                  ) -> list[tuple[dict[str, Any], Callable[[Mapping[str, Any], Any], bool]]]:
    """(change, does it touch this record's data) for each change a record can feel."""
    from engine_forms.validation import field_states

    tests: list[tuple[dict[str, Any], Callable[[Mapping[str, Any], Any], bool]]] = []
    for key in changes["added"]:
        field = new.spec.field(key)
        if field is None or field.field_type.computed or not (field.required
                                                                 or field.required_if):
            continue

        def required(data: Mapping[str, Any], env: Any, key: str = key) -> bool:
            state = field_states(new, data, env)[key]
            return state.visible and state.required

        tests.append(({"change": "added_required", "field": key}, required))
    for key in changes["removed"]:
        tests.append(({"change": "removed", "field": key},
                      lambda data, _env, key=key: _filled(data.get(key))))
    for move in changes["renamed"]:
        tests.append(({"change": "renamed", "field": move["to"], "from": move["from"]},
                      lambda data, _env, key=move["from"]: _filled(data.get(key))))
    for item in changes["type_changed"]:
        tests.append(({"change": "type_changed", "field": item["field"], "from": item["from"],
                       "to": item["to"]},
                      lambda data, _env, key=item["field"]: _filled(data.get(key))))
    for item in changes["options_changed"]:
        gone = frozenset(item["removed"])
        if not gone:
            continue

        def holds(data: Mapping[str, Any], _env: Any, key: str = item["field"],
                  gone: frozenset[str] = gone) -> bool:
            value = data.get(key)
            values = value if isinstance(value, list) else [value]
            return any(isinstance(v, str) and v in gone for v in values)

        tests.append(({"change": "options_removed", "field": item["field"],
                       "options": sorted(gone)}, holds))
    for key in changes["formula_changed"]:
        tests.append(({"change": "formula_changed", "field": key}, lambda _d, _e: True))
    del old  # the old spec's keys are in ``changes`` already
    return tests


def impact(session: Session, *, app: str, form: str, version: int,
           changes: Mapping[str, list[Any]], old: FormSpec, new: CompiledForm,
           env: Any) -> list[dict[str, Any]]:
    """For each change, how many of the existing records it touches, with a few of their
    ids: a new required (or required-when) field those records now lack, a removed or
    renamed field holding data, a changed type, a removed option still chosen, a changed
    formula. Read only; the publish dialog shows it before the admin confirms."""
    tests = _impact_tests(changes, old, new)
    if not tests:
        return []
    counts = [0] * len(tests)
    examples: list[list[int]] = [[] for _ in tests]
    after = 0
    while batch := _pending(session, app, form, version, after, BATCH):
        for rec in batch:
            data = rec.data or {}
            for i, (_change, touches) in enumerate(tests):
                if touches(data, env):
                    counts[i] += 1
                    if len(examples[i]) < EXAMPLES:
                        examples[i].append(rec.id)
        after = batch[-1].id
    return [change | {"records": n, "examples": ids}
            for (change, _t), n, ids in zip(tests, counts, examples, strict=True)]
