"""Segmentation: tag records (customers: 高价值 / 潜力 / 沉睡) from a report's numbers.

A segmentation report groups a form's records by the records to tag — a relation field
(loans → their customer) or ``id`` — and computes its measures per group in one
aggregate statement (total amount, count, profit, last contact …). Each rule's ``when``
is an expression over those measures and the tagged record's own fields; a group with
no rows has count measures 0 and the others blank. The tags go into a select field (the
first rule that holds) or a multiselect field (every rule that holds; tags no rule
manages are kept), through the form engine like any edit — validation, history, outbox
events (rules can react to a customer becoming 高价值). Everything is metadata in the
report; the recomputation runs on its schedule or on demand, as one transaction, for
all records (no viewer's row scope: it is the system's job).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from engine_reports.compiler import ReportError
from engine_reports.spec import ReportSpec, ReportSpecError
from platform_core.expressions import ExpressionError, ExprSchema, Formula
from platform_core.models import Record
from platform_core.store import SYSTEM

KIND_OF_RESULT = {"integer": "number", "number": "number", "money": "money", "date": "date",
                  "datetime": "datetime", "timestamp": "datetime"}
CHUNK = 500


@dataclass
class SegmentPlan:
    target: Any  # the Published form whose records are tagged
    field: Any  # its tag field's spec
    multiple: bool
    formulas: list[tuple[str, Formula]]
    measures: list[Any]  # MeasurePlan of the report
    defaults: dict[str, Any]


def plan(session: Session, app: str, spec: ReportSpec) -> SegmentPlan:
    """Check a segmentation against its forms (``ReportSpecError`` names the part)."""
    from engine_forms.forms import published
    from engine_reports.compiler import Compiler
    from engine_reports.frames import form_frame
    from platform_core.store.query import compile_filter

    seg = spec.segment
    assert seg is not None
    source = published(session, app, spec.source.form)  # type: ignore[arg-type]
    dim = spec.dimensions[0]
    if dim.field == "id":
        target = source
    else:
        rel = source.spec.field(dim.field)
        if rel is None or rel.type != "relation" or rel.config.get("multiple"):
            raise ReportSpecError([f"dimensions[0]: {dim.field!r} must be `id` or a "
                                   "single relation field (the records to tag)"])
        target = published(session, app, rel.config["target"])
    tag = target.spec.field(seg.field)
    if tag is None or tag.type not in ("select", "multiselect"):
        raise ReportSpecError([f"segment.field: {seg.field!r} must be a select or "
                               f"multiselect field of {target.spec.key!r}"])
    options = {o["value"] for o in tag.config.get("options", [])}
    problems = [f"segment.rules[{i}].value: {r.value!r} is not an option of {seg.field!r}"
                for i, r in enumerate(seg.rules) if r.value not in options]
    frame = form_frame(session, source)
    dialect = session.get_bind().dialect.name
    try:
        measures = Compiler(spec, frame, dialect).plan(
            compile_filter(None, frame.fields, dialect)).measures
    except ReportError as exc:
        raise ReportSpecError([str(exc)]) from None
    kinds = {k: v for k, v in target.fields.kinds.items() if v != "sealed"}
    clash = sorted(set(kinds) & {m.key for m in measures})
    if clash:
        problems.append(f"measures: key {clash[0]!r} is also a field of "
                        f"{target.spec.key!r}; rename the measure")
    kinds |= {m.key: KIND_OF_RESULT.get(m.kind, "number") for m in measures}
    schema = ExprSchema.of(kinds, app=app, form=target.spec.key)
    formulas = []
    for i, rule in enumerate(seg.rules):
        try:
            formula = Formula.build(rule.when, schema)
        except ExpressionError as exc:
            problems.append(f"segment.rules[{i}].when: {exc}")
            continue
        if formula.type.name != "boolean":
            problems.append(f"segment.rules[{i}].when: must be TRUE or FALSE, not "
                            f"{formula.type.name}")
        formulas.append((rule.value, formula))
    if problems:
        raise ReportSpecError(problems)
    defaults = {m.key: 0 for m in measures
                if m.spec.agg in ("count", "count_distinct") or (
                    m.spec.agg == "sum" and m.kind in ("integer", "number"))}
    defaults |= {m.key: "0.00" for m in measures if m.spec.agg == "sum" and m.kind == "money"}
    return SegmentPlan(target, tag, tag.type == "multiselect", formulas, measures, defaults)


def recompute(session: Session, app: str, spec: ReportSpec, *, keyring: Any = None
              ) -> dict[str, Any]:
    """Tag every record of the segmentation's target; ``{"records", "changed",
    "counts": {tag: records}}``."""
    from engine_forms import records as record_handler
    from engine_forms.sealing import FieldCrypt
    from engine_reports.frames import form_frame
    from engine_reports.running import execute

    seg = plan(session, app, spec)
    source_pub = seg.target if spec.dimensions[0].field == "id" else None
    from engine_forms.forms import published

    source = source_pub or published(session, app, spec.source.form)  # type: ignore[arg-type]
    _plan, keys, values, _truncated = execute(session, spec.model_copy(
        update={"limit": None, "sort": []}), form_frame(session, source), spec.filters)
    per_record = {k[0]: dict(zip([m.key for m in seg.measures], v, strict=True))
                  for k, v in zip(keys, values, strict=True) if k[0] is not None}
    key = spec.segment.field  # type: ignore[union-attr]
    managed = {value for value, _f in seg.formulas}
    counts = {value: 0 for value, _f in seg.formulas}
    crypt = FieldCrypt(seg.target, keyring)
    total = changed = 0
    last = 0
    while True:
        rows = session.execute(
            select(Record).where(Record.app == app, Record.form == seg.target.spec.key,
                                 Record.deleted_at.is_(None), Record.id > last)
            .order_by(Record.id).limit(CHUNK)).scalars().all()
        if not rows:
            break
        for rec in rows:
            last, total = rec.id, total + 1
            data = {k: v for k, v in rec.data.items() if not isinstance(v, dict)}
            env = {**data, **seg.defaults, **{k: v for k, v in per_record.get(
                rec.id, {}).items() if v is not None}}
            matched = [value for value, formula in seg.formulas if _holds(formula, env)]
            for value in matched:
                counts[value] += 1
            current = rec.data.get(key)
            if seg.multiple:
                kept = [t for t in (current or []) if t not in managed]
                new: Any = kept + [t for t in matched if t not in kept]
                if sorted(new) == sorted(current or []):
                    continue
            else:
                new = matched[0] if matched else None
                if new == current:
                    continue
            record_handler.update(session, seg.target, rec.id, {key: new},
                                  expected_version=rec.row_version, actor=SYSTEM,
                                  crypt=crypt)
            changed += 1
    return {"records": total, "changed": changed, "counts": counts}


def _holds(formula: Formula, env: dict[str, Any]) -> bool:
    try:
        return formula.evaluate(env) is True
    except (ExpressionError, ArithmeticError, ValueError, TypeError):
        return False
