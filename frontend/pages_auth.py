"""Signing in and out, the one-time password change, and the home page.

Sign-in, in order: the login form's own CSRF check (a cookie set with the form, so
another site cannot sign a browser into an account of its choosing) → the per-address
rate limit → ``authenticate`` (lock-outs, password, TOTP; it records failures itself) →
the browser's previous session ends and a new one starts (a new id at every sign-in) →
the one-time password page or the ``next`` page.
"""

from __future__ import annotations

import hmac
import secrets
from typing import Annotated
from urllib.parse import quote

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, Response

from engine_forms.forms import list_apps
from frontend.i18n import _
from frontend.web import redirect, render, safe_next
from platform_core.app import ContextDep
from platform_core.errors import DomainError
from platform_core.security.api_auth import sealer
from platform_core.security.auth import (
    SESSION_COOKIE,
    TotpRequired,
    Unauthenticated,
    authenticate,
    end_session,
    resolve_session,
    start_session,
)
from platform_core.security.guard import PrincipalDep, client_of, rule
from platform_core.security.models import User
from platform_core.security.principal import Principal
from platform_core.security.users import change_password

router = APIRouter(include_in_schema=False)
LOGIN_CSRF_COOKIE = "qiao_login_csrf"
Text = Annotated[str, Form(max_length=256)]


@router.get("/", response_class=HTMLResponse, openapi_extra=rule("user"))
def home(ctx: ContextDep, request: Request, principal: PrincipalDep) -> HTMLResponse:
    from engine_reports.running import Viewer
    from frontend.menus import app_menu
    from frontend.workspace.home import my_day
    from frontend.workspace.views import recent_log

    recent_log(request.app).flush()  # the records opened just now are in the list
    viewer = Viewer(principal, ctx.keyring)
    with ctx.db.read() as s:
        apps = [{"key": a.key, "name": a.name, "menu": app_menu(s, a, viewer),
                 "manage": principal.app_allows(a.key, "manage")}
                for a in list_apps(s) if principal.app_allows(a.key, "read")]
        day = my_day(s, principal, ctx.keyring)
    return render(request, "home.html", apps=apps, day=day, dialect=ctx.db.dialect)


def _login_page(ctx: ContextDep, request: Request, *, status: int = 200, error: str = "",
                username: str = "", totp: bool = False, next_url: str = "/") -> HTMLResponse:
    """The sign-in form, with a fresh login-CSRF token in a cookie and in the form."""
    token = secrets.token_urlsafe(24)
    response = render(request, "login.html", status=status, error=error, username=username,
                      totp=totp, next=next_url, csrf_token=token)
    response.set_cookie(LOGIN_CSRF_COOKIE, token, httponly=True, samesite="strict",
                        secure=ctx.settings.cookie_secure, path="/login")
    return response


@router.get("/login", response_class=HTMLResponse, openapi_extra=rule("public"))
def login_form(ctx: ContextDep, request: Request, next: str = "/") -> HTMLResponse:
    return _login_page(ctx, request, next_url=safe_next(next))


@router.post("/login", response_class=HTMLResponse, openapi_extra=rule("public"))
def login(ctx: ContextDep, request: Request, username: Annotated[str, Form(max_length=64)],
          password: Text, totp: Annotated[str, Form(max_length=10)] = "",
          next: Text = "/", csrf_token: Text = "") -> Response:
    next_url = safe_next(next)
    expected = request.cookies.get(LOGIN_CSRF_COOKIE, "")
    # Bytes: compare_digest refuses str with non-ASCII characters (a 500, not a 403).
    if not expected or not hmac.compare_digest(csrf_token.encode(), expected.encode()):
        return _login_page(ctx, request, status=403, username=username, next_url=next_url,
                           error=_("页面已过期，请重新登录。"))
    client = client_of(request)
    try:
        ctx.login_limiter.check(client)
        user_id = authenticate(ctx.db, ctx.settings, username=username, password=password,
                               totp_code=totp.strip() or None, client=client,
                               opener=sealer(ctx))
    except DomainError as exc:
        wants_code = isinstance(exc, TotpRequired) or bool(exc.extra.get("totp"))
        return _login_page(ctx, request, status=exc.status, error=exc.detail,
                           username=username, totp=wants_code, next_url=next_url)
    return _signed_in(ctx, request, user_id, next_url)


def _signed_in(ctx: ContextDep, request: Request, user_id: int, next_url: str) -> Response:
    previous = _previous_session(ctx, request)
    with ctx.db.write() as s:
        if previous is not None:
            end_session(s, previous.session_id, actor=previous.actor)
        cookie, _session = start_session(s, ctx.settings, ctx.secret_key, user_id=user_id,
                                         client=client_of(request))
        must_change = s.get(User, user_id).must_change_password
    target = f"/password?next={quote(next_url, safe='')}" if must_change else next_url
    response = redirect(target)
    response.set_cookie(SESSION_COOKIE, cookie, httponly=True, samesite="lax",
                        secure=ctx.settings.cookie_secure, path="/")
    response.delete_cookie(LOGIN_CSRF_COOKIE, path="/login")
    return response


def _previous_session(ctx: ContextDep, request: Request) -> Principal | None:
    """The session this browser still holds (it ends when someone signs in anew)."""
    cookie = request.cookies.get(SESSION_COOKIE)
    if not cookie:
        return None
    try:
        return resolve_session(ctx.db, ctx.settings, ctx.secret_key, cookie)
    except Unauthenticated:
        return None


@router.post("/logout", openapi_extra=rule("self"))
def logout(ctx: ContextDep, principal: PrincipalDep) -> Response:
    """End this session on the server, then forget the cookie."""
    if principal.session_id is not None:
        with ctx.db.write() as s:
            end_session(s, principal.session_id, actor=principal.actor)
    response = redirect("/login", "signed_out")
    response.delete_cookie(SESSION_COOKIE, path="/")
    return response


@router.get("/password", response_class=HTMLResponse, openapi_extra=rule("self"))
def password_form(request: Request, next: str = "/") -> HTMLResponse:
    return render(request, "password.html", next=safe_next(next))


@router.post("/password", response_class=HTMLResponse, openapi_extra=rule("self"))
def password_change(ctx: ContextDep, request: Request, principal: PrincipalDep,
                    current_password: Text, new_password: Text, confirm_password: Text,
                    next: Text = "/") -> Response:
    next_url = safe_next(next)
    try:
        if new_password != confirm_password:
            raise _Mismatch(_("两次输入的新密码不一致。"))
        with ctx.db.write() as s:
            change_password(s, s.get(User, principal.user_id), current=current_password,
                            new=new_password, actor=principal.actor,
                            keep_session=principal.session_id)
    except DomainError as exc:
        return render(request, "password.html", status=exc.status, error=exc.detail,
                      next=next_url)
    return redirect(next_url, "password_changed")


class _Mismatch(DomainError):
    status, code, title = 422, "invalid_input", "Invalid input"

