"""Users: create, change, reset a password, disable, TOTP; the first admin.

Every change here is audited in the same transaction. A user manager who is not an admin
only sees and changes users of their own department tree, never an admin, and only hands
out roles whose rights they hold themselves.
"""

from __future__ import annotations

import re
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from platform_core.errors import Conflict, InvalidInput, NotFound
from platform_core.models import utcnow
from platform_core.security import audit
from platform_core.security.auth import aware
from platform_core.security.directory import ensure_builtin_roles
from platform_core.security.models import Role, User, UserRole, UserSession
from platform_core.security.passwords import (
    check_policy,
    hash_password,
    one_time_password,
    verify_password,
)
from platform_core.security.permissions import Forbidden, covers
from platform_core.security.principal import Principal, subtree_ids
from platform_core.store import Actor

USERNAME = re.compile(r"^[a-z0-9][a-z0-9_.-]{1,63}$")
ADMIN_ROLE = "admin"
LOCALES = ("zh-CN", "en")  # the languages of the pages; a user without one follows the browser


def get_user(session: Session, username: str) -> User:
    user = session.execute(select(User).where(User.username == username)).scalar_one_or_none()
    if user is None:
        raise NotFound(f"user {username!r} does not exist", username=username)
    return user


def create_user(session: Session, *, username: str, display_name: str, password: str | None,
                actor: Actor, mobile: str | None = None, roles: tuple[str, ...] = (),
                department_id: int | None = None, email: str | None = None,
                password_hash: str | None = None) -> tuple[User, str | None]:
    """Create a user; with no password, a one-time password is made (and returned).
    ``password_hash``: the hash of ``password`` when the caller has it already (users
    made together with one password, such as a template's demo users)."""
    if not USERNAME.match(username):
        raise InvalidInput("username: 2–64 lower-case letters, digits, '.', '_' or '-'",
                           field="username")
    if session.execute(select(User.id).where(User.username == username)).first():
        raise Conflict(f"user {username!r} already exists", username=username)
    role_rows = []
    for key in roles:
        role = session.execute(select(Role).where(Role.key == key)).scalar_one_or_none()
        if role is None:
            raise InvalidInput(f"roles: role {key!r} does not exist", field="roles")
        role_rows.append(role)
    one_time = None
    if password is None:
        password = one_time = one_time_password()
    else:
        check_policy(password, username=username)
    user = User(username=username, display_name=display_name, mobile=mobile, email=email,
                password_hash=password_hash or hash_password(password),
                must_change_password=one_time is not None,
                department_id=department_id)
    session.add(user)
    session.flush()
    for role in role_rows:
        session.add(UserRole(user_id=user.id, role_id=role.id))
    audit.append(session, actor=actor, action="user.create", target=f"user:{user.id}",
                 detail={"username": username, "roles": list(roles)})
    session.flush()
    return user, one_time


def _end_sessions(session: Session, user_id: int) -> None:
    session.execute(UserSession.__table__.delete().where(UserSession.user_id == user_id))


def reset_password(session: Session, *, username: str, actor: Actor) -> str:
    """Give the user a one-time password (they must change it) and unlock them."""
    user = get_user(session, username)
    password = one_time_password()
    user.password_hash = hash_password(password)
    user.must_change_password = True
    user.failed_logins, user.locked_until, user.updated_at = 0, None, utcnow()
    _end_sessions(session, user.id)  # whoever held the old password is signed out
    audit.append(session, actor=actor, action="user.reset_password", target=f"user:{user.id}")
    return password


def disable_user(session: Session, *, username: str, actor: Actor) -> User:
    user = get_user(session, username)
    user.status, user.updated_at = "disabled", utcnow()
    _end_sessions(session, user.id)
    audit.append(session, actor=actor, action="user.disable", target=f"user:{user.id}")
    return user


def ensure_admin(session: Session, *, password: str | None) -> str | None:
    """On an empty installation, create role ``admin`` and user ``admin``.

    Returns the one-time password when one was generated (``QIAO_ADMIN_PASSWORD`` unset);
    None when users already exist or the password was given.
    """
    if session.execute(select(func.count()).select_from(User)).scalar_one():
        return None
    ensure_builtin_roles(session)
    system = Actor(user_id=None, name="qiao init")
    _, one_time = create_user(session, username="admin", display_name="系统管理员",
                              password=password, actor=system, roles=(ADMIN_ROLE,))
    return one_time


# -- the users API's handlers ------------------------------------------------------------


def roles_of(session: Session, user_id: int) -> list[Role]:
    return list(session.execute(select(Role).join(UserRole, UserRole.role_id == Role.id)
                                .where(UserRole.user_id == user_id).order_by(Role.key))
                .scalars())


def user_doc(session: Session, user: User) -> dict[str, Any]:
    """What the API shows of a user: never a hash or a TOTP secret."""
    return {"id": user.id, "username": user.username, "display_name": user.display_name,
            "mobile": user.mobile, "email": user.email, "status": user.status,
            "department_id": user.department_id,
            "roles": [r.key for r in roles_of(session, user.id)],
            "totp_enabled": user.totp_secret is not None,
            "must_change_password": user.must_change_password, "locale": user.locale,
            "locked": bool(user.locked_until and aware(user.locked_until) > utcnow()),
            "last_login_at": user.last_login_at.isoformat() if user.last_login_at else None,
            "created_at": user.created_at.isoformat()}


def _visible_departments(session: Session, principal: Principal) -> list[int] | None:
    """None: every department (admins); else the manager's department tree."""
    if principal.is_admin:
        return None
    if principal.department_id is None:
        return []
    return subtree_ids(session, principal.department_id)


def list_users(session: Session, principal: Principal) -> list[User]:
    query = select(User).order_by(User.id)
    departments = _visible_departments(session, principal)
    if departments is not None:
        query = query.where(User.department_id.in_(departments))
    return list(session.execute(query).scalars())


def managed_user(session: Session, principal: Principal, user_id: int) -> User:
    """A user the principal may manage; anyone else is "not found" (no probing by id)."""
    user = session.get(User, user_id)
    departments = _visible_departments(session, principal)
    if user is None or (departments is not None and (
            user.department_id not in departments
            or any(r.permissions.get("admin") for r in roles_of(session, user.id)))):
        raise NotFound(f"user {user_id} does not exist")
    return user


def _check_department(session: Session, principal: Principal, department_id: int | None
                      ) -> None:
    departments = _visible_departments(session, principal)
    if departments is not None and department_id not in departments:
        raise Forbidden("you can only place users in your own department tree",
                        field="department_id")


def _role_rows(session: Session, principal: Principal, keys: list[str]) -> list[Role]:
    rows = []
    for key in keys:
        role = session.execute(select(Role).where(Role.key == key)).scalar_one_or_none()
        if role is None:
            raise InvalidInput(f"roles: role {key!r} does not exist", field="roles")
        if not covers(principal.role_perms, role.permissions):
            raise Forbidden(f"roles: you cannot grant role {key!r}: it holds rights you do "
                            "not have", field="roles")
        rows.append(role)
    return rows


def add_user(session: Session, principal: Principal, *, username: str, display_name: str,
             mobile: str | None, department_id: int | None, roles: list[str],
             password: str | None, email: str | None = None) -> tuple[User, str | None]:
    _check_department(session, principal, department_id)
    _role_rows(session, principal, roles)
    return create_user(session, username=username, display_name=display_name,
                       password=password, actor=principal.actor, mobile=mobile,
                       roles=tuple(roles), department_id=department_id, email=email)


def change_user(session: Session, principal: Principal, user_id: int,
                changes: dict[str, Any]) -> User:
    """Apply an admin's edit; ``changes`` holds only the keys that were sent."""
    user = managed_user(session, principal, user_id)
    if "department_id" in changes:
        _check_department(session, principal, changes["department_id"])
        user.department_id = changes["department_id"]
    for key in ("display_name", "mobile", "email", "status"):
        if key in changes:
            setattr(user, key, changes[key])
    if "roles" in changes:
        rows = _role_rows(session, principal, changes["roles"])
        session.execute(UserRole.__table__.delete().where(UserRole.user_id == user.id))
        for role in rows:
            session.add(UserRole(user_id=user.id, role_id=role.id))
    if changes.get("status") == "disabled":
        _end_sessions(session, user.id)
    user.updated_at = utcnow()
    audit.append(session, actor=principal.actor, action="user.update",
                 target=f"user:{user.id}", detail=changes)
    session.flush()
    return user


def set_locale(session: Session, user: User, locale: str | None, *, actor: Actor) -> None:
    """Set the language of ``user``'s pages (one of ``LOCALES``; None: the browser's)."""
    if locale is not None and locale not in LOCALES:
        raise InvalidInput(f"locale: one of {', '.join(LOCALES)}, or empty", field="locale")
    if user.locale == locale:
        return
    user.locale, user.updated_at = locale, utcnow()
    audit.append(session, actor=actor, action="user.update", target=f"user:{user.id}",
                 detail={"locale": locale})
    session.flush()


def change_password(session: Session, user: User, *, current: str, new: str,
                    actor: Actor, keep_session: int | None = None) -> None:
    """Change one's own password; every other session of the user ends."""
    if not verify_password(user.password_hash, current):
        raise InvalidInput("current_password: wrong password", field="current_password")
    check_policy(new, username=user.username)
    if verify_password(user.password_hash, new):
        raise InvalidInput("new_password: choose a password different from the current one",
                           field="new_password")
    user.password_hash, user.must_change_password = hash_password(new), False
    user.updated_at = utcnow()
    session.execute(UserSession.__table__.delete().where(UserSession.user_id == user.id,
                                                         UserSession.id != (keep_session or 0)))
    audit.append(session, actor=actor, action="user.change_password", target=f"user:{user.id}")
