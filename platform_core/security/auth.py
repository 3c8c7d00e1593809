"""Sign-in with lock-out and TOTP, page sessions, and bearer tokens.

Sign-in, in order: the client address's lock → the user's lock → the password (an
unknown user costs the same argon2 verification) → the account's status → the TOTP code
→ success (counters reset, a new session or token). Failure counters are committed even
though the request fails, and each outcome is audited.

Secrets handed out (session ids, tokens) are random; only their SHA-256 is stored. A
session cookie is additionally signed with the installation's secret key, so a forged
cookie is refused without touching the database.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pyotp
from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session

from platform_core.db import Database
from platform_core.errors import DomainError
from platform_core.models import utcnow
from platform_core.security import audit
from platform_core.security.models import ApiToken, LoginThrottle, User, UserSession
from platform_core.security.passwords import (
    decoy_hash,
    hash_password,
    needs_rehash,
    verify_password,
)
from platform_core.security.principal import Principal, load_principal, roles_of
from platform_core.settings import Settings
from platform_core.store import Actor

SESSION_COOKIE = "qiao_session"
TOTP_CONTEXT = "users.totp_secret"  # what a user's sealed TOTP secret is bound to
TOKEN_PREFIX = "qiao_"
TOUCH_EVERY = timedelta(seconds=60)  # last-seen / last-used are refreshed at most this often
_DUMMY_HASH = decoy_hash()  # an unknown user costs the same verification


class Unauthenticated(DomainError):
    status, code, title = 401, "unauthenticated", "Sign-in required"


class InvalidCredentials(Unauthenticated):
    code = "invalid_credentials"


class TotpRequired(Unauthenticated):
    code = "totp_required"


class AccountLocked(DomainError):
    status, code, title = 423, "account_locked", "Locked"


def aware(moment: datetime | None) -> datetime | None:
    """SQLite hands timestamps back without their zone; they are UTC."""
    if moment is None or moment.tzinfo is not None:
        return moment
    return moment.replace(tzinfo=UTC)


def digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def _anon(name: str) -> Actor:
    return Actor(user_id=None, name=name[:100])


# -- sign-in -----------------------------------------------------------------------------


def _locked_message(minutes: int) -> str:
    return (f"登录失败次数过多，已锁定，请 {minutes} 分钟后再试或联系管理员解锁 / too many "
            f"failed sign-ins: locked; try again in {minutes} minutes or ask an admin to "
            "unlock it")


def _client_failure(session: Session, settings: Settings, client: str, now: datetime) -> None:
    key = f"client:{client}"
    row = session.get(LoginThrottle, key)
    window = timedelta(minutes=settings.lockout_minutes)
    if row is None:
        row = LoginThrottle(key=key, failures=0, window_start=now)
        session.add(row)
    elif aware(row.window_start) + window < now:
        row.failures, row.window_start, row.locked_until = 0, now, None
    row.failures += 1
    if row.failures >= settings.lockout_client_threshold:
        row.locked_until = now + window


def _user_failure(user: User, settings: Settings, now: datetime) -> None:
    user.failed_logins += 1
    if user.failed_logins >= settings.lockout_threshold:
        user.locked_until = now + timedelta(minutes=settings.lockout_minutes)
        user.failed_logins = 0


def _totp_ok(user: User, code: str | None, opener: Any) -> bool:
    secret = opener(user.totp_secret)
    return bool(code) and pyotp.TOTP(secret).verify(code.strip(), valid_window=1)


@dataclass(frozen=True)
class _Outcome:
    user_id: int | None
    error: DomainError | None


def _attempt(session: Session, settings: Settings, *, username: str, password: str,
             totp_code: str | None, client: str, opener: Any, now: datetime) -> _Outcome:
    throttle = session.get(LoginThrottle, f"client:{client}")
    if throttle is not None and throttle.locked_until and aware(throttle.locked_until) > now:
        audit.append(session, actor=_anon(username), action="auth.login_failed",
                     detail={"reason": "client_locked"}, client=client)
        return _Outcome(None, AccountLocked(_locked_message(settings.lockout_minutes)))
    user = session.execute(select(User).where(User.username == username)).scalar_one_or_none()
    if user is None:
        verify_password(_DUMMY_HASH, password)
        reason, error = "unknown_user", InvalidCredentials("用户名或密码错误 / wrong username "
                                                           "or password")
    elif user.locked_until and aware(user.locked_until) > now:
        reason, error = "user_locked", AccountLocked(_locked_message(settings.lockout_minutes))
    elif not verify_password(user.password_hash, password):
        _user_failure(user, settings, now)
        reason, error = "wrong_password", InvalidCredentials("用户名或密码错误 / wrong "
                                                             "username or password")
    elif user.status != "active":
        reason, error = "disabled", InvalidCredentials("账户已停用 / this account is disabled")
    elif user.totp_secret and not totp_code:
        return _Outcome(None, TotpRequired("请输入动态验证码 / enter the code from your "
                                           "authenticator app", totp=True))
    elif user.totp_secret and not _totp_ok(user, totp_code, opener):
        _user_failure(user, settings, now)
        reason, error = "wrong_totp", InvalidCredentials("动态验证码错误 / wrong "
                                                         "authenticator code", totp=True)
    else:
        user.failed_logins, user.locked_until, user.last_login_at = 0, None, now
        if needs_rehash(user.password_hash):
            user.password_hash = hash_password(password)
        audit.append(session, actor=Actor(user.id, user.department_id, user.username),
                     action="auth.login", target=f"user:{user.id}", client=client)
        return _Outcome(user.id, None)
    if reason != "user_locked":
        _client_failure(session, settings, client, now)
    audit.append(session, actor=_anon(username), action="auth.login_failed",
                 target=f"user:{user.id}" if user else None, detail={"reason": reason},
                 client=client)
    return _Outcome(None, error)


def authenticate(db: Database, settings: Settings, *, username: str, password: str,
                 totp_code: str | None, client: str, opener: Any) -> int:
    """Check a sign-in; the user's id, or raise (after committing the failure's count)."""
    with db.write() as session:
        outcome = _attempt(session, settings, username=username.strip().lower(),
                           password=password, totp_code=totp_code, client=client,
                           opener=opener, now=utcnow())
    if outcome.error is not None:
        raise outcome.error
    assert outcome.user_id is not None
    return outcome.user_id


def unlock(session: Session, *, user: User | None = None, client: str | None = None,
           actor: Actor) -> None:
    """An admin lifts a lock-out (of a user, of a client address, or both)."""
    if user is not None:
        user.failed_logins, user.locked_until = 0, None
        audit.append(session, actor=actor, action="user.unlock", target=f"user:{user.id}")
    if client is not None:
        session.execute(delete(LoginThrottle).where(LoginThrottle.key == f"client:{client}"))
        audit.append(session, actor=actor, action="auth.unlock_client",
                     detail={"client": client})


# -- page sessions ------------------------------------------------------------------------


def _sign(secret_key: bytes, raw: str) -> str:
    return hmac.new(secret_key, raw.encode(), hashlib.sha256).hexdigest()[:32]


def start_session(session: Session, settings: Settings, secret_key: bytes, *, user_id: int,
                  client: str) -> tuple[str, str]:
    """A new session (a new id at every sign-in): (cookie value, CSRF token)."""
    raw = secrets.token_urlsafe(32)
    csrf = secrets.token_urlsafe(32)
    now = utcnow()
    session.add(UserSession(token_hash=digest(raw), user_id=user_id, csrf_token=csrf,
                            client=client, created_at=now, last_seen_at=now,
                            expires_at=now + timedelta(hours=settings.session_absolute_hours)))
    session.flush()
    return f"{raw}.{_sign(secret_key, raw)}", csrf


def _cookie_raw(secret_key: bytes, cookie: str) -> str | None:
    raw, _, signature = cookie.rpartition(".")
    if not raw or not hmac.compare_digest(signature.encode(), _sign(secret_key, raw).encode()):
        return None
    return raw


def resolve_session(db: Database, settings: Settings, secret_key: bytes,
                    cookie: str) -> Principal:
    """The principal of a session cookie, or ``Unauthenticated`` (expired, signed out,
    forged, or its user disabled).

    A read transaction in the common case; a write only to refresh ``last_seen_at`` (at
    most once a minute) or to delete an expired session — so signed-in reads never take
    SQLite's write lock.
    """
    raw = _cookie_raw(secret_key, cookie)
    if raw is None:
        raise Unauthenticated("会话无效，请重新登录 / invalid session: sign in again")
    now = utcnow()
    idle = timedelta(minutes=settings.session_idle_minutes)
    principal, touch, expired = None, False, False
    with db.read_one() as session:  # one SELECT: the session, its user and roles
        # The session and its user in one statement: every signed-in page pays for it.
        found = session.execute(select(UserSession, User, roles_of(
            db.dialect, UserSession.user_id)).join(User, User.id == UserSession.user_id)
            .where(UserSession.token_hash == digest(raw))).one_or_none()
        row = found[0] if found is not None else None
        if row is not None:
            expired = aware(row.expires_at) <= now or aware(row.last_seen_at) + idle <= now
            user = None if expired else found[1]
            if user is not None and user.status == "active":
                principal = load_principal(session, user, via="session", session_id=row.id,
                                           csrf_token=row.csrf_token, roles=found[2])
                touch = aware(row.last_seen_at) + TOUCH_EVERY <= now
    if expired or touch:
        with db.write() as session:
            stmt = (delete(UserSession) if expired else
                    update(UserSession).values(last_seen_at=now))
            session.execute(stmt.where(UserSession.token_hash == digest(raw)))
    if principal is None:
        raise Unauthenticated("会话已过期，请重新登录 / your session has ended: sign in again")
    return principal


def end_session(session: Session, session_id: int, *, actor: Actor) -> None:
    session.execute(delete(UserSession).where(UserSession.id == session_id))
    audit.append(session, actor=actor, action="auth.logout", target=f"user:{actor.user_id}")


# -- bearer tokens ------------------------------------------------------------------------


def issue_token(session: Session, *, user_id: int, name: str, kind: str = "personal",
                scopes: Mapping[str, Any] | None = None, expires_at: datetime | None = None,
                actor: Actor) -> tuple[ApiToken, str]:
    """Create a token; the secret is returned once and only its hash is kept."""
    secret = TOKEN_PREFIX + secrets.token_urlsafe(32)
    row = ApiToken(user_id=user_id, name=name, kind=kind, token_hash=digest(secret),
                   prefix=secret[:12], scopes=dict(scopes or {}), expires_at=expires_at)
    session.add(row)
    session.flush()
    audit.append(session, actor=actor, action="token.create", target=f"token:{row.id}",
                 detail={"user_id": user_id, "kind": kind, "scopes": row.scopes,
                         "expires_at": expires_at.isoformat() if expires_at else None})
    return row, secret


def resolve_token(db: Database, secret: str, *, client: str | None) -> Principal:
    """The principal of a bearer token, or ``Unauthenticated`` (unknown, expired, revoked,
    or its user disabled). Use refreshes ``last_used_at`` and is audited — at most once a
    minute per token, in a small write of its own, so a busy integration neither floods
    the log nor takes the write lock on every read."""
    now = utcnow()
    principal, touch = None, False
    with db.read_one() as session:  # one SELECT: the token, its user and roles
        found = session.execute(select(ApiToken, User, roles_of(
            db.dialect, ApiToken.user_id)).join(User, User.id == ApiToken.user_id)
            .where(ApiToken.token_hash == digest(secret))).one_or_none()
        row = found[0] if found is not None else None
        bad = (row is None or row.revoked_at is not None
               or (row.expires_at is not None and aware(row.expires_at) <= now))
        user = None if bad else found[1]
        if user is not None and user.status == "active":
            principal = load_principal(session, user, via="token", token_scopes=row.scopes,
                                       token_id=row.id, roles=found[2])
            touch = row.last_used_at is None or aware(row.last_used_at) + TOUCH_EVERY <= now
    if principal is None:
        raise Unauthenticated("令牌无效、已过期或已吊销 / the token is unknown, expired or "
                              "revoked")
    if touch:
        with db.write() as session:
            session.execute(update(ApiToken).where(ApiToken.id == principal.token_id)
                            .values(last_used_at=now))
            audit.append(session, actor=principal.actor, action="token.use",
                         target=f"token:{principal.token_id}", client=client)
    return principal


def revoke_token(session: Session, token: ApiToken, *, actor: Actor) -> None:
    if token.revoked_at is None:
        token.revoked_at = utcnow()
        audit.append(session, actor=actor, action="token.revoke", target=f"token:{token.id}")
