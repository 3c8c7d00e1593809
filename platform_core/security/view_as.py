"""An administrator viewing the pages as a role would see them, read-only.

The choice lives in a cookie signed with the installation's secret and bound to the
administrator's session cookie, so it cannot be forged, replayed in another session or
set by anyone but an administrator (``grant``). While it is on, page requests of that
session get a principal with only that role's rights and the identity of a chosen
holder of the role (or the administrator's own), and every change is refused except
stopping (``STOP_PATH``). The API (bearer tokens) is never affected.
"""

from __future__ import annotations

import hashlib
import hmac

from sqlalchemy import select
from sqlalchemy.orm import Session

from platform_core.errors import DomainError, InvalidInput, NotFound
from platform_core.security.models import Role, User, UserRole
from platform_core.security.principal import Principal

COOKIE = "qiao_view_as"
STOP_PATH = "/view-as/stop"


class ViewOnly(DomainError):
    status, code, title = 403, "view_only", "Read-only while viewing as a role"


def _sign(secret: bytes, session_cookie: str, role: str, user_id: int) -> str:
    message = f"{hashlib.sha256(session_cookie.encode()).hexdigest()}|{role}|{user_id}"
    return hmac.new(secret, message.encode(), hashlib.sha256).hexdigest()


def cookie_value(secret: bytes, session_cookie: str, role: str, user_id: int) -> str:
    return f"{role}.{user_id}.{_sign(secret, session_cookie, role, user_id)}"


def read(secret: bytes, session_cookie: str, value: str) -> tuple[str, int] | None:
    """(role, user id) from a cookie this session was given; None for anything else."""
    role, _, rest = value.partition(".")
    user, _, sig = rest.partition(".")
    if not role or not user.isdigit() or not sig:
        return None
    expected = _sign(secret, session_cookie, role, int(user))
    return (role, int(user)) if hmac.compare_digest(sig, expected) else None


def holder(session: Session, role_key: str, user_id: int | None, admin: Principal) -> int:
    """The user whose identity the view takes: a holder of the role, or the admin."""
    role = session.execute(select(Role).where(Role.key == role_key)).scalar_one_or_none()
    if role is None:
        raise NotFound(f"role {role_key!r} does not exist", role=role_key)
    if user_id is None or user_id == admin.user_id:
        return admin.user_id
    held = session.execute(select(UserRole.user_id).where(
        UserRole.user_id == user_id, UserRole.role_id == role.id)).first()
    if held is None:
        raise InvalidInput(f"user {user_id} does not hold role {role_key!r}", field="user")
    return user_id


def as_role(session: Session, admin: Principal, role_key: str, user_id: int
            ) -> Principal | None:
    """The principal a view as ``role_key`` (as user ``user_id``) acts with."""
    role = session.execute(select(Role).where(Role.key == role_key)).scalar_one_or_none()
    user = session.get(User, user_id)
    if role is None or user is None:
        return None
    return Principal(user_id=user.id, username=user.username, display_name=user.display_name,
                     department_id=user.department_id, roles=(role.key,),
                     role_perms=(role.permissions or {},), via="session",
                     session_id=admin.session_id, csrf_token=admin.csrf_token,
                     locale=admin.locale, acting_for=f"{admin.display_name}|{role.name}")
