"""Sign-in for integrators and the signed-in user's own account (``/api/v1/auth``,
``/api/v1/me``): token exchange, sign-out, password change, TOTP, personal tokens."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Annotated, Any, Literal

import pyotp
from fastapi import APIRouter, Request
from fastapi.responses import Response
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import select

from platform_core.app import ContextDep, IdPath
from platform_core.errors import InvalidInput, NotFound
from platform_core.models import utcnow
from platform_core.security import audit
from platform_core.security.auth import (
    TOTP_CONTEXT,
    authenticate,
    aware,
    end_session,
    issue_token,
    revoke_token,
)
from platform_core.security.guard import PrincipalDep, client_of, rule
from platform_core.security.models import ApiToken, User
from platform_core.security.users import change_password, user_doc

router = APIRouter(prefix="/api/v1", tags=["auth"])


class Strict(BaseModel):
    """Request bodies refuse unknown keys (no mass assignment by an extra field)."""

    model_config = ConfigDict(extra="forbid")


class TokenRequest(Strict):
    username: str = Field(min_length=1, max_length=64)
    password: str = Field(min_length=1, max_length=256)
    totp: str | None = Field(default=None, max_length=10)


def sealer(ctx: Any) -> Any:
    """Open a sealed TOTP secret (stored as JSON) with the installation's keyring."""
    return lambda stored: ctx.keyring.unseal(json.loads(stored), context=TOTP_CONTEXT)


@router.post("/auth/token", openapi_extra=rule("public"))
def exchange_token(ctx: ContextDep, request: Request, body: TokenRequest) -> dict[str, Any]:
    """Username + password (+ TOTP code) → a short-lived bearer token."""
    client = client_of(request)
    ctx.login_limiter.check(client)
    user_id = authenticate(ctx.db, ctx.settings, username=body.username,
                           password=body.password, totp_code=body.totp, client=client,
                           opener=sealer(ctx))
    ttl = ctx.settings.access_token_seconds
    with ctx.db.write() as s:
        user = s.get(User, user_id)
        _, secret = issue_token(s, user_id=user_id, name="access token", kind="access",
                                expires_at=utcnow() + timedelta(seconds=ttl),
                                actor=_actor(user))
    return {"access_token": secret, "token_type": "bearer", "expires_in": ttl}


def _actor(user: User) -> Any:
    from platform_core.store import Actor

    return Actor(user_id=user.id, department_id=user.department_id, name=user.username)


@router.post("/auth/logout", status_code=204, openapi_extra=rule("self"))
def logout(ctx: ContextDep, principal: PrincipalDep) -> Response:
    """End this session, or revoke this access token."""
    with ctx.db.write() as s:
        if principal.session_id is not None:
            end_session(s, principal.session_id, actor=principal.actor)
        elif principal.token_id is not None:
            revoke_token(s, s.get(ApiToken, principal.token_id), actor=principal.actor)
    response = Response(status_code=204)
    response.delete_cookie("qiao_session", path="/")
    return response


@router.get("/me", openapi_extra=rule("self"))
def me(ctx: ContextDep, principal: PrincipalDep) -> dict[str, Any]:
    with ctx.db.read() as s:
        doc = user_doc(s, s.get(User, principal.user_id))
    return doc | {"via": principal.via, "is_admin": principal.is_admin,
                  "manages_users": principal.manages_users}


class PasswordChange(Strict):
    current_password: str = Field(max_length=256)
    new_password: str = Field(max_length=256)


@router.post("/me/password", status_code=204, openapi_extra=rule("self"))
def me_password(ctx: ContextDep, principal: PrincipalDep, body: PasswordChange) -> Response:
    with ctx.db.write() as s:
        change_password(s, s.get(User, principal.user_id), current=body.current_password,
                        new=body.new_password, actor=principal.actor,
                        keep_session=principal.session_id)
    return Response(status_code=204)


@router.post("/me/totp", openapi_extra=rule("user"))
def totp_begin(ctx: ContextDep, principal: PrincipalDep) -> dict[str, Any]:
    """Start TOTP enrolment: a new secret to scan; it counts once a code confirms it."""
    secret = pyotp.random_base32()
    with ctx.db.write() as s:
        user = s.get(User, principal.user_id)
        user.totp_pending = json.dumps(ctx.keyring.seal(secret, context=TOTP_CONTEXT))
    uri = pyotp.TOTP(secret).provisioning_uri(name=principal.username, issuer_name="Qiao")
    return {"secret": secret, "otpauth_uri": uri}


class TotpCode(Strict):
    code: str = Field(min_length=6, max_length=10)


@router.post("/me/totp/confirm", status_code=204, openapi_extra=rule("user"))
def totp_confirm(ctx: ContextDep, principal: PrincipalDep, body: TotpCode) -> Response:
    with ctx.db.write() as s:
        user = s.get(User, principal.user_id)
        if user.totp_pending is None:
            raise InvalidInput("code: start the enrolment first (POST /api/v1/me/totp)",
                               field="code")
        if not pyotp.TOTP(sealer(ctx)(user.totp_pending)).verify(body.code, valid_window=1):
            raise InvalidInput("code: wrong code; check the phone's clock", field="code")
        user.totp_secret, user.totp_pending = user.totp_pending, None
        audit.append(s, actor=principal.actor, action="user.totp_enable",
                     target=f"user:{user.id}")
    return Response(status_code=204)


class TotpDisable(Strict):
    password: str = Field(max_length=256)


@router.post("/me/totp/disable", status_code=204, openapi_extra=rule("user"))
def totp_disable(ctx: ContextDep, principal: PrincipalDep, body: TotpDisable) -> Response:
    from platform_core.security.passwords import verify_password

    with ctx.db.write() as s:
        user = s.get(User, principal.user_id)
        if not verify_password(user.password_hash, body.password):
            raise InvalidInput("password: wrong password", field="password")
        user.totp_secret = user.totp_pending = None
        audit.append(s, actor=principal.actor, action="user.totp_disable",
                     target=f"user:{user.id}")
    return Response(status_code=204)


# -- personal API tokens ------------------------------------------------------------------


class TokenScopes(Strict):
    apps: list[Annotated[str, Field(pattern="^[a-z][a-z0-9_]{0,63}$")]] = []
    forms: list[Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]{0,63}\.[a-z][a-z0-9_]{0,63}$")]
                ] = []
    access: Literal["read", "write"] = "read"


class NewToken(Strict):
    name: str = Field(min_length=1, max_length=100)
    scopes: TokenScopes = TokenScopes()
    expires_in_days: int | None = Field(default=90, ge=1, le=3650)


def token_doc(row: ApiToken) -> dict[str, Any]:
    def at(moment: Any) -> str | None:
        return aware(moment).isoformat() if moment else None

    return {"id": row.id, "name": row.name, "kind": row.kind, "prefix": row.prefix,
            "user_id": row.user_id, "scopes": row.scopes, "created_at": at(row.created_at),
            "expires_at": at(row.expires_at), "revoked_at": at(row.revoked_at),
            "last_used_at": at(row.last_used_at)}


@router.get("/me/tokens", openapi_extra=rule("user"))
def my_tokens(ctx: ContextDep, principal: PrincipalDep) -> dict[str, Any]:
    with ctx.db.read() as s:
        rows = s.execute(select(ApiToken).where(ApiToken.user_id == principal.user_id,
                                                ApiToken.kind == "personal")
                         .order_by(ApiToken.id.desc())).scalars()
        return {"items": [token_doc(r) for r in rows]}


@router.post("/me/tokens", status_code=201, openapi_extra=rule("user"))
def create_my_token(ctx: ContextDep, principal: PrincipalDep, body: NewToken) -> dict[str, Any]:
    """A personal token for an integration; the secret is shown this once."""
    expires = (utcnow() + timedelta(days=body.expires_in_days)) if body.expires_in_days \
        else None
    with ctx.db.write() as s:
        row, secret = issue_token(s, user_id=principal.user_id, name=body.name,
                                  scopes=body.scopes.model_dump(), expires_at=expires,
                                  actor=principal.actor)
        return token_doc(row) | {"token": secret}


@router.delete("/me/tokens/{token_id}", status_code=204, openapi_extra=rule("user"))
def revoke_my_token(ctx: ContextDep, principal: PrincipalDep, token_id: IdPath) -> Response:
    with ctx.db.write() as s:
        row = s.get(ApiToken, token_id)
        if row is None or row.user_id != principal.user_id:
            raise NotFound(f"token {token_id} does not exist")
        revoke_token(s, row, actor=principal.actor)
    return Response(status_code=204)
