"""The report builder: ``/apps/{app}/reports/new`` and ``/apps/{app}/reports/{report}/edit``
(right ``app:manage``).

The page (``templates/reports/builder.html``, ``static/report_builder.js``) keeps the
working report spec in the browser and shows it as it goes:

- ``POST …/reports/builder/check`` validates the working spec exactly as saving does
  (``parse_report`` then ``service.check_source``) and says, for every chart type of
  ``CHARTS``, whether the spec's shape can draw it — by the engine's own rule
  (``service.check_chart``, which draws one made-up row), so an option greyed out here
  is one the API would refuse;
- ``POST …/reports/builder/preview`` runs the unsaved spec as the viewer (row scope,
  hidden and masked fields: ``running.run``) and returns the chart and table drawn as the
  report page draws them. A form with more than ``SAMPLE_ROWS`` records is previewed on
  its latest ``SAMPLE_ROWS`` records, and the fragment says so; administrators also see
  which SQL engine ran it (the form's projection, its JSON documents, or a table).

Saving is not done here: the page sends the spec to the integrator API
(``POST/PUT /api/v1/apps/{app}/reports…``), so it meets exactly the API's checks and its
messages. Filters are edited as rows (field / operator / value) that produce the store's
filter AST (``{"and": [{"field", "op", "value"}]}``) — the record list's builder posts
query parameters for a page, not an AST, so it is not embedded.
"""

from __future__ import annotations

import json
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, JSONResponse
from sqlalchemy import func, select

from engine_forms.forms import get_app, list_forms, published
from engine_reports import running, service
from engine_reports.charts import ChartError, build_figure
from engine_reports.compiler import Compiler, ReportError
from engine_reports.frames import audit_frame, flow_frame, form_frame
from engine_reports.lookups import with_lookups
from engine_reports.running import Viewer
from engine_reports.spec import AGGS, BUCKETS, CHARTS, FORMATS, ReportSpec, parse_report
from frontend.i18n import _
from frontend.pages_reports import _render, chart
from frontend.web import error_page, render
from platform_core.app import ContextDep
from platform_core.errors import DomainError
from platform_core.models import Record
from platform_core.security.directory import list_roles
from platform_core.security.guard import PrincipalDep, rule
from platform_core.store.query import QueryError, compile_filter

router = APIRouter(include_in_schema=False)
REPORTS = "/apps/{app}/reports"
SAMPLE_ROWS = 200_000


def chart_labels() -> dict[str, str]:
    return {"table": _("表格"), "bar": _("柱状图"), "stacked_bar": _("堆叠柱状图"),
            "line": _("折线图"), "area": _("面积图"), "pie": _("饼图"), "donut": _("环形图"),
            "funnel": _("漏斗图"), "kpi": _("指标卡"), "pivot": _("透视表"),
            "leaderboard": _("排行榜"), "scatter": _("散点图")}


def _labels() -> dict[str, Any]:
    return {
        "aggs": {"count": _("计数"), "count_distinct": _("去重计数"), "sum": _("求和"),
                 "avg": _("平均"), "min": _("最小"), "max": _("最大")},
        "buckets": {"day": _("按日"), "week": _("按周"), "month": _("按月"),
                    "quarter": _("按季度"), "year": _("按年")},
        "formats": {"": _("默认"), "integer": _("整数"), "number": _("数值"),
                    "money": _("元"), "wan": _("万元"), "percent": "%"},
        "ops": {"eq": _("等于"), "ne": _("不等于"), "gt": _("大于"), "gte": _("不小于"),
                "lt": _("小于"), "lte": _("不大于"), "contains": _("包含"),
                "in": _("是其中之一"), "not_in": _("不是其中之一"), "is_empty": _("为空"),
                "is_not_empty": _("不为空")},
        "params": {"date_range": _("期间"), "department": _("部门"), "owner": _("负责人"),
                   "value": _("取值")},
        "words": {"remove": _("删除"), "add_dim": _("把 {name} 加为维度"),
                  "max_dims": _("最多 3 个维度。"), "bucket": _("日期分组"),
                  "by_value": _("按原值"), "bins": _("分段（升序，逗号分隔）"),
                  "drop_here": _("把字段拖到这里"), "add_where": _("只统计满足条件的"),
                  "only_when": _("条件字段"), "op": _("运算"), "value": _("值"),
                  "key": _("标识"), "expr": _("计算公式"), "agg": _("汇总方式"),
                  "field": _("字段"), "label": _("名称"), "unit": _("单位"),
                  "kind": _("类型"), "default_field": _("（默认字段）"),
                  "no_sort": _("不排序"), "measure": _("度量"), "tag": _("标签"),
                  "when": _("条件"), "checking": _("正在更新预览…"),
                  "has_problems": _("报表还有问题，见下方。"), "up_to_date": _("预览已更新。"),
                  "failed": _("请求失败，请稍后重试。"), "custom_colors": _("自定义配色")},
    }


# -- colours ------------------------------------------------------------------------------

PALETTES = {
    "blue": ["#1d4ed8", "#3b82f6", "#60a5fa", "#93c5fd", "#1e3a8a", "#bfdbfe"],
    "warm": ["#c2410c", "#f97316", "#f59e0b", "#facc15", "#b91c1c", "#fb7185"],
    "green": ["#15803d", "#22c55e", "#84cc16", "#14b8a6", "#166534", "#86efac"],
    "grey": ["#111827", "#4b5563", "#6b7280", "#9ca3af", "#d1d5db", "#374151"],
}


def palettes() -> list[dict[str, Any]]:
    """The colour sets a chart can take (the spec keeps the colours themselves)."""
    names = {"blue": _("商务蓝"), "warm": _("暖色"), "green": _("绿色"),
             "grey": _("灰度（适合打印）")}
    return [{"key": "", "label": _("默认配色"), "colors": []}] + [
        {"key": key, "label": names[key], "colors": colors} for key, colors in PALETTES.items()]


# -- sources and their fields ------------------------------------------------------------


def _fields(frame: Any, access: Any) -> list[dict[str, Any]]:
    """The frame's fields the viewer may read: key, label, kind, how it is shown."""
    out = []
    for key, col in frame.columns.items():
        if access is not None and not access.readable(key):
            continue
        out.append({"key": key, "label": col.label, "kind": col.kind,
                    "display": col.display})
    return out


def sources(s: Any, app: str, principal: Any) -> list[dict[str, Any]]:
    """Every source the viewer may report on, with its fields."""
    from engine_flows.definitions import list_flows
    from engine_flows.runtime import spec_of as flow_spec_of

    out: list[dict[str, Any]] = []
    for form in list_forms(s, app):
        if form.published_version is None:
            continue
        pub = published(s, app, form.key)
        access = principal.access(app, form.key)
        if not access.allows("read"):
            continue
        out.append({"id": f"form:{form.key}", "label": _("表单：{name}").format(
            name=pub.spec.name), "source": {"form": form.key},
            "fields": _fields(with_lookups(s, app, form_frame(s, pub), pub, principal),
                              access)})
    kinds = {"instances": _("流程实例"), "tasks": _("流程任务"), "funnel": _("流程漏斗")}
    for flow in list_flows(s, app):
        if flow.published_version is None:
            continue
        spec = flow_spec_of(s, app, flow.key, flow.published_version)
        pub = published(s, app, spec.form)
        access = principal.access(app, pub.spec.key)
        if not access.allows("read"):
            continue
        for of, word in kinds.items():
            frame = flow_frame(pub, app, flow.key, "instances" if of == "funnel" else of,
                               spec)
            out.append({"id": f"{of}:{flow.key}", "label": f"{word}：{spec.name}",
                        "source": {"flow": flow.key, "of": of},
                        "fields": _fields(frame, access)})
    if principal.is_admin:
        out.append({"id": "audit", "label": _("审计日志"), "source": {"of": "audit"},
                    "fields": _fields(audit_frame(), None)})
    return out


# -- checking and previewing a working spec ----------------------------------------------


def _problems(exc: DomainError) -> list[str]:
    return list(getattr(exc, "problems", None) or exc.extra.get("problems") or [exc.detail])


def check(s: Any, app: str, raw: Any, viewer: Viewer) -> dict[str, Any]:
    """``{"problems": [...], "charts": {type: reason or None}}`` of a working spec: the
    problems saving would report, and which chart types its shape can draw."""
    doc = dict(raw) if isinstance(raw, dict) else {}
    doc["key"] = doc.get("key") or "draft"  # not chosen yet: saving will ask for them
    doc["name"] = doc.get("name") or "draft"
    charts: dict[str, str | None] = dict.fromkeys(CHARTS)
    try:
        spec = parse_report(doc)
    except DomainError as exc:
        return {"problems": _problems(exc), "charts": charts, "ok": False}
    problems: list[str] = []
    try:
        service.check_source(s, app, spec)
    except DomainError as exc:
        problems = _problems(exc)
    charts = chart_rules(s, app, spec, viewer)
    return {"problems": problems, "charts": charts, "ok": not problems}


def chart_rules(s: Any, app: str, spec: ReportSpec, viewer: Viewer) -> dict[str, str | None]:
    """For each chart type, why this spec's shape cannot draw it (None: it can), by the
    engine's check (``service.check_chart``)."""
    out: dict[str, str | None] = dict.fromkeys(CHARTS)
    if spec.source.of == "funnel":
        return out
    try:
        frame = running.open_source(s, app, spec, viewer).frame
        dialect = s.get_bind().dialect.name
        plan = Compiler(spec, frame, dialect).plan(compile_filter(None, frame.fields, dialect))
        columns = running.columns_of(plan)
    except (DomainError, QueryError):
        return out
    for kind in CHARTS:
        shaped = spec.model_copy(update={"chart": spec.chart.model_copy(update={"type": kind})})
        try:
            service.check_chart(shaped, columns)
        except ReportError as exc:
            out[kind] = str(exc.detail).removeprefix("chart: ")
    return out


def _sample(s: Any, app: str, spec: ReportSpec) -> tuple[ReportSpec, bool]:
    """A form with more than ``SAMPLE_ROWS`` records: the spec over its latest ones."""
    if spec.source.of != "records":
        return spec, False
    base = select(Record.id).where(Record.app == app, Record.form == spec.source.form,
                                   Record.deleted_at.is_(None))
    total = s.execute(select(func.count()).select_from(base.subquery())).scalar_one()
    if total <= SAMPLE_ROWS:
        return spec, False
    edge = s.execute(base.order_by(Record.id.desc()).offset(SAMPLE_ROWS - 1).limit(1)
                     ).scalar_one()
    cut = {"field": "id", "op": "gte", "value": edge}
    filters = {"and": [spec.filters, cut]} if spec.filters else {"and": [cut]}
    return spec.model_copy(update={"filters": filters}), True


def preview(s: Any, app: str, raw: Any, viewer: Viewer) -> dict[str, Any]:
    """The working spec checked as saving does, then run as the viewer: ``problems`` or
    ``shown`` (as ``pages_reports.chart`` lays it out), ``sampled``, ``engine``."""
    checked = check(s, app, raw, viewer)
    if checked["problems"]:
        return checked
    doc = dict(raw) | {"key": raw.get("key") or "draft", "name": raw.get("name") or "draft"}
    spec = parse_report(doc)
    run_spec, sampled = _sample(s, app, spec)
    try:
        res = running.run(s, app, run_spec, viewer)
        figure = build_figure(spec.chart.model_dump(exclude_none=True), res.columns,
                              res.rows)
    except DomainError as exc:
        return checked | {"problems": _problems(exc), "ok": False}
    except ChartError as exc:
        return checked | {"problems": [str(exc)], "ok": False}
    out = res.doc() | {"figure": figure, "report": {"key": spec.key, "chart":
                                                   spec.chart.type}}
    return checked | {"shown": chart(out, app, {}, False), "sampled": sampled,
                      "engine": res.engine}


async def _body(request: Request) -> Any:
    try:
        body = json.loads(await request.body() or b"null")
    except ValueError:
        body = None
    return body.get("spec") if isinstance(body, dict) and "spec" in body else body


# -- routes ------------------------------------------------------------------------------


def _page(ctx: Any, principal: Any, request: Request, app: str,
          report: str | None) -> HTMLResponse:
    try:
        with ctx.db.read() as s:
            app_row = get_app(s, app)
            spec: dict[str, Any] | None = None
            if report is not None:
                spec = dict(service.get_report(s, app, report).spec)
            data = {"app": app, "key": report, "spec": spec,
                    "sources": sources(s, app, principal),
                    "roles": [{"key": r.key, "name": r.name} for r in list_roles(s)],
                    "charts": chart_labels(), "labels": _labels(),
                    "palettes": palettes(),
                    "aggs": list(AGGS), "buckets": list(BUCKETS), "formats": list(FORMATS),
                    "admin": principal.is_admin}
    except DomainError as exc:
        return error_page(request, exc)
    return _render(request, "reports/builder.html", app=app_row, report=report, spec=spec,
                   data=data)


@router.get(REPORTS + "/new", response_class=HTMLResponse, openapi_extra=rule("app:manage"))
def new_page(ctx: ContextDep, principal: PrincipalDep, request: Request,
             app: str) -> HTMLResponse:
    return _page(ctx, principal, request, app, None)


@router.get(REPORTS + "/{report}/edit", response_class=HTMLResponse,
            openapi_extra=rule("app:manage"))
def edit_page(ctx: ContextDep, principal: PrincipalDep, request: Request, app: str,
              report: str) -> HTMLResponse:
    return _page(ctx, principal, request, app, report)


@router.post(REPORTS + "/builder/check", openapi_extra=rule("app:manage"))
async def check_route(ctx: ContextDep, principal: PrincipalDep, request: Request,
                      app: str) -> JSONResponse:
    raw = await _body(request)
    with ctx.db.read() as s:
        get_app(s, app)
        return JSONResponse(check(s, app, raw, Viewer(principal, ctx.keyring)))


@router.post(REPORTS + "/builder/preview", response_class=HTMLResponse,
             openapi_extra=rule("app:manage"))
async def preview_route(ctx: ContextDep, principal: PrincipalDep, request: Request,
                        app: str) -> HTMLResponse:
    raw = await _body(request)
    if not isinstance(raw, dict):
        raw = {}
    try:
        with ctx.db.read() as s:
            get_app(s, app)
            result = preview(s, app, raw, Viewer(principal, ctx.keyring))
    except DomainError as exc:
        result = {"problems": _problems(exc), "charts": {}, "ok": False}
    return render(request, "reports/_builder_preview.html", result=result,
                  admin=principal.is_admin, sample=SAMPLE_ROWS)
