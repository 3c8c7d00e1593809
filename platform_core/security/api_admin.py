"""Administration API: users, departments, roles, tokens, lock-outs and the audit log.

Thin routes over ``users`` and ``directory``; each write is one transaction and is
audited inside it. Bodies refuse unknown keys, so nothing beyond the listed fields (a
password hash, a status, an id) can be set by adding it to a payload.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query
from fastapi.responses import Response
from pydantic import Field
from sqlalchemy import select

from platform_core.app import ContextDep, IdPath
from platform_core.errors import InvalidInput, NotFound
from platform_core.security import directory
from platform_core.security.api_auth import NewToken, Strict, token_doc
from platform_core.security.auth import aware, issue_token, revoke_token, unlock
from platform_core.security.guard import PrincipalDep, rule
from platform_core.security.models import ApiToken, AuditEntry, LoginThrottle, User
from platform_core.security.permissions import META_SCHEMA
from platform_core.security.users import (
    add_user,
    change_user,
    list_users,
    managed_user,
    reset_password,
    user_doc,
)

router = APIRouter(prefix="/api/v1", tags=["administration"])
KEY = "^[a-z][a-z0-9_]{0,63}$"

# -- users --------------------------------------------------------------------------------


EMAIL = r"^[^@\s]+@[^@\s]+\.[^@\s]+$"  # where scheduled reports are sent


class NewUser(Strict):
    username: str = Field(min_length=2, max_length=64)
    display_name: str = Field(min_length=1, max_length=100)
    mobile: str | None = Field(default=None, max_length=32)
    email: str | None = Field(default=None, max_length=254, pattern=EMAIL)
    department_id: int | None = None
    roles: list[str] = []
    password: str | None = Field(default=None, max_length=256)


class UserChange(Strict):
    display_name: str | None = Field(default=None, min_length=1, max_length=100)
    mobile: str | None = Field(default=None, max_length=32)
    email: str | None = Field(default=None, max_length=254, pattern=EMAIL)
    department_id: int | None = None
    roles: list[str] | None = None
    status: Literal["active", "disabled"] | None = None


@router.get("/users", openapi_extra=rule("users"))
def get_users(ctx: ContextDep, principal: PrincipalDep) -> dict[str, Any]:
    with ctx.db.read() as s:
        return {"items": [user_doc(s, u) for u in list_users(s, principal)]}


@router.post("/users", status_code=201, openapi_extra=rule("users"))
def post_user(ctx: ContextDep, principal: PrincipalDep, body: NewUser) -> dict[str, Any]:
    """Create a user; without a password a one-time password is returned (once)."""
    with ctx.db.write() as s:
        user, one_time = add_user(s, principal, **body.model_dump())
        doc = user_doc(s, user)
    return doc | ({"one_time_password": one_time,
                   "sign_in_url": f"{ctx.settings.base_url}/login"} if one_time else {})


@router.get("/users/{user_id}", openapi_extra=rule("users"))
def get_user(ctx: ContextDep, principal: PrincipalDep, user_id: IdPath) -> dict[str, Any]:
    with ctx.db.read() as s:
        return user_doc(s, managed_user(s, principal, user_id))


@router.patch("/users/{user_id}", openapi_extra=rule("users"))
def patch_user(ctx: ContextDep, principal: PrincipalDep, user_id: IdPath,
               body: UserChange) -> dict[str, Any]:
    with ctx.db.write() as s:
        user = change_user(s, principal, user_id, body.model_dump(exclude_unset=True))
        return user_doc(s, user)


@router.post("/users/{user_id}/unlock", openapi_extra=rule("users"))
def unlock_user(ctx: ContextDep, principal: PrincipalDep, user_id: IdPath) -> dict[str, Any]:
    with ctx.db.write() as s:
        user = managed_user(s, principal, user_id)
        unlock(s, user=user, actor=principal.actor)
        return user_doc(s, user)


@router.post("/users/{user_id}/reset-password", openapi_extra=rule("users"))
def reset_user_password(ctx: ContextDep, principal: PrincipalDep,
                        user_id: IdPath) -> dict[str, Any]:
    """A one-time password (shown once) and the sign-in link built from the configured
    base URL — never from the request's Host header."""
    with ctx.db.write() as s:
        user = managed_user(s, principal, user_id)
        password = reset_password(s, username=user.username, actor=principal.actor)
    return {"one_time_password": password, "sign_in_url": f"{ctx.settings.base_url}/login"}


# -- departments --------------------------------------------------------------------------


class NewDepartment(Strict):
    name: str = Field(min_length=1, max_length=100)
    parent_id: int | None = None
    manager_id: int | None = None


class DepartmentChange(Strict):
    name: str | None = Field(default=None, min_length=1, max_length=100)
    parent_id: int | None = None
    manager_id: int | None = None


@router.get("/departments", openapi_extra=rule("user"))
def get_departments(ctx: ContextDep) -> dict[str, Any]:
    with ctx.db.read() as s:
        return {"items": [directory.department_doc(d) for d in directory.list_departments(s)]}


@router.post("/departments", status_code=201, openapi_extra=rule("admin"))
def post_department(ctx: ContextDep, principal: PrincipalDep,
                    body: NewDepartment) -> dict[str, Any]:
    with ctx.db.write() as s:
        return directory.department_doc(directory.create_department(
            s, name=body.name, parent_id=body.parent_id, actor=principal.actor,
            manager_id=body.manager_id))


@router.patch("/departments/{department_id}", openapi_extra=rule("admin"))
def patch_department(ctx: ContextDep, principal: PrincipalDep, department_id: IdPath,
                     body: DepartmentChange) -> dict[str, Any]:
    sent = body.model_dump(exclude_unset=True)
    with ctx.db.write() as s:
        return directory.department_doc(directory.update_department(
            s, department_id, name=sent.get("name"), parent_id=sent.get("parent_id"),
            move="parent_id" in sent, actor=principal.actor,
            manager_id=sent.get("manager_id"), set_manager="manager_id" in sent))


@router.delete("/departments/{department_id}", status_code=204, openapi_extra=rule("admin"))
def delete_department(ctx: ContextDep, principal: PrincipalDep,
                      department_id: IdPath) -> Response:
    with ctx.db.write() as s:
        directory.delete_department(s, department_id, actor=principal.actor)
    return Response(status_code=204)


# -- roles --------------------------------------------------------------------------------


class RoleBody(Strict):
    name: str = Field(min_length=1, max_length=100)
    description: str | None = Field(default=None, max_length=500)
    permissions: dict[str, Any]


class NewRole(RoleBody):
    key: str = Field(pattern=KEY)


@router.get("/roles", openapi_extra=rule("users"))
def get_roles(ctx: ContextDep) -> dict[str, Any]:
    with ctx.db.read() as s:
        return {"items": [directory.role_doc(r) for r in directory.list_roles(s)]}


@router.get("/roles/meta-schema", openapi_extra=rule("user"))
def role_meta_schema() -> dict[str, Any]:
    """The JSON Schema every role's ``permissions`` must satisfy."""
    return META_SCHEMA


@router.post("/roles", status_code=201, openapi_extra=rule("admin"))
def post_role(ctx: ContextDep, principal: PrincipalDep, body: NewRole) -> dict[str, Any]:
    with ctx.db.write() as s:
        return directory.role_doc(directory.save_role(
            s, key=body.key, name=body.name, description=body.description,
            permissions=body.permissions, principal=principal, actor=principal.actor,
            create=True))


@router.get("/roles/{key}", openapi_extra=rule("users"))
def get_role(ctx: ContextDep, key: str) -> dict[str, Any]:
    with ctx.db.read() as s:
        return directory.role_doc(directory.get_role(s, key))


@router.put("/roles/{key}", openapi_extra=rule("admin"))
def put_role(ctx: ContextDep, principal: PrincipalDep, key: str,
             body: RoleBody) -> dict[str, Any]:
    with ctx.db.write() as s:
        return directory.role_doc(directory.save_role(
            s, key=key, name=body.name, description=body.description,
            permissions=body.permissions, principal=principal, actor=principal.actor,
            create=False))


@router.delete("/roles/{key}", status_code=204, openapi_extra=rule("admin"))
def delete_role(ctx: ContextDep, principal: PrincipalDep, key: str) -> Response:
    with ctx.db.write() as s:
        directory.delete_role(s, key, actor=principal.actor)
    return Response(status_code=204)


# -- every user's tokens, lock-outs -------------------------------------------------------


@router.get("/tokens", openapi_extra=rule("admin"))
def get_tokens(ctx: ContextDep) -> dict[str, Any]:
    with ctx.db.read() as s:
        rows = s.execute(select(ApiToken).where(ApiToken.revoked_at.is_(None))
                         .order_by(ApiToken.id.desc()).limit(1000)).scalars()
        return {"items": [token_doc(r) for r in rows]}


class IntegrationToken(NewToken):
    user_id: int | None = Field(default=None, ge=1, le=2**63 - 1,
                                description="whose rights the token carries (narrowed by "
                                            "its scopes); default: the caller")


@router.post("/tokens", status_code=201, openapi_extra=rule("admin"))
def post_token(ctx: ContextDep, principal: PrincipalDep,
               body: IntegrationToken) -> dict[str, Any]:
    """A token for an integration, acting as ``user_id`` (an active user; default: the
    caller) within its scopes; the secret is shown this once. Audited like any token."""
    from platform_core.models import utcnow

    expires = (utcnow() + timedelta(days=body.expires_in_days)) if body.expires_in_days \
        else None
    with ctx.db.write() as s:
        user = s.get(User, body.user_id or principal.user_id)
        if user is None or user.status != "active":
            raise InvalidInput(f"user_id: no active user {body.user_id}", field="user_id")
        row, secret = issue_token(s, user_id=user.id, name=body.name,
                                  scopes=body.scopes.model_dump(), expires_at=expires,
                                  actor=principal.actor)
        return token_doc(row) | {"token": secret}


@router.delete("/tokens/{token_id}", status_code=204, openapi_extra=rule("admin"))
def delete_token(ctx: ContextDep, principal: PrincipalDep, token_id: IdPath) -> Response:
    with ctx.db.write() as s:
        row = s.get(ApiToken, token_id)
        if row is None:
            raise NotFound(f"token {token_id} does not exist")
        revoke_token(s, row, actor=principal.actor)
    return Response(status_code=204)


@router.get("/auth/lockouts", openapi_extra=rule("admin"))
def get_lockouts(ctx: ContextDep) -> dict[str, Any]:
    """Locked client addresses and locked users."""
    from platform_core.models import utcnow

    now = utcnow()
    with ctx.db.read() as s:
        clients = [{"client": r.key.removeprefix("client:"), "failures": r.failures,
                    "locked_until": aware(r.locked_until).isoformat()}
                   for r in s.execute(select(LoginThrottle)).scalars()
                   if r.locked_until and aware(r.locked_until) > now]
        users = [{"id": u.id, "username": u.username,
                  "locked_until": aware(u.locked_until).isoformat()}
                 for u in s.execute(select(User).where(User.locked_until.is_not(None)))
                 .scalars() if aware(u.locked_until) > now]
    return {"clients": clients, "users": users}


class ClientUnlock(Strict):
    client: str = Field(min_length=1, max_length=64)


@router.post("/auth/lockouts/unlock", status_code=204, openapi_extra=rule("admin"))
def unlock_client(ctx: ContextDep, principal: PrincipalDep, body: ClientUnlock) -> Response:
    with ctx.db.write() as s:
        unlock(s, client=body.client, actor=principal.actor)
    return Response(status_code=204)


# -- the audit log ------------------------------------------------------------------------


def _utc(moment: datetime) -> datetime:
    return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).astimezone(UTC)


def audit_doc(row: AuditEntry) -> dict[str, Any]:
    return {"id": row.id, "at": aware(row.at).isoformat(), "actor_id": row.actor_id,
            "actor_name": row.actor_name, "action": row.action, "target": row.target,
            "detail": row.detail, "client": row.client, "hash": row.hash}


@router.get("/audit", openapi_extra=rule("admin"))
def get_audit(ctx: ContextDep,
              action: Annotated[str | None, Query(max_length=64,
                                                  description="exact, or a prefix ending "
                                                              "in '.' (record.)")] = None,
              actor: Annotated[str | None, Query(max_length=100)] = None,
              target: Annotated[str | None, Query(max_length=200)] = None,
              since: datetime | None = None, until: datetime | None = None,
              before: Annotated[int | None, Query(description="cursor: entries older "
                                                              "than this id")] = None,
              limit: Annotated[int, Query(ge=1, le=500)] = 100) -> dict[str, Any]:
    """The audit log, newest first, filtered; ``next_before`` pages further back."""
    query = select(AuditEntry).order_by(AuditEntry.id.desc()).limit(limit)
    if action:
        query = query.where(AuditEntry.action.startswith(action, autoescape=True)
                            if action.endswith(".") else AuditEntry.action == action)
    if actor:
        query = query.where(AuditEntry.actor_name == actor)
    if target:
        query = query.where(AuditEntry.target == target)
    if since:
        query = query.where(AuditEntry.at >= _utc(since))
    if until:
        query = query.where(AuditEntry.at < _utc(until))
    if before:
        query = query.where(AuditEntry.id < before)
    with ctx.db.read() as s:
        rows = list(s.execute(query).scalars())
    return {"items": [audit_doc(r) for r in rows],
            "next_before": rows[-1].id if len(rows) == limit else None}
