"""A flow's live overlay, the records waiting at one of its steps, and its drawing as a
file.

- ``/apps/{app}/flows/{flow}/overlay`` (flow managers): the published flow drawn by
  ``frontend.flowchart`` with the numbers of ``engine_flows.design.overlay`` on each
  step (waiting now, overdue, median time, reached as the funnel report counts), the
  same numbers in a table under the drawing, each linking to the list of the records
  behind it; a version picker when instances run on more than one version.
- ``/apps/{app}/flows/{flow}/at/{node}``: the records whose instance waits at that step
  now (``?overdue=1``: with a task past due), in the viewer's read scope, paged.
- ``/apps/{app}/flows/{flow}/diagram.svg``: the drawing as a download (the published
  version, ``?draft=1`` the draft, ``?version=N`` an older one).

Everything is read in one read transaction; nothing here writes.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any
from urllib.parse import quote

from fastapi import APIRouter, Path, Query, Request
from fastapi.responses import HTMLResponse, Response
from sqlalchemy import and_, exists, func, select
from sqlalchemy.orm import Session

from engine_flows import design
from engine_flows.definitions import get_flow, version_row
from engine_flows.models import FlowRun, FlowStep, Task
from engine_forms import service
from engine_forms.forms import published
from engine_forms.service import Caller
from frontend import flowchart
from frontend.i18n import _
from frontend.web import render
from platform_core.app import ContextDep
from platform_core.errors import DomainError, NotFound
from platform_core.models import Record, utcnow
from platform_core.security.guard import PrincipalDep, rule
from platform_core.security.models import User
from platform_core.security.principal import row_filter
from platform_core.store.query import compile_filter

router = APIRouter(include_in_schema=False)
FLOW = "/apps/{app}/flows/{flow}"
PAGE_SIZE = 50
Version = Annotated[int | None, Query(ge=1, le=2**31 - 1)]


def _spec(s: Session, app: str, flow: str, version: int | None, *, draft: bool = False
          ) -> tuple[dict[str, Any], int | None]:
    """The raw spec to draw and its version: the draft, a version, else the published."""
    row = get_flow(s, app, flow)
    if draft:
        return dict(row.draft), None
    number = version or row.published_version
    if number is None:
        raise NotFound(_("流程“{name}”还没有发布").format(name=row.draft.get("name") or flow),
                       flow=flow)
    return dict(version_row(s, app, flow, number).spec), number


def _running_versions(s: Session, app: str, flow: str) -> list[tuple[int, int]]:
    """(version, running instances) of every version instances still run on."""
    return [(int(v), int(n)) for v, n in s.execute(
        select(FlowRun.version, func.count()).where(
            FlowRun.app == app, FlowRun.flow == flow, FlowRun.status == "running")
        .group_by(FlowRun.version).order_by(FlowRun.version)).all()]


def _link(app: str, flow: str, version: int | None) -> Any:
    base = f"/apps/{quote(app)}/flows/{quote(flow)}/at/"
    tail = f"&version={version}" if version else ""

    def link(node: str, kind: str) -> str | None:
        if kind == "waiting":
            return f"{base}{quote(node)}?overdue=0{tail}"
        if kind == "overdue":
            return f"{base}{quote(node)}?overdue=1{tail}"
        return None
    return link


@router.get(FLOW + "/overlay", response_class=HTMLResponse, openapi_extra=rule("app:manage"))
def overlay_page(ctx: ContextDep, request: Request, app: str, flow: str,
                 version: Annotated[str, Query(max_length=9, pattern=r"^[0-9]*$")] = ""
                 ) -> HTMLResponse:
    """``version`` may be empty: the picker's "all versions"."""
    picked = int(version) if version and int(version) > 0 else None
    with ctx.db.read() as s:
        running = _running_versions(s, app, flow)
        spec, number = _spec(s, app, flow, picked)
        numbers = design.overlay(s, app, flow, utcnow(), picked)
    stats = {n["node"]: n for n in numbers["nodes"]}
    link = _link(app, flow, picked)
    drawing = flowchart.svg(spec, overlay=stats, link=link, inline_style=False)
    rows = [dict(n, kind=flowchart.KINDS.get(n.get("type", ""), ""),
                 median=flowchart.duration(n.get("median_seconds")),
                 waiting_url=link(n["node"], "waiting"),
                 overdue_url=link(n["node"], "overdue"))
            for n in numbers["nodes"]]
    return render(request, "flows/overlay.html", app=app, flow=flow,
                  title=str(spec.get("name") or flow), picked=picked, shown=number,
                  running=running, drawing=drawing, rows=rows,
                  total=sum(n for _v, n in running))


# -- the records waiting at a step -------------------------------------------------------


def _waiting(s: Session, principal: Any, app: str, flow: str, form: str, node: str, *,
             overdue: bool, version: int | None, now: datetime) -> Any:
    """The (step, run, record, entered) rows of running instances active at ``node``,
    over records in the viewer's read scope, oldest first."""
    pub = published(s, app, form)
    scope = row_filter(s, principal, principal.access(app, form), "read")
    where = [FlowRun.app == app, FlowRun.flow == flow, FlowRun.status == "running",
             FlowStep.status == "active", FlowStep.node_id == node,
             Record.deleted_at.is_(None),
             compile_filter(scope, pub.fields, s.get_bind().dialect.name)]
    if version:
        where.append(FlowRun.version == version)
    if overdue:
        where.append(exists().where(Task.step_id == FlowStep.id, Task.status == "open",
                                    Task.due_at < now))
    return (select(FlowStep.id.label("step"), FlowRun.id.label("run"),
                   Record.id.label("record"), FlowStep.entered_at.label("entered"))
            .join(FlowRun, FlowRun.id == FlowStep.run_id)
            .join(Record, Record.id == FlowRun.record_id)
            .where(and_(*where)))


def _tasks(s: Session, step_ids: list[int], now: datetime) -> dict[int, dict[str, Any]]:
    """Per step: who holds its open tasks (or 待认领), the earliest due, overdue or not."""
    out: dict[int, dict[str, Any]] = {}
    if not step_ids:
        return out
    rows = s.execute(select(Task.step_id, Task.due_at, User.display_name)
                     .outerjoin(User, User.id == Task.assignee_id)
                     .where(Task.step_id.in_(step_ids), Task.status == "open")
                     .order_by(Task.step_id, Task.id)).all()
    for step, due, name in rows:
        item = out.setdefault(step, {"who": [], "due": None})
        who = name or _("待认领")
        if who not in item["who"]:
            item["who"].append(who)
        if due is not None and (item["due"] is None or due < item["due"]):
            item["due"] = due
    for item in out.values():
        due = item["due"]
        item["overdue"] = due is not None and _aware(due) < now
    return out


def _aware(moment: datetime) -> datetime:
    from datetime import UTC

    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


@router.get(FLOW + "/at/{node}", response_class=HTMLResponse, openapi_extra=rule("app:read"))
def at_node(ctx: ContextDep, principal: PrincipalDep, request: Request, app: str, flow: str,
            node: Annotated[str, Path(max_length=64)],
            overdue: Annotated[int, Query(ge=0, le=1)] = 0, version: Version = None,
            page: Annotated[int, Query(ge=1, le=100_000)] = 1) -> HTMLResponse:
    now = utcnow()
    with ctx.db.read() as s:
        spec, _number = _spec(s, app, flow, version)
        names = {n.get("id"): str(n.get("name") or n.get("id")) for n in spec["nodes"]}
        if node not in names:
            raise NotFound(_("流程里没有这个步骤"), node=node)
        form = str(spec["form"])
        rows = _waiting(s, principal, app, flow, form, node, overdue=bool(overdue),
                        version=version, now=now).subquery()
        total = s.execute(select(func.count()).select_from(rows)).scalar_one()
        found = s.execute(select(rows).order_by(rows.c.entered, rows.c.step)
                          .offset((page - 1) * PAGE_SIZE).limit(PAGE_SIZE)).all()
        caller = Caller(principal, principal.access(app, form), ctx.keyring)
        try:
            titles = service.titles(s, caller, published(s, app, form),
                                    {r.record for r in found})
        except DomainError:
            titles = {}
        held = _tasks(s, [r.step for r in found], now)
    items = [{"record": r.record, "title": titles.get(r.record, f"#{r.record}"),
              "url": f"/apps/{app}/forms/{form}/records/{r.record}",
              "since": r.entered, **held.get(r.step, {"who": [], "due": None,
                                                      "overdue": False})}
             for r in found]
    pages = max(1, -(-total // PAGE_SIZE))
    base = f"/apps/{quote(app)}/flows/{quote(flow)}/at/{quote(node)}?overdue={overdue}" + (
        f"&version={version}" if version else "")
    return render(request, "flows/at_node.html", app=app, flow=flow, node=node,
                  node_name=names[node], flow_name=str(spec.get("name") or flow),
                  overdue=bool(overdue), picked=version, items=items, total=total,
                  page=page, pages=pages, base=base)


# -- the drawing as a file ---------------------------------------------------------------


@router.get(FLOW + "/diagram.svg", openapi_extra=rule("app:manage"))
def diagram(ctx: ContextDep, app: str, flow: str, draft: Annotated[int, Query(ge=0, le=1)] = 0,
            version: Version = None) -> Response:
    """The flow as an SVG file to download (it opens in any browser and prints crisp)."""
    with ctx.db.read() as s:
        spec, _number = _spec(s, app, flow, version, draft=bool(draft))
    name = str(spec.get("name") or flow)
    body = '<?xml version="1.0" encoding="UTF-8"?>\n' + flowchart.svg(spec, title=name)
    return Response(body, media_type="image/svg+xml", headers={
        "Content-Disposition": f"attachment; filename=\"{quote(flow)}.svg\"; "
                               f"filename*=UTF-8''{quote(name + '.svg')}",
        "Cache-Control": "no-store"})
