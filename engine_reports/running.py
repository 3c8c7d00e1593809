"""Running a report for a viewer: who may see it, its frame, the one WHERE clause (report
filters, the parameters set, the viewer's row scope), the SQL, then labels and a chart.

A field hidden from the viewer cannot be a dimension, a measure, a filter or a parameter
of a report they run (``403 report_field_hidden``); a masked field can only be counted
unless they may unmask it. Rows outside their read scope are not in any number.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import select, text
from sqlalchemy.orm import Session

from engine_reports import compiler
from engine_reports.compiler import Compiler, Plan, ReportError
from engine_reports.frames import Frame, audit_frame, flow_frame, form_frame
from engine_reports.spec import ReportSpec
from platform_core.errors import InvalidInput
from platform_core.security.permissions import Forbidden
from platform_core.security.principal import Principal, row_filter, subtree_ids
from platform_core.store.query import compile_filter

CHINA = ZoneInfo("Asia/Shanghai")


class FieldHidden(Forbidden):
    code = "report_field_hidden"


class ReportHidden(Forbidden):
    code = "report_forbidden"


@dataclass
class Viewer:
    principal: Principal
    keyring: Any = None


@dataclass
class Result:
    columns: list[dict[str, Any]]
    rows: list[list[Any]]
    keys: list[list[Any]]
    truncated: bool
    engine: str  # projection | json | table

    def doc(self) -> dict[str, Any]:
        return {"columns": self.columns, "rows": self.rows, "keys": self.keys,
                "truncated": self.truncated, "engine": self.engine}


def shared_with(spec: Any, principal: Principal) -> bool:
    """Whether a report or dashboard (its ``roles``; none: everyone) is the principal's."""
    return spec.roles is None or principal.is_admin or bool(
        set(spec.roles) & set(principal.roles))


def check_visible(spec: Any, principal: Principal, noun: str = "report") -> None:
    if not shared_with(spec, principal):
        raise ReportHidden(f"{noun} {spec.key!r} is not shared with your roles",
                           **{noun: spec.key})


# -- the source --------------------------------------------------------------------------


def _leaves(node: Any) -> Iterator[tuple[Any, Any]]:
    if isinstance(node, dict):
        for op in ("and", "or"):
            for child in node.get(op) or ():
                yield from _leaves(child)
        if "not" in node:
            yield from _leaves(node["not"])
        if "field" in node:
            yield node.get("field"), node.get("op")


@dataclass
class Source:
    frame: Frame
    pub: Any  # the form's Published, or None (audit)
    access: Any  # the viewer's FormAccess on it, or None
    flow: Any = None  # the flow's spec (funnel)


def open_source(session: Session, app: str, spec: ReportSpec, viewer: Viewer) -> Source:
    from engine_forms.forms import published

    src, principal = spec.source, viewer.principal
    if src.of == "audit":
        if not principal.is_admin:
            raise ReportHidden("the audit log is for administrators", report=spec.key)
        return Source(audit_frame(), None, None)
    flow_spec = None
    if src.of == "records":
        form = src.form
    else:
        from engine_flows.definitions import get_flow
        from engine_flows.runtime import spec_of

        row = get_flow(session, app, src.flow)  # type: ignore[arg-type]
        if row.published_version is None:
            raise ReportError(f"flow {src.flow!r} is not published yet", flow=src.flow)
        flow_spec = spec_of(session, app, row.key, row.published_version)
        form = flow_spec.form
    pub = published(session, app, form)  # type: ignore[arg-type]
    access = principal.access(app, pub.spec.key)
    if not access.allows("read"):
        raise ReportHidden(f"you cannot read the records of {pub.spec.key!r}",
                           report=spec.key, form=pub.spec.key)
    if src.of == "records":
        from engine_reports.lookups import with_lookups

        frame = with_lookups(session, app, form_frame(session, pub), pub, viewer.principal)
    else:
        frame = flow_frame(pub, app, src.flow, "instances" if src.of == "funnel"  # type: ignore
                           else src.of, flow_spec)
    return Source(frame, pub, access, flow_spec)


def _used_fields(spec: ReportSpec) -> Iterator[tuple[str, str, str | None]]:
    """(field, where it is used, aggregate) for every field the report touches."""
    for i, d in enumerate(spec.dimensions):
        yield d.field, f"dimensions[{i}]", "group"
    for i, m in enumerate(spec.measures):
        if m.field:
            yield m.field, f"measures[{i}]", m.agg
        for key, _op in _leaves(m.where):
            yield key, f"measures[{i}].where", "filter"
    for key, _op in _leaves(spec.filters):
        yield key, "filters", "filter"
    for p in spec.parameters:
        if p.field:
            yield p.field, f"parameters.{p.key}", "filter"


def check_fields(spec: ReportSpec, source: Source) -> None:
    from engine_forms.service import masked_keys

    if source.pub is None:
        return
    masked = masked_keys(source.pub, source.access)
    for key, path, use in _used_fields(spec):
        if source.pub.spec.field(key) is not None and not source.access.readable(key):
            raise FieldHidden(f"{path}: the field {key!r} is hidden from you, so this "
                              "report cannot use it for you", field=key, path=path)
        if key in masked and use not in ("count", "filter"):
            raise FieldHidden(f"{path}: the field {key!r} is masked for you: it can only "
                              "be counted", field=key, path=path)


# -- parameters --------------------------------------------------------------------------


def _day(value: Any, path: str) -> date:
    try:
        return date.fromisoformat(value)
    except (TypeError, ValueError):
        raise InvalidInput(f"{path}: expected a date (YYYY-MM-DD)", path=path) from None


def _range_leaf(field: str, kind: str, start: date, end: date) -> dict[str, Any]:
    """``field`` within the China-time days start..end (inclusive)."""
    if kind == "date":
        return {"field": field, "op": "between", "value": [start.isoformat(), end.isoformat()]}
    low = datetime.combine(start, time(), CHINA)
    high = datetime.combine(end + timedelta(days=1), time(), CHINA)
    return {"and": [{"field": field, "op": "gte", "value": low.isoformat()},
                    {"field": field, "op": "lt", "value": high.isoformat()}]}


def period(spec: ReportSpec, params: Mapping[str, Any]) -> tuple[str, date, date] | None:
    """The date-range parameter's (key, start, end) when one is set."""
    for p in spec.parameters:
        value = params.get(p.key, p.default)
        if p.type == "date_range" and value:
            if not (isinstance(value, list | tuple) and len(value) == 2):
                raise InvalidInput(f"parameters.{p.key}: expected [start, end]",
                                   path=f"parameters.{p.key}")
            start = _day(value[0], f"parameters.{p.key}[0]")
            end = _day(value[1], f"parameters.{p.key}[1]")
            if end < start:
                raise InvalidInput(f"parameters.{p.key}: the end is before the start",
                                   path=f"parameters.{p.key}")
            return p.key, start, end
    return None


def parameter_filter(session: Session, spec: ReportSpec, frame: Frame,
                     params: Mapping[str, Any]) -> list[dict[str, Any]]:
    unknown = set(params) - {p.key for p in spec.parameters}
    if unknown:
        raise InvalidInput(f"unknown parameter {sorted(unknown)[0]!r} of report {spec.key}",
                           path=f"parameters.{sorted(unknown)[0]}")
    parts: list[dict[str, Any]] = []
    for p in spec.parameters:
        value = params.get(p.key, p.default)
        if value in (None, "", []):
            continue
        path = f"parameters.{p.key}"
        if p.type == "date_range":
            found = period(spec, {p.key: value})
            assert found is not None
            field = p.field or "created_at"
            try:
                kind = frame.column(field).kind
            except KeyError:
                raise ReportError(f"{path}: unknown field {field!r}", path=path) from None
            parts.append(_range_leaf(field, kind, found[1], found[2]))
        elif p.type == "department":
            if isinstance(value, bool) or not isinstance(value, int):
                raise InvalidInput(f"{path}: expected a department id", path=path)
            parts.append({"field": p.field or "department_id", "op": "in",
                          "value": subtree_ids(session, value)})
        elif p.type == "owner":
            if isinstance(value, bool) or not isinstance(value, int):
                raise InvalidInput(f"{path}: expected a user id", path=path)
            parts.append({"field": p.field or "owner_id", "op": "eq", "value": value})
        else:
            if p.field is None:
                raise ReportError(f"{path}: a value parameter names its field", path=path)
            try:
                kind = frame.column(p.field).kind
            except KeyError:
                raise ReportError(f"{path}: unknown field {p.field!r}", path=path) from None
            typed = ([_typed(kind, v, path) for v in value] if isinstance(value, list)
                     else _typed(kind, value, path))
            parts.append({"field": p.field, "op": "in" if isinstance(value, list) else "eq",
                          "value": typed})
    return parts


def _typed(kind: str, value: Any, path: str) -> Any:
    """A parameter typed in a page (always text) as its field's value: numbers for number
    fields, true/false for yes/no fields."""
    if not isinstance(value, str):
        return value
    if kind in ("number", "integer"):
        try:
            number = Decimal(value.strip())
        except ArithmeticError:
            raise InvalidInput(f"{path}: {value!r} is not a number", path=path) from None
        if not number.is_finite():
            raise InvalidInput(f"{path}: {value!r} is not a number", path=path)
        return int(number) if number == number.to_integral_value() else float(number)
    if kind == "boolean" and value.lower() in ("true", "false", "是", "否"):
        return value.lower() in ("true", "是")
    return value


def where_of(session: Session, spec: ReportSpec, source: Source, viewer: Viewer,
             params: Mapping[str, Any]) -> dict[str, Any] | None:
    """The report's whole filter AST: its filters, the parameters, the viewer's scope."""
    parts = [spec.filters] if spec.filters else []
    parts += parameter_filter(session, spec, source.frame, params)
    if source.pub is not None:
        scope = row_filter(session, viewer.principal, source.access, "read")
        if scope is not None:
            parts.append(scope)
        if viewer.keyring is not None or _has_sealed(source.pub):
            from engine_forms.sealing import FieldCrypt

            parts = [FieldCrypt(source.pub, viewer.keyring).blind_filter(p) for p in parts]
    if not parts:
        return None
    return parts[0] if len(parts) == 1 else {"and": parts}


def _has_sealed(pub: Any) -> bool:
    return any(f.sensitive and f.sensitive.encrypt for f in pub.spec.fields)


# -- running -----------------------------------------------------------------------------


REPORT_WORK_MEM = "64MB"


def roomy(session: Session) -> None:
    """On PostgreSQL, let this transaction's aggregates hash in memory: with the default
    4MB the planner sorts a million rows on disk instead (bench/reports.py: ~2× slower).
    ``SET LOCAL`` ends with the transaction."""
    if session.get_bind().dialect.name == "postgresql":
        session.execute(text(f"SET LOCAL work_mem = '{REPORT_WORK_MEM}'"))


def execute(session: Session, spec: ReportSpec, frame: Frame,
            where: dict[str, Any] | None) -> tuple[Plan, list[list[Any]], list[list[Any]], bool]:
    """Run the compiled statement; (plan, raw dimension keys, measure values, truncated).
    Within a dashboard's shared scans (``fusion.batch``) the rows may come from a
    statement shared with other widgets; they are then ordered and cut here."""
    from engine_reports import fusion

    dialect = session.get_bind().dialect.name
    plan = fusion.planned(  # the same plan in a dashboard's two passes (fusion.py)
        (spec.model_dump_json(), repr(where), dialect),
        lambda: Compiler(spec, frame, dialect).plan(
            compile_filter(where, frame.fields, dialect)))
    shared = fusion.rows_for(plan, session)
    # a shared statement's rows come unordered and uncut: ordered and cut here
    python_sort = plan.python_sort or shared is not None
    if shared is not None:
        rows: list[Any] = shared
    else:
        roomy(session)
        rows = [row._mapping for row in session.execute(plan.statement)]
    keys, values = [], []
    for row in rows:
        keys.append([compiler.dimension_value(d, row[f"d{i}"])
                     for i, d in enumerate(plan.dims)])
        out, by_key = [], {}
        for m in plan.measures:
            if m.formula is None:
                v = compiler.measure_value(m, [row[s] for s in m.slots])
                by_key[m.key] = v
            out.append(None if m.formula is not None else by_key[m.key])
        for j, m in enumerate(plan.measures):
            if m.formula is not None:
                out[j] = compiler.calculated(m, by_key)
                by_key[m.key] = out[j]
        values.append(out)
    truncated = len(rows) > (spec.limit or compiler.MAX_GROUPS) and not python_sort
    if python_sort:
        keys, values = _python_sort(spec, plan, keys, values)
        truncated = len(keys) > compiler.MAX_GROUPS
        limit = spec.limit or compiler.MAX_GROUPS
        keys, values = keys[:limit], values[:limit]
    else:
        keys, values = keys[:compiler.MAX_GROUPS], values[:compiler.MAX_GROUPS]
    return plan, keys, values, truncated


def _python_sort(spec: ReportSpec, plan: Plan, keys: list[list[Any]],
                 values: list[list[Any]]) -> tuple[list[list[Any]], list[list[Any]]]:
    """The SQL order, in Python: each sort key by its kind's order, blanks last in both
    directions, ties by the dimensions ascending (blanks last)."""
    rows = list(zip(keys, values, strict=True))

    def by(pick: Any, kind: str, desc: bool) -> None:
        present = [r for r in rows if pick(r) is not None]
        blank = [r for r in rows if pick(r) is None]
        present.sort(key=lambda r: _ordered(pick(r), kind), reverse=desc)
        rows[:] = present + blank

    for i in reversed(range(len(plan.dims))):
        by(lambda r, i=i: r[0][i], _dim_kind(plan.dims[i]), False)
    for s in reversed(spec.sort):
        if s.measure is not None:
            by(lambda r, i=s.measure: r[1][i], plan.measures[s.measure].kind, s.desc)
        else:
            by(lambda r, i=s.dimension: r[0][i], _dim_kind(plan.dims[s.dimension]), s.desc)
    return [r[0] for r in rows], [r[1] for r in rows]


def _dim_kind(d: Any) -> str:
    return "integer" if d.spec.bins else "text" if d.spec.bucket else d.column.kind


def _ordered(value: Any, kind: str) -> Any:
    """A value as its kind orders it: money text by amount, everything else as it is
    (text by code point, like the SQL sort)."""
    return Decimal(value) if kind == "money" else value


def titles(session: Session, app: str, viewer: Viewer, form: str,
           ids: set[int]) -> dict[int, str]:
    """The titles of linked records the viewer may see, as the records list shows them
    (their row scope; a hidden title is no title, a masked one stays masked)."""
    from engine_forms import service as records
    from engine_forms.forms import published

    pub = published(session, app, form)
    if pub.spec.title_field is None:
        return {}
    caller = records.Caller(viewer.principal, viewer.principal.access(app, form),
                            viewer.keyring)
    return {k: v for k, v in records.titles(session, caller, pub, ids).items()
            if v != f"#{k}"}


def labels(session: Session, plan: Plan, keys: list[list[Any]], app: str | None = None,
           viewer: Viewer | None = None) -> list[list[Any]]:
    """Dimension keys as people read them: names of users and departments, option
    labels, linked records' titles (those the viewer may see), bin ranges, 是/否."""
    from platform_core.security.models import Department, User

    wanted: dict[str, set[int]] = {"user": set(), "department": set()}
    for row in keys:
        for d, value in zip(plan.dims, row, strict=True):
            if d.column.display in wanted and value is not None and not d.spec.bins:
                wanted[d.column.display].add(value)
    names: dict[str, dict[int, str]] = {"user": {}, "department": {}}
    if wanted["user"]:
        names["user"] = dict(session.execute(select(User.id, User.display_name).where(
            User.id.in_(wanted["user"]))).all())
    if wanted["department"]:
        names["department"] = dict(session.execute(select(Department.id, Department.name)
                                                   .where(Department.id.in_(
                                                       wanted["department"]))).all())
    linked: dict[int, dict[int, str]] = {}
    for i, d in enumerate(plan.dims):
        if d.column.display == "relation" and d.column.target and viewer and app:
            ids = {row[i] for row in keys if isinstance(row[i], int)}
            linked[i] = titles(session, app, viewer, d.column.target, ids)
    out = []
    for row in keys:
        shown = []
        for i, (d, value) in enumerate(zip(plan.dims, row, strict=True)):
            shown.append(linked[i].get(value, f"#{value}") if i in linked and value
                         is not None else _label(d, value, names))
        out.append(shown)
    return out


def _label(d: Any, value: Any, names: Mapping[str, Mapping[int, str]]) -> Any:
    if value is None:
        return None
    if d.spec.bins:
        return compiler.bin_label(d.spec.bins, value)
    display = d.column.display
    if display in names:
        return names[display].get(value, f"#{value}")
    if display == "option":
        return d.column.options.get(value, value)
    if display == "boolean":
        return "是" if value else "否"
    if display == "relation":
        return f"#{value}"
    return value


def columns_of(plan: Plan) -> list[dict[str, Any]]:
    cols = []
    for i, d in enumerate(plan.dims):
        cols.append({"key": f"d{i}", "label": d.label, "role": "dimension",
                     "type": "bucket" if d.spec.bucket or d.spec.bins
                     else d.column.display, "field": d.spec.field})
    for m in plan.measures:
        cols.append({"key": m.key, "label": m.label, "role": "measure", "format": m.fmt})
    return cols


def run(session: Session, app: str, spec: ReportSpec, viewer: Viewer,
        params: Mapping[str, Any] | None = None) -> Result:
    """The report's result for ``viewer``: one aggregate statement (a funnel: one too)."""
    params = dict(params or {})
    check_visible(spec, viewer.principal)
    source = open_source(session, app, spec, viewer)
    check_fields(spec, source)
    where = where_of(session, spec, source, viewer, params)
    if spec.source.of == "funnel":
        from engine_reports import fusion
        from engine_reports.funnel import funnel

        if fusion.collecting():
            raise fusion.NotShared

        return funnel(session, app, spec, source, where)
    plan, keys, values, truncated = execute(session, spec, source.frame, where)
    shown = labels(session, plan, keys, app, viewer)
    rows = [s + v for s, v in zip(shown, values, strict=True)]
    engine = ("table" if source.pub is None or spec.source.of != "records"
              else "projection" if source.frame.money_fen else "json")
    return Result(columns_of(plan), rows, keys, truncated, engine)


def previous_params(spec: ReportSpec, params: Mapping[str, Any]) -> dict[str, Any] | None:
    """The parameters of the period just before the one set (same length), if any."""
    found = period(spec, params)
    if found is None:
        return None
    key, start, end = found
    days = (end - start).days + 1
    return {**params, key: [(start - timedelta(days=days)).isoformat(),
                            (start - timedelta(days=1)).isoformat()]}
