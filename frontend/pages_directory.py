"""Departments: the tree (any signed-in user), adding and renaming (administrators)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, Response
from pydantic import ValidationError

from frontend.pages_me import invalid
from frontend.web import redirect, render
from platform_core.app import ContextDep, IdPath
from platform_core.errors import DomainError
from platform_core.security.api_admin import DepartmentChange, NewDepartment
from platform_core.security.directory import (
    create_department,
    list_departments,
    update_department,
)
from platform_core.security.guard import PrincipalDep, rule
from platform_core.security.models import Department

router = APIRouter(include_in_schema=False)
PAGE = "/admin/departments"
Name = Annotated[str, Form(max_length=100)]


def tree(rows: list[Department]) -> list[dict[str, Any]]:
    """Nested nodes (``children``) from departments in path order."""
    nodes = {d.id: {"id": d.id, "name": d.name, "children": []} for d in rows}
    roots = []
    for d in rows:
        parent = nodes.get(d.parent_id) if d.parent_id else None
        (parent["children"] if parent else roots).append(nodes[d.id])
    return roots


def _page(ctx: ContextDep, request: Request, *, status: int = 200,
          **extra: Any) -> HTMLResponse:
    with ctx.db.read() as s:
        rows = list_departments(s)
    choices = [{"id": d.id, "name": d.name, "depth": d.path.count("/") - 2} for d in rows]
    return render(request, "departments.html", status=status, tree=tree(rows),
                  choices=choices, **extra)


@router.get(PAGE, response_class=HTMLResponse, openapi_extra=rule("user"))
def departments(ctx: ContextDep, request: Request) -> HTMLResponse:
    return _page(ctx, request)


@router.post(PAGE, response_class=HTMLResponse, openapi_extra=rule("admin"))
def department_add(ctx: ContextDep, request: Request, principal: PrincipalDep,
                   name: Name = "", parent_id: Name = "") -> Response:
    try:
        try:
            body = NewDepartment(name=name.strip(), parent_id=int(parent_id)
                                 if parent_id.strip().isdigit() else None)
        except ValidationError as exc:
            raise invalid(exc) from exc
        with ctx.db.write() as s:
            create_department(s, name=body.name, parent_id=body.parent_id,
                              actor=principal.actor)
    except DomainError as exc:
        return _page(ctx, request, status=exc.status, error=exc.detail)
    return redirect(PAGE, "department_saved")


@router.post(PAGE + "/{department_id}", response_class=HTMLResponse,
             openapi_extra=rule("admin"))
def department_rename(ctx: ContextDep, request: Request, principal: PrincipalDep,
                      department_id: IdPath, name: Name = "") -> Response:
    try:
        try:
            body = DepartmentChange(name=name.strip())
        except ValidationError as exc:
            raise invalid(exc) from exc
        with ctx.db.write() as s:
            update_department(s, department_id, name=body.name, parent_id=None, move=False,
                              actor=principal.actor)
    except DomainError as exc:
        return _page(ctx, request, status=exc.status, error=exc.detail)
    return redirect(PAGE, "department_saved")
