"""Drill-down: the filter that selects the records behind one row of a report — each
dimension's raw key back to a condition on its field (a bucket to its China-time date
range, a bin to its bounds, a blank to ``is_empty``)."""

from __future__ import annotations

import calendar
from datetime import date, timedelta
from typing import Any

from sqlalchemy import select, true
from sqlalchemy.orm import Session

from engine_reports.running import _range_leaf
from platform_core.errors import InvalidInput
from platform_core.models import Record
from platform_core.store.query import compile_filter

MAX_RECORDS = 1000  # records behind one row of a flow report (an ``in`` filter's most)


def bucket_range(bucket: str, key: str) -> tuple[date, date]:
    """The first and last day of a bucket key (``2026-03``, ``2026-Q1``, ``2026`` …)."""
    try:
        if bucket == "day":
            day = date.fromisoformat(key)
            return day, day
        if bucket == "week":
            monday = date.fromisoformat(key)
            return monday, monday + timedelta(days=6)
        if bucket == "month":
            year, month = int(key[:4]), int(key[5:7])
            return date(year, month, 1), date(year, month, calendar.monthrange(year, month)[1])
        if bucket == "quarter":
            year, quarter = int(key[:4]), int(key[6:])
            first = date(year, 3 * quarter - 2, 1)
            last_month = 3 * quarter
            return first, date(year, last_month, calendar.monthrange(year, last_month)[1])
        year = int(key)
        return date(year, 1, 1), date(year, 12, 31)
    except (ValueError, IndexError):
        raise InvalidInput(f"{key!r} is not a {bucket} of this report", field="keys") from None


def row_filter(spec: Any, frame: Any, keys: list[Any]) -> list[dict[str, Any]]:
    parts: list[dict[str, Any]] = []
    for dim, key in zip(spec.dimensions, keys, strict=True):
        kind = frame.column(dim.field).kind
        if key is None:
            parts.append({"field": dim.field, "op": "is_empty"})
        elif dim.bucket:
            if not isinstance(key, str):
                raise InvalidInput(f"expected a {dim.bucket} key", field="keys")
            start, end = bucket_range(dim.bucket, key)
            parts.append(_range_leaf(dim.field, kind, start, end))
        elif dim.bins:
            if isinstance(key, bool) or not isinstance(key, int) or not (
                    0 <= key <= len(dim.bins)):
                raise InvalidInput("expected a bin number", field="keys")
            bounds = []
            if key > 0:
                bounds.append({"field": dim.field, "op": "gte", "value": dim.bins[key - 1]})
            if key < len(dim.bins):
                bounds.append({"field": dim.field, "op": "lt", "value": dim.bins[key]})
            parts.append({"and": bounds})
        else:
            parts.append({"field": dim.field, "op": "eq", "value": key})
    return parts


def flow_records(session: Session, spec: Any, source: Any, where: Any,
                 keys: list[Any]) -> dict[str, Any]:
    """The records behind a row of a flow report (instances, tasks, or a funnel step:
    the instances that reached it), as an ``id in […]`` filter over their form."""
    from engine_flows.models import FlowRun, FlowStep

    dialect = session.get_bind().dialect.name
    frame = source.frame
    condition = true() if where is None else compile_filter(where, frame.fields, dialect)
    if spec.source.of == "funnel":
        if not isinstance(keys[0], str):
            raise InvalidInput("expected a step id", field="keys")
        table = FlowStep.__table__.join(frame.table, FlowStep.run_id == FlowRun.id)
        conditions = [*frame.where, FlowStep.node_id == keys[0],
                      FlowStep.status != "cancelled"]
    else:
        table, conditions = frame.table, list(frame.where)
    stmt = (select(Record.id).select_from(table).where(*conditions, condition).distinct()
            .order_by(Record.id).limit(MAX_RECORDS))
    ids = list(session.execute(stmt).scalars())
    return {"field": "id", "op": "in", "value": ids}


def record_ids(session: Session, source: Any, where: Any) -> dict[str, Any]:
    """The records of a form report's row selected through its own frame (which knows
    the lookup columns the store's record filters do not), as an ``id in […]`` filter
    (at most ``MAX_RECORDS``)."""
    dialect = session.get_bind().dialect.name
    frame = source.frame
    condition = true() if where is None else compile_filter(where, frame.fields, dialect)
    ident = frame.fields.accessor("id", dialect).expr
    stmt = (select(ident).select_from(frame.table).where(*frame.where, condition)
            .order_by(ident).limit(MAX_RECORDS))
    return {"field": "id", "op": "in", "value": list(session.execute(stmt).scalars())}
