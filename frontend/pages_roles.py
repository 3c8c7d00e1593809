"""Roles: the list, and one role's name, description and permission matrix.

Viewing needs rule ``users`` (a user manager sees what the roles they hand out can do);
every change is a separate POST route with rule ``admin``. Saving, in order: the matrix
becomes a permission document (``matrix.build``) → ``check_permissions`` → ``save_role``
(which also refuses rights the admin does not hold and keeps the admin role's admin
right), all in one transaction; any refusal is shown on the page beside the matrix as
the admin left it.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, Response
from pydantic import ValidationError
from sqlalchemy import select
from starlette.concurrency import run_in_threadpool

from frontend import matrix
from frontend.i18n import _
from frontend.pages_me import invalid
from frontend.web import error_page, redirect, render
from platform_core.app import ContextDep
from platform_core.errors import DomainError, InvalidInput
from platform_core.security.api_admin import NewRole, RoleBody
from platform_core.security.directory import get_role, list_roles, role_doc, save_role
from platform_core.security.guard import PrincipalDep, rule
from platform_core.security.models import User, UserRole
from platform_core.security.permissions import check_permissions
from platform_core.security.principal import Principal

router = APIRouter(include_in_schema=False)
PAGE = "/admin/roles"


def summary(permissions: dict[str, Any]) -> str:
    parts = [label for flag, label in (("admin", _("系统管理")), ("users", _("用户管理")))
             if permissions.get(flag)]
    forms = permissions.get("forms") or {}
    parts += [f"{key}: {', '.join(entry.get('actions') or ()) or '—'}"
              for key, entry in sorted(forms.items())]
    return "; ".join(parts) or _("无权限")


def _list_page(ctx: ContextDep, request: Request, *, status: int = 200,
               **extra: Any) -> HTMLResponse:
    with ctx.db.read() as s:
        roles = [role_doc(r) | {"summary": summary(r.permissions or {})}
                 for r in list_roles(s)]
    return render(request, "roles.html", status=status, roles=roles, **extra)


@router.get(PAGE, response_class=HTMLResponse, openapi_extra=rule("users"))
def roles(ctx: ContextDep, request: Request) -> HTMLResponse:
    return _list_page(ctx, request)


@router.post(PAGE, response_class=HTMLResponse, openapi_extra=rule("admin"))
def role_create(ctx: ContextDep, request: Request, principal: PrincipalDep,
                key: Annotated[str, Form(max_length=64)] = "",
                name: Annotated[str, Form(max_length=100)] = "",
                description: Annotated[str, Form(max_length=500)] = "") -> Response:
    """A new role with no rights; its matrix opens next."""
    sent = {"key": key.strip(), "name": name.strip(), "description": description.strip()}
    try:
        try:
            body = NewRole(**sent, permissions={})
        except ValidationError as exc:
            raise invalid(exc) from exc
        with ctx.db.write() as s:
            save_role(s, key=body.key, name=body.name, description=body.description or None,
                      permissions={}, principal=principal, actor=principal.actor,
                      create=True)
    except DomainError as exc:
        return _list_page(ctx, request, status=exc.status, error=exc.detail, form=sent)
    return redirect(f"{PAGE}/{body.key}", "role_created")


def _role_page(ctx: ContextDep, request: Request, key: str, *, status: int = 200,
               form: Any = None, **extra: Any) -> HTMLResponse:
    """The role's page; with ``form``, the matrix as submitted instead of as stored."""
    try:
        with ctx.db.read() as s:
            row = get_role(s, key)
            role = role_doc(row)
            found = matrix.targets(s, role["permissions"] or {})
            holders = s.execute(select(User.id, User.display_name).join(
                UserRole, UserRole.user_id == User.id).where(
                UserRole.role_id == row.id, User.status == "active")
                .order_by(User.display_name).limit(200)).all()
    except DomainError as exc:
        return error_page(request, exc)
    old = role["permissions"] or {}
    rows = (matrix.rows_from_form(found, form, old) if form is not None
            else matrix.rows_from_permissions(found, old))
    flags = {f: bool(form.get(f) if form is not None else old.get(f)) for f in ("admin",
                                                                               "users")}
    if form is not None:
        role |= {"name": form.get("name", ""), "description": form.get("description", "")}
    return render(request, "role_edit.html", status=status, role=role, rows=rows,
                  flags=flags, choices=matrix.CHOICES, holders=holders, **matrix.labels(),
                  **extra)


@router.get(PAGE + "/{key}", response_class=HTMLResponse, openapi_extra=rule("users"))
def role_view(ctx: ContextDep, request: Request, key: str) -> HTMLResponse:
    return _role_page(ctx, request, key)


def _save(ctx: ContextDep, principal: Principal, key: str, form: Any) -> None:
    with ctx.db.write() as s:
        old = get_role(s, key).permissions or {}
        rows = matrix.rows_from_form(matrix.targets(s, old), form, old)
        permissions, errors = matrix.build(rows, form, old)
        if errors:
            raise InvalidInput("; ".join(errors), problems=errors)
        try:
            body = RoleBody(name=str(form.get("name", "")).strip(),
                            description=str(form.get("description", "")).strip() or None,
                            permissions=check_permissions(permissions))
        except ValidationError as exc:
            raise invalid(exc) from exc
        save_role(s, key=key, name=body.name, description=body.description,
                  permissions=body.permissions, principal=principal, actor=principal.actor,
                  create=False)


@router.post(PAGE + "/{key}", response_class=HTMLResponse, openapi_extra=rule("admin"))
async def role_save(ctx: ContextDep, request: Request, principal: PrincipalDep,
                    key: str) -> Response:
    form = await request.form()
    try:
        await run_in_threadpool(_save, ctx, principal, key, form)
    except DomainError as exc:
        problems = exc.extra.get("problems") or [exc.detail]
        return await run_in_threadpool(_role_page, ctx, request, key, status=exc.status,
                                       form=form, errors=problems)
    return redirect(f"{PAGE}/{key}", "role_saved")


@router.post(PAGE + "/{key}/view-as", response_class=HTMLResponse,
             openapi_extra=rule("admin"))
def view_as_start(ctx: ContextDep, request: Request, principal: PrincipalDep, key: str,
                  user: Annotated[str, Form(max_length=20)] = "") -> Response:
    """See the pages as role ``key`` would (as one of its holders, or oneself), read-only,
    until stopped; the start is audited."""
    from platform_core.security import audit, view_as
    from platform_core.security.auth import SESSION_COOKIE

    try:
        with ctx.db.write() as s:
            user_id = view_as.holder(s, key, int(user) if user.isdigit() else None, principal)
            audit.append(s, actor=principal.actor, action="auth.view_as",
                         target=f"role:{key}", detail={"user_id": user_id})
    except DomainError as exc:
        return _role_page(ctx, request, key, status=exc.status, errors=[exc.detail])
    response = redirect("/")
    response.set_cookie(view_as.COOKIE, view_as.cookie_value(
        ctx.secret_key, request.cookies.get(SESSION_COOKIE, ""), key, user_id),
        httponly=True, samesite="lax", secure=ctx.settings.cookie_secure, path="/")
    return response


@router.post("/view-as/stop", response_class=HTMLResponse, openapi_extra=rule("user"))
def view_as_stop() -> Response:
    from platform_core.security import view_as

    response = redirect(PAGE)
    response.delete_cookie(view_as.COOKIE, path="/")
    return response
