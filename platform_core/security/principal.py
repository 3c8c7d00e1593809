"""``Principal``: who is calling, with the rights their roles give them *right now*.

A principal is built from the database on every request (no permission cache outliving a
change): a disabled user, a removed role or a revoked token is refused on the next call.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, select, text
from sqlalchemy.orm import Session

from platform_core.security.models import Department, Role, User, UserRole
from platform_core.security.permissions import FormAccess, combine
from platform_core.store import Actor

READ_ONLY_ACTIONS = frozenset({"read", "export"})


@dataclass(frozen=True)
class Principal:
    """A signed-in user (through a page session or a bearer token) and their rights.

    ``token_scopes`` (tokens only): ``{"apps": [...], "forms": ["app.form", ...],
    "access": "read" | "write"}``; an absent or empty list means no narrowing. A token
    narrowed to some apps or forms never carries the system rights (admin, users).
    """

    user_id: int
    username: str
    display_name: str
    department_id: int | None
    roles: tuple[str, ...]
    role_perms: tuple[Mapping[str, Any], ...]
    via: str  # "session" | "token"
    must_change_password: bool = False
    token_scopes: Mapping[str, Any] | None = None
    token_id: int | None = None
    session_id: int | None = None
    csrf_token: str | None = None
    locale: str | None = None  # the user's chosen page language (None: the browser's)
    # set while an administrator views the pages as a role (``view_as``): their own name;
    # such a principal may only read
    acting_for: str | None = None

    @property
    def actor(self) -> Actor:
        return Actor(user_id=self.user_id, department_id=self.department_id,
                     name=self.username)

    @property
    def _narrowed(self) -> bool:
        scopes = self.token_scopes or {}
        return bool(scopes.get("apps") or scopes.get("forms"))

    @property
    def is_admin(self) -> bool:
        return not self._narrowed and any(p.get("admin") for p in self.role_perms)

    @property
    def manages_users(self) -> bool:
        return not self._narrowed and any(p.get("admin") or p.get("users")
                                          for p in self.role_perms)

    def _token_allows(self, app: str, form: str) -> bool:
        if not self._narrowed:
            return True
        scopes = self.token_scopes or {}
        return app in (scopes.get("apps") or ()) or f"{app}.{form}" in (scopes.get("forms")
                                                                          or ())

    def access(self, app: str, form: str) -> FormAccess:
        """This principal's combined rights on ``app.form``."""
        if not self._token_allows(app, form):
            return FormAccess(app, form, {})
        allowed = None
        if self.token_scopes and self.token_scopes.get("access") == "read":
            allowed = READ_ONLY_ACTIONS
        return combine(self.role_perms, app, form, allowed_actions=allowed)

    def app_allows(self, app: str, action: str) -> bool:
        """Whether some form of ``app`` (or every form: ``app.*``) allows ``action``."""
        if self.is_admin:
            return True
        keys = {k for p in self.role_perms for k in (p.get("forms") or {})}
        forms = {"*"} | {k.partition(".")[2] for k in keys if k.startswith(f"{app}.")}
        return any(self.access(app, form).allows(action) for form in forms)


def roles_of(dialect: str, user_id: Any) -> Any:
    """A column expression: the roles of the user ``user_id`` (a column or a value) as one
    JSON array of ``[key, permissions]`` pairs — so the statement that finds a session or
    token brings its user's roles along instead of a query more per request."""
    if dialect == "postgresql":
        gathered = func.coalesce(func.jsonb_agg(func.jsonb_build_array(
            Role.key, Role.permissions)), text("'[]'::jsonb"))
    else:
        gathered = func.coalesce(func.json_group_array(func.json_array(
            Role.key, func.json(Role.permissions))), "[]")
    return (select(gathered).select_from(Role).join(UserRole, UserRole.role_id == Role.id)
            .where(UserRole.user_id == user_id).scalar_subquery())


def load_principal(session: Session, user: User, *, via: str,
                   roles: Any = None, **extra: Any) -> Principal:
    """Build the principal of an active ``user`` with their roles as they are now (or as
    ``roles_of`` just read them: a JSON array, or its text)."""
    if roles is None:
        rows = [(r.key, r.permissions) for r in session.execute(
            select(Role.key, Role.permissions).join(UserRole, UserRole.role_id == Role.id)
            .where(UserRole.user_id == user.id).order_by(Role.key))]
    else:
        rows = sorted((k, p) for k, p in (json.loads(roles) if isinstance(roles, str)
                                          else roles))
    return Principal(user_id=user.id, username=user.username,
                     display_name=user.display_name, department_id=user.department_id,
                     roles=tuple(k for k, _ in rows),
                     role_perms=tuple(p or {} for _, p in rows), via=via,
                     must_change_password=user.must_change_password, locale=user.locale,
                     **extra)


def subtree_ids(session: Session, department_id: int) -> list[int]:
    """The department and every department below it."""
    path = session.execute(select(Department.path).where(Department.id == department_id)
                           ).scalar_one_or_none()
    if path is None:
        return [department_id]
    return list(session.execute(select(Department.id).where(
        Department.path.startswith(path, autoescape=True))).scalars())


def _substitute(node: Any, principal: Principal) -> Any:
    if isinstance(node, dict):
        return {k: _substitute(v, principal) for k, v in node.items()}
    if isinstance(node, list):
        return [_substitute(v, principal) for v in node]
    if node == "$user.id":
        return principal.user_id
    if node == "$user.department_id":
        return principal.department_id
    return node


NO_ROWS = {"field": "id", "op": "eq", "value": 0}  # ids start at 1


def row_filter(session: Session, principal: Principal, access: FormAccess,
               action: str) -> dict[str, Any] | None:
    """The rows ``action`` may touch, as a store filter (None: every row).

    Scopes become filters on the system columns ``owner_id`` and ``department_id`` (or
    the role's own filter), so the row check is part of the one SQL query of a list and
    a record outside the scope is simply not found.
    """
    parts: list[dict[str, Any]] = []
    for scope in access.scopes.get(action, ()):
        if scope == "all":
            return None
        if scope == "own":
            parts.append({"field": "owner_id", "op": "eq", "value": principal.user_id})
        elif principal.department_id is None and scope in ("department", "department_tree"):
            continue
        elif scope == "department":
            parts.append({"field": "department_id", "op": "eq",
                          "value": principal.department_id})
        elif scope == "department_tree":
            parts.append({"field": "department_id", "op": "in",
                          "value": subtree_ids(session, principal.department_id)})
        else:
            parts.append(_substitute(scope["filter"], principal))
    if not parts:
        return NO_ROWS
    return parts[0] if len(parts) == 1 else {"or": parts}
