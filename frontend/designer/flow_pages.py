"""The flow designer's pages: the canvas for an existing flow, the same canvas for a new
flow over a form, and the two things it asks the server while the admin draws — an
automatic layout of the working spec, and an edge condition checked against the form.

Like the form designer, it saves, checks, previews, publishes and migrates through the
integrators' API (``PUT /api/v1/apps/{app}/flows/{flow}``, ``…/validate``,
``…/publish-preview``, ``…/publish``, ``…/migrations``): a flow drawn here meets exactly
the engine checks a flow sent by a script meets. These routes write nothing.
"""

from __future__ import annotations

import json
from typing import Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse, JSONResponse
from sqlalchemy import select
from sqlalchemy.orm import Session

from engine_flows.definitions import get_flow, list_flows
from engine_flows.node_options import node_options
from engine_forms.expr import schema_of
from engine_forms.forms import get_app, list_forms, published
from frontend import flowchart
from frontend.designer.flow_strings import flow_strings
from frontend.designer.pages import _expr_message, _json, _roles
from frontend.i18n import _
from frontend.web import render
from frontend.workspace.steps import outcome_labels
from frontend.workspace.values import label_of
from platform_core.app import ContextDep
from platform_core.errors import DomainError, InvalidInput
from platform_core.expressions import Formula
from platform_core.expressions.errors import ExpressionError
from platform_core.security.guard import rule
from platform_core.security.models import User

router = APIRouter(include_in_schema=False)
FLOWS = "/apps/{app}/flows"
MAX_USERS = 500


def _form_fields(s: Session, app: str, form: str) -> list[dict[str, str]]:
    try:
        spec = published(s, app, form).spec
    except DomainError:
        return []
    return [{"key": f.key, "label": label_of(f), "type": f.type} for f in spec.fields]


def _forms(s: Session, app: str) -> list[dict[str, str]]:
    return [{"key": r.key, "name": str(r.draft.get("name") or r.key)}
            for r in list_forms(s, app) if r.published_version is not None]


def _users(s: Session) -> list[dict[str, str]]:
    rows = s.execute(select(User.username, User.display_name).where(User.status == "active")
                     .order_by(User.username).limit(MAX_USERS)).all()
    return [{"key": r.username, "name": r.display_name} for r in rows]


def _page(request: Request, s: Session, app: str, *, draft: dict[str, Any],
          flow: str | None, version: int | None) -> HTMLResponse:
    form = str(draft.get("form") or "")
    data = {"app": app, "flow": flow, "draft": draft, "version": version,
            "positions": flowchart.layout(draft), "sizes": flowchart.NODE_SIZE,
            "fields": _form_fields(s, app, form) if form else [], "forms": _forms(s, app),
            "roles": _roles(s), "users": _users(s), "options": node_options(),
            "outcomes": outcome_labels(),
            "flows": [{"key": f.key, "name": str(f.draft.get("name") or f.key),
                       "form": f.draft.get("form")} for f in list_flows(s, app)
                      if f.key != flow]}
    title = str(draft.get("name") or _("新流程"))
    return render(request, "designer/flow.html", app=app, flow=flow, title=title,
                  data=_json(data), strings=_json(flow_strings()))


@router.get(FLOWS, response_class=HTMLResponse, openapi_extra=rule("app:manage"))
def flows_page(ctx: ContextDep, request: Request, app: str) -> HTMLResponse:
    """The app's flows (each designed here, its running state one click away) and a new
    flow over each published form."""
    with ctx.db.read() as s:
        get_app(s, app)
        flows = [{"key": f.key, "name": str(f.draft.get("name") or f.key),
                  "form": f.draft.get("form"), "version": f.published_version}
                 for f in list_flows(s, app)]
        return render(request, "designer/flows.html", app=app, flows=flows,
                      forms=_forms(s, app))


@router.get(FLOWS + "/{flow}/design", response_class=HTMLResponse,
            openapi_extra=rule("app:manage"))
def design(ctx: ContextDep, request: Request, app: str, flow: str) -> HTMLResponse:
    with ctx.db.read() as s:
        row = get_flow(s, app, flow)
        return _page(request, s, app, draft=row.draft, flow=flow,
                     version=row.published_version)


@router.get(FLOWS + "/new", response_class=HTMLResponse, openapi_extra=rule("app:manage"))
def new_flow(ctx: ContextDep, request: Request, app: str,
             form: str = Query(default="", max_length=64)) -> HTMLResponse:
    """A new flow over ``form``: a start joined to an end, saved (created) on first save."""
    with ctx.db.read() as s:
        get_app(s, app)
        if form:
            published(s, app, form)  # 404 for a form that is not there (yet)
        draft = {"key": "", "name": "", "form": form,
                 "nodes": [{"id": "start", "type": "start"},
                           {"id": "end", "type": "end"}],
                 "edges": [{"from": "start", "to": "end"}]}
        return _page(request, s, app, draft=draft, flow=None, version=None)


async def _spec(request: Request) -> dict[str, Any]:
    try:
        body = json.loads(await request.body())
    except ValueError:
        raise InvalidInput("the request body is not JSON") from None
    if not isinstance(body, dict) or not isinstance(body.get("spec"), dict):
        raise InvalidInput("send {\"spec\": <the flow definition>, …}")
    return body


@router.post(FLOWS + "/design/layout", openapi_extra=rule("app:manage"))
async def auto_layout(request: Request, app: str) -> JSONResponse:  # noqa: ARG001
    """Positions for every node of the working spec, its own ``layout`` ignored (the
    server's layered layout, as the exported drawing has it)."""
    spec = (await _spec(request))["spec"]
    return JSONResponse({"positions": flowchart.layout({**spec, "layout": {}})})


@router.post(FLOWS + "/design/check", openapi_extra=rule("app:manage"))
async def check_condition(ctx: ContextDep, request: Request, app: str) -> JSONResponse:
    """An edge condition checked against the flow's form as publishing checks it: its
    type (a condition must be TRUE/FALSE), or the message and column of the mistake."""
    body = await _spec(request)
    text = str(body.get("text") or "").strip()
    if not text:
        raise InvalidInput(_("先写一个条件"), field="text")
    form = str(body["spec"].get("form") or "")
    with ctx.db.read() as s:
        pub = published(s, app, form)
        kinds = {f.key: pub.compiled.kinds[f.key] for f in pub.spec.fields
                 if f.type == "formula" and f.key in pub.compiled.kinds}
        try:
            formula = Formula.build(text, schema_of(pub.spec, kinds, app=app))
        except ExpressionError as exc:
            return JSONResponse({"ok": False, "column": exc.column,
                                 "message": _expr_message(exc), "type": None})
    kind = formula.type.name
    if kind not in ("boolean", "blank"):
        return JSONResponse({"ok": False, "column": None, "type": kind,
                             "message": _("条件的结果是 {type}，应为 是/否").format(type=kind)})
    return JSONResponse({"ok": True, "type": kind, "message": "", "column": None})
