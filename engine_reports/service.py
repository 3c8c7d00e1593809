"""Reports and dashboards: saving (checked against their source, a new immutable version
each time), reading, running for a viewer (data, chart, drill-down, exports)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from engine_reports import running
from engine_reports.compiler import Compiler, ReportError
from engine_reports.dashboards import DashboardSpec, parse_dashboard
from engine_reports.models import Dashboard, Report, SpecVersion
from engine_reports.running import Result, Viewer
from engine_reports.spec import ReportSpec, ReportSpecError, parse_report
from platform_core.errors import InvalidInput, NotFound
from platform_core.models import utcnow
from platform_core.security.permissions import Forbidden
from platform_core.store.query import QueryError, compile_filter


class ExportForbidden(Forbidden):
    code = "export_forbidden"


# -- reports -----------------------------------------------------------------------------


def _one(session: Session, model: Any, app: str, key: str, noun: str) -> Any:
    row = session.execute(select(model).where(model.app == app, model.key == key)
                          ).scalar_one_or_none()
    if row is None:
        raise NotFound(f"{noun} {key!r} does not exist in app {app!r}", app=app,
                       **{noun: key})
    return row


def _all(session: Session, model: Any, app: str) -> list[Any]:
    return list(session.execute(select(model).where(model.app == app)
                                .order_by(model.key)).scalars())


def get_report(session: Session, app: str, key: str) -> Report:
    from engine_reports import fusion

    # a dashboard's widgets read their reports in two passes: once per request
    return fusion.remember(("report", app, key),
                           lambda: _one(session, Report, app, key, "report"))


def list_reports(session: Session, app: str) -> list[Report]:
    return _all(session, Report, app)


def names(session: Session, app: str, model: Any) -> dict[str, str]:
    """The app's reports (``Report``) or dashboards (``Dashboard``), key → name (what a
    menu item may point at)."""
    return {r.key: str(r.spec.get("name") or r.key) for r in _all(session, model, app)}


def spec_of(row: Report) -> ReportSpec:
    return ReportSpec.model_validate(row.spec)


def check_source(session: Session, app: str, spec: ReportSpec) -> None:
    """Refuse a report that cannot run over its source: unknown form, flow or field, a
    bucket on a text field, a bad filter or formula … (``422 invalid_report``)."""
    from engine_forms.forms import published
    from engine_reports.frames import audit_frame, flow_frame, form_frame

    src = spec.source
    try:
        if src.of == "audit":
            frame = audit_frame()
        elif src.of == "records":
            from engine_reports.lookups import with_lookups

            pub = published(session, app, src.form)  # type: ignore[arg-type]
            frame = with_lookups(session, app, form_frame(session, pub), pub, None)
        else:
            from engine_flows.definitions import get_flow
            from engine_flows.runtime import spec_of as flow_spec_of

            row = get_flow(session, app, src.flow)  # type: ignore[arg-type]
            if row.published_version is None:
                raise ReportError(f"source: flow {src.flow!r} is not published yet")
            flow = flow_spec_of(session, app, row.key, row.published_version)
            frame = flow_frame(published(session, app, flow.form), app, row.key,
                               "instances" if src.of == "funnel" else src.of, flow)
        dialect = session.get_bind().dialect.name
        if spec.filters is not None:
            compile_filter(spec.filters, frame.fields, dialect)
        for p in spec.parameters:
            if p.field is not None and p.field not in frame.columns:
                raise ReportError(f"parameters.{p.key}: unknown field {p.field!r}")
        if src.of != "funnel":
            plan = Compiler(spec, frame, dialect).plan(
                compile_filter(None, frame.fields, dialect))
            check_chart(spec, running.columns_of(plan))
    except NotFound as exc:
        raise ReportSpecError([f"source: {exc}"]) from None
    except (ReportError, QueryError) as exc:
        raise ReportSpecError([str(exc)]) from None


def check_chart(spec: ReportSpec, columns: list[dict[str, Any]]) -> None:
    """Refuse a chart that cannot draw the report's shape (a pie of two dimensions, a
    scatter of one measure …), by drawing one made-up row."""
    from engine_reports.charts import ChartError, build_figure

    row = ["x" if c["role"] == "dimension" else "2026-01-01" if c["format"] == "date"
           else 1 for c in columns]
    try:
        build_figure(spec.chart.model_dump(exclude_none=True), columns, [row])
    except ChartError as exc:
        raise ReportError(f"chart: {exc}", path="chart") from None


def save_report(session: Session, *, app: str, raw: Any, actor_id: int | None,
                key: str | None = None) -> Report:
    """Create the report, or save a new version of it (``key``: the one in the path)."""
    from engine_forms.forms import get_app

    get_app(session, app)
    spec = parse_report(raw)
    if key is not None and spec.key != key:
        raise InvalidInput(f"the report's key is {spec.key!r}, the path says {key!r}",
                           field="key")
    check_source(session, app, spec)
    if spec.segment is not None:
        from engine_reports.segments import plan

        plan(session, app, spec)
    row = _store(session, Report, "report", app, spec.key, spec.dump(), creating=key is None,
                 actor_id=actor_id)
    _project(session, app, spec)
    session.flush()
    return row


def _store(session: Session, model: Any, noun: str, app: str, key: str,
           doc: dict[str, Any], *, creating: bool, actor_id: int | None) -> Any:
    """Create the definition (409 if it exists) or save its next version (404 if it does
    not), and keep the version."""
    from platform_core.errors import Conflict

    row = session.execute(select(model).where(model.app == app, model.key == key)
                          ).scalar_one_or_none()
    if creating and row is not None:
        raise Conflict(f"{noun} {key!r} already exists", app=app, **{noun: key})
    if not creating and row is None:
        raise NotFound(f"{noun} {key!r} does not exist in app {app!r}", app=app,
                       **{noun: key})
    now = utcnow()
    if row is None:
        row = model(app=app, key=key, version=1, spec=doc, created_at=now, updated_at=now)
        session.add(row)
    else:
        row.version, row.spec, row.updated_at = row.version + 1, doc, now
    session.add(SpecVersion(app=app, kind=noun, key=key, version=row.version, spec=doc,
                            saved_at=now, saved_by=actor_id))
    return row


def _project(session: Session, app: str, spec: ReportSpec) -> None:
    """Reports over a form read its typed projection: make sure the store keeps one."""
    if spec.source.of != "records":
        return
    from engine_forms.forms import published
    from engine_reports.frames import report_fields
    from platform_core.store.projection import ensure_projection, projection_of

    fields = report_fields(published(session, app, spec.source.form))  # type: ignore[arg-type]
    if projection_of(session, fields) is None:
        ensure_projection(session, fields)


def delete_report(session: Session, app: str, key: str) -> None:
    session.delete(get_report(session, app, key))
    session.flush()


def versions(session: Session, app: str, kind: str, key: str) -> list[SpecVersion]:
    return list(session.execute(select(SpecVersion).where(
        SpecVersion.app == app, SpecVersion.kind == kind, SpecVersion.key == key)
        .order_by(SpecVersion.version)).scalars())


def report_doc(row: Report) -> dict[str, Any]:
    return {"key": row.key, "version": row.version, "spec": row.spec,
            "updated_at": row.updated_at.isoformat()}


def visible_reports(session: Session, app: str, viewer: Viewer) -> list[Report]:
    """The app's reports shared with the viewer's roles."""
    return [r for r in list_reports(session, app)
            if running.shared_with(spec_of(r), viewer.principal)]


# -- running -----------------------------------------------------------------------------


def result(session: Session, app: str, key: str, viewer: Viewer,
           params: Mapping[str, Any] | None = None) -> tuple[ReportSpec, Result]:
    spec = spec_of(get_report(session, app, key))
    return spec, running.run(session, app, spec, viewer, params)


def data(session: Session, app: str, key: str, viewer: Viewer,
         params: Mapping[str, Any] | None = None, chart: str | None = None
         ) -> dict[str, Any]:
    """``{"columns", "rows", "keys", "figure", …}``: the report as the viewer may see it."""
    from engine_reports.charts import ChartError, build_figure

    spec, res = result(session, app, key, viewer, params)
    chart_spec = spec.chart.model_dump(exclude_none=True)
    if chart:
        chart_spec["type"] = chart
    previous = None
    if chart_spec.get("type") == "kpi":
        before = running.previous_params(spec, params or {})
        if before is not None:
            previous = running.run(session, app, spec, viewer, before).rows
    doc = res.doc()
    from engine_reports import fusion

    if fusion.collecting():  # the statements are noted: no chart to draw yet
        return doc
    doc["report"] = {"key": spec.key, "name": spec.name, "version": get_report(
        session, app, key).version, "chart": chart_spec["type"]}
    try:
        doc["figure"] = build_figure(chart_spec, res.columns, res.rows, previous=previous)
    except ChartError as exc:  # e.g. a chart type asked for in the query that cannot draw it
        doc["figure"], doc["figure_error"] = None, str(exc)
    return doc


def drill(session: Session, app: str, key: str, viewer: Viewer, keys: list[Any],
          params: Mapping[str, Any] | None = None) -> tuple[Any, dict[str, Any]]:
    """The records behind one row: (their form's Published, the filter AST that selects
    them). Over a form: the report's filters, parameters and the row's dimension keys;
    over a flow's instances, tasks or funnel step: the records those are about (at most
    ``drill.MAX_RECORDS``). The caller lists them through the records service (row
    scope, hidden fields)."""
    from engine_reports.drill import flow_records, record_ids, row_filter
    from engine_reports.lookups import lookup_dimensions

    spec = spec_of(get_report(session, app, key))
    if spec.source.of == "audit":
        raise InvalidInput("drill-down lists records: the audit log has none")
    running.check_visible(spec, viewer.principal)
    source = running.open_source(session, app, spec, viewer)
    running.check_fields(spec, source)
    wanted = 1 if spec.source.of == "funnel" else len(spec.dimensions)
    if len(keys) != wanted:
        raise InvalidInput(f"expected {wanted} dimension value(s), got {len(keys)}",
                           field="keys")
    parts = [spec.filters] if spec.filters else []
    parts += running.parameter_filter(session, spec, source.frame, params or {})
    if spec.source.of != "funnel":
        parts += row_filter(spec, source.frame, keys)
    where = None if not parts else parts[0] if len(parts) == 1 else {"and": parts}
    if spec.source.of != "records":
        where = flow_records(session, spec, source, where, keys)
    elif lookup_dimensions(spec, source.pub):
        where = record_ids(session, source, where)
    return source.pub, where


def export_check(session: Session, app: str, key: str, viewer: Viewer) -> None:
    """Exporting a report's data needs the export right on its form (the audit log:
    an administrator)."""
    spec = spec_of(get_report(session, app, key))
    if spec.source.of == "audit":
        if not viewer.principal.is_admin:
            raise ExportForbidden("exporting the audit log is for administrators")
        return
    source = running.open_source(session, app, spec, viewer)
    if not source.access.allows("export"):
        raise ExportForbidden(f"you may not export data of {source.pub.spec.key!r}",
                              form=source.pub.spec.key)


# -- dashboards --------------------------------------------------------------------------


def get_dashboard(session: Session, app: str, key: str) -> Dashboard:
    return _one(session, Dashboard, app, key, "dashboard")


def list_dashboards(session: Session, app: str) -> list[Dashboard]:
    return _all(session, Dashboard, app)


def dashboard_spec(row: Dashboard) -> DashboardSpec:
    return DashboardSpec.model_validate(row.spec)


def save_dashboard(session: Session, *, app: str, raw: Any, actor_id: int | None,
                   key: str | None = None) -> Dashboard:
    from engine_forms.forms import get_app
    from engine_reports.dashboards import DashboardSpecError

    get_app(session, app)
    spec = parse_dashboard(raw)
    if key is not None and spec.key != key:
        raise InvalidInput(f"the dashboard's key is {spec.key!r}, the path says {key!r}",
                           field="key")
    known = {r.key for r in list_reports(session, app)}
    missing = [f"widgets[{i}].report: report {w.report!r} does not exist"
               for i, w in enumerate(spec.widgets) if w.report not in known]
    if missing:
        raise DashboardSpecError(missing)
    row = _store(session, Dashboard, "dashboard", app, spec.key, spec.dump(),
                 creating=key is None, actor_id=actor_id)
    session.flush()
    return row


def delete_dashboard(session: Session, app: str, key: str) -> None:
    session.delete(get_dashboard(session, app, key))
    session.flush()


def dashboard_doc(row: Dashboard) -> dict[str, Any]:
    return {"key": row.key, "version": row.version, "spec": row.spec,
            "updated_at": row.updated_at.isoformat()}


def check_dashboard_visible(spec: DashboardSpec, viewer: Viewer) -> None:
    running.check_visible(spec, viewer.principal, "dashboard")


def visible_dashboards(session: Session, app: str, viewer: Viewer) -> list[Dashboard]:
    """The app's dashboards shared with the viewer's roles."""
    return [r for r in list_dashboards(session, app)
            if running.shared_with(dashboard_spec(r), viewer.principal)]


def widget_params(dash: DashboardSpec, report: ReportSpec,
                  values: Mapping[str, Any]) -> dict[str, Any]:
    """The dashboard's parameter values a widget's report declares."""
    declared = {p.key for p in report.parameters}
    out = {p.key: values.get(p.key, p.default) for p in dash.parameters}
    return {k: v for k, v in out.items() if k in declared and v not in (None, "", [])}


def _widget_entry(session: Session, app: str, dash: DashboardSpec, index: int, w: Any,
                  viewer: Viewer, values: Mapping[str, Any]) -> dict[str, Any]:
    """One widget's data (or its error, e.g. a report not shared with the viewer)."""
    from platform_core.errors import DomainError

    entry: dict[str, Any] = {"index": index, "report": w.report, "title": w.title,
                             "x": w.x, "y": w.y, "w": w.w, "h": w.h}
    if w.order is not None:
        entry["order"] = w.order
    try:
        spec = spec_of(get_report(session, app, w.report))
        entry["title"] = w.title or spec.name
        params = widget_params(dash, spec, values)
        entry["params"] = params
        entry["data"] = data(session, app, w.report, viewer, params, chart=w.chart)
    except DomainError as exc:
        entry["error"] = {"code": exc.code, "detail": str(exc)}
    return entry


def _checked_dashboard(session: Session, app: str, key: str, viewer: Viewer,
                       values: Mapping[str, Any]) -> tuple[Dashboard, DashboardSpec]:
    row = get_dashboard(session, app, key)
    dash = dashboard_spec(row)
    check_dashboard_visible(dash, viewer)
    unknown = set(values) - {p.key for p in dash.parameters}
    if unknown:
        raise InvalidInput(f"unknown parameter {sorted(unknown)[0]!r} of dashboard {key}")
    return row, dash


def dashboard_data(session: Session, app: str, key: str, viewer: Viewer,
                   values: Mapping[str, Any]) -> dict[str, Any]:
    """Every widget's data (or its error, e.g. a report not shared with the viewer), one
    after the other on this session."""
    from engine_reports import fusion

    row, dash = _checked_dashboard(session, app, key, viewer, values)
    batch = _noted(session, app, dash, viewer, values)
    batch.run_in(session)
    with fusion.batch(batch):
        widgets = [_widget_entry(session, app, dash, i, w, viewer, values)
                   for i, w in enumerate(dash.ordered())]
    return {"dashboard": dashboard_doc(row), "widgets": widgets}


def _noted(session: Session, app: str, dash: DashboardSpec, viewer: Viewer,
           values: Mapping[str, Any]) -> Any:
    """The first pass over a dashboard's widgets: their statements, noted in a batch
    (``engine_reports/fusion.py``) to be planned and run together."""
    from engine_reports import fusion

    batch = fusion.Batch()
    wanted = {w.report for w in dash.widgets}
    for row in session.execute(select(Report).where(Report.app == app,
                                                    Report.key.in_(wanted))).scalars():
        batch.memo[("report", app, row.key)] = row  # one query for every widget's report
    with fusion.batch(batch):
        for i, w in enumerate(dash.ordered()):
            try:
                _widget_entry(session, app, dash, i, w, viewer, values)
            except Exception:  # noqa: BLE001 - the second pass runs it for real
                continue
    return batch


def dashboard_widget(session: Session, app: str, key: str, index: int, viewer: Viewer,
                     values: Mapping[str, Any]) -> dict[str, Any]:
    """Widget ``index`` (in reading order, as ``dashboard_data`` numbers them) alone: a
    page loads each on its own, so a slow widget holds no other back."""
    _, dash = _checked_dashboard(session, app, key, viewer, values)
    widgets = dash.ordered()
    if not 0 <= index < len(widgets):
        raise NotFound(f"dashboard {key!r} has no widget {index}", app=app, dashboard=key)
    return _widget_entry(session, app, dash, index, widgets[index], viewer, values)


WORKERS = 8  # widgets run at once by one dashboard request (connections it holds)


def dashboard_data_parallel(db: Any, app: str, key: str, viewer: Viewer,
                            values: Mapping[str, Any], workers: int | None = None
                            ) -> dict[str, Any]:
    """``dashboard_data`` with the widgets' statements shared where they read the same
    rows (``engine_reports/fusion.py``) and run at the same time, each in its own read
    transaction on its own connection (``db``: a ``platform_core`` ``Database``). On
    PostgreSQL the statements run in parallel; on SQLite WAL readers do too (the GIL is
    released while SQLite works). Same result, same order."""
    from concurrent.futures import ThreadPoolExecutor

    from engine_reports import fusion

    with db.read() as s:
        row, dash = _checked_dashboard(s, app, key, viewer, values)
        doc = dashboard_doc(row)
        widgets = dash.ordered()
        batch = _noted(s, app, dash, viewer, values)
    batch.run(db, workers or WORKERS)  # shared where they can be, in parallel

    def one(item: tuple[int, Any]) -> dict[str, Any]:
        with db.read() as s, fusion.batch(batch):
            return _widget_entry(s, app, dash, item[0], item[1], viewer, values)

    url = db.engine.url
    if len(widgets) <= 1 or len(batch.rows) == len(batch.needs) or (
            url.get_backend_name() == "sqlite" and url.database in (None, "", ":memory:")):
        # every widget's rows are here (or an in-memory SQLite: one connection only):
        # what is left is Python, in one read transaction
        with db.read() as s, fusion.batch(batch):
            entries = [_widget_entry(s, app, dash, i, w, viewer, values)
                       for i, w in enumerate(widgets)]
    else:
        with ThreadPoolExecutor(max_workers=min(workers or WORKERS, len(widgets))) as ex:
            entries = list(ex.map(one, enumerate(widgets)))
    return {"dashboard": doc, "widgets": entries}
