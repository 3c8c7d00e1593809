"""The FastAPI app factory: settings → database → plugins → routes and error handlers.

Higher layers (frontend, engines' APIs) plug in through the ``qiao.plugins`` entry-point
group: each entry is ``register(app, context)`` and is called once, in name order, so
platform_core never imports the layers above it.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from importlib.metadata import entry_points
from typing import Annotated, Any
from urllib.parse import quote

from fastapi import Depends, FastAPI, Path, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, RedirectResponse, Response
from sqlalchemy.exc import DataError, OperationalError
from sqlalchemy.orm import Session
from starlette.exceptions import HTTPException as StarletteHTTPException

from platform_core import __version__, expressions
from platform_core.db import Database
from platform_core.errors import DomainError
from platform_core.http import RateLimited, install_hardening, retry_after_header
from platform_core.idempotency import Idempotency
from platform_core.metrics import install_metrics
from platform_core.ratelimit import SharedRateLimiter
from platform_core.security.crypto import Keyring
from platform_core.security.guard import PrincipalDep, check_routes, guard, rule
from platform_core.settings import Settings, ensure_secret_key, load_settings
from platform_core.store import Actor, kinds
from platform_core.webhooks.background import lifespan as background_lifespan

log = logging.getLogger("qiao.http")
PROBLEM = "application/problem+json"


@dataclass
class AppContext:
    """What a running app holds: its settings, database, secret key, the field-encryption
    keyring, the sign-in and the per-token rate limiters (shared by every process on the
    database: ``platform_core.ratelimit``)."""

    settings: Settings
    db: Database
    secret_key: bytes
    keyring: Keyring
    login_limiter: LoginLimiter
    token_limiter: SharedRateLimiter


class LoginLimiter:
    """Sign-in attempts per client address per minute (``QIAO_LOGIN_RATE_PER_MINUTE``);
    over the limit → 429 with ``Retry-After``. Counted in the database, so every web
    process shares the one budget."""

    def __init__(self, db: Database, per_minute: int):
        self._limiter = SharedRateLimiter(db, per_minute, 60.0)

    def check(self, client: str) -> None:
        wait = self._limiter.hit(f"login:{client}")
        if wait is not None:
            raise RateLimited(f"too many sign-in attempts from {client}; wait "
                              f"{max(1, round(wait))} s", retry_after=max(1, round(wait)))


def problem(status: int, title: str, detail: str, code: str, **extra: Any) -> JSONResponse:
    body = {"type": f"urn:qiao:problem:{code}", "title": title, "status": status,
            "detail": detail, "code": code, **extra}
    return JSONResponse(body, status_code=status, media_type=PROBLEM)


def _install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(DomainError)
    async def _domain(request: Request, exc: DomainError) -> Response:
        if exc.status == 401 and _wants_page(request):
            target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
            return RedirectResponse(f"/login?next={quote(target, safe='')}", status_code=303)
        body = exc.problem() | {"instance": request.url.path}
        headers = retry_after_header(exc)
        if exc.status == 401:
            headers["WWW-Authenticate"] = 'Bearer realm="qiao"'
        return JSONResponse(body, status_code=exc.status, media_type=PROBLEM, headers=headers)

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = [{"loc": list(e["loc"]), "msg": e["msg"]} for e in exc.errors()]
        first = errors[0] if errors else {"loc": [], "msg": "invalid"}
        where = ".".join(str(p) for p in first["loc"])
        return problem(422, "Invalid input", f"{where}: {first['msg']}", "invalid_input",
                       errors=errors, instance=request.url.path)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
        return problem(exc.status_code, str(exc.detail), str(exc.detail), code,
                       instance=request.url.path)

    @app.exception_handler(DataError)
    @app.exception_handler(OverflowError)
    async def _out_of_range(request: Request, exc: Exception) -> JSONResponse:
        # A value the database cannot hold (a number past 64 bits, a NUL character) that
        # validation let through: the caller's input, not a server fault.
        log.warning("database refused a value on %s: %s", request.url.path,
                    str(exc).splitlines()[0] if str(exc) else type(exc).__name__)
        return problem(422, "Invalid input", "a value is out of the range the database can "
                       "store", "value_out_of_range", instance=request.url.path)

    @app.exception_handler(OperationalError)
    async def _busy(request: Request, exc: OperationalError) -> JSONResponse:
        # SQLite's one writer held the lock past busy_timeout: the request did nothing
        # (its transaction never began) and can simply be sent again
        if "database is locked" not in str(exc.orig):
            return await _unexpected(request, exc)
        log.warning("database busy on %s %s", request.method, request.url.path)
        return JSONResponse({"type": "urn:qiao:problem:busy", "title": "Busy",
                             "status": 503, "detail": "the database is busy; nothing was "
                             "written — try again in a moment", "code": "busy",
                             "instance": request.url.path}, status_code=503,
                            media_type=PROBLEM, headers={"Retry-After": "1"})

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, _exc: Exception) -> JSONResponse:
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        return problem(500, "Internal error", "an unexpected error occurred; it was logged",
                       "internal_error", instance=request.url.path)


def _wants_page(request: Request) -> bool:
    """A browser asking for a page (not the API): send it to the sign-in page."""
    return (not request.url.path.startswith("/api/")
            and request.method in ("GET", "HEAD"))


def _install_request_log(app: FastAPI) -> None:
    @app.middleware("http")
    async def _log(request: Request, call_next: Callable[[Request], Any]) -> Any:
        started = time.perf_counter()
        response = await call_next(request)
        log.info("%s %s %s %.1fms", request.method, request.url.path, response.status_code,
                 (time.perf_counter() - started) * 1000)
        return response


def _identifier(ctx: AppContext) -> Callable[[dict[str, Any]], int | None]:
    """Who sent a request, from its bearer token or session cookie (None: nobody valid —
    the guard will refuse it). For the Idempotency-Key middleware, which runs before
    routing."""
    from http.cookies import SimpleCookie

    from platform_core.security.auth import SESSION_COOKIE, resolve_session, resolve_token

    def identify(scope: dict[str, Any]) -> int | None:
        headers = {k.decode("latin-1").lower(): v.decode("latin-1")
                   for k, v in scope.get("headers", [])}
        try:
            scheme, _, secret = headers.get("authorization", "").partition(" ")
            if scheme.lower() == "bearer" and secret.strip():
                return resolve_token(ctx.db, secret.strip(), client=None).user_id
            cookie = SimpleCookie(headers.get("cookie", "")).get(SESSION_COOKIE)
            if cookie is not None:
                return resolve_session(ctx.db, ctx.settings, ctx.secret_key,
                                       cookie.value).user_id
        except DomainError:
            return None
        return None

    return identify


def get_context(request: Request) -> AppContext:
    return request.app.state.qiao


def get_session(request: Request) -> Any:
    with get_context(request).db.read() as session:
        yield session


ContextDep = Annotated[AppContext, Depends(get_context)]
# A row id in a path: a number no database id can exceed is refused (422), never sent on
IdPath = Annotated[int, Path(ge=1, le=2**63 - 1)]
ReadSessionDep = Annotated[Session, Depends(get_session)]


def create_app(settings: Settings | None = None, *, db: Database | None = None) -> FastAPI:
    """Build the ASGI app. The database must already be migrated (``qiao init``)."""
    settings = settings or load_settings()
    kinds.register_builtins()
    expressions.register_builtins()
    db = db or Database.from_url(settings.effective_database_url,
                                 busy_timeout_ms=settings.sqlite_busy_timeout_ms)
    context = AppContext(
        settings=settings,
        db=db,
        secret_key=ensure_secret_key(settings),
        keyring=Keyring.load(settings),
        login_limiter=LoginLimiter(db, settings.login_rate_per_minute),
        token_limiter=SharedRateLimiter(db, settings.api_rate_per_minute, 60.0),
    )
    # Every route is authorised by ``guard`` from the rule it declares (security/guard.py).
    app = FastAPI(title="Qiao", version=__version__, docs_url=None, redoc_url=None,
                  openapi_url=None,  # served below, behind sign-in like every route
                  dependencies=[Depends(guard)], lifespan=background_lifespan)
    app.state.qiao = context
    _install_error_handlers(app)
    _install_request_log(app)
    install_metrics(app)
    app.add_middleware(Idempotency, db=context.db, keyring=context.keyring,
                       identify=_identifier(context))
    install_hardening(app, settings)

    @app.get("/openapi.json", include_in_schema=False, openapi_extra=rule("user"))
    def platform_openapi(request: Request) -> JSONResponse:
        """The whole platform's route table (each app also has its own typed document:
        ``/api/v1/apps/{app}/openapi.json``)."""
        return JSONResponse(request.app.openapi())

    @app.get("/healthz", tags=["system"], openapi_extra=rule("public"))
    def healthz(ctx: ContextDep) -> JSONResponse:
        started = time.perf_counter()
        try:
            ctx.db.ping()
        except Exception as exc:  # noqa: BLE001 - any failure means "unhealthy"
            return problem(503, "Unhealthy", f"database: {type(exc).__name__}", "unhealthy")
        return JSONResponse({"status": "ok", "version": __version__,
                             "database": {"dialect": ctx.db.dialect, "ok": True,
                                          "latency_ms": round((time.perf_counter() - started)
                                                              * 1000, 2)}})

    from platform_core.security.api_admin import router as admin_router
    from platform_core.security.api_auth import router as auth_router
    from platform_core.webhooks.api import router as webhooks_router

    app.include_router(auth_router)
    app.include_router(admin_router)
    app.include_router(webhooks_router)
    for entry in sorted(entry_points(group="qiao.plugins"), key=lambda e: e.name):
        entry.load()(app, context)
    check_routes(app)
    return app


def create_app_from_env() -> FastAPI:
    """Factory for ``uvicorn --factory`` (each worker process builds its own app)."""
    return create_app()


def current_actor(principal: PrincipalDep) -> Actor:
    """Who is calling, as the store records it (set by ``guard`` for every route)."""
    return principal.actor


ActorDep = Annotated[Actor, Depends(current_actor)]
