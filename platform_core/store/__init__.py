"""The generic entity store: one table of records for every form (see ARCHITECTURE.md)."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import partial
from itertools import repeat
from typing import Any, NamedTuple

from sqlalchemy.engine import Dialect
from sqlalchemy.orm import Session

from platform_core.db import loads, loads_many
from platform_core.models import Record
from platform_core.store.fields import FieldSet
from platform_core.store.indexes import drop_index, ensure_index, indexes_of
from platform_core.store.query import (
    PAGE_COLUMNS,
    Query,
    compile_filter,
    encode_cursor,
    fetch,
    this_form,
)
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
    transfer_record,
    update_record,
)


class RecordRow(NamedTuple):
    """A record as a list query returns it: the columns of ``records``, read-only.

    A named tuple: built at C speed (a page builds 50 of them per request).
    """

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


def _record_rows(rows: list[Any], columns: tuple[str, ...], app: str, form: str,
                 dialect: Dialect) -> list[RecordRow]:
    """``RecordRow``s from driver rows of ``columns`` (``query.PAGE_COLUMNS``, then
    ``deleted_at`` if selected), each column read as SQLAlchemy reads it."""
    if not rows:
        return []
    cols: list[Any] = list(zip(*rows, strict=True))
    for j, read in enumerate(_readers(dialect, columns)):
        if read is not None:
            cols[j] = read(cols[j])
    deleted = cols[len(PAGE_COLUMNS)] if len(columns) > len(PAGE_COLUMNS) else repeat(None)
    return list(map(RecordRow, cols[0], repeat(app), repeat(form),
                    *cols[1:len(PAGE_COLUMNS)], deleted))


_READERS: dict[tuple[Any, ...], list[Callable[[Sequence[Any]], list[Any]] | None]] = {}


def _readers(dialect: Dialect, columns: tuple[str, ...]
             ) -> list[Callable[[Sequence[Any]], list[Any]] | None]:
    """Per column: None (the driver's value is the value) or how to read the column —
    SQLAlchemy's result processor of its type (SQLite timestamps); ``data`` comes as the
    UTF-8 bytes of the document (``query._document_bytes``) and is decoded as the engine
    decodes JSON (``db.loads``, the whole page at once, when it is ``db.loads`` or json's)."""
    deserializer = getattr(dialect, "_json_deserializer", None) or json.loads
    key = (dialect.name, dialect.driver, deserializer, columns)
    readers = _READERS.get(key)
    if readers is None:
        readers = []
        for name in columns:
            if name == "data":
                fast = deserializer in (loads, json.loads)
                readers.append(loads_many if fast else partial(_read_json, deserializer))
                continue
            proc = Record.__table__.c[name].type.dialect_impl(dialect).result_processor(
                dialect, None)
            readers.append(None if proc is None else partial(_read_column, proc))
        _READERS[key] = readers
    return readers


def _read_column(proc: Callable[[Any], Any], values: Sequence[Any]) -> list[Any]:
    return list(map(proc, values))


def _read_json(loads: Callable[[str], Any], values: Sequence[Any]) -> list[Any]:
    return [None if v is None else loads(bytes(v).decode()) for v in values]


def query_records(session: Session, query: Query) -> Page:
    """Run a list query as one SELECT (filter, sort, keyset page).

    The SQL of the query's shape is compiled once and cached (``query.SHAPES``); each
    call validates the query, binds its values and runs that SQL in the session's
    transaction (after an autoflush, as ``session.execute`` would). When the first sort
    key can be blank, the page that reaches the end of its values goes on with a second
    SELECT of its blanks (``query.split``), unless the filter rules blanks out.
    """
    dialect = session.get_bind().dialect
    compiled, params, keys = query.compiled(dialect)
    if session.autoflush:
        session.flush()
    conn = session.connection()
    rows = fetch(conn, compiled.sql, params, binary=compiled.binary)
    if compiled.then_blanks and len(rows) <= query.limit:
        blanks, params = query.blanks_compiled(dialect, query.limit + 1 - len(rows))
        rows += fetch(conn, blanks.sql, params, binary=blanks.binary)
    more = len(rows) > query.limit
    rows, columns, titles = rows[: query.limit], compiled.columns, ()
    if compiled.extra and rows:  # title sort values, selected for the cursor
        columns, titles = columns[: -compiled.extra], rows[-1][-compiled.extra:]
        rows = [row[: -compiled.extra] for row in rows]
    records = _record_rows(rows, columns, query.fields.app, query.fields.form, dialect)
    return Page(records, encode_cursor(keys, records[-1], titles) if more else None)


def count_records(session: Session, fields: FieldSet, filter: Any = None, *,
                  cap: int | None = None, deleted: str = "exclude") -> int:
    """How many records of the form match ``filter`` (one ``SELECT count(*)``): live ones,
    or with ``deleted`` ``only``/``include`` those in the recycle bin (as ``Query``).

    With ``cap`` the count stops at ``cap`` (``LIMIT`` in a sub-select): a list page
    wants "10,000+" fast rather than an exact figure over a million rows.
    """
    from sqlalchemy import func, select, true

    form = [Record.app == fields.app, Record.form == fields.form]
    if filter is None and deleted == "exclude" and cap is None:
        # every record of the form minus those in the recycle bin: two index-only counts
        # (ix_records_app_form_id, the partial ix_records_deleted), no row is read
        every = select(func.count()).where(*form).scalar_subquery()
        binned = select(func.count()).where(*form, Record.deleted_at.is_not(None))
        return session.execute(select(every - binned.scalar_subquery())).scalar_one()
    bin_ = {"exclude": Record.deleted_at.is_(None), "only": Record.deleted_at.is_not(None),
            "include": true()}[deleted]
    where = [*this_form(fields), bin_,  # the form's partial field indexes apply
             compile_filter(filter, fields, session.get_bind().dialect.name, where=True)]
    if cap is None:
        return session.execute(select(func.count()).where(*where)).scalar_one()
    inner = select(Record.id).where(*where).limit(cap).subquery()
    return session.execute(select(func.count()).select_from(inner)).scalar_one()


__all__ = [
    "SYSTEM", "Actor", "FieldSet", "Page", "Query", "RecordRow", "compile_filter",
    "count_records", "create_record",
    "create_records", "delete_record", "drop_index", "ensure_index", "get_record", "history",
    "indexes_of", "links_from", "links_to", "migrate_record", "query_records",
    "restore_record", "set_links", "this_form", "transfer_record", "update_record",
]
