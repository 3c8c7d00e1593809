"""The generic entity store: one table of records for every form (see ARCHITECTURE.md)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from platform_core.store.fields import FieldSet
from platform_core.store.indexes import drop_index, ensure_index, indexes_of
from platform_core.store.query import Query, compile_filter, encode_cursor
from platform_core.store.records import (
    SYSTEM,
    Actor,
    create_record,
    create_records,
    delete_record,
    get_record,
    history,
    links_from,
    links_to,
    migrate_record,
    restore_record,
    set_links,
    update_record,
)


@dataclass(frozen=True, slots=True)
class RecordRow:
    """A record as a list query returns it: the columns of ``records``, read-only."""

    id: int
    app: str
    form: str
    data: dict[str, Any]
    schema_version: int
    row_version: int
    owner_id: int | None
    department_id: int | None
    created_at: datetime
    created_by: int | None
    updated_at: datetime
    updated_by: int | None
    deleted_at: datetime | None


@dataclass(frozen=True)
class Page:
    """One page of a list query; ``next_cursor`` is None on the last page."""

    records: list[RecordRow]
    next_cursor: str | None


def query_records(session: Session, query: Query) -> Page:
    """Run a list query as one SELECT (filter, sort, keyset page)."""
    stmt, keys = query.select(session.get_bind().dialect.name)
    rows = [RecordRow(*row) for row in session.execute(stmt)]
    more = len(rows) > query.limit
    rows = rows[: query.limit]
    return Page(rows, encode_cursor(keys, rows[-1]) if more else None)


__all__ = [
    "SYSTEM", "Actor", "FieldSet", "Page", "Query", "RecordRow", "compile_filter", "create_record",
    "create_records", "delete_record", "drop_index", "ensure_index", "get_record", "history",
    "indexes_of", "links_from", "links_to", "migrate_record", "query_records",
    "restore_record", "set_links", "update_record",
]
