"""User administration: list, create (a one-time password shown once), edit, unlock,
reset a password. Rule ``users``: administrators, and user managers within their own
department tree (``platform_core.security.users`` enforces the tree and what roles a
manager may hand out; a refusal is shown as a message on the page)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, Response
from pydantic import ValidationError
from sqlalchemy.orm import Session

from frontend.pages_me import invalid
from frontend.web import error_page, redirect, render
from platform_core.app import ContextDep, IdPath
from platform_core.errors import DomainError
from platform_core.security.api_admin import NewUser, UserChange
from platform_core.security.auth import unlock
from platform_core.security.directory import list_departments, list_roles
from platform_core.security.guard import PrincipalDep, rule
from platform_core.security.principal import Principal
from platform_core.security.users import (
    add_user,
    change_user,
    list_users,
    managed_user,
    reset_password,
    user_doc,
)

router = APIRouter(include_in_schema=False)
PAGE = "/admin/users"
Short = Annotated[str, Form(max_length=100)]
Roles = Annotated[list[str] | None, Form()]


def department_choices(s: Session) -> list[dict[str, Any]]:
    """Departments in tree order, each with its depth (for indented labels)."""
    return [{"id": d.id, "name": d.name, "depth": d.path.count("/") - 2}
            for d in list_departments(s)]


def _choices(s: Session) -> dict[str, Any]:
    departments = department_choices(s)
    return {"departments": departments,
            "department_names": {d["id"]: d["name"] for d in departments},
            "roles": [{"key": r.key, "name": r.name} for r in list_roles(s)]}


def _list_page(ctx: ContextDep, request: Request, principal: Principal, *,
               status: int = 200, **extra: Any) -> HTMLResponse:
    with ctx.db.read() as s:
        users = [user_doc(s, u) for u in list_users(s, principal)]
        choices = _choices(s)
    return render(request, "users.html", status=status, users=users, **choices, **extra)


@router.get(PAGE, response_class=HTMLResponse, openapi_extra=rule("users"))
def users(ctx: ContextDep, request: Request, principal: PrincipalDep) -> HTMLResponse:
    return _list_page(ctx, request, principal)


def _department(value: str) -> int | None:
    return int(value) if value.strip().isdigit() else None


@router.post(PAGE, response_class=HTMLResponse, openapi_extra=rule("users"))
def user_create(ctx: ContextDep, request: Request, principal: PrincipalDep,
                username: Short = "", display_name: Short = "", mobile: Short = "",
                email: Short = "", department_id: Short = "", roles: Roles = None) -> Response:
    """A new user with a one-time password, shown on this response only."""
    sent = {"username": username.strip().lower(), "display_name": display_name.strip(),
            "mobile": mobile.strip() or None, "email": email.strip() or None,
            "department_id": _department(department_id), "roles": list(roles or ())}
    try:
        try:
            body = NewUser(**sent)
        except ValidationError as exc:
            raise invalid(exc) from exc
        with ctx.db.write() as s:
            user, one_time = add_user(s, principal, **body.model_dump())
            created = {"username": user.username, "one_time_password": one_time}
    except DomainError as exc:
        return _list_page(ctx, request, principal, status=exc.status, error=exc.detail,
                          form=sent)
    return _list_page(ctx, request, principal, status=201,
                      secret=created | {"sign_in_url": f"{ctx.settings.base_url}/login"})


def _edit_page(ctx: ContextDep, request: Request, principal: Principal, user_id: int, *,
               status: int = 200, error: str = "",
               sent: dict[str, Any] | None = None) -> HTMLResponse:
    """The edit form (after a refused save: with what was sent, and why not)."""
    try:
        with ctx.db.read() as s:
            doc = user_doc(s, managed_user(s, principal, user_id))
            choices = _choices(s)
    except DomainError as exc:
        return error_page(request, exc)
    return render(request, "user_edit.html", status=status, error=error,
                  user=doc | (sent or {}), **choices)


@router.get(PAGE + "/{user_id}", response_class=HTMLResponse, openapi_extra=rule("users"))
def user_edit(ctx: ContextDep, request: Request, principal: PrincipalDep,
              user_id: IdPath) -> HTMLResponse:
    return _edit_page(ctx, request, principal, user_id)


def _changes(current: dict[str, Any], sent: dict[str, Any]) -> dict[str, Any]:
    """Only what differs: a manager can save a user whose other roles they could not
    grant themselves, as long as they do not touch the roles."""
    changes = {k: v for k, v in sent.items() if k != "roles" and v != current[k]}
    if sorted(sent["roles"]) != sorted(current["roles"]):
        changes["roles"] = sent["roles"]
    return changes


@router.post(PAGE + "/{user_id}", response_class=HTMLResponse, openapi_extra=rule("users"))
def user_save(ctx: ContextDep, request: Request, principal: PrincipalDep, user_id: IdPath,
              display_name: Short = "", mobile: Short = "", email: Short = "",
              department_id: Short = "", status: Short = "active",
              roles: Roles = None) -> Response:
    sent = {"display_name": display_name.strip(), "mobile": mobile.strip() or None,
            "email": email.strip() or None,
            "department_id": _department(department_id), "status": status,
            "roles": list(roles or ())}
    try:
        with ctx.db.write() as s:
            changes = _changes(user_doc(s, managed_user(s, principal, user_id)), sent)
            try:
                UserChange(**changes)
            except ValidationError as exc:
                raise invalid(exc) from exc
            change_user(s, principal, user_id, changes)
    except DomainError as exc:
        return _edit_page(ctx, request, principal, user_id, status=exc.status,
                          error=exc.detail, sent=sent)
    return redirect(PAGE, "user_saved")


@router.post(PAGE + "/{user_id}/unlock", response_class=HTMLResponse,
             openapi_extra=rule("users"))
def user_unlock(ctx: ContextDep, request: Request, principal: PrincipalDep,
                user_id: IdPath) -> Response:
    try:
        with ctx.db.write() as s:
            unlock(s, user=managed_user(s, principal, user_id), actor=principal.actor)
    except DomainError as exc:
        return _list_page(ctx, request, principal, status=exc.status, error=exc.detail)
    return redirect(PAGE, "user_unlocked")


@router.post(PAGE + "/{user_id}/reset-password", response_class=HTMLResponse,
             openapi_extra=rule("users"))
def user_reset(ctx: ContextDep, request: Request, principal: PrincipalDep,
               user_id: IdPath) -> Response:
    """A new one-time password (also unlocks), shown on this response only."""
    try:
        with ctx.db.write() as s:
            username = managed_user(s, principal, user_id).username
            password = reset_password(s, username=username, actor=principal.actor)
    except DomainError as exc:
        return _list_page(ctx, request, principal, status=exc.status, error=exc.detail)
    return _list_page(ctx, request, principal, secret={
        "username": username, "one_time_password": password,
        "sign_in_url": f"{ctx.settings.base_url}/login"})
