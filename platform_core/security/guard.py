"""The one place where every API call and page is authorised.

Each route declares its rule with ``openapi_extra=rule("form:read")`` (it shows in the
OpenAPI document as ``x-permission``); the app-wide dependency ``guard`` reads the rule of
the matched route and enforces it before the endpoint runs. A route without a rule is
refused at start-up (``check_routes``), so nothing is reachable by accident.

Rules:
- ``public``: no sign-in (health, the token exchange, the sign-in page);
- ``self``: any signed-in user, even one who must first change their password;
- ``user``: any signed-in user;
- ``admin``: system administrators;
- ``users``: administrators and user managers;
- ``app:<action>``: some form of path parameter ``app`` allows ``action``;
- ``form:<action>``: form ``app``/``form`` (path parameters) allows ``action``; the
  resulting ``FormAccess`` is left in ``request.state.access`` for the row scope and the
  field permissions.
"""

from __future__ import annotations

import hmac
from collections.abc import Iterator
from typing import Annotated, Any

from fastapi import Depends, FastAPI, Request
from fastapi.routing import APIRoute
from starlette.concurrency import run_in_threadpool

from platform_core.errors import DomainError
from platform_core.http import RateLimited
from platform_core.security import view_as
from platform_core.security.auth import (
    SESSION_COOKIE,
    Unauthenticated,
    resolve_session,
    resolve_token,
)
from platform_core.security.permissions import ACTIONS, Forbidden, FormAccess
from platform_core.security.principal import Principal

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
CSRF_HEADER = "X-CSRF-Token"
CSRF_FIELD = "csrf_token"
SIMPLE_RULES = ("public", "self", "user", "admin", "users")


class CsrfFailed(DomainError):
    status, code, title = 403, "csrf_failed", "CSRF check failed"


class PasswordChangeRequired(DomainError):
    status, code, title = 403, "password_change_required", "Password change required"


def rule(name: str) -> dict[str, Any]:
    """``openapi_extra`` declaring a route's permission rule."""
    valid(name)
    return {"x-permission": name}


def valid(name: str) -> str:
    kind, _, action = name.partition(":")
    if name in SIMPLE_RULES or (kind in ("app", "form") and action in ACTIONS):
        return name
    raise ValueError(f"unknown permission rule {name!r}")


def route_rule(route: Any) -> str | None:
    return (getattr(route, "openapi_extra", None) or {}).get("x-permission")


def _walk(routes: list[Any]) -> Iterator[Any]:
    for route in routes:
        included = getattr(route, "original_router", None)  # an included router (lazy)
        if included is not None:
            yield from _walk(included.routes)
        else:
            yield route


def api_routes(app: FastAPI) -> list[APIRoute]:
    """Every endpoint of the app (including those of included routers)."""
    return [r for r in _walk(app.routes) if isinstance(r, APIRoute)]


def check_routes(app: FastAPI) -> None:
    """Refuse to start when some route has no permission rule."""
    missing = [f"{sorted(r.methods)} {r.path}" for r in api_routes(app)
               if route_rule(r) is None]
    if missing:
        raise RuntimeError("routes without a permission rule: " + ", ".join(missing))


def client_of(request: Request) -> str:
    return request.client.host if request.client else "unknown"


def _token_principal(ctx: Any, secret: str, client: str) -> Principal:
    """The token's principal, counted against the token's limit — per token, so one busy
    integration cannot starve the rest; in the database, so every process shares it."""
    principal = resolve_token(ctx.db, secret, client=client)
    wait = ctx.token_limiter.hit(f"token:{principal.token_id}")
    if wait is not None:
        raise RateLimited(f"more than {ctx.settings.api_rate_per_minute} requests a "
                          "minute with this token", retry_after=wait)
    return principal


async def _principal(request: Request) -> Principal:
    ctx = request.app.state.qiao
    header = request.headers.get("authorization")
    if header:
        scheme, _, secret = header.partition(" ")
        if scheme.lower() != "bearer" or not secret.strip():
            raise Unauthenticated("send Authorization: Bearer <token>")
        return await run_in_threadpool(_token_principal, ctx, secret.strip(),
                                       client_of(request))
    cookie = request.cookies.get(SESSION_COOKIE)
    if not cookie:
        raise Unauthenticated("请先登录 / sign in first (a session cookie, or "
                              "Authorization: Bearer <token>)")
    principal = await run_in_threadpool(resolve_session, ctx.db, ctx.settings, ctx.secret_key,
                                        cookie)
    if request.method not in SAFE_METHODS:
        await _check_csrf(request, principal)
    viewing = request.cookies.get(view_as.COOKIE)
    if viewing and principal.is_admin:
        found = view_as.read(ctx.secret_key, cookie, viewing)
        if found is not None:
            shown = await run_in_threadpool(_viewed_as, ctx.db, principal, *found)
            if shown is not None:
                if request.method not in SAFE_METHODS and \
                        request.url.path != view_as.STOP_PATH:
                    raise view_as.ViewOnly("只读：正在以角色查看 / read-only while viewing "
                                           "as a role (stop viewing to make changes)")
                return shown
    return principal


def _viewed_as(db: Any, admin: Principal, role: str, user_id: int) -> Principal | None:
    with db.read() as session:
        return view_as.as_role(session, admin, role, user_id)


async def _check_csrf(request: Request, principal: Principal) -> None:
    """A cookie-authenticated state change must carry the session's CSRF token (header,
    or a form field for plain HTML forms)."""
    sent = request.headers.get(CSRF_HEADER)
    if sent is None and request.headers.get("content-type", "").startswith(
            ("application/x-www-form-urlencoded", "multipart/form-data")):
        sent = (await request.form()).get(CSRF_FIELD)
    if not isinstance(sent, str) or not hmac.compare_digest(
            sent.encode(), (principal.csrf_token or "").encode()):  # bytes: any text compares
        raise CsrfFailed("请刷新页面后重试 / the form is stale or was not sent by Qiao: "
                         "reload the page and try again")


async def guard(request: Request) -> None:
    """Enforce the matched route's rule (the app-wide dependency)."""
    name = route_rule(request.scope.get("route"))
    if name is None:
        raise Forbidden("this route declares no permission rule")
    if name == "public":
        return
    principal = await _principal(request)
    request.state.principal = principal
    if name == "self":
        return
    if principal.must_change_password:
        raise PasswordChangeRequired("请先修改一次性密码 / change your one-time password "
                                     "first (POST /api/v1/me/password)")
    _enforce(request, name, principal)


def _enforce(request: Request, name: str, principal: Principal) -> None:
    kind, _, action = name.partition(":")
    params = request.path_params
    if name == "admin" and not principal.is_admin:
        raise Forbidden("administrators only")
    if name == "users" and not principal.manages_users:
        raise Forbidden("user managers only")
    if kind == "app" and not principal.app_allows(params["app"], action):
        raise Forbidden(f"you may not {action} anything in app {params['app']}")
    if kind == "form":
        access = principal.access(params["app"], params["form"])
        access.require(action)
        request.state.access = access


def current_principal(request: Request) -> Principal:
    principal = getattr(request.state, "principal", None)
    if principal is None:
        raise Unauthenticated("sign in first")
    return principal


def current_access(request: Request) -> FormAccess:
    return request.state.access


PrincipalDep = Annotated[Principal, Depends(current_principal)]
AccessDep = Annotated[FormAccess, Depends(current_access)]
