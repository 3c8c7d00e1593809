"""Reports and dashboards in the browser: the lists of those shared with me, a report
(its chart, its table, its parameters, export links when I may export), a dashboard (a
12-column grid of report charts under one parameter bar), and the drill-down page (the
records behind one bar, slice or table row, as the records list shows them to me).

Every number comes from ``engine_reports.service`` run as the viewer (row scope, field
rights, the report's and dashboard's roles); the pages only lay it out. Charts are
Plotly figures drawn by ``static/reports.js``: the figure and, per point, the link of
its drill-down page travel in a ``<script type="application/json">`` block (the CSP
allows no inline script). plotly.js itself is served from the plotly Python package
(``/static/plotly.min.js``) with the library's stylesheet (``/static/plotly.css``), so
it never injects a ``<style>`` element the CSP would refuse.
"""

from __future__ import annotations

import gzip
import json
import re
from datetime import date
from functools import cache
from typing import Any
from urllib.parse import urlencode

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response
from sqlalchemy import select
from starlette.datastructures import QueryParams

from engine_forms import service as records
from engine_forms.forms import get_app
from engine_forms.service import Caller
from engine_reports import running, service
from engine_reports.charts import ChartError, format_value, parse_result
from engine_reports.running import Viewer
from frontend.dashboard_loads import new_load
from frontend.i18n import _
from frontend.web import error_page, render
from platform_core.app import ContextDep
from platform_core.errors import DomainError, InvalidInput
from platform_core.security.directory import list_departments
from platform_core.security.guard import PrincipalDep, client_of, rule
from platform_core.security.models import User

router = APIRouter(include_in_schema=False)
REPORTS = "/apps/{app}/reports"
DASHBOARDS = "/apps/{app}/dashboards"
NO_POINTS = ("table", "pivot", "kpi")  # charts without bars or slices to click
FOREVER = {"Cache-Control": "public, max-age=31536000, immutable"}
DRILL_PAGE = 50

# -- plotly.js, from the plotly package ---------------------------------------------------

_JS_STRING = r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\''


@cache
def plotly_assets() -> dict[str, Any]:
    """plotly.js and its stylesheet (each also gzipped), its version, and the ids of the
    ``<style>`` elements it adds at load unless an element with that id exists.

    plotly.js inserts its CSS rules into a ``<style>`` element at start-up, which a
    ``style-src 'self'`` CSP refuses; it skips that when a stylesheet with the id
    ``plotly.js-style-global`` and class ``no-inline-styles`` is present. The rules are
    read from the bundle (its ``"X,X div": …`` table), as plotly's own build once did;
    the pages add empty ``<template>`` stand-ins for the other ids."""
    from plotly.offline import get_plotlyjs

    js = get_plotlyjs()
    found = re.search(r"plotly\.js v(\d+\.\d+\.\d+)", js[:500])
    rules = []
    start = js.find('{"X,X div"')
    end = js.find("};", start)
    if start >= 0 and end > start:
        for m in re.finditer(f"({_JS_STRING}):({_JS_STRING})", js[start + 1:end]):
            selector = re.sub(r"^,", " ,", m.group(1)[1:-1]).replace(
                "X", ".js-plotly-plot .plotly").replace("Y", ".plotly-notifier")
            rules.append(f"{selector}{{{m.group(2)[1:-1]}}}")
    ids = re.findall(r'getElementById\("([0-9a-f]{64})"\)\)\{var \w+=document\.'
                     r'createElement\("style"\)', js)
    files = {"js": js.encode(), "css": "\n".join(rules).encode()}
    return {**files, **{f"{k}.gz": gzip.compress(v, mtime=0) for k, v in files.items()},
            "ids": ids, "version": found.group(1) if found else "0"}


def _asset(request: Request, name: str, media: str) -> Response:
    """A file of ``plotly_assets``, gzipped when the browser takes it (5 MB → 1.4 MB)."""
    gz = "gzip" in request.headers.get("accept-encoding", "")
    headers = FOREVER | {"Vary": "Accept-Encoding"} | ({"Content-Encoding": "gzip"}
                                                        if gz else {})
    return Response(plotly_assets()[name + (".gz" if gz else "")], media_type=media,
                    headers=headers)


@router.get("/static/plotly.min.js", openapi_extra=rule("public"))
def plotly_js(request: Request) -> Response:
    return _asset(request, "js", "application/javascript")


@router.get("/static/plotly.css", openapi_extra=rule("public"))
def plotly_css(request: Request) -> Response:
    return _asset(request, "css", "text/css")


def _render(request: Request, template: str, status: int = 200,
            **values: Any) -> HTMLResponse:
    assets = plotly_assets()
    return render(request, template, status=status,
                  plotly={"version": assets["version"], "ids": assets["ids"]}, **values)


# -- parameters: query string ⇄ values ----------------------------------------------------


def parameter_form(parameters: list[Any], query: QueryParams, session: Any
                   ) -> tuple[list[dict[str, Any]], dict[str, Any], list[str]]:
    """(inputs to show, values to run with, problems). A parameter left out of the query
    keeps its default; one submitted empty is "any" (``None``)."""
    inputs, values, problems = [], {}, []
    choices = _choices(session, {p.type for p in parameters})
    for p in parameters:
        name, label = f"p.{p.key}", p.label or p.key
        field: dict[str, Any] = {"key": p.key, "name": name, "type": p.type, "label": label,
                                 "choices": choices.get(p.type, [])}
        if p.type == "date_range":
            sent = f"{name}.from" in query or f"{name}.to" in query
            start, end = (query.get(f"{name}.from", "").strip(),
                          query.get(f"{name}.to", "").strip()) if sent else (
                (list(p.default) + ["", ""])[:2] if isinstance(p.default, list) else ("", ""))
            field |= {"start": start, "end": end}
            if sent:
                values[p.key] = _date_range(label, start, end, problems)
        else:
            sent = name in query
            text = query.get(name, "").strip() if sent else (
                "" if p.default is None else str(p.default))
            field["value"] = text
            if sent:
                values[p.key] = _single(p.type, label, text, problems)
        inputs.append(field)
    return inputs, values, problems


def _date_range(label: str, start: str, end: str, problems: list[str]) -> Any:
    if not start and not end:
        return None
    try:
        date.fromisoformat(start), date.fromisoformat(end)
    except ValueError:
        problems.append(_("{label}：请填写开始和结束日期 (YYYY-MM-DD)").format(label=label))
        return None
    return [start, end]


def _single(kind: str, label: str, text: str, problems: list[str]) -> Any:
    if not text:
        return None
    if kind == "value":
        return text
    if not text.isdigit():
        problems.append(_("{label}：请从列表中选择").format(label=label))
        return None
    return int(text)


def _choices(session: Any, kinds: set[str]) -> dict[str, list[dict[str, Any]]]:
    out: dict[str, list[dict[str, Any]]] = {}
    if "department" in kinds:
        out["department"] = [{"id": d.id, "name": "\u3000" * (d.path.count("/") - 2) + d.name}
                             for d in list_departments(session)]
    if "owner" in kinds:
        rows = session.execute(select(User.id, User.display_name).where(
            User.status == "active").order_by(User.display_name).limit(1000)).all()
        out["owner"] = [{"id": i, "name": n} for i, n in rows]
    return out


# -- a report's result as a table and a chart ----------------------------------------------


def drill_url(app: str, report: str, keys: list[Any], params: dict[str, Any]) -> str:
    query = {"keys": json.dumps(keys, ensure_ascii=False)}
    if params:
        query["params"] = json.dumps(params, ensure_ascii=False)
    return f"/apps/{app}/reports/{report}/drill?{urlencode(query)}"


def table(doc: dict[str, Any]) -> dict[str, Any]:
    """The result's header and rows as text (measures formatted as the charts do)."""
    cols = doc["columns"]

    def cell(value: Any, col: dict[str, Any]) -> str:
        if col["role"] != "measure":
            return _("（空）") if value is None else str(value)
        try:
            return format_value(value, col.get("format") or "number")
        except ChartError:
            return str(value)
    return {"header": [c["label"] for c in cols],
            "numeric": [c["role"] == "measure" for c in cols],
            "rows": [[cell(v, c) for v, c in zip(row, cols, strict=True)]
                     for row in doc["rows"]]}


def point_links(doc: dict[str, Any], urls: list[str] | None) -> list[list[Any]] | None:
    """For each trace, each point's drill-down link (rows of a chart, as charts.py lays
    them out: 0 dimensions → the one row; 1, or a scatter → point i is row i; 2 → one
    trace per value of the second dimension, one point per value of the first)."""
    kind, traces = doc["report"]["chart"], doc["figure"].get("data") or []
    if urls is None or not urls or kind in NO_POINTS:
        return None
    dims = sum(1 for c in doc["columns"] if c["role"] == "dimension")
    if dims == 0:  # one row; a point per measure
        return [[urls[0]] * len(doc["columns"]) for _trace in traces]
    if dims == 1 or kind == "scatter":
        return [urls for _trace in traces]
    res = parse_result(doc["columns"], doc["rows"])
    index = {key: i for i, key in enumerate(res.keys)}
    down = list(dict.fromkeys(k[0] for k in res.keys))
    across = list(dict.fromkeys(k[1] for k in res.keys))
    return [[urls[index[(d, a)]] if (d, a) in index else None for d in down]
            for a in across]


def chart(doc: dict[str, Any], app: str, params: dict[str, Any],
          drillable: bool) -> dict[str, Any]:
    """What a page shows of one report result: table, chart payload, row links."""
    key = doc["report"]["key"]
    urls = [drill_url(app, key, k, params) for k in doc["keys"]] if drillable else None
    return {"table": table(doc), "urls": urls, "truncated": doc.get("truncated"),
            "payload": {"figure": doc["figure"], "links": point_links(doc, urls)}}


def _viewer(ctx: Any, principal: Any) -> Viewer:
    return Viewer(principal, ctx.keyring)


def _run_report(s: Any, app: str, report: str, viewer: Viewer, spec: Any,
                values: dict[str, Any], problems: list[str]) -> tuple[Any, str | None, int]:
    """(chart or None, error message, status) of one run with the page's parameters."""
    if problems:
        return None, "；".join(problems), 422
    try:
        doc = service.data(s, app, report, viewer, values)
    except DomainError as exc:
        return None, exc.detail, exc.status
    except ChartError as exc:
        return None, _("图表无法绘制：{error}").format(error=exc), 422
    return chart(doc, app, values, spec.source.of == "records"), None, 200


def _may_export(s: Any, app: str, report: str, viewer: Viewer) -> bool:
    try:
        service.export_check(s, app, report, viewer)
    except DomainError:
        return False
    return True


# -- pages ---------------------------------------------------------------------------------


@router.get(REPORTS, response_class=HTMLResponse, openapi_extra=rule("app:read"))
def report_list(ctx: ContextDep, principal: PrincipalDep, request: Request,
                app: str) -> HTMLResponse:
    viewer = _viewer(ctx, principal)
    try:
        with ctx.db.read() as s:
            app_row = get_app(s, app)
            items = [service.spec_of(r) for r in service.visible_reports(s, app, viewer)]
            return _render(request, "reports/list.html", app=app_row, items=items)
    except DomainError as exc:
        return error_page(request, exc)


@router.get(REPORTS + "/{report}", response_class=HTMLResponse,
            openapi_extra=rule("app:read"))
def report_page(ctx: ContextDep, principal: PrincipalDep, request: Request, app: str,
                report: str) -> HTMLResponse:
    viewer = _viewer(ctx, principal)
    try:
        with ctx.db.read() as s:
            app_row = get_app(s, app)
            spec = service.spec_of(service.get_report(s, app, report))
            running.check_visible(spec, principal)
            inputs, values, problems = parameter_form(list(spec.parameters),
                                                      request.query_params, s)
            shown, error, status = _run_report(s, app, report, viewer, spec, values,
                                               problems)
            exports = None
            if shown is not None and _may_export(s, app, report, viewer):
                query = {"params": json.dumps(values, ensure_ascii=False)} if values else {}
                exports = {f: f"/api/v1/apps/{app}/reports/{report}/export?"
                              + urlencode({"format": f, **query}) for f in ("xlsx", "csv")}
    except DomainError as exc:
        return error_page(request, exc)
    return _render(request, "reports/report.html", status=status, app=app_row, spec=spec,
                   inputs=inputs, action=request.url.path, shown=shown, error=error,
                   exports=exports)


def _json_query(raw: str | None, name: str, kind: type) -> Any:
    if raw is None:
        return kind()
    try:
        value = json.loads(raw)
    except ValueError:
        value = None
    if not isinstance(value, kind):
        raise InvalidInput(_("{name}：链接有误（应为 JSON {kind}）").format(
            name=name, kind=kind.__name__), field=name)
    return value


@router.get(REPORTS + "/{report}/drill", response_class=HTMLResponse,
            openapi_extra=rule("app:read"))
def drill_page(ctx: ContextDep, principal: PrincipalDep, request: Request, app: str,
               report: str, keys: str = "[]", params: str | None = None,
               cursor: str | None = None) -> HTMLResponse:
    """The records behind one row of the report, 50 a page (``cursor``: the next)."""
    viewer = _viewer(ctx, principal)
    try:
        row_keys, values = _json_query(keys, "keys", list), _json_query(params, "params", dict)
        with ctx.db.read() as s:
            app_row = get_app(s, app)
            spec, res = service.result(s, app, report, viewer, values)
            pub, where = service.drill(s, app, report, viewer, row_keys, values)
            caller = Caller(principal, principal.access(app, pub.spec.key), viewer.keyring,
                            client_of(request))
            items, next_cursor = records.list_page(
                s, caller, pub, filter=where, sort=None, cursor=cursor, limit=DRILL_PAGE,
                fields=None, deleted="exclude")
            from frontend.report_words import explain, names_for  # "explain this number"

            shown = [res.rows[i] for i, k in enumerate(res.keys) if k == row_keys][:1]
            why = explain(spec, pub, row_keys, values, names_for(s),
                          shown[0][:len(row_keys)] if shown else None)
            choosable, fields = drill_columns(request, pub, caller.access)
            cells = _cells(s, caller, pub, fields, items)
    except DomainError as exc:
        return error_page(request, exc)
    dims = [c["label"] for c in res.columns if c["role"] == "dimension"]
    base = {"keys": keys} | ({"params": params} if params is not None else {})
    if request.query_params.getlist("col") or request.query_params.get("cols"):
        base["cols"] = ",".join(f.key for f in fields)
    return _render(request, "reports/drill.html", app=app_row, spec=spec, form=pub.spec,
                   why=why, keys=keys, params=params, choosable=choosable,
                   fields=fields, rows=cells,
                   row=list(zip(dims, shown[0], strict=False)) if shown else [],
                   first=f"{request.url.path}?{urlencode(base)}" if cursor else None,
                   next=f"{request.url.path}?{urlencode(base | {'cursor': next_cursor})}"
                   if next_cursor else None)


def drill_columns(request: Request, pub: Any, access: Any) -> tuple[list[Any], list[Any]]:
    """(the fields the viewer may show as columns, those shown): the ones ticked in the
    page's column chooser (``col``, or ``cols=a,b`` in links), else the form list's
    default columns — never every field squeezed into the page."""
    from frontend.workspace.pages_list import _column_ok, default_columns

    choosable = [f for f in pub.spec.fields if _column_ok(pub, access, f.key)]
    ok = {f.key for f in choosable}
    asked = request.query_params.getlist("col") or \
        (request.query_params.get("cols") or "").split(",")
    keys = [k for k in dict.fromkeys(asked) if k in ok] or default_columns(pub, access)
    return choosable, [f for k in keys if (f := pub.spec.field(k)) is not None]


def _cells(s: Any, caller: Caller, pub: Any, fields: list[Any],
           items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The records' cells as the record list shows them: linked records by their title
    (a link), people and departments by name, options by label, masked values masked."""
    from frontend.workspace.values import Shown

    shown = Shown.of(s, caller, pub, items)
    return [{"id": item["id"], "cells": [shown.text(f, item["data"].get(f.key))
                                         for f in fields]} for item in items]


@router.get(DASHBOARDS, response_class=HTMLResponse, openapi_extra=rule("app:read"))
def dashboard_list(ctx: ContextDep, principal: PrincipalDep, request: Request,
                   app: str) -> HTMLResponse:
    viewer = _viewer(ctx, principal)
    try:
        with ctx.db.read() as s:
            app_row = get_app(s, app)
            items = [service.dashboard_spec(r)
                     for r in service.visible_dashboards(s, app, viewer)]
            return _render(request, "reports/dashboards.html", app=app_row, items=items,
                           manage=principal.app_allows(app, "manage"))
    except DomainError as exc:
        return error_page(request, exc)


@router.get(DASHBOARDS + "/{dashboard}", response_class=HTMLResponse,
            openapi_extra=rule("app:read"))
def dashboard_page(ctx: ContextDep, principal: PrincipalDep, request: Request, app: str,
                   dashboard: str) -> HTMLResponse:
    viewer = _viewer(ctx, principal)
    error, status, widgets, manage = None, 200, [], False
    try:
        with ctx.db.read() as s:
            app_row = get_app(s, app)
            spec = service.dashboard_spec(service.get_dashboard(s, app, dashboard))
            service.check_dashboard_visible(spec, viewer)
            inputs, values, problems = parameter_form(list(spec.parameters),
                                                      request.query_params, s)
            if problems:
                error, status = "；".join(problems), 422
            else:  # each widget loads on its own (pages_dashboard_editor.widget_fragment)
                names = service.names(s, app, service.Report)
                # the widgets of this load share one read (frontend/dashboard_loads.py)
                load = urlencode({"load": new_load()})
                query = f"?{request.url.query}&{load}" if request.url.query else f"?{load}"
                widgets = [{"index": i, "report": w.report, "x": w.x, "y": w.y, "w": w.w,
                            "h": w.h, "order": w.order,
                            "title": w.title or names.get(w.report, w.report),
                            "src": f"{request.url.path}/widgets/{i}{query}"}
                           for i, w in enumerate(spec.ordered())]
            manage = principal.app_allows(app, "manage")
    except DomainError as exc:
        return error_page(request, exc)
    return _render(request, "reports/dashboard.html", status=status, app=app_row, spec=spec,
                   inputs=inputs, action=request.url.path, widgets=widgets, error=error,
                   manage=manage)


def _over_records(s: Any, app: str, report: str) -> bool:
    return service.spec_of(service.get_report(s, app, report)).source.of == "records"


NOT_SHARED = ("report_forbidden", "forbidden", "report_field_hidden")


def _widget(w: dict[str, Any], app: str, drillable: set[str]) -> dict[str, Any]:
    out = {k: w[k] for k in ("index", "report", "title", "x", "y", "w", "h")}
    if "error" in w:
        out["error"] = w["error"]["detail"]
        out["not_shared"] = w["error"]["code"] in NOT_SHARED
    else:
        out["chart"] = chart(w["data"], app, w.get("params") or {}, w["report"] in drillable)
    return out
