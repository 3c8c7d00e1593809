"""The import worker: claims a queued batch and writes its file, chunk by chunk.

Order of events: ``claim`` takes a queued batch (or one whose lease ran out) in one
transaction (``FOR UPDATE SKIP LOCKED`` on PostgreSQL; SQLite's writer lock makes the
select-then-update atomic, as the outbox dispatcher's claim) → ``run`` opens the file,
skips the ``rows_done`` rows already committed and reads the rest in chunks of
``CHUNK`` rows → each chunk (``engine_forms.imports.chunks``) is read and coerced
(``RowReader``), its duplicates and existing records found in one query per unique
field, its new records created with ``create_many`` (one INSERT), its updates applied →

- not atomic: each chunk's records, its ``ImportRow``s, its problems and the batch's
  counters, ``rows_done`` and lease commit together, so a SIGKILL leaves no half chunk
  and a re-run continues after the last committed one (``uq_import_rows_batch_row`` is
  the safety net); ``cancel_requested`` is honoured between chunks;
- atomic (and every dry run): the whole file is one transaction — committed only when
  no row has a problem (a dry run is always rolled back); the problems and the preview
  are then stored in a transaction of their own. A kill leaves nothing; a re-run starts
  over.

One audit entry per batch (``record.import``), not one per row.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
from datetime import timedelta
from itertools import islice
from typing import Any

from sqlalchemy import insert, or_, select
from sqlalchemy.orm import Session

from engine_forms.imports.chunks import Job
from engine_forms.imports.mapping import Mapping, RowReader
from engine_forms.imports.reading import open_table
from engine_forms.models import ImportBatch, ImportProblem, ImportRow
from platform_core.db import Database
from platform_core.models import utcnow

log = logging.getLogger("qiao.imports")
CHUNK = 1000  # list queries take at most 1,000 values: one look-up per chunk and field
LEASE = timedelta(seconds=120)


class LeaseLost(Exception):
    """Another worker took the batch over (this one was thought dead)."""


def worker_id(prefix: str = "worker") -> str:
    return f"{prefix}:{socket.gethostname()}:{os.getpid()}:{threading.get_ident()}"


def claim(db: Database, worker: str, *, batch_id: int | None = None,
          force: bool = False) -> int | None:
    """Take a batch to run: ``batch_id`` (``force``: even while another worker's lease
    runs — ``qiao import resume`` after a crash) or the oldest claimable one."""
    now = utcnow()
    with db.write() as s:
        stmt = select(ImportBatch).where(ImportBatch.status.in_(("queued", "running")),
                                         ImportBatch.cancel_requested.is_(False))
        if batch_id is not None:
            stmt = stmt.where(ImportBatch.id == batch_id)
        if not force:
            stmt = stmt.where(or_(ImportBatch.lease_until.is_(None),
                                  ImportBatch.lease_until <= now))
        batch = s.execute(stmt.order_by(ImportBatch.id).limit(1)
                          .with_for_update(skip_locked=True)).scalars().first()
        if batch is None:
            return None
        batch.worker, batch.lease_until = worker, now + LEASE
        batch.status = "running"
        batch.started_at = batch.started_at or now
        return batch.id


def run_next(db: Database, worker: str, *, keyring: Any = None) -> bool:
    """Claim and run one batch; whether there was one."""
    batch_id = claim(db, worker)
    if batch_id is None:
        return False
    run(db, batch_id, worker, keyring=keyring)
    return True


def _chunks(rows: Any, size: int) -> Any:
    while chunk := list(islice(rows, size)):
        yield chunk


def run(db: Database, batch_id: int, worker: str, *, keyring: Any = None,
        chunk: int = CHUNK, progress: Any = None) -> str:
    """Run a claimed batch to its end; its final status. ``progress(batch)`` is called
    after each committed chunk (the CLI's progress bar)."""
    try:
        with db.read() as s:
            batch = s.get(ImportBatch, batch_id)
            job = Job.build(s, batch, keyring)
            table = open_table(batch.path, filename=batch.filename,
                               sheet=batch.options.get("sheet"),
                               header_row=batch.options.get("header_row"))
            atomic = batch.dry_run or batch.options.get("atomic", True)
            start = 0 if atomic else batch.rows_done
        rows = islice(table.rows(), start, None)
        if atomic:
            return _run_atomic(db, batch_id, worker, job, _chunks(rows, chunk), progress)
        return _run_chunked(db, batch_id, worker, job, _chunks(rows, chunk), progress,
                            start)
    except LeaseLost:
        log.warning("import %s: taken over by another worker", batch_id)
        return "lost"
    except Exception as exc:  # the batch says why; what was committed stays
        log.exception("import %s failed", batch_id)
        with db.write() as s:
            batch = s.get(ImportBatch, batch_id)
            if batch.worker == worker:
                batch.status, batch.finished_at = "failed", utcnow()
                batch.error = f"{type(exc).__name__}: {getattr(exc, 'detail', exc)}"[:2000]
                batch.lease_until = None
        return "failed"


def _locked(s: Session, batch_id: int, worker: str) -> ImportBatch:
    batch = s.execute(select(ImportBatch).where(ImportBatch.id == batch_id)
                      .with_for_update()).scalar_one()
    if batch.worker != worker or batch.status != "running":
        raise LeaseLost(batch_id)
    return batch


def _store(s: Session, batch_id: int, rows: list[dict[str, Any]],
           problems: list[dict[str, Any]]) -> None:
    if rows:
        # the table, not the entity: no ORM bulk bookkeeping for rows nobody loads here
        s.execute(insert(ImportRow.__table__), [{"batch_id": batch_id, **r} for r in rows])
    if problems:
        s.execute(insert(ImportProblem), [{
            "batch_id": batch_id, "row": p["row"], "column": p.get("column"),
            "header": (p.get("header") or None) and str(p["header"])[:200],
            "field": p.get("field"), "value": (p.get("value") or None)
            and str(p["value"])[:500], "reason": str(p["reason"])[:1000],
            "reason_en": (p.get("reason_en") or None) and str(p["reason_en"])[:1000]}
            for p in problems])


def _count(batch: ImportBatch, result: Any) -> None:
    batch.created += result.created
    batch.updated += result.updated
    batch.skipped += result.skipped
    batch.failed += result.failed
    batch.rows_done += result.rows


def _run_chunked(db: Database, batch_id: int, worker: str, job: Job, chunks: Any,
                 progress: Any, done: int) -> str:
    for rows in chunks:
        with db.write() as s:
            batch = _locked(s, batch_id, worker)
            if batch.cancel_requested:
                return _finish(s, job, batch, "cancelled")
            if batch.rows_done != done:
                raise LeaseLost(batch_id)  # someone else wrote rows meanwhile
            result = job.chunk(s, rows, preview=batch.rows_done == 0)
            _store(s, batch_id, result.import_rows, result.problems)
            _count(batch, result)
            if result.preview is not None:
                batch.preview = result.preview
            batch.lease_until = utcnow() + LEASE
            done = batch.rows_done
        if progress is not None:
            progress(batch)
    with db.write() as s:
        batch = _locked(s, batch_id, worker)
        return _finish(s, job, batch, "cancelled" if batch.cancel_requested else "done")


class _Rollback(Exception):
    pass


def _run_atomic(db: Database, batch_id: int, worker: str, job: Job, chunks: Any,
                progress: Any) -> str:
    """The whole file in one transaction: kept only when every row went in (and it is
    not a dry run). The batch row stays locked meanwhile, so no other worker claims it
    (PostgreSQL: SKIP LOCKED passes it by; SQLite: the writer lock)."""
    total = _Total()
    try:
        with db.write() as s:
            batch = _locked(s, batch_id, worker)
            for rows in chunks:
                result = job.chunk(s, rows, preview=total.rows == 0)
                total.add(result)
                if job.cancel_requested(db, batch_id):
                    total.cancelled = True
                    break
                if progress is not None:
                    progress(_Progress(batch, total))
            if total.failed or batch.dry_run or total.cancelled:
                raise _Rollback
            _store(s, batch_id, total.import_rows, [])
            total.apply(batch)
            return _finish(s, job, batch, "done")
    except _Rollback:
        pass
    with db.write() as s:
        batch = _locked(s, batch_id, worker)
        _store(s, batch_id, [], total.problems)
        total.apply(batch, written=False)
        status = "cancelled" if total.cancelled else "done" if batch.dry_run else "failed"
        if status == "failed":
            batch.error = (f"{total.failed} row(s) have problems: nothing was imported "
                           "(all or nothing)")
        return _finish(s, job, batch, status)


class _Total:
    """What the chunks of an atomic run found, kept until the end."""

    def __init__(self) -> None:
        self.rows = self.created = self.updated = self.skipped = self.failed = 0
        self.import_rows: list[dict[str, Any]] = []
        self.problems: list[dict[str, Any]] = []
        self.preview: list[Any] | None = None
        self.cancelled = False

    def add(self, result: Any) -> None:
        self.rows += result.rows
        self.created += result.created
        self.updated += result.updated
        self.skipped += result.skipped
        self.failed += result.failed
        self.import_rows += result.import_rows
        self.problems += result.problems
        if result.preview is not None:
            self.preview = result.preview

    def apply(self, batch: ImportBatch, *, written: bool = True) -> None:
        """The counters on the batch (a rolled-back run: what it would have done)."""
        batch.rows_done = self.rows if written or batch.dry_run else 0
        batch.created, batch.updated = self.created, self.updated
        batch.skipped, batch.failed = self.skipped, self.failed
        if not written and not batch.dry_run:
            batch.created = batch.updated = 0
        batch.preview = self.preview


class _Progress:
    """The counters of an atomic run in progress, shaped like a batch for ``progress``."""

    def __init__(self, batch: ImportBatch, total: _Total):
        self.id, self.rows_total, self.rows_done = batch.id, batch.rows_total, total.rows
        self.created, self.updated = total.created, total.updated
        self.skipped, self.failed = total.skipped, total.failed


def _finish(s: Session, job: Job, batch: ImportBatch, status: str) -> str:
    batch.status, batch.finished_at, batch.lease_until = status, utcnow(), None
    if batch.rows_total is not None and status == "done":
        batch.rows_total = max(batch.rows_total, batch.rows_done) \
            if batch.rows_done > batch.rows_total else batch.rows_done
    if not batch.dry_run and (batch.created or batch.updated):
        job.caller.audit(s, "record.import", job.pub, None, batch=batch.id,
                         file=batch.filename, rows=batch.created + batch.updated,
                         created=batch.created, updated=batch.updated, status=status)
    s.flush()
    return status


# -- in the background ----------------------------------------------------------------------

_running: dict[str, threading.Thread] = {}
_lock = threading.Lock()


def send(ctx: Any, client: Any, now: Any, worker: str) -> int:  # noqa: ARG001
    """The background tick's entry (``platform_core.scans.SENDERS``): when this process
    runs no import, claim one and run it on a thread of its own, so the dispatcher and
    the scheduler keep their pace; 1 when it started one."""
    with _lock:
        thread = _running.get("import")
        if thread is not None and thread.is_alive():
            return 0
        me = worker_id("serve")
        batch_id = claim(ctx.db, me)
        if batch_id is None:
            return 0
        thread = threading.Thread(target=run, args=(ctx.db, batch_id, me),
                                  kwargs={"keyring": getattr(ctx, "keyring", None)},
                                  name=f"qiao-import-{batch_id}", daemon=True)
        _running["import"] = thread
        thread.start()
        return 1


__all__ = ["CHUNK", "LEASE", "Mapping", "RowReader", "claim", "run", "run_next", "send",
           "worker_id"]
