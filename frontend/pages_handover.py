"""Staff handover from the user admin pages (``engine_flows.staff_handover``): choose the
colleagues and the forms, preview what moves (htmx, the service's own plan), confirm to
carry it out in one transaction and see the result with links to the moved records.
Rule ``users``: administrators, and user managers within their department tree (the
service checks the tree for the leaving user and every colleague)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse
from sqlalchemy.orm import Session

from engine_flows import staff_handover
from engine_forms.forms import published
from frontend.pages_users import department_choices
from frontend.web import error_page, render
from platform_core.app import ContextDep, IdPath
from platform_core.errors import DomainError
from platform_core.models import utcnow
from platform_core.security.guard import PrincipalDep, client_of, rule
from platform_core.security.principal import Principal
from platform_core.security.users import list_users, managed_user, user_doc

router = APIRouter(include_in_schema=False)
PAGE = "/admin/users/{user_id}/handover"
Picked = Annotated[list[str] | None, Form()]


def _form_name(s: Session, app: str, form: str) -> str:
    try:
        return published(s, app, form).spec.name
    except DomainError:
        return form


def _choices(s: Session, principal: Principal, user_id: int) -> dict[str, Any]:
    """The leaving user, the colleagues one may choose (active, in one's tree, by
    department) and the forms the user owns records in."""
    source = user_doc(s, managed_user(s, principal, user_id))
    names = {d["id"]: d["name"] for d in department_choices(s)}
    people = sorted((u for u in list_users(s, principal)
                     if u.status == "active" and u.id != user_id),
                    key=lambda u: (names.get(u.department_id, "~"), u.username))
    return {"source": source, "department_names": names,
            "people": [{"id": u.id, "username": u.username, "name": u.display_name,
                        "department": names.get(u.department_id, "—")} for u in people],
            "forms": [{"value": f"{a}.{f}", "app": a, "form": f, "count": n,
                       "name": _form_name(s, a, f)}
                      for a, f, n in staff_handover.owned_forms(s, user_id)]}


def _wanted(user_id: int, to: list[str] | None, forms: list[str] | None
            ) -> staff_handover.Request:
    picked = [tuple(v.split(".", 1)) for v in forms or () if "." in v]
    return staff_handover.Request(
        source_id=user_id, to=[int(v) for v in to or () if v.isdigit()], split="even",
        forms=[(a, f) for a, f in picked] or None)


def _shown(s: Session, done: staff_handover.Plan) -> dict[str, Any]:
    doc = done.doc()
    names = {}
    for row in doc["forms"]:
        row["name"] = names[row["app"], row["form"]] = _form_name(s, row["app"], row["form"])
    doc["names"] = {str(u["id"]): u["display_name"] for u in doc["to"]}
    doc["moved"] = [{"id": rid, "app": app, "form": form, "owner_id": to,
                     "form_name": names.get((app, form), form)}
                    for rid, app, form, to in done.records]
    return doc


def _page(ctx: ContextDep, request: Request, principal: Principal, user_id: int, *,
          status: int = 200, **extra: Any) -> HTMLResponse:
    try:
        with ctx.db.read() as s:
            choices = _choices(s, principal, user_id)
    except DomainError as exc:
        return error_page(request, exc)
    return render(request, "handover.html", status=status, **choices, **extra)


@router.get(PAGE, response_class=HTMLResponse, openapi_extra=rule("users"))
def handover_page(ctx: ContextDep, request: Request, principal: PrincipalDep,
                  user_id: IdPath) -> HTMLResponse:
    return _page(ctx, request, principal, user_id, picked={"to": [], "forms": []})


@router.post(PAGE + "/preview", response_class=HTMLResponse, openapi_extra=rule("users"))
def handover_preview(ctx: ContextDep, request: Request, principal: PrincipalDep,
                     user_id: IdPath, to: Picked = None, forms: Picked = None
                     ) -> HTMLResponse:
    """The plan as a table (an htmx fragment); a refusal as a message in its place."""
    try:
        with ctx.db.read() as s:
            plan = _shown(s, staff_handover.plan(s, principal, _wanted(user_id, to, forms)))
    except DomainError as exc:
        return render(request, "_handover_plan.html", status=exc.status, error=exc.detail)
    return render(request, "_handover_plan.html", plan=plan, applied=False)


@router.post(PAGE, response_class=HTMLResponse, openapi_extra=rule("users"))
def handover_apply(ctx: ContextDep, request: Request, principal: PrincipalDep,
                   user_id: IdPath, to: Picked = None, forms: Picked = None
                   ) -> HTMLResponse:
    """Hand over in one transaction; the page again, with the result or why not."""
    picked = {"to": list(to or ()), "forms": list(forms or ())}
    try:
        with ctx.db.write() as s:
            done = staff_handover.apply(s, principal, _wanted(user_id, to, forms),
                                        actor=principal.actor, now=utcnow(),
                                        client=client_of(request))
            result = _shown(s, done)
    except DomainError as exc:
        return _page(ctx, request, principal, user_id, status=exc.status, error=exc.detail,
                     picked=picked)
    return _page(ctx, request, principal, user_id, plan=result, applied=True,
                 picked={"to": [], "forms": []})
