"""The task inbox (我的待办): one's open, overdue and done tasks, and a task page to work
one — the record as the step shows it, the step's editable fields, the outcome buttons
(submit, approve, reject …) and a comment. One submit is one transaction through the
same services as the API; a refusal re-renders the page with the message and what was
typed."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response

from engine_flows import handover, inbox, tasks
from engine_flows.tasks import Who
from engine_forms import service
from engine_forms.forms import published
from engine_forms.service import Caller
from frontend.i18n import N_, _
from frontend.web import redirect, render
from frontend.workspace.fields import Builder, Editing
from frontend.workspace.home import name_records
from frontend.workspace.pages_record import posted_form, problems_by_field
from frontend.workspace.values import Shown
from frontend.workspace.widgets import payload_of
from platform_core.app import ContextDep, IdPath
from platform_core.errors import DomainError
from platform_core.models import utcnow
from platform_core.security.guard import PrincipalDep, rule

router = APIRouter(include_in_schema=False)
PAGE = "/tasks"
TABS = (("open", N_("待办")), ("overdue", N_("已超时")), ("done", N_("已办")))
OUTCOMES = {"submit": N_("提交"), "done": N_("完成"), "approve": N_("同意"),
            "reject": N_("驳回"), "lost": N_("未成交"), "won": N_("成交"), "pass": N_("通过"),
            "fail": N_("不通过"), "cancel": N_("取消")}


def outcome_labels() -> dict[str, str]:
    """The outcome buttons' words in the page's language (a flow's own outcome keys that
    have no word here are shown as they are, escaped like any metadata)."""
    return {k: _(v) for k, v in OUTCOMES.items()}


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


def _step_sections(s: Any, ctx: Any, principal: Any, detail: dict[str, Any],
                   typed: dict[str, Any] | None, errors: dict[str, str]) -> list[Any]:
    """The record as the step shows it, through the workspace's field rows: the step's
    editable fields as widgets (required ones marked), the rest as text."""
    pub = published(s, detail["app"], detail["form"])
    step = detail["step"]["fields"] or {}
    editable = frozenset(step.get("editable", [])) if detail["status"] == "open" \
        else frozenset()
    data = detail["record"]["data"]
    caller = Caller(principal, principal.access(detail["app"], detail["form"]), ctx.keyring)
    shown = Shown.of(s, caller, pub, [{"data": data}])
    shown.add_files(data)
    editing = Editing(editable, frozenset(step.get("required", [])), errors, typed)
    only = frozenset(data) | editable
    return Builder(s, pub, shown, editing, {**data, **(typed or {})}, only=only).sections()


def _record_title(s: Any, ctx: Any, principal: Any, detail: dict[str, Any]) -> str:
    pub = published(s, detail["app"], detail["form"])
    caller = Caller(principal, principal.access(detail["app"], detail["form"]), ctx.keyring)
    titles = service.titles(s, caller, pub, {detail["record_id"]})
    return titles.get(detail["record_id"], f"#{detail['record_id']}")


def _page(ctx: ContextDep, principal: PrincipalDep, request: Request, task_id: int, *,
          status: int = 200, error: str | None = None, typed: dict[str, Any] | None = None,
          errors: dict[str, str] | None = None, comment: str = "") -> HTMLResponse:
    who = _who(ctx, principal)
    with ctx.db.read() as s:
        detail = inbox.task_detail(s, tasks.visible_task(s, task_id, who), who)
        sections = _step_sections(s, ctx, principal, detail, typed, errors or {})
        record_title = _record_title(s, ctx, principal, detail)
    mine = detail["assignee_id"] == principal.user_id or (
        detail["assignee_id"] is None and principal.user_id in detail["candidates"])
    return render(request, "task.html", status=status, task=detail, sections=sections,
                  app=detail["app"], form=detail["form"], record_title=record_title,
                  outcomes=outcome_labels(),
                  can_act=mine and detail["status"] == "open",
                  can_claim=detail["assignee_id"] is None and detail["status"] == "open"
                  and principal.user_id in detail["candidates"],
                  error=error, errors=errors or {}, comment=comment)


@router.get(PAGE + "/{task_id}", response_class=HTMLResponse, openapi_extra=rule("user"))
def task_page(ctx: ContextDep, principal: PrincipalDep, request: Request,
              task_id: IdPath) -> HTMLResponse:
    return _page(ctx, principal, request, task_id)


@router.post(PAGE + "/{task_id}", response_class=HTMLResponse, openapi_extra=rule("user"))
async def task_act(ctx: ContextDep, principal: PrincipalDep, request: Request,
                   task_id: IdPath) -> Response:
    """Claim, reject, or complete with an outcome (``action``), the step's editable fields
    (posted by the workspace widgets) and a comment."""
    posted = await posted_form(request)
    action = str(posted.get("action") or "")
    comment = str(posted.get("comment") or "").strip()[:2000]
    who = _who(ctx, principal)
    with ctx.db.read() as s:
        detail = inbox.task_detail(s, tasks.visible_task(s, task_id, who), who)
        pub = published(s, detail["app"], detail["form"])
        step = detail["step"]["fields"] or {}
        editable = [f for f in pub.spec.fields if f.key in step.get("editable", [])]
        masked = service.masked_keys(pub, principal.access(detail["app"], detail["form"]))
    typed = payload_of(posted, editable, keep_blank_masked=masked)
    try:
        with ctx.db.write() as s:
            if action == "claim":
                handover.claim(s, task_id, who)
            elif action == "reject":
                tasks.reject(s, task_id, who, comment=comment or None)
            else:
                outcome = action.removeprefix("outcome:") or None
                tasks.complete(s, task_id, who, outcome=outcome, data=typed,
                               comment=comment or None,
                               operation="approve" if outcome == "approve" else "complete")
    except DomainError as exc:
        errors = problems_by_field(exc)
        return _page(ctx, principal, request, task_id, status=exc.status,
                     error=None if errors else exc.detail, errors=errors, typed=typed,
                     comment=comment)
    if action == "claim":
        return redirect(f"{PAGE}/{task_id}", "task_claimed")
    return redirect(PAGE, "task_done")
