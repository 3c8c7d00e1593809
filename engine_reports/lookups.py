"""Lookup fields as report columns: "放款金额 by 银行", where 银行 is a lookup through the
loan's 匹配产品 relation to the product's bank.

A lookup is never stored, so a report reads it the way the record page shows it: from
the linked record, as the viewer may see it. Each lookup column is a correlated scalar
subquery on the target form's frame (its typed projection when current) — the linked
record's field, if the record is in the viewer's read scope and not in the recycle bin,
else blank. A lookup whose target field is hidden, masked or sealed for the viewer, goes
through a many-relation, or reads money (whose exact-fen arithmetic belongs to its own
frame) is not offered; the report then answers "unknown field" for it, as for any field
the source does not have.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from engine_reports.frames import Frame, FrameFields, form_frame
from platform_core.security.principal import row_filter
from platform_core.store.fields import Accessor
from platform_core.store.query import compile_filter


def with_lookups(session: Session, app: str, frame: Frame, pub: Any,
                 principal: Any | None) -> Frame:
    """``frame`` (a form's records) with its lookup fields the viewer may read as columns;
    with no principal (checking a report on save) every lookup that can be a column."""
    from engine_forms.forms import published
    from engine_forms.service import masked_keys

    dialect = session.get_bind().dialect.name
    own: dict[str, Accessor] = {}
    columns = dict(frame.columns)
    for spec in pub.spec.fields:
        if spec.type != "lookup":
            continue
        rel = pub.spec.field(spec.config["relation"])
        if rel is None or rel.type != "relation" or rel.config.get("multiple"):
            continue
        target = published(session, app, rel.config["target"])
        key = spec.config["field"]
        access = None if principal is None else principal.access(app, target.spec.key)
        if access is not None and (not access.allows("read") or not access.readable(key)
                                   or key in masked_keys(target, access)):
            continue
        tframe = form_frame(session, target)
        tcol = tframe.columns.get(key)
        if tcol is None or tcol.sealed or tcol.kind == "money":
            continue
        tacc = tframe.fields.accessor(key, dialect)
        conditions = [*tframe.where, tframe.fields.accessor("id", dialect).expr
                      == frame.fields.accessor(rel.key, dialect).expr]
        scope = None if access is None else row_filter(session, principal, access, "read")
        if scope is not None:
            conditions.append(compile_filter(scope, tframe.scope_fields, dialect))
        expr = select(tacc.expr).select_from(tframe.table).where(*conditions) \
            .limit(1).scalar_subquery()
        own[spec.key] = Accessor(spec.key, expr, tacc.kind, True, tacc.text_ops)
        columns[spec.key] = replace(tcol, key=spec.key, label=spec.label)
    if not own:
        return frame
    return replace(frame, fields=FrameFields(app, pub.spec.key, own, frame.fields),
                   columns=columns)


def lookup_dimensions(spec: Any, pub: Any) -> bool:
    """Whether a report over ``pub`` groups by a lookup (its drill-down then selects the
    records by id: the store's record filters do not know lookups)."""
    return pub is not None and any(
        (f := pub.spec.field(d.field)) is not None and f.type == "lookup"
        for d in spec.dimensions)
