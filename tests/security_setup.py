"""Signed-in test clients: users with roles, tokens, bearer clients (shared by tests).

Users get a password hash computed once per run (argon2 is slow on purpose); each client
authenticates with a real personal token, through the real guard.
"""

from __future__ import annotations

import time
from typing import Any

from fastapi.testclient import TestClient

from platform_core.db import Database
from platform_core.security.auth import issue_token
from platform_core.security.directory import ensure_builtin_roles
from platform_core.security.models import Department, Role, User, UserRole
from platform_core.security.passwords import hash_password
from platform_core.store import Actor

PASSWORD = "Test-Passw0rd!"
_HASH: list[str] = []
SYSTEM = Actor(user_id=None, name="tests")


def password_hash() -> str:
    if not _HASH:
        _HASH.append(hash_password(PASSWORD))
    return _HASH[0]


def add_department(db: Database, name: str, parent_id: int | None = None) -> int:
    from platform_core.security.directory import create_department

    with db.write() as s:
        return create_department(s, name=name, parent_id=parent_id, actor=SYSTEM).id


def add_user(db: Database, username: str, *, roles: tuple[str, ...] = ("admin",),
             department_id: int | None = None, **columns: Any) -> int:
    """A user with ``roles`` (the built-in roles are created when missing)."""
    with db.write() as s:
        ensure_builtin_roles(s)
        user = User(username=username, display_name=username, password_hash=password_hash(),
                    department_id=department_id, **columns)
        s.add(user)
        s.flush()
        for key in roles:
            role = s.query(Role).filter(Role.key == key).one()
            s.add(UserRole(user_id=user.id, role_id=role.id))
        return user.id


def token_for(db: Database, user_id: int, scopes: dict[str, Any] | None = None,
              **kwargs: Any) -> str:
    with db.write() as s:
        return issue_token(s, user_id=user_id, name="tests", scopes=scopes, actor=SYSTEM,
                           **kwargs)[1]


def client_as(app: Any, db: Database, username: str, *, roles: tuple[str, ...] = ("admin",),
              department_id: int | None = None, scopes: dict[str, Any] | None = None
              ) -> TestClient:
    """A TestClient signed in (bearer token) as a new user ``username``."""
    user_id = add_user(db, username, roles=roles, department_id=department_id)
    client = TestClient(app, raise_server_exceptions=False)
    client.headers["Authorization"] = f"Bearer {token_for(db, user_id, scopes)}"
    client.user_id = user_id  # type: ignore[attr-defined]
    return client


__all__ = ["PASSWORD", "Department", "add_department", "add_user", "client_as", "token_for"]


def within_one_rate_window(seconds: float = 10.0) -> None:
    """Rate limits count in fixed windows aligned to the minute, so hits made across a
    boundary get a fresh budget half-way: a test counting on one budget waits for the
    next minute when fewer than ``seconds`` are left of this one (the suite once failed
    that way)."""
    left = 60 - time.time() % 60
    if left < seconds:
        time.sleep(left + 0.05)
