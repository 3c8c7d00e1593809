"""The task inbox (我的待办): one's open, overdue and done tasks, and a task page to work
one — the record as the step shows it, the step's editable fields, the outcome buttons
(submit, approve, reject …), a comment, and handing it on (transfer, delegate) where the
step allows it — a to-do (no flow) always. One submit is one transaction through the
same services as the API; a refusal re-renders the page with the message and what was
typed."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response

from engine_flows import inbox, tasks
from engine_flows.tasks import Who
from frontend.i18n import N_
from frontend.web import redirect, render
from frontend.workspace.fields import people_options
from frontend.workspace.home import name_records
from frontend.workspace.pages_record import posted_form
from frontend.workspace.steps import (
    needs_of,
    outcome_labels,
    perform,
    problems_of,
    read_submission,
    record_title,
    step_sections,
)
from platform_core.app import ContextDep, IdPath
from platform_core.errors import DomainError
from platform_core.models import utcnow
from platform_core.security.guard import PrincipalDep, rule

router = APIRouter(include_in_schema=False)
PAGE = "/tasks"
TABS = (("open", N_("待办")), ("overdue", N_("已超时")), ("done", N_("已办")))


def _who(ctx: ContextDep, principal: PrincipalDep) -> Who:
    return Who(principal, ctx.keyring, utcnow())


@router.get(PAGE, response_class=HTMLResponse, openapi_extra=rule("user"))
def task_list(ctx: ContextDep, principal: PrincipalDep, request: Request,
              status: str = "open") -> HTMLResponse:
    status = status if status in dict(TABS) else "open"
    with ctx.db.read() as s:
        items, _ = inbox.list_tasks(s, _who(ctx, principal), assignee="me", status=status,
                                    app=None, flow=None, cursor=None, limit=200)
        name_records(s, principal, ctx.keyring, items)
    return render(request, "tasks.html", items=items, tabs=TABS, current=status,
                  outcomes=outcome_labels())


def _page(ctx: ContextDep, principal: PrincipalDep, request: Request, task_id: int, *,
          status: int = 200, error: str | None = None, typed: dict[str, Any] | None = None,
          errors: dict[str, str] | None = None, comment: str = "") -> HTMLResponse:
    who = _who(ctx, principal)
    with ctx.db.read() as s:
        task = tasks.visible_task(s, task_id, who)
        detail = inbox.task_detail(s, task, who)
        sections = step_sections(s, ctx, principal, detail, typed, errors or {})
        title = record_title(s, ctx, principal, detail)
        needs = needs_of(s, detail)
        mine = detail["assignee_id"] == principal.user_id or (
            detail["assignee_id"] is None and principal.user_id in detail["candidates"])
        can_act = mine and detail["status"] == "open"
        # handing on: the assignee's, not a delegate's (a delegated task goes back)
        hand = _hand_on(detail) if can_act and detail["assignee_id"] is not None \
            and task.owner_id is None else ()
        people = [p for p in people_options(s, "user")
                  if p["value"] != str(principal.user_id)] if hand else []
    return render(request, "task.html", status=status, task=detail, sections=sections,
                  app=detail["app"], form=detail["form"], record_title=title,
                  outcomes=outcome_labels(), needs=needs, hand_on=hand, people=people,
                  can_act=can_act,
                  can_claim=detail["assignee_id"] is None and detail["status"] == "open"
                  and principal.user_id in detail["candidates"],
                  error=error, errors=errors or {}, comment=comment)


def _hand_on(detail: dict[str, Any]) -> tuple[str, ...]:
    """Which of transfer and delegate the task's step allows (a to-do: both)."""
    allowed = detail["step"]["allowed_actions"]
    return tuple(op for op in ("transfer", "delegate") if allowed is None or op in allowed)


@router.get(PAGE + "/{task_id}", response_class=HTMLResponse, openapi_extra=rule("user"))
def task_page(ctx: ContextDep, principal: PrincipalDep, request: Request,
              task_id: IdPath) -> HTMLResponse:
    return _page(ctx, principal, request, task_id)


@router.post(PAGE + "/{task_id}", response_class=HTMLResponse, openapi_extra=rule("user"))
async def task_act(ctx: ContextDep, principal: PrincipalDep, request: Request,
                   task_id: IdPath) -> Response:
    """Claim, reject, transfer or delegate (to ``to_user``), or complete with an outcome
    (``action``), the step's editable fields (posted by the workspace widgets) and a
    comment."""
    posted = await posted_form(request)
    who = _who(ctx, principal)
    with ctx.db.read() as s:
        sub = read_submission(s, who, task_id, posted)
    try:
        perform(ctx, who, task_id, sub)
    except DomainError as exc:
        errors, error = problems_of(exc)
        return _page(ctx, principal, request, task_id, status=exc.status, error=error,
                     errors=errors, typed=sub.typed, comment=sub.comment)
    if sub.action == "claim":
        return redirect(f"{PAGE}/{task_id}", "task_claimed")
    return redirect(PAGE, sub.flash)
