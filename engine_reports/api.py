"""The report API (``/api/v1``): report and dashboard CRUD for whoever manages the app;
data, drill-down and exports for whoever may read it — each report run as the viewer
(their row scope, their field rights, the report's and dashboard's roles)."""

from __future__ import annotations

import json
from typing import Annotated, Any

from fastapi import APIRouter, Body, Query, Request, Response

from engine_reports import service
from engine_reports.dashboards import meta_schema as dashboard_meta_schema
from engine_reports.running import Viewer
from engine_reports.spec import meta_schema
from platform_core.app import ContextDep
from platform_core.errors import InvalidInput
from platform_core.exporting import XLSX_TYPE as XLSX
from platform_core.exporting import spreadsheet
from platform_core.models import utcnow
from platform_core.security import audit
from platform_core.security.guard import PrincipalDep, client_of, rule

router = APIRouter(prefix="/api/v1", tags=["reports"])
REPORTS = "/apps/{app}/reports"
REPORT = REPORTS + "/{report}"
DASHBOARDS = "/apps/{app}/dashboards"
DASHBOARD = DASHBOARDS + "/{dashboard}"
ParamsQuery = Annotated[str | None, Query(
    description='JSON object of parameter values, e.g. {"period": ["2026-01-01", '
                '"2026-12-31"], "department": 3}')]


def _json_param(raw: str | None, name: str, kind: type) -> Any:
    if raw is None:
        return kind()
    try:
        value = json.loads(raw)
    except (ValueError, RecursionError):  # also: nested too deep, a number too long
        raise InvalidInput(f"{name}: not valid JSON", field=name) from None
    if not isinstance(value, kind):
        raise InvalidInput(f"{name}: expected a JSON {kind.__name__}", field=name)
    return value


def _viewer(ctx: Any, principal: Any) -> Viewer:
    return Viewer(principal, getattr(ctx, "keyring", None))


@router.get("/reports/meta-schema", openapi_extra=rule("user"))
def get_meta_schema() -> dict[str, Any]:
    return meta_schema()


@router.get("/dashboards/meta-schema", openapi_extra=rule("user"))
def get_dashboard_meta_schema() -> dict[str, Any]:
    return dashboard_meta_schema()


# -- reports -----------------------------------------------------------------------------


@router.get(REPORTS, openapi_extra=rule("app:read"))
def list_reports(ctx: ContextDep, principal: PrincipalDep, app: str) -> dict[str, Any]:
    """The app's reports shared with the caller's roles."""
    viewer = _viewer(ctx, principal)
    with ctx.db.read() as s:
        from engine_forms.forms import get_app

        get_app(s, app)
        return {"items": [service.report_doc(r)
                          for r in service.visible_reports(s, app, viewer)]}


@router.post(REPORTS, status_code=201, openapi_extra=rule("app:manage"))
def create_report(ctx: ContextDep, principal: PrincipalDep, app: str,
                  body: Annotated[dict[str, Any], Body()]) -> dict[str, Any]:
    with ctx.db.write() as s:
        return service.report_doc(service.save_report(s, app=app, raw=body,
                                                      actor_id=principal.user_id))


@router.get(REPORT, openapi_extra=rule("app:read"))
def get_report(ctx: ContextDep, principal: PrincipalDep, app: str,
               report: str) -> dict[str, Any]:
    with ctx.db.read() as s:
        row = service.get_report(s, app, report)
        from engine_reports.running import check_visible

        check_visible(service.spec_of(row), principal)
        return service.report_doc(row)


@router.put(REPORT, openapi_extra=rule("app:manage"))
def put_report(ctx: ContextDep, principal: PrincipalDep, app: str, report: str,
               body: Annotated[dict[str, Any], Body()]) -> dict[str, Any]:
    with ctx.db.write() as s:
        return service.report_doc(service.save_report(s, app=app, raw=body, key=report,
                                                      actor_id=principal.user_id))


@router.delete(REPORT, status_code=204, openapi_extra=rule("app:manage"))
def delete_report(ctx: ContextDep, app: str, report: str) -> Response:
    with ctx.db.write() as s:
        service.delete_report(s, app, report)
    return Response(status_code=204)


@router.get(REPORT + "/versions", openapi_extra=rule("app:manage"))
def report_versions(ctx: ContextDep, app: str, report: str) -> dict[str, Any]:
    with ctx.db.read() as s:
        service.get_report(s, app, report)
        return {"items": [{"version": v.version, "spec": v.spec,
                           "saved_at": v.saved_at.isoformat(), "saved_by": v.saved_by}
                          for v in service.versions(s, app, "report", report)]}


@router.get(REPORT + "/data", openapi_extra=rule("app:read"))
def report_data(ctx: ContextDep, principal: PrincipalDep, app: str, report: str,
                params: ParamsQuery = None,
                chart: Annotated[str | None, Query(pattern="^[a-z_]{1,20}$")] = None
                ) -> dict[str, Any]:
    """``{"columns", "rows", "keys", "figure"}``: the report over the records the caller
    may read, computed by one aggregate query (``keys``: each row's raw dimension values,
    for drill-down)."""
    with ctx.db.read() as s:
        return service.data(s, app, report, _viewer(ctx, principal),
                            _json_param(params, "params", dict), chart=chart)


@router.get(REPORT + "/drill", openapi_extra=rule("app:read"))
def report_drill(ctx: ContextDep, principal: PrincipalDep, request: Request, app: str,
                 report: str,
                 keys: Annotated[str, Query(description="JSON list: the row's raw "
                                                        "dimension values (`keys` of the "
                                                        "data)")],
                 params: ParamsQuery = None, cursor: str | None = None,
                 limit: Annotated[int, Query(ge=1, le=1000)] = 50) -> dict[str, Any]:
    """The records behind one row of the report, as the records list shows them."""
    from engine_forms import service as records
    from engine_forms.service import Caller

    viewer = _viewer(ctx, principal)
    with ctx.db.read() as s:
        pub, where = service.drill(s, app, report, viewer, _json_param(keys, "keys", list),
                                   _json_param(params, "params", dict))
        caller = Caller(principal, principal.access(app, pub.spec.key), viewer.keyring,
                        client_of(request))
        items, next_cursor = records.list_page(s, caller, pub, filter=where, sort=None,
                                               cursor=cursor, limit=limit, fields=None,
                                               deleted="exclude")
    nxt = str(request.url.include_query_params(cursor=next_cursor)) if next_cursor else None
    return {"form": pub.spec.key, "filter": where, "items": items,
            "next_cursor": next_cursor, "next": nxt}


@router.get(REPORT + "/export", openapi_extra=rule("app:export"), response_class=Response,
            responses={200: {"content": {XLSX: {}, "text/csv": {}}}})
def report_export(ctx: ContextDep, principal: PrincipalDep, request: Request, app: str,
                  report: str,
                  format: Annotated[str, Query(pattern="^(xlsx|csv)$")] = "xlsx",
                  params: ParamsQuery = None) -> Response:
    """The report's table as a spreadsheet (formula-safe); needs the export right on the
    report's form, and is audited."""
    viewer = _viewer(ctx, principal)
    values = _json_param(params, "params", dict)
    with ctx.db.write() as s:  # the audit entry commits with the export
        service.export_check(s, app, report, viewer)
        spec, res = service.result(s, app, report, viewer, values)
        labels, rows = table(res)
        body, media, count = spreadsheet(format, sheet=spec.name, columns=labels, rows=rows)
        audit.append(s, actor=principal.actor, action="report.export",
                     target=f"{app}.report.{report}", client=client_of(request),
                     detail={"rows": count, "format": format, "params": values})
    name = f"{app}-{report}-{utcnow():%Y%m%d-%H%M}.{format}"
    return Response(body, media_type=media,
                    headers={"Content-Disposition": f'attachment; filename="{name}"'})


def table(res: Any) -> tuple[list[str], list[list[Any]]]:
    """Column labels and rows for a spreadsheet: money as exact decimals, ratios as
    numbers (the cell format is the reader's)."""
    from decimal import Decimal

    labels = [c["label"] for c in res.columns]
    money = [c.get("format") in ("money", "wan") for c in res.columns]
    rows = [[Decimal(v) if m and isinstance(v, str) else v for v, m in zip(row, money,
                                                                          strict=True)]
            for row in res.rows]
    return labels, rows


@router.post(REPORT + "/segments/run", openapi_extra=rule("app:manage"))
def run_segments(ctx: ContextDep, principal: PrincipalDep, request: Request, app: str,
                 report: str) -> dict[str, Any]:
    """Recompute a segmentation report's tags now (it also runs on its schedule):
    ``{"records", "changed", "counts"}``, one transaction."""
    from engine_reports.segments import recompute

    with ctx.db.write() as s:
        spec = service.spec_of(service.get_report(s, app, report))
        if spec.segment is None:
            raise InvalidInput(f"report {report!r} has no segmentation")
        done = recompute(s, app, spec, keyring=getattr(ctx, "keyring", None))
        audit.append(s, actor=principal.actor, action="report.segments",
                     target=f"{app}.report.{report}", client=client_of(request),
                     detail={k: done[k] for k in ("records", "changed", "counts")})
    return done


# -- dashboards --------------------------------------------------------------------------


@router.get(DASHBOARDS, openapi_extra=rule("app:read"))
def list_dashboards(ctx: ContextDep, principal: PrincipalDep, app: str) -> dict[str, Any]:
    from engine_forms.forms import get_app

    with ctx.db.read() as s:
        get_app(s, app)
        return {"items": [service.dashboard_doc(r) for r in
                          service.visible_dashboards(s, app, _viewer(ctx, principal))]}


@router.post(DASHBOARDS, status_code=201, openapi_extra=rule("app:manage"))
def create_dashboard(ctx: ContextDep, principal: PrincipalDep, app: str,
                     body: Annotated[dict[str, Any], Body()]) -> dict[str, Any]:
    with ctx.db.write() as s:
        return service.dashboard_doc(service.save_dashboard(s, app=app, raw=body,
                                                            actor_id=principal.user_id))


@router.get(DASHBOARD, openapi_extra=rule("app:read"))
def get_dashboard(ctx: ContextDep, principal: PrincipalDep, app: str,
                  dashboard: str) -> dict[str, Any]:
    with ctx.db.read() as s:
        row = service.get_dashboard(s, app, dashboard)
        service.check_dashboard_visible(service.dashboard_spec(row),
                                        _viewer(ctx, principal))
        return service.dashboard_doc(row)


@router.put(DASHBOARD, openapi_extra=rule("app:manage"))
def put_dashboard(ctx: ContextDep, principal: PrincipalDep, app: str, dashboard: str,
                  body: Annotated[dict[str, Any], Body()]) -> dict[str, Any]:
    with ctx.db.write() as s:
        return service.dashboard_doc(service.save_dashboard(
            s, app=app, raw=body, key=dashboard, actor_id=principal.user_id))


@router.delete(DASHBOARD, status_code=204, openapi_extra=rule("app:manage"))
def delete_dashboard(ctx: ContextDep, app: str, dashboard: str) -> Response:
    with ctx.db.write() as s:
        service.delete_dashboard(s, app, dashboard)
    return Response(status_code=204)


@router.get(DASHBOARD + "/data", openapi_extra=rule("app:read"))
def dashboard_data(ctx: ContextDep, principal: PrincipalDep, app: str, dashboard: str,
                   params: ParamsQuery = None) -> dict[str, Any]:
    """Every widget's data with the shared parameters applied (a widget the caller may
    not see carries its error instead). The widgets run in parallel, each on its own
    connection."""
    return service.dashboard_data_parallel(ctx.db, app, dashboard, _viewer(ctx, principal),
                                           _json_param(params, "params", dict))
