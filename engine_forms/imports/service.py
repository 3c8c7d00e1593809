"""Import batches: start, follow, cancel, list and revert a named import of one file.

Order of events of an import: ``upload`` saves the file under ``<data dir>/imports/`` →
``start`` checks the caller's rights (the form's ``import`` right; ``update`` too for an
upsert; every mapped field writable, through ``RowReader``) and the options (a key for
upsert/skip that is a unique, mapped field), opens the file once to count its rows and
queues an ``ImportBatch`` → a worker (``engine_forms.imports.runner``) claims it and
writes it chunk by chunk → ``status`` reads the progress from the table → ``revert``
takes it back (``engine_forms.imports.revert``).

Who may see a batch: anyone with the form's ``import`` right. Who may cancel or revert
it: the user who started it, or an administrator.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping as MappingABC
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, BinaryIO, Literal

from pydantic import BaseModel, ConfigDict
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from engine_forms.attachments import TooLarge
from engine_forms.forms import Published
from engine_forms.importing import ImportError_
from engine_forms.imports.mapping import Mapping, RowReader
from engine_forms.imports.reading import SHEETS, TEXTS, open_table
from engine_forms.models import ImportBatch, ImportProblem
from platform_core.errors import Conflict, NotFound
from platform_core.models import utcnow
from platform_core.security.permissions import Forbidden

CHUNK = 2000
PREVIEW_ROWS = 20
DEFAULT_MAX_BYTES = 100 * 1024 * 1024
MODES = ("insert", "upsert", "skip")


class ImportOptions(BaseModel):
    """How a file is written: ``insert`` every row; ``upsert`` by the unique field ``key``
    (update the record holding the row's value, else create one); ``skip`` rows whose
    ``key`` is already used (in the store or earlier in the file). ``atomic``: all rows
    or none; otherwise the valid rows are written and the others reported."""

    model_config = ConfigDict(extra="forbid")

    mode: Literal["insert", "upsert", "skip"] = "insert"
    key: str | None = None
    atomic: bool = True
    sheet: str | None = None
    header_row: int | None = None


def upload(data_dir: Path, filename: str, stream: BinaryIO, *,
           limit: int = DEFAULT_MAX_BYTES) -> Path:
    """Save an upload under ``<data dir>/imports/`` (streamed, never held in memory); its
    path. Refused (413) past ``limit`` bytes, 422 for a type the reader cannot open."""
    name = Path(filename or "import").name
    suffix = Path(name).suffix.lower()
    if not name.lower().endswith(SHEETS + TEXTS):
        raise ImportError_("file: expected .xlsx, .xls, .ods or .csv", field="file")
    target = Path(data_dir) / "imports" / f"{uuid.uuid4().hex}{suffix}"
    target.parent.mkdir(parents=True, exist_ok=True)
    size = 0
    try:
        with target.open("wb") as out:
            while chunk := stream.read(1024 * 1024):
                size += len(chunk)
                if size > limit:
                    raise TooLarge(f"file: larger than the import limit of "
                                   f"{limit // (1024 * 1024)} MB", field="file",
                                   limit_bytes=limit)
                out.write(chunk)
    except BaseException:
        target.unlink(missing_ok=True)
        raise
    return target


def _check_rights(caller: Any, pub: Published, options: ImportOptions) -> None:
    access = caller.access
    if not access.allows("import"):
        raise Forbidden(f"you may not import into {pub.spec.key}")
    if options.mode == "upsert" and not access.allows("update"):
        raise Forbidden(f"an upsert changes existing records: you may not update "
                        f"{pub.spec.key}", field="mode")


def check_options(pub: Published, caller: Any, mapping: Mapping,
                  options: ImportOptions) -> None:
    """A mode that finds records needs a unique, readable key filled by a column."""
    if options.mode == "insert":
        if options.key:
            raise ImportError_("key: only the upsert and skip modes use a key", field="key")
        return
    if not options.key:
        raise ImportError_(f"key: mode {options.mode} needs the unique field that finds "
                           "existing records", field="key")
    field = pub.spec.field(options.key)
    if field is None or not caller.access.readable(options.key):
        raise ImportError_(f"key: unknown field {options.key!r} of form {pub.spec.key}",
                           field="key")
    if not field.unique:
        raise ImportError_(f"key: {options.key} is not a unique field, so it cannot find "
                           "one record", field="key")
    if not any(c.field == options.key for c in mapping.columns):
        raise ImportError_(f"key: no column of the file fills {options.key}", field="key")


def start(session: Session, caller: Any, pub: Published, *, path: Path, filename: str,
          mapping: Mapping, options: ImportOptions, dry_run: bool,
          name: str | None = None) -> ImportBatch:
    """Check everything that can be checked before reading the rows and queue the batch;
    audited. The file must already be under the data directory (``upload``)."""
    _check_rights(caller, pub, options)
    if not any(c.field for c in mapping.columns):
        raise ImportError_("mapping: no column fills a field", field="mapping")
    RowReader(session, caller, pub, mapping)  # refuses fields the caller may not write
    check_options(pub, caller, mapping, options)
    table = open_table(path, filename=filename, sheet=options.sheet or mapping.sheet,
                       header_row=options.header_row or mapping.header_row)
    principal = caller.principal
    batch = ImportBatch(
        app=pub.app, form=pub.spec.key, filename=Path(filename).name[:255],
        name=(name or f"{Path(filename).name} {utcnow():%Y-%m-%d %H:%M}")[:200],
        path=str(path), mapping=mapping.model_dump(mode="json"),
        options=options.model_dump(mode="json") | {"sheet": table.sheet,
                                                   "header_row": table.header_row},
        dry_run=dry_run, status="queued", rows_total=table.count(),
        user_id=principal.actor.user_id, actor=principal.actor.name[:200])
    session.add(batch)
    session.flush()
    caller.audit(session, "import.start", pub, None, batch=batch.id, file=batch.filename,
                 mode=options.mode, key=options.key, atomic=options.atomic, dry_run=dry_run)
    return batch


# -- reading ------------------------------------------------------------------------------


def _aware(moment: datetime | None) -> datetime | None:
    if moment is not None and moment.tzinfo is None:
        return moment.replace(tzinfo=UTC)
    return moment


def load(session: Session, caller: Any, pub: Published, batch_id: int) -> ImportBatch:
    """The batch of this form, for a caller with the form's import right (else 404)."""
    batch = session.get(ImportBatch, batch_id)
    if batch is None or (batch.app, batch.form) != (pub.app, pub.spec.key) \
            or not caller.access.allows("import"):
        raise NotFound(f"import {batch_id} does not exist", batch_id=batch_id)
    return batch


def describe(session: Session, batch: ImportBatch, *, now: datetime | None = None
             ) -> dict[str, Any]:
    """A batch's status document: counts, rate (rows/s), ETA (s), problem count."""
    now = now or utcnow()
    started, finished = _aware(batch.started_at), _aware(batch.finished_at)
    rate = eta = None
    if started is not None and batch.rows_done:
        seconds = max(((finished or now) - started).total_seconds(), 1e-3)
        rate = round(batch.rows_done / seconds, 1)
        if batch.status == "running" and batch.rows_total:
            eta = round(max(batch.rows_total - batch.rows_done, 0) / rate, 1)
    count = session.execute(select(func.count()).select_from(ImportProblem).where(
        ImportProblem.batch_id == batch.id)).scalar_one()
    options = batch.options or {}
    return {
        "id": batch.id, "app": batch.app, "form": batch.form, "name": batch.name,
        "filename": batch.filename, "status": batch.status, "dry_run": batch.dry_run,
        "mode": options.get("mode"), "key": options.get("key"),
        "atomic": options.get("atomic"), "sheet": options.get("sheet"),
        "header_row": options.get("header_row"), "rows_total": batch.rows_total,
        "rows_done": batch.rows_done, "created": batch.created, "updated": batch.updated,
        "skipped": batch.skipped, "failed": batch.failed, "rate": rate, "eta_s": eta,
        "problems": count, "preview": batch.preview or [], "error": batch.error,
        "cancel_requested": batch.cancel_requested, "actor": batch.actor,
        "user_id": batch.user_id, "can_revert": can_revert(batch),
        "revert_report": batch.revert_report,
        "created_at": _iso(batch.created_at), "started_at": _iso(started),
        "finished_at": _iso(finished), "reverted_at": _iso(batch.reverted_at)}


def _iso(moment: datetime | None) -> str | None:
    return _aware(moment).isoformat() if moment is not None else None


def can_revert(batch: ImportBatch) -> bool:
    return (not batch.dry_run and batch.status in ("done", "cancelled", "failed")
            and (batch.created or batch.updated) > 0)


def status(session: Session, caller: Any, pub: Published, batch_id: int) -> dict[str, Any]:
    return describe(session, load(session, caller, pub, batch_id))


def problems(session: Session, caller: Any, pub: Published, batch_id: int, *,
             limit: int = 100, offset: int = 0) -> list[dict[str, Any]]:
    """The batch's row problems in row order."""
    load(session, caller, pub, batch_id)
    rows = session.execute(select(ImportProblem).where(ImportProblem.batch_id == batch_id)
                           .order_by(ImportProblem.row, ImportProblem.id)
                           .limit(limit).offset(offset)).scalars()
    return [problem_doc(p) for p in rows]


def problem_doc(p: ImportProblem) -> dict[str, Any]:
    return {"row": p.row, "column": p.column, "header": p.header, "field": p.field,
            "value": p.value, "reason": p.reason, "reason_en": p.reason_en}


def list_batches(session: Session, caller: Any, pub: Published, *,
                 limit: int = 50) -> list[dict[str, Any]]:
    """The form's imports, newest first."""
    if not caller.access.allows("import"):
        return []
    rows = session.execute(select(ImportBatch).where(
        ImportBatch.app == pub.app, ImportBatch.form == pub.spec.key)
        .order_by(ImportBatch.id.desc()).limit(limit)).scalars()
    return [describe(session, b) for b in rows]


def _own(caller: Any, batch: ImportBatch) -> None:
    principal = caller.principal
    if not (principal.is_admin or (batch.user_id is not None
                                   and batch.user_id == principal.actor.user_id)):
        raise Forbidden("only the user who started an import, or an administrator, may "
                        "cancel or revert it")


def cancel(session: Session, caller: Any, pub: Published, batch_id: int) -> dict[str, Any]:
    """Stop a batch: a queued one at once, a running one after its current chunk (what
    is committed stays, and can be reverted)."""
    batch = load(session, caller, pub, batch_id)
    _own(caller, batch)
    if batch.status not in ("queued", "running"):
        raise Conflict(f"import {batch_id} is {batch.status}: nothing to cancel",
                       batch_id=batch_id, status=batch.status)
    batch.cancel_requested = True
    if batch.status == "queued":
        batch.status, batch.finished_at = "cancelled", utcnow()
    session.flush()
    caller.audit(session, "import.cancel", pub, None, batch=batch_id)
    return describe(session, batch)


def revert(session: Session, caller: Any, pub: Published, batch_id: int) -> dict[str, Any]:
    """Undo the batch (``engine_forms.imports.revert``); audited; its report."""
    from engine_forms.imports.revert import undo

    batch = load(session, caller, pub, batch_id)
    _own(caller, batch)
    if batch.status == "reverted":
        raise Conflict(f"import {batch_id} was already reverted", batch_id=batch_id)
    if batch.status in ("queued", "running"):
        raise Conflict(f"import {batch_id} is {batch.status}: cancel it first",
                       batch_id=batch_id)
    if batch.dry_run:
        raise Conflict(f"import {batch_id} was a dry run: it wrote nothing",
                       batch_id=batch_id)
    report = undo(session, caller, pub, batch)
    batch.status, batch.reverted_at, batch.revert_report = "reverted", utcnow(), report
    session.flush()
    caller.audit(session, "import.revert", pub, None, batch=batch_id,
                 removed=report["removed"], restored=report["restored"],
                 skipped=len(report["skipped"]))
    return report


def parse_mapping(value: Any) -> Mapping:
    """A mapping from JSON (a dict, or the ``mapping`` field of a saved one)."""
    if isinstance(value, MappingABC) and "columns" not in value and "mapping" in value:
        value = value["mapping"]
    try:
        return Mapping.model_validate(value)
    except ValueError as exc:
        raise ImportError_(f"mapping: not a valid mapping ({str(exc).splitlines()[0]})",
                           field="mapping") from None


__all__ = ["CHUNK", "ImportOptions", "cancel", "describe", "list_batches", "load",
           "parse_mapping", "problems", "revert", "start", "status", "upload"]
