"""Departments and roles: the directory an administrator edits.

Every change is audited in the same transaction. A role's permission document is
validated against the meta-schema before it is saved; nobody hands out a right they do
not hold themselves.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from platform_core.errors import Conflict, InvalidInput, NotFound
from platform_core.models import utcnow
from platform_core.security import audit
from platform_core.security.models import Department, Role, User, UserRole
from platform_core.security.permissions import (
    BUILTIN_ROLES,
    Forbidden,
    check_permissions,
    covers,
)
from platform_core.security.principal import Principal
from platform_core.store import Actor

# -- departments --------------------------------------------------------------------------


def get_department(session: Session, department_id: int) -> Department:
    row = session.get(Department, department_id)
    if row is None:
        raise NotFound(f"department {department_id} does not exist")
    return row


def department_doc(row: Department) -> dict[str, Any]:
    return {"id": row.id, "name": row.name, "parent_id": row.parent_id, "path": row.path,
            "manager_id": row.manager_id}


def list_departments(session: Session) -> list[Department]:
    return list(session.execute(select(Department).order_by(Department.path)).scalars())


def create_department(session: Session, *, name: str, parent_id: int | None,
                      actor: Actor, manager_id: int | None = None) -> Department:
    parent_path = get_department(session, parent_id).path if parent_id else "/"
    _check_manager(session, manager_id)
    row = Department(name=name, parent_id=parent_id, path=parent_path, manager_id=manager_id)
    session.add(row)
    session.flush()
    row.path = f"{parent_path}{row.id}/"
    audit.append(session, actor=actor, action="department.create",
                 target=f"department:{row.id}", detail={"name": name, "parent_id": parent_id})
    return row


def _check_manager(session: Session, manager_id: int | None) -> None:
    if manager_id is not None and session.get(User, manager_id) is None:
        raise InvalidInput(f"manager_id: user {manager_id} does not exist", field="manager_id")


def update_department(session: Session, department_id: int, *, name: str | None,
                      parent_id: int | None, move: bool, actor: Actor,
                      manager_id: int | None = None, set_manager: bool = False) -> Department:
    """Rename and/or move a department (its whole sub-tree moves with it), or name its
    manager."""
    row = get_department(session, department_id)
    if name is not None:
        row.name = name
    if set_manager:
        _check_manager(session, manager_id)
        row.manager_id = manager_id
    if move:
        new_parent = get_department(session, parent_id).path if parent_id else "/"
        if new_parent.startswith(row.path):
            raise InvalidInput("parent_id: a department cannot move under itself",
                               field="parent_id")
        old, new = row.path, f"{new_parent}{row.id}/"
        session.execute(update(Department).where(Department.path.startswith(
            old, autoescape=True)).values(path=func.replace(Department.path, old, new))
            .execution_options(synchronize_session=False))
        row.parent_id = parent_id
        session.refresh(row)
    audit.append(session, actor=actor, action="department.update",
                 target=f"department:{row.id}", detail={"name": name, "parent_id": parent_id,
                                                         "moved": move,
                                                         "manager_id": row.manager_id})
    return row


def delete_department(session: Session, department_id: int, *, actor: Actor) -> None:
    row = get_department(session, department_id)
    if session.execute(select(Department.id).where(Department.parent_id == row.id)).first():
        raise Conflict(f"department {row.name} still has sub-departments")
    if session.execute(select(User.id).where(User.department_id == row.id)).first():
        raise Conflict(f"department {row.name} still has users; move them first")
    session.delete(row)
    audit.append(session, actor=actor, action="department.delete",
                 target=f"department:{department_id}", detail={"name": row.name})


# -- roles --------------------------------------------------------------------------------


def get_role(session: Session, key: str) -> Role:
    row = session.execute(select(Role).where(Role.key == key)).scalar_one_or_none()
    if row is None:
        raise NotFound(f"role {key!r} does not exist", role=key)
    return row


def role_doc(row: Role) -> dict[str, Any]:
    return {"key": row.key, "name": row.name, "description": row.description,
            "builtin": row.builtin, "permissions": row.permissions,
            "updated_at": row.updated_at.isoformat()}


def list_roles(session: Session) -> list[Role]:
    return list(session.execute(select(Role).order_by(Role.id)).scalars())


def _grantable(principal: Principal | None, permissions: Mapping[str, Any]) -> None:
    if principal is not None and not covers(principal.role_perms, permissions):
        raise Forbidden("you cannot grant rights you do not hold yourself")


def save_role(session: Session, *, key: str, name: str, description: str | None,
              permissions: Any, principal: Principal | None, actor: Actor,
              create: bool) -> Role:
    """Create (``create``) or replace a role's name, description and permissions."""
    check_permissions(permissions)
    _grantable(principal, permissions)
    if create:
        if session.execute(select(Role.id).where(Role.key == key)).first():
            raise Conflict(f"role {key!r} already exists", role=key)
        row = Role(key=key, name=name, description=description, permissions=permissions)
        session.add(row)
    else:
        row = get_role(session, key)
        if row.key == "admin" and not permissions.get("admin"):
            raise Conflict("the admin role keeps its admin right (there must be a way in)")
        row.name, row.description, row.permissions = name, description, permissions
        row.updated_at = utcnow()
    session.flush()
    audit.append(session, actor=actor, action="role.create" if create else "role.update",
                 target=f"role:{key}", detail={"name": name, "permissions": permissions})
    return row


def delete_role(session: Session, key: str, *, actor: Actor) -> None:
    row = get_role(session, key)
    if row.builtin:
        raise Conflict(f"role {key!r} is built in; change its rights instead")
    session.execute(UserRole.__table__.delete().where(UserRole.role_id == row.id))
    session.delete(row)
    audit.append(session, actor=actor, action="role.delete", target=f"role:{key}")


def ensure_builtin_roles(session: Session) -> None:
    """Create the built-in roles that are missing (an admin's edits are kept)."""
    have = set(session.execute(select(Role.key)).scalars())
    for key, (name, description, permissions) in BUILTIN_ROLES.items():
        if key not in have:
            session.add(Role(key=key, name=name, description=description, builtin=True,
                             permissions=permissions))
    session.flush()
