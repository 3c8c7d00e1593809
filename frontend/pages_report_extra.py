"""Report pages beyond viewing: a report's and a dashboard's saved versions (a diff
against the current one in words, "restore" as a new version through the engine's
save), the segmentation page (each segment's tags, their rules, how many records hold
each now, the change between the last two runs, a link to the filtered list, "run
now"), and exports of a report (PDF) and a whole dashboard (Excel: a sheet per widget;
PDF: every widget's chart and table) — each report run as the viewer, audited.
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import urlencode

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response
from sqlalchemy import select

from engine_forms.forms import get_app
from engine_reports import service
from engine_reports.models import Dashboard, Report
from engine_reports.running import Viewer
from frontend.i18n import _
from frontend.pages_reports import parameter_form
from frontend.web import error_page, redirect, render
from platform_core.app import ContextDep
from platform_core.errors import DomainError, InvalidInput, NotFound
from platform_core.exporting import XLSX_TYPE
from platform_core.models import utcnow
from platform_core.security import audit
from platform_core.security.guard import PrincipalDep, client_of, rule
from platform_core.security.models import User

router = APIRouter(include_in_schema=False)
REPORT = "/apps/{app}/reports/{report}"
DASHBOARD = "/apps/{app}/dashboards/{dashboard}"
KINDS = {"report": (Report, service.save_report), "dashboard": (Dashboard,
                                                               service.save_dashboard)}


# -- versions ------------------------------------------------------------------------------

def section_names() -> dict[str, str]:
    return {"name": _("名称"), "description": _("说明"), "source": _("数据来源"),
            "filters": _("筛选"), "dimensions": _("维度"), "measures": _("指标"),
            "parameters": _("参数"), "sort": _("排序"), "limit": _("行数上限"),
            "chart": _("图表"), "roles": _("共享角色"), "schedule": _("定时发送"),
            "segment": _("客户分群"), "widgets": _("组件"), "key": _("标识")}


def _short(value: Any) -> str:
    if value is None:
        return "—"
    text = json.dumps(value, ensure_ascii=False, sort_keys=True)
    return text if len(text) <= 160 else text[:157] + "…"


ORDER = ("key", "name", "description", "source", "filters", "dimensions", "measures",
         "parameters", "sort", "limit", "chart", "widgets", "roles", "schedule", "segment")


def _order(key: str) -> tuple[int, str]:
    return (ORDER.index(key) if key in ORDER else len(ORDER), key)


def diff(old: Any, new: Any, path: str = "") -> list[dict[str, str]]:
    """What differs between two specs, as JSON paths (``measures[0].agg``) with the value
    before and after (lists of different length: the whole list)."""
    if isinstance(old, dict) and isinstance(new, dict):
        out = []
        for k in sorted(set(old) | set(new), key=_order):  # JSONB keeps no key order
            out += diff(old.get(k), new.get(k), f"{path}.{k}" if path else k)
        return out
    if isinstance(old, list) and isinstance(new, list) and len(old) == len(new):
        out = []
        for i, (a, b) in enumerate(zip(old, new, strict=True)):
            out += diff(a, b, f"{path}[{i}]")
        return out
    if old == new:
        return []
    return [{"path": path, "before": _short(old), "after": _short(new)}]


def _sections(changes: list[dict[str, str]]) -> list[str]:
    names = section_names()
    tops = dict.fromkeys(c["path"].split(".")[0].split("[")[0] for c in changes)
    return [names.get(t, t) for t in tops]


def _versions_page(ctx: Any, request: Request, app: str, kind: str, key: str
                   ) -> HTMLResponse:
    try:
        with ctx.db.read() as s:
            app_row = get_app(s, app)
            row = (service.get_report if kind == "report" else service.get_dashboard)(
                s, app, key)
            items = service.versions(s, app, kind, key)
            who = dict(s.execute(select(User.id, User.display_name).where(
                User.id.in_({v.saved_by for v in items if v.saved_by}))).all())
    except DomainError as exc:
        return error_page(request, exc)
    compare = request.query_params.get("compare", "")
    chosen = next((v for v in items if str(v.version) == compare), None)
    if chosen is None:  # by default: the version before the current one
        chosen = items[-2] if len(items) > 1 else None
    changes = diff(chosen.spec, row.spec) if chosen is not None else []
    base = f"/apps/{app}/{kind}s/{key}"
    return render(request, "reports/versions.html", app=app_row, kind=kind, key=key,
                  name=row.spec.get("name") or key, current=row.version, base=base,
                  items=[{"version": v.version, "at": local(v.saved_at), "by": who.get(
                      v.saved_by, "—" if v.saved_by is None else f"#{v.saved_by}")}
                      for v in reversed(items)],
                  chosen=chosen.version if chosen is not None else None, changes=changes,
                  sections=_sections(changes),
                  restored=request.query_params.get("restored"))


def _restore(ctx: Any, principal: Any, request: Request, app: str, kind: str, key: str,
             version: int) -> Any:
    """Save version ``version`` again as the newest one (the engine's checks apply: a
    version over a field since removed is refused with its reason)."""
    try:
        with ctx.db.write() as s:
            old = next((v for v in service.versions(s, app, kind, key)
                        if v.version == version), None)
            if old is None:
                raise NotFound(_("没有第 {n} 版").format(n=version))
            row = KINDS[kind][1](s, app=app, raw=old.spec, key=key,
                                 actor_id=principal.user_id)
            audit.append(s, actor=principal.actor, action=f"{kind}.restore",
                         target=f"{app}.{kind}.{key}", client=client_of(request),
                         detail={"from_version": version, "version": row.version})
    except DomainError as exc:
        return error_page(request, exc)
    return redirect(f"/apps/{app}/{kind}s/{key}/versions?" + urlencode(
        {"restored": version}))


@router.get(REPORT + "/versions", response_class=HTMLResponse,
            openapi_extra=rule("app:manage"))
def report_versions(ctx: ContextDep, request: Request, app: str,
                    report: str) -> HTMLResponse:
    return _versions_page(ctx, request, app, "report", report)


@router.post(REPORT + "/versions/{version}/restore", openapi_extra=rule("app:manage"))
def report_restore(ctx: ContextDep, principal: PrincipalDep, request: Request, app: str,
                   report: str, version: int) -> Any:
    return _restore(ctx, principal, request, app, "report", report, version)


@router.get(DASHBOARD + "/versions", response_class=HTMLResponse,
            openapi_extra=rule("app:manage"))
def dashboard_versions(ctx: ContextDep, request: Request, app: str,
                       dashboard: str) -> HTMLResponse:
    return _versions_page(ctx, request, app, "dashboard", dashboard)


@router.post(DASHBOARD + "/versions/{version}/restore", openapi_extra=rule("app:manage"))
def dashboard_restore(ctx: ContextDep, principal: PrincipalDep, request: Request, app: str,
                      dashboard: str, version: int) -> Any:
    return _restore(ctx, principal, request, app, "dashboard", dashboard, version)


# -- segmentation --------------------------------------------------------------------------

def _runs(s: Any, app: str, report: str) -> list[dict[str, Any]]:
    """The last two runs' counts per tag, newest first (from their audit entries)."""
    from platform_core.security.models import AuditEntry

    rows = s.execute(select(AuditEntry.at, AuditEntry.detail).where(
        AuditEntry.action == "report.segments",
        AuditEntry.target == f"{app}.report.{report}").order_by(AuditEntry.id.desc())
        .limit(2)).all()
    return [{"at": at, "counts": (detail or {}).get("holders") or (detail or {}).get(
        "counts") or {}} for at, detail in rows]


def every_words() -> dict[str, str]:
    return {"day": _("天"), "monday": _("周一"), "tuesday": _("周二"), "wednesday": _("周三"),
            "thursday": _("周四"), "friday": _("周五"), "saturday": _("周六"),
            "sunday": _("周日")}


def local(at: Any) -> Any:
    """A stored UTC time in China time (as the schedule reads its ``at``)."""
    from datetime import UTC
    from zoneinfo import ZoneInfo

    if at.tzinfo is None:
        at = at.replace(tzinfo=UTC)
    return at.astimezone(ZoneInfo("Asia/Shanghai"))


def segment_filter(field: Any, value: str) -> dict[str, Any]:
    return {"field": field.key, "op": "eq", "value": value}


def _segments(s: Any, principal: Any, keyring: Any, app: str) -> list[dict[str, Any]]:
    from engine_forms import service as records
    from engine_forms.service import Caller
    from engine_reports.segments import plan

    out = []
    for row in service.list_reports(s, app):
        spec = service.spec_of(row)
        if spec.segment is None:
            continue
        entry: dict[str, Any] = {"key": spec.key, "name": spec.name, "tags": [],
                                 "every": every_words().get(spec.segment.every,
                                                            spec.segment.every),
                                 "at": spec.segment.at}
        try:
            seg = plan(s, app, spec)
        except DomainError as exc:
            entry["error"] = exc.detail
            out.append(entry)
            continue
        target, field = seg.target, seg.field
        entry |= {"form": target.spec.name, "field": field.label or field.key,
                  "multiple": seg.multiple}
        labels = {o["value"]: o.get("label") or o["value"]
                  for o in field.config.get("options", [])}
        caller = Caller(principal, principal.access(app, target.spec.key), keyring)
        runs = _runs(s, app, spec.key)
        last = runs[0]["counts"] if runs else {}
        before = runs[1]["counts"] if len(runs) > 1 else None
        entry["last_run"] = local(runs[0]["at"]) if runs else None
        for rule_ in spec.segment.rules:
            where = segment_filter(field, rule_.value)
            count: int | None = None
            if field.type == "select":  # a multiselect is not filterable in SQL
                count = records.count(s, caller, target, filter=where)
            change = None
            if before is not None and rule_.value in last:
                change = last[rule_.value] - before.get(rule_.value, 0)
            entry["tags"].append({
                "value": rule_.value, "label": labels.get(rule_.value, rule_.value),
                "when": rule_.when, "count": count, "change": change,
                "at_last_run": last.get(rule_.value),
                "list": None if count is None else f"/apps/{app}/forms/{target.spec.key}?"
                + urlencode({"filter": json.dumps(where, ensure_ascii=False)})})
        out.append(entry)
    return out


def _holders(s: Any, principal: Any, keyring: Any, app: str, spec: Any) -> dict[str, int]:
    """How many records hold each tag now (a select field: the first rule that held;
    a multiselect is not countable in SQL: its rules' matches are kept instead)."""
    from engine_forms import service as records
    from engine_forms.service import Caller
    from engine_reports.segments import plan

    seg = plan(s, app, spec)
    if seg.field.type != "select":
        return {}
    caller = Caller(principal, principal.access(app, seg.target.spec.key), keyring)
    return {r.value: records.count(s, caller, seg.target,
                                   filter=segment_filter(seg.field, r.value))
            for r in spec.segment.rules}


@router.get("/apps/{app}/segments", response_class=HTMLResponse,
            openapi_extra=rule("app:manage"))
def segments_page(ctx: ContextDep, principal: PrincipalDep, request: Request,
                  app: str) -> HTMLResponse:
    try:
        with ctx.db.read() as s:
            app_row = get_app(s, app)
            items = _segments(s, principal, getattr(ctx, "keyring", None), app)
    except DomainError as exc:
        return error_page(request, exc)
    done = request.query_params.get("done")
    return render(request, "reports/segments.html", app=app_row, items=items,
                  done=done, changed=request.query_params.get("changed"))


@router.post("/apps/{app}/segments/{report}/run", openapi_extra=rule("app:manage"))
def segments_run(ctx: ContextDep, principal: PrincipalDep, request: Request, app: str,
                 report: str) -> Any:
    """Recompute now (as ``POST /api/v1/…/segments/run``: one transaction, audited with
    the counts per tag)."""
    from engine_reports.segments import recompute

    try:
        with ctx.db.write() as s:
            spec = service.spec_of(service.get_report(s, app, report))
            if spec.segment is None:
                raise InvalidInput(_("报表 {key} 没有客户分群").format(key=report))
            done = recompute(s, app, spec, keyring=getattr(ctx, "keyring", None))
            detail = {k: done[k] for k in ("records", "changed", "counts")}
            detail["holders"] = _holders(s, principal, getattr(ctx, "keyring", None), app,
                                         spec)
            audit.append(s, actor=principal.actor, action="report.segments",
                         target=f"{app}.report.{report}", client=client_of(request),
                         detail=detail)
    except DomainError as exc:
        return error_page(request, exc)
    return redirect(f"/apps/{app}/segments?" + urlencode(
        {"done": report, "changed": done["changed"]}))


# -- exports -------------------------------------------------------------------------------

def _widget_doc(title: str, doc: dict[str, Any], chart: str | None = None
                ) -> dict[str, Any]:
    return {"title": title, "columns": doc["columns"], "rows": doc["rows"],
            "chart": chart or doc["report"]["chart"], "orientation": None}


def _download(body: bytes, media: str, name: str) -> Response:
    return Response(body, media_type=media,
                    headers={"Content-Disposition": f'attachment; filename="{name}"'})


@router.get(REPORT + "/export.pdf", openapi_extra=rule("app:export"))
def report_pdf(ctx: ContextDep, principal: PrincipalDep, request: Request, app: str,
               report: str) -> Any:
    """The report (its chart and table, with the page's parameters) as a PDF."""
    from engine_reports.export_pdf import document

    viewer = Viewer(principal, ctx.keyring)
    try:
        with ctx.db.write() as s:  # the audit entry commits with the export
            spec = service.spec_of(service.get_report(s, app, report))
            _inputs, values, problems = parameter_form(list(spec.parameters),
                                                       request.query_params, s)
            if problems:
                raise InvalidInput("；".join(problems))
            service.export_check(s, app, report, viewer)
            doc = service.data(s, app, report, viewer, values)
            w = _widget_doc(spec.chart.title or spec.name, doc)
            w["orientation"] = spec.chart.orientation
            body = document(spec.name, _subtitle(principal, values), [w])
            audit.append(s, actor=principal.actor, action="report.export",
                         target=f"{app}.report.{report}", client=client_of(request),
                         detail={"rows": len(doc["rows"]), "format": "pdf",
                                 "params": values})
    except DomainError as exc:
        return error_page(request, exc)
    return _download(body, "application/pdf", f"{app}-{report}-{utcnow():%Y%m%d-%H%M}.pdf")


def _subtitle(principal: Any, values: dict[str, Any]) -> str:
    from zoneinfo import ZoneInfo

    text = _("导出人：{who} · 导出时间：{at}").format(
        who=principal.actor.name,
        at=f"{utcnow().astimezone(ZoneInfo('Asia/Shanghai')):%Y-%m-%d %H:%M}")
    if values:
        text += " · " + json.dumps(values, ensure_ascii=False)
    return text


def _dashboard_widgets(s: Any, app: str, dashboard: str, viewer: Viewer,
                       values: dict[str, Any]) -> tuple[Any, list[dict[str, Any]]]:
    """Every widget as its page shows it to the viewer; refused (403) when a widget's
    data may not be exported by the viewer."""
    spec = service.dashboard_spec(service.get_dashboard(s, app, dashboard))
    doc = service.dashboard_data(s, app, dashboard, viewer, values)
    out = []
    for w in doc["widgets"]:
        if "error" in w:
            out.append({"title": w["title"] or w["report"], "error": w["error"]["detail"]})
            continue
        service.export_check(s, app, w["report"], viewer)
        report = service.spec_of(service.get_report(s, app, w["report"]))
        entry = _widget_doc(w["title"], w["data"])
        entry["orientation"] = report.chart.orientation
        out.append(entry)
    return spec, out


def _dashboard_export(ctx: Any, principal: Any, request: Request, app: str,
                      dashboard: str, fmt: str) -> Any:
    from engine_reports.export_pdf import document
    from engine_reports.export_xlsx import workbook

    viewer = Viewer(principal, ctx.keyring)
    try:
        with ctx.db.write() as s:
            dash = service.dashboard_spec(service.get_dashboard(s, app, dashboard))
            _inputs, values, problems = parameter_form(list(dash.parameters),
                                                       request.query_params, s)
            if problems:
                raise InvalidInput("；".join(problems))
            spec, widgets = _dashboard_widgets(s, app, dashboard, viewer, values)
            if fmt == "xlsx":
                body, rows = workbook(widgets)
            else:
                body = document(spec.name, _subtitle(principal, values), widgets)
                rows = sum(len(w.get("rows", [])) for w in widgets)
            audit.append(s, actor=principal.actor, action="dashboard.export",
                         target=f"{app}.dashboard.{dashboard}", client=client_of(request),
                         detail={"rows": rows, "format": fmt, "params": values,
                                 "widgets": len(widgets)})
    except DomainError as exc:
        return error_page(request, exc)
    media = XLSX_TYPE if fmt == "xlsx" else "application/pdf"
    return _download(body, media, f"{app}-{dashboard}-{utcnow():%Y%m%d-%H%M}.{fmt}")


@router.get(DASHBOARD + "/export.xlsx", openapi_extra=rule("app:export"))
def dashboard_xlsx(ctx: ContextDep, principal: PrincipalDep, request: Request, app: str,
                   dashboard: str) -> Any:
    """The dashboard as a workbook: a sheet per widget, the page's numbers."""
    return _dashboard_export(ctx, principal, request, app, dashboard, "xlsx")


@router.get(DASHBOARD + "/export.pdf", openapi_extra=rule("app:export"))
def dashboard_pdf(ctx: ContextDep, principal: PrincipalDep, request: Request, app: str,
                  dashboard: str) -> Any:
    """The dashboard for a meeting: every widget's chart and table."""
    return _dashboard_export(ctx, principal, request, app, dashboard, "pdf")
