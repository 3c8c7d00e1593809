"""The signed-in user's own security page: two-step sign-in (TOTP), personal API tokens
and the language of their pages.

Each action calls the ``/api/v1/me`` handler function itself (one transaction each), so
the page and the API cannot drift apart. Secrets (a TOTP secret being enrolled, a new
token) are shown in the response to the POST that made them, never stored for later.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, Response
from pydantic import ValidationError

from frontend.i18n import LOCALES, _
from frontend.web import redirect, render
from platform_core.app import ContextDep, IdPath
from platform_core.errors import DomainError, InvalidInput
from platform_core.security.api_auth import (
    NewToken,
    TokenScopes,
    TotpCode,
    TotpDisable,
    create_my_token,
    me,
    my_tokens,
    revoke_my_token,
    totp_begin,
    totp_confirm,
    totp_disable,
)
from platform_core.security.guard import PrincipalDep, rule
from platform_core.security.models import User
from platform_core.security.users import set_locale

router = APIRouter(include_in_schema=False)
PAGE = "/me/security"
EXPIRY_DAYS = (7, 30, 90, 365)


def invalid(exc: ValidationError) -> InvalidInput:
    """A request model's refusal, worded like the API's 422."""
    first = exc.errors()[0]
    where = ".".join(str(p) for p in first["loc"])
    return InvalidInput(f"{where}: {first['msg']}" if where else first["msg"])


def _page(ctx: ContextDep, request: Request, principal: PrincipalDep, *, status: int = 200,
          **extra: Any) -> HTMLResponse:
    return render(request, "security.html", status=status, me=me(ctx, principal),
                  tokens=my_tokens(ctx, principal)["items"], expiry_days=EXPIRY_DAYS,
                  languages=LOCALES, **extra)


@router.get(PAGE, response_class=HTMLResponse, openapi_extra=rule("user"))
def security(ctx: ContextDep, request: Request, principal: PrincipalDep) -> HTMLResponse:
    return _page(ctx, request, principal)


@router.post(PAGE + "/totp", response_class=HTMLResponse, openapi_extra=rule("user"))
def totp_start(ctx: ContextDep, request: Request, principal: PrincipalDep) -> HTMLResponse:
    """A new secret to scan; it only counts once a code from the app confirms it."""
    return _page(ctx, request, principal, enrol=totp_begin(ctx, principal))


@router.post(PAGE + "/totp/confirm", response_class=HTMLResponse, openapi_extra=rule("user"))
def totp_finish(ctx: ContextDep, request: Request, principal: PrincipalDep,
                code: Annotated[str, Form(max_length=10)] = "") -> Response:
    try:
        try:
            body = TotpCode(code=code.strip())
        except ValidationError as exc:
            raise InvalidInput(_("请输入 6 位动态验证码。")) from exc
        totp_confirm(ctx, principal, body)
    except DomainError as exc:
        return _page(ctx, request, principal, status=exc.status, totp_error=exc.detail)
    return redirect(PAGE, "totp_enabled")


@router.post(PAGE + "/totp/disable", response_class=HTMLResponse, openapi_extra=rule("user"))
def totp_off(ctx: ContextDep, request: Request, principal: PrincipalDep,
             password: Annotated[str, Form(max_length=256)] = "") -> Response:
    try:
        totp_disable(ctx, principal, TotpDisable(password=password))
    except DomainError as exc:
        return _page(ctx, request, principal, status=exc.status, totp_error=exc.detail)
    return redirect(PAGE, "totp_disabled")


def scopes_of(limit: str, access: str) -> TokenScopes:
    """``crm, hr.employee`` → apps ``crm`` and form ``hr.employee``."""
    items = [p for p in limit.replace("，", ",").replace(" ", ",").split(",") if p]
    return TokenScopes(apps=[p for p in items if "." not in p],
                       forms=[p for p in items if "." in p], access=access)


@router.post(PAGE + "/locale", response_class=HTMLResponse, openapi_extra=rule("user"))
def locale_save(ctx: ContextDep, principal: PrincipalDep,
                locale: Annotated[str, Form(max_length=16)] = "") -> Response:
    """The language of one's pages; empty: follow the browser. The next page shows it."""
    with ctx.db.write() as s:
        set_locale(s, s.get(User, principal.user_id), locale or None, actor=principal.actor)
    return redirect(PAGE, "locale_saved")


@router.post(PAGE + "/tokens", response_class=HTMLResponse, openapi_extra=rule("user"))
def token_create(ctx: ContextDep, request: Request, principal: PrincipalDep,
                 name: Annotated[str, Form(max_length=100)] = "",
                 limit: Annotated[str, Form(max_length=1000)] = "",
                 access: Annotated[str, Form(max_length=10)] = "read",
                 expires_in_days: Annotated[int, Form(ge=1, le=3650)] = 90) -> Response:
    """A personal token; its secret is on this response and nowhere else, ever."""
    try:
        try:
            body = NewToken(name=name.strip(), scopes=scopes_of(limit, access),
                            expires_in_days=expires_in_days)
        except ValidationError as exc:
            raise invalid(exc) from exc
        created = create_my_token(ctx, principal, body)
    except DomainError as exc:
        return _page(ctx, request, principal, status=exc.status, token_error=exc.detail,
                     token_form={"name": name, "limit": limit, "access": access})
    return _page(ctx, request, principal, status=201, new_token=created)


@router.post(PAGE + "/tokens/{token_id}/revoke", response_class=HTMLResponse,
             openapi_extra=rule("user"))
def token_revoke(ctx: ContextDep, request: Request, principal: PrincipalDep,
                 token_id: IdPath) -> Response:
    try:
        revoke_my_token(ctx, principal, token_id)
    except DomainError as exc:
        return _page(ctx, request, principal, status=exc.status, token_error=exc.detail)
    if request.headers.get("hx-request"):  # htmx swaps just this token's row
        row = next(t for t in my_tokens(ctx, principal)["items"] if t["id"] == token_id)
        return render(request, "_token_row.html", token=row)
    return redirect(PAGE, "token_revoked")
