"""Users: create, reset a password, disable; the first admin made by ``qiao init``.

Every change here is audited in the same transaction.
"""

from __future__ import annotations

import re

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from platform_core.errors import Conflict, InvalidInput, NotFound
from platform_core.models import utcnow
from platform_core.security import audit
from platform_core.security.models import Role, User, UserRole
from platform_core.security.passwords import check_policy, hash_password, one_time_password
from platform_core.store import Actor

USERNAME = re.compile(r"^[a-z0-9][a-z0-9_.-]{1,63}$")
ADMIN_ROLE = "admin"


def get_user(session: Session, username: str) -> User:
    user = session.execute(select(User).where(User.username == username)).scalar_one_or_none()
    if user is None:
        raise NotFound(f"user {username!r} does not exist", username=username)
    return user


def create_user(session: Session, *, username: str, display_name: str, password: str | None,
                actor: Actor, mobile: str | None = None, roles: tuple[str, ...] = (),
                department_id: int | None = None) -> tuple[User, str | None]:
    """Create a user; with no password, a one-time password is made (and returned)."""
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
    user = User(username=username, display_name=display_name, mobile=mobile,
                password_hash=hash_password(password), must_change_password=one_time is not None,
                department_id=department_id)
    session.add(user)
    session.flush()
    for role in role_rows:
        session.add(UserRole(user_id=user.id, role_id=role.id))
    audit.append(session, actor=actor, action="user.create", target=f"user:{user.id}",
                 detail={"username": username, "roles": list(roles)})
    session.flush()
    return user, one_time


def reset_password(session: Session, *, username: str, actor: Actor) -> str:
    """Give the user a one-time password (they must change it) and unlock them."""
    user = get_user(session, username)
    password = one_time_password()
    user.password_hash = hash_password(password)
    user.must_change_password = True
    user.failed_logins, user.locked_until, user.updated_at = 0, None, utcnow()
    audit.append(session, actor=actor, action="user.reset_password", target=f"user:{user.id}")
    return password


def disable_user(session: Session, *, username: str, actor: Actor) -> User:
    user = get_user(session, username)
    user.status, user.updated_at = "disabled", utcnow()
    audit.append(session, actor=actor, action="user.disable", target=f"user:{user.id}")
    return user


def ensure_admin(session: Session, *, password: str | None) -> str | None:
    """On an empty installation, create role ``admin`` and user ``admin``.

    Returns the one-time password when one was generated (``QIAO_ADMIN_PASSWORD`` unset);
    None when users already exist or the password was given.
    """
    if session.execute(select(func.count()).select_from(User)).scalar_one():
        return None
    if session.execute(select(Role.id).where(Role.key == ADMIN_ROLE)).first() is None:
        session.add(Role(key=ADMIN_ROLE, name="系统管理员", permissions={"all": True}))
        session.flush()
    system = Actor(user_id=None, name="qiao init")
    _, one_time = create_user(session, username="admin", display_name="系统管理员",
                              password=password, actor=system, roles=(ADMIN_ROLE,))
    return one_time
