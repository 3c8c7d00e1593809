"""Undo an import: remove the records it created, restore the values it replaced.

Order of events, in the caller's one transaction: read the batch's ``ImportRow``s and
the current version of each record (one query per 5,000) → a record whose
``row_version`` is no longer the one the import left (edited since), or that is already
deleted, is listed and left alone → a created record still linked from a live record of
another import or form is listed and left alone (deleting it would break that link) →
the others: created ones go to the recycle bin (``delete_record``: a history entry and a
``record.deleted`` event each, so rules and the timeline see it, and a revert made by
mistake can be restored from the recycle bin), updated ones get back the stored values
the import replaced (``update_record`` with the version the import left: optimistic
locking, so a concurrent edit wins and is reported).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from engine_forms import records as handler
from engine_forms.forms import Published
from engine_forms.models import ImportBatch, ImportRow
from platform_core.errors import Conflict
from platform_core.models import Record, RecordLink
from platform_core.store import delete_record, update_record

SLICE = 5000


def _current(session: Session, ids: list[int]) -> dict[int, tuple[int, Any]]:
    found = {}
    for i in range(0, len(ids), SLICE):
        part = ids[i: i + SLICE]
        found |= {r.id: (r.row_version, r.deleted_at) for r in session.execute(
            select(Record.id, Record.row_version, Record.deleted_at)
            .where(Record.id.in_(part)))}
    return found


def _linked(session: Session, ids: list[int]) -> dict[int, int]:
    """Created record → a live record (outside them) that links to it."""
    created = set(ids)
    found: dict[int, int] = {}
    for i in range(0, len(ids), SLICE):
        part = ids[i: i + SLICE]
        for target, source in session.execute(
                select(RecordLink.target_id, RecordLink.source_id)
                .join(Record, Record.id == RecordLink.source_id)
                .where(RecordLink.target_id.in_(part), Record.deleted_at.is_(None))):
            if source not in created:
                found.setdefault(target, source)
    return found


def _skip(row: ImportRow, zh: str, en: str) -> dict[str, Any]:
    return {"record_id": row.record_id, "row": row.row, "action": row.action,
            "reason": zh, "reason_en": en}


def undo(session: Session, caller: Any, pub: Published, batch: ImportBatch) -> dict[str, Any]:
    """``{"removed", "restored", "skipped": [{"record_id", "row", "reason", …}]}``."""
    rows = list(session.execute(select(ImportRow).where(ImportRow.batch_id == batch.id)
                                .order_by(ImportRow.row)).scalars())
    current = _current(session, [r.record_id for r in rows])
    linked = _linked(session, [r.record_id for r in rows if r.action == "created"])
    actor = caller.principal.actor
    removed = restored = 0
    skipped: list[dict[str, Any]] = []
    for row in rows:
        version, deleted_at = current.get(row.record_id, (None, None))
        if version is None or deleted_at is not None:
            skipped.append(_skip(row, "记录已被删除", "the record was deleted meanwhile"))
        elif version != row.version_after:
            skipped.append(_skip(row, "导入后记录已被修改，未撤销",
                                 "the record was changed after the import; left as it is"))
        elif row.action == "created" and row.record_id in linked:
            source = linked[row.record_id]
            skipped.append(_skip(row, f"记录仍被记录 {source} 关联，未删除",
                                 f"record {source} still links to it; not removed"))
        else:
            try:
                if row.action == "created":
                    delete_record(session, row.record_id, actor=actor,
                                  expected_version=row.version_after)
                    removed += 1
                else:
                    new = update_record(session, row.record_id,
                                        changes=dict(row.before or {}),
                                        expected_version=row.version_after, actor=actor)
                    handler._sync_links(session, pub, row.record_id, new.data)
                    restored += 1
            except Conflict:
                skipped.append(_skip(row, "导入后记录已被修改，未撤销",
                                     "the record was changed after the import; left as it is"))
    return {"removed": removed, "restored": restored, "skipped": skipped}


__all__ = ["undo"]
