"""The dashboard editor and a dashboard's widgets one by one.

* ``/apps/{app}/dashboards/{dashboard}/widgets/{index}``: one widget's chart (or its
  error) as an HTML fragment. The dashboard page asks for each widget on its own
  (``static/reports.js``), so the browser loads them in parallel and each draws as it
  arrives. The widgets of one page load (its ``load`` token) share one fused read of
  the whole dashboard (``frontend/dashboard_loads.py``) instead of each scanning the
  rows again; a widget whose read fails still shows its own error.
* ``/apps/{app}/dashboards/new`` and ``…/{dashboard}/edit`` (``app:manage``): a
  12-column gridstack grid; reports are dragged in from the side list, moved and
  resized; each widget has a title, a chart override and a place on a phone; the
  dashboard has shared parameters (the page shows which widgets each reaches) and
  roles. ``static/dashboard_editor.js`` saves through the API (``POST``/``PUT
  /api/v1/apps/{app}/dashboards…``: a new version, the checks an integrator meets) and
  shows its problems in place.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from engine_forms.forms import get_app
from engine_reports import service
from engine_reports.charts import ChartError
from engine_reports.spec import CHARTS, PARAMETER_TYPES
from frontend.dashboard_loads import LOADS
from frontend.pages_reports import (
    NOT_SHARED,
    _over_records,
    _render,
    _viewer,
    chart,
    parameter_form,
)
from frontend.web import error_page
from platform_core.app import ContextDep
from platform_core.errors import DomainError, InvalidInput
from platform_core.security.guard import PrincipalDep, rule
from platform_core.security.models import Role

router = APIRouter(include_in_schema=False)
DASHBOARDS = "/apps/{app}/dashboards"


@router.get(DASHBOARDS + "/{dashboard}/widgets/{index}", response_class=HTMLResponse,
            openapi_extra=rule("app:read"))
def widget_fragment(ctx: ContextDep, principal: PrincipalDep, request: Request, app: str,
                    dashboard: str, index: int) -> HTMLResponse:
    """One widget of the dashboard with the page's parameters (same query string)."""
    viewer = _viewer(ctx, principal)
    status, out = 200, {"index": index}
    try:
        with ctx.db.read() as s:
            spec = service.dashboard_spec(service.get_dashboard(s, app, dashboard))
            _, values, problems = parameter_form(list(spec.parameters), request.query_params,
                                                 s)
        if problems:
            raise InvalidInput("；".join(problems))
        w = _of_this_load(ctx, principal, request, app, dashboard, index, viewer, values)
        with ctx.db.read() as s:
            if w is None:
                w = service.dashboard_widget(s, app, dashboard, index, viewer, values)
            out = {k: w[k] for k in ("index", "report", "title")}
            if "error" in w:
                out["error"] = w["error"]["detail"]
                out["not_shared"] = w["error"]["code"] in NOT_SHARED
            else:
                out["chart"] = chart(w["data"], app, w.get("params") or {},
                                     _over_records(s, app, w["report"]))
    except DomainError as exc:
        status, out["error"] = exc.status, exc.detail
    except ChartError as exc:
        status, out["error"] = 422, _("图表无法绘制：{error}").format(error=exc)
    return _render(request, "reports/_widget.html", status=status, app={"key": app}, w=out)


def _of_this_load(ctx: Any, principal: Any, request: Request, app: str, dashboard: str,
                  index: int, viewer: Any, values: dict[str, Any]) -> dict[str, Any] | None:
    """Widget ``index`` from the one read of every widget its page load shares
    (``frontend/dashboard_loads.py``), or None to read it alone (no ``load`` token, or
    the shared read failed)."""
    token = request.query_params.get("load")
    if not token:
        return None
    query = tuple(sorted((k, v) for k, v in request.query_params.multi_items()
                         if k != "load"))
    key = (id(ctx), principal.user_id, app, dashboard, token, query)
    data = LOADS.get(key, lambda: service.dashboard_data_parallel(
        ctx.db, app, dashboard, viewer, values))
    entries = data["widgets"] if data else []
    return entries[index] if 0 <= index < len(entries) else None


def _editor(ctx: Any, principal: Any, request: Request, app: str,
            dashboard: str | None) -> HTMLResponse:
    viewer = _viewer(ctx, principal)
    try:
        with ctx.db.read() as s:
            app_row = get_app(s, app)
            doc = None
            if dashboard is not None:
                row = service.get_dashboard(s, app, dashboard)
                doc = {"version": row.version, "spec": row.spec}
            reports = []
            for r in service.visible_reports(s, app, viewer):
                spec = service.spec_of(r)
                reports.append({"key": r.key, "name": spec.name, "chart": spec.chart.type,
                                "parameters": [p.key for p in spec.parameters]})
            roles = [{"key": k, "name": n} for k, n in
                     s.query(Role.key, Role.name).order_by(Role.key).all()]
    except DomainError as exc:
        return error_page(request, exc)
    setup = {"app": app, "dashboard": doc, "reports": reports, "roles": roles,
             "charts": list(CHARTS), "parameter_types": list(PARAMETER_TYPES)}
    return _render(request, "reports/dashboard_editor.html", app=app_row, setup=setup,
                   editing=dashboard, name=(doc or {}).get("spec", {}).get("name"))


@router.get(DASHBOARDS + "/new", response_class=HTMLResponse,
            openapi_extra=rule("app:manage"))
def new_dashboard(ctx: ContextDep, principal: PrincipalDep, request: Request,
                  app: str) -> HTMLResponse:
    return _editor(ctx, principal, request, app, None)


@router.get(DASHBOARDS + "/{dashboard}/edit", response_class=HTMLResponse,
            openapi_extra=rule("app:manage"))
def edit_dashboard(ctx: ContextDep, principal: PrincipalDep, request: Request, app: str,
                   dashboard: str) -> HTMLResponse:
    return _editor(ctx, principal, request, app, dashboard)
