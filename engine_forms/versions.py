"""Publishing a form version: the diff, the migration plan, the dry run, the migration.

Keys are a field's identity, so a rename is declared on the new field
(``"renamed_from": "old_key"``). Converting one record, in order: move renamed values →
drop removed fields → re-coerce fields whose type changed → check values of changed
options → recompute formulas. A record that cannot be converted keeps its old version and
data, and is listed in the job's failures; the others are converted in batches, each
batch one transaction, with progress on the ``FormMigration`` row.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from sqlalchemy import func, select
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


def run_migration(db: Database, job_id: int, *, load: LoadChain,
                  actor: Actor = SYSTEM) -> FormMigration | None:
    """Convert the job's records in batches (resumable; each batch one transaction).

    A record that cannot be converted keeps its version and data and is listed in the
    job's failures; it is retried by the next migration to a later version.
    """
    after = 0
    while True:
        with db.write() as session:
            job = session.get(FormMigration, job_id)
            if job is None or job.status == "done":
                return job
            batch = _pending(session, job.app, job.form, job.to_version, after, BATCH)
            job.status = "running" if batch else "done"
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
            job.updated_at = utcnow()
            after = batch[-1].id if batch else after
            if not batch:
                return job
