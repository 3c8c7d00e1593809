"""The generic entity store: one table of records for every form (see ARCHITECTURE.md)."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.orm import Session

from platform_core.models import Record
from platform_core.store.fields import FieldSet
from platform_core.store.indexes import ensure_index, indexes_of
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
    restore_record,
    set_links,
    update_record,
)


@dataclass(frozen=True)
class Page:
    """One page of a list query; ``next_cursor`` is None on the last page."""

    records: list[Record]
    next_cursor: str | None


def query_records(session: Session, query: Query) -> Page:
    """Run a list query as one SELECT (filter, sort, keyset page)."""
    stmt, keys = query.select(session.get_bind().dialect.name)
    rows = list(session.execute(stmt).scalars())
    more = len(rows) > query.limit
    rows = rows[: query.limit]
    return Page(rows, encode_cursor(keys, rows[-1]) if more else None)


__all__ = [
    "SYSTEM", "Actor", "FieldSet", "Page", "Query", "compile_filter", "create_record",
    "create_records", "delete_record", "ensure_index", "get_record", "history",
    "indexes_of", "links_from", "links_to", "query_records", "restore_record", "set_links",
    "update_record",
]
