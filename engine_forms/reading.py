"""Records as the API and pages show them, with read-time fields filled in.

``lookup`` fields read the linked record's current value and ``rollup`` fields aggregate
the records linking here — one SQL query per such field for a whole page, never a query
per record. Both are held to the reader's row scope on the other form: a lookup through a
link to a record the reader may not read is empty, a rollup counts only the records they
may read.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import Integer, cast, func, select
from sqlalchemy.orm import Session

from engine_forms.forms import Published, published
from platform_core.models import Record, RecordLink
from platform_core.store import compile_filter
from platform_core.store.kinds import to_fen


def _wanted(pub: Published, kind: str, fields: Sequence[str] | None) -> list[Any]:
    """The computed fields of ``kind`` that were asked for (all of them without a list):
    a page showing three columns does not pay for the rollups it does not show."""
    return [f for f in pub.spec.fields if f.type == kind and (fields is None
                                                              or f.key in fields)]


def _lookups(session: Session, pub: Published, rows: Sequence[Any],
             out: list[dict[str, Any]], scopes: Mapping[str, Any] | None,
             fields: Sequence[str] | None = None) -> None:
    dialect = session.get_bind().dialect.name
    for field in _wanted(pub, "lookup", fields):
        rel, target_key = field.config["relation"], field.config["field"]
        ids = {r.data.get(rel) for r in rows if isinstance(r.data.get(rel), int)}
        relation = pub.spec.field(rel)
        if not ids or relation is None:
            continue
        form = relation.config["target"]
        stmt = select(Record.id, Record.data).where(
            Record.id.in_(ids), Record.app == pub.app, Record.form == form,
            Record.deleted_at.is_(None))
        scope = (scopes or {}).get(form)
        if scope is not None:  # a linked record the reader may not read shows nothing
            stmt = stmt.where(compile_filter(scope, published(session, pub.app, form).fields,
                                             dialect))
        targets = dict(session.execute(stmt).all())
        for row, doc in zip(rows, out, strict=True):
            target = targets.get(row.data.get(rel))
            if target is not None and target.get(target_key) is not None:
                doc[field.key] = target[target_key]


def _aggregate(session: Session, source: Published, field: Any) -> Any:
    agg = field.config["aggregate"]
    if agg == "count":
        return func.count(Record.id), None
    dialect = session.get_bind().dialect.name
    acc = source.fields.accessor(field.config["field"], dialect)
    kind = acc.kind.key if acc.kind else "number"
    if kind == "money" and dialect == "sqlite" and agg in ("sum", "avg"):
        # Exact to the fen on SQLite: add integer fen, not floating-point yuan.
        fen = func.sum(cast(func.round(acc.expr * 100), Integer))
        return (fen, "fen") if agg == "sum" else (fen * 1.0 / func.count(acc.expr), "fen_avg")
    return getattr(func, agg)(acc.expr), kind


def _money(value: Any, how: str | None) -> Any:
    if value is None:
        return None
    if how in ("fen", "fen_avg"):
        value = Decimal(str(value)) / 100
    if how in ("money", "fen", "fen_avg"):
        return str(to_fen(Decimal(str(value))))
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    return value


def _rollups(session: Session, pub: Published, rows: Sequence[Any],
             out: list[dict[str, Any]], scopes: Mapping[str, Any] | None,
             fields: Sequence[str] | None = None) -> None:
    ids = [r.id for r in rows]
    dialect = session.get_bind().dialect.name
    for field in _wanted(pub, "rollup", fields):
        source = published(session, pub.app, field.config["source"])
        expr, how = _aggregate(session, source, field)
        stmt = (select(RecordLink.target_id, expr)
                .join(Record, Record.id == RecordLink.source_id)
                .where(RecordLink.target_id.in_(ids), RecordLink.field == field.config["via"],
                       Record.app == pub.app, Record.form == source.spec.key,
                       Record.deleted_at.is_(None))
                .group_by(RecordLink.target_id))
        scope = (scopes or {}).get(source.spec.key)
        if scope is not None:  # only the source rows the reader may read count
            stmt = stmt.where(compile_filter(scope, source.fields, dialect))
        values = dict(session.execute(stmt).all())
        for row, doc in zip(rows, out, strict=True):
            value = values.get(row.id, 0 if field.config["aggregate"] == "count" else None)
            if value is not None:
                doc[field.key] = _money(value, how)


def iso(moment: datetime | None) -> str | None:
    """ISO 8601 in UTC; SQLite hands timestamps back without their zone."""
    if moment is None:
        return None
    return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).isoformat()


def present(session: Session, pub: Published, rows: Sequence[Any],
            fields: Sequence[str] | None = None, *,
            scopes: Mapping[str, Any] | None = None) -> list[dict[str, Any]]:
    """API dicts for ``rows`` (ORM records or list rows), computed fields filled in;
    ``scopes`` (form → the reader's read filter there) limits rollups to the source rows
    and lookups to the linked records a reader may read (a form without an entry: every
    row)."""
    docs = [dict(r.data) for r in rows]
    if rows:
        _lookups(session, pub, rows, docs, scopes, fields)
        _rollups(session, pub, rows, docs, scopes, fields)
    out = []
    for row, doc in zip(rows, docs, strict=True):
        if fields is not None:
            doc = {k: v for k, v in doc.items() if k in fields}
        out.append({
            "id": row.id, "app": row.app, "form": row.form, "row_version": row.row_version,
            "schema_version": row.schema_version, "owner_id": row.owner_id,
            "department_id": row.department_id, "created_at": iso(row.created_at),
            "created_by": row.created_by, "updated_at": iso(row.updated_at),
            "updated_by": row.updated_by, "deleted_at": iso(row.deleted_at),
            "data": doc})
    return out
