"""``RelatedRecords``: the store-backed ``Env.related`` for ``customer.city``.

Python evaluation follows a relation by id through ``Env.related``; this one reads live
records (not in the recycle bin — as the SQL compilation does) from the caller's session,
in batches, and remembers them for the session's unit of work.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from platform_core.models import Record

BATCH = 500


class RelatedRecords:
    """``related(record_id) → data | None``; ``prefetch(ids)`` loads many in one query."""

    def __init__(self, session: Session):
        self.session = session
        self.cache: dict[int, Mapping[str, Any] | None] = {}

    def prefetch(self, ids: Iterable[int]) -> None:
        wanted = sorted({i for i in ids if i.__class__ is int and i not in self.cache})
        for start in range(0, len(wanted), BATCH):
            chunk = wanted[start: start + BATCH]
            stmt = select(Record.id, Record.data).where(Record.id.in_(chunk),
                                                         Record.deleted_at.is_(None))
            found = dict(self.session.execute(stmt).all())
            for record_id in chunk:
                self.cache[record_id] = found.get(record_id)

    def __call__(self, record_id: int) -> Mapping[str, Any] | None:
        if record_id not in self.cache:
            self.prefetch([record_id])
        return self.cache.get(record_id)
