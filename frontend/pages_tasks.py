"""The task inbox (我的待办): one's open, overdue and done tasks, and a task page to work
one — the record as the step shows it, the step's editable fields, the outcome buttons
(submit, approve, reject …) and a comment. One submit is one transaction through the
same services as the API; a refusal re-renders the page with the message and what was
typed."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, Response

from engine_flows import handover, inbox, tasks
from engine_flows.tasks import Who
from engine_forms.forms import published
from frontend.web import redirect, render
from platform_core.app import ContextDep, IdPath
from platform_core.errors import DomainError
from platform_core.models import utcnow
from platform_core.security.guard import PrincipalDep, rule

router = APIRouter(include_in_schema=False)
PAGE = "/tasks"
TABS = (("open", "待办 Open"), ("overdue", "已超时 Overdue"), ("done", "已办 Done"))
INPUT_TYPES = {"number": "number", "money": "text", "percent": "number", "date": "date",
               "datetime": "datetime-local", "email": "email", "phone": "tel",
               "user": "number"}


def _who(ctx: ContextDep, principal: PrincipalDep) -> Who:
    return Who(principal, ctx.keyring, utcnow())


@router.get(PAGE, response_class=HTMLResponse, openapi_extra=rule("user"))
def task_list(ctx: ContextDep, principal: PrincipalDep, request: Request,
              status: str = "open") -> HTMLResponse:
    status = status if status in dict(TABS) else "open"
    with ctx.db.read() as s:
        items, _ = inbox.list_tasks(s, _who(ctx, principal), assignee="me", status=status,
                                    app=None, flow=None, cursor=None, limit=200)
    return render(request, "tasks.html", items=items, tabs=TABS, current=status)


def _fields(s: Any, detail: dict[str, Any], typed: dict[str, str] | None) -> list[dict]:
    """The record's fields as the step shows them, editable ones as inputs."""
    pub = published(s, detail["app"], detail["form"])
    step_fields = detail["step"]["fields"] or {}
    editable, required = set(step_fields.get("editable", [])), set(step_fields.get(
        "required", []))
    out = []
    for spec in pub.spec.fields:
        shown = spec.key in detail["record"]["data"]
        if not shown and spec.key not in editable:
            continue
        value = detail["record"]["data"].get(spec.key)
        if typed is not None and spec.key in typed:
            value = typed[spec.key]
        out.append({"key": spec.key, "label": spec.label, "value": value,
                    "editable": spec.key in editable and detail["status"] == "open",
                    "required": spec.key in required,
                    "input": INPUT_TYPES.get(spec.type, "text")})
    return out


def _page(ctx: ContextDep, principal: PrincipalDep, request: Request, task_id: int, *,
          status: int = 200, error: str | None = None, typed: dict[str, str] | None = None,
          comment: str = "") -> HTMLResponse:
    who = _who(ctx, principal)
    with ctx.db.read() as s:
        detail = inbox.task_detail(s, tasks.visible_task(s, task_id, who), who)
        fields = _fields(s, detail, typed)
    mine = detail["assignee_id"] == principal.user_id or (
        detail["assignee_id"] is None and principal.user_id in detail["candidates"])
    return render(request, "task.html", status=status, task=detail, fields=fields,
                  can_act=mine and detail["status"] == "open",
                  can_claim=detail["assignee_id"] is None and detail["status"] == "open"
                  and principal.user_id in detail["candidates"],
                  error=error, comment=comment)


@router.get(PAGE + "/{task_id}", response_class=HTMLResponse, openapi_extra=rule("user"))
def task_page(ctx: ContextDep, principal: PrincipalDep, request: Request,
              task_id: IdPath) -> HTMLResponse:
    return _page(ctx, principal, request, task_id)


async def posted(request: Request) -> dict[str, str]:
    """The submitted form (its field names depend on the step, so no fixed parameters)."""
    return {k: str(v) for k, v in (await request.form()).items()}


@router.post(PAGE + "/{task_id}", response_class=HTMLResponse, openapi_extra=rule("user"))
def task_act(ctx: ContextDep, principal: PrincipalDep, request: Request, task_id: IdPath,
             form: Annotated[dict[str, str], Depends(posted)]) -> Response:
    """Claim, reject, or complete with an outcome (``action``), editable fields ``f:<key>``
    and a comment."""
    action = str(form.get("action", ""))
    comment = str(form.get("comment", "")).strip()[:2000]
    typed = {k[2:]: str(v) for k, v in form.items() if k.startswith("f:")}
    data = {k: v.strip() for k, v in typed.items() if v.strip() != ""}
    who = _who(ctx, principal)
    try:
        with ctx.db.write() as s:
            if action == "claim":
                handover.claim(s, task_id, who)
            elif action == "reject":
                tasks.reject(s, task_id, who, comment=comment or None)
            else:
                outcome = action.removeprefix("outcome:") or None
                tasks.complete(s, task_id, who, outcome=outcome, data=data,
                               comment=comment or None,
                               operation="approve" if outcome == "approve" else "complete")
    except DomainError as exc:
        return _page(ctx, principal, request, task_id, status=exc.status, error=exc.detail,
                     typed=typed, comment=comment)
    if action == "claim":
        return redirect(f"{PAGE}/{task_id}", "task_claimed")
    return redirect(PAGE, "task_done")
