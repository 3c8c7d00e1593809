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

from fastapi import Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.orm import Session
from starlette.exceptions import HTTPException as StarletteHTTPException

from platform_core import __version__, expressions
from platform_core.db import Database
from platform_core.errors import DomainError
from platform_core.settings import Settings, ensure_secret_key, load_settings
from platform_core.store import Actor, kinds

log = logging.getLogger("qiao.http")
PROBLEM = "application/problem+json"


@dataclass
class AppContext:
    """What a running app holds: its settings, database and secret key."""

    settings: Settings
    db: Database
    secret_key: bytes


def problem(status: int, title: str, detail: str, code: str, **extra: Any) -> JSONResponse:
    body = {"type": f"urn:qiao:problem:{code}", "title": title, "status": status,
            "detail": detail, "code": code, **extra}
    return JSONResponse(body, status_code=status, media_type=PROBLEM)


def _install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(DomainError)
    async def _domain(request: Request, exc: DomainError) -> JSONResponse:
        body = exc.problem() | {"instance": request.url.path}
        return JSONResponse(body, status_code=exc.status, media_type=PROBLEM)

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

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, _exc: Exception) -> JSONResponse:
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        return problem(500, "Internal error", "an unexpected error occurred; it was logged",
                       "internal_error", instance=request.url.path)


def _install_request_log(app: FastAPI) -> None:
    @app.middleware("http")
    async def _log(request: Request, call_next: Callable[[Request], Any]) -> Any:
        started = time.perf_counter()
        response = await call_next(request)
        log.info("%s %s %s %.1fms", request.method, request.url.path, response.status_code,
                 (time.perf_counter() - started) * 1000)
        return response


def get_context(request: Request) -> AppContext:
    return request.app.state.qiao


def get_session(request: Request) -> Any:
    with get_context(request).db.read() as session:
        yield session


ContextDep = Annotated[AppContext, Depends(get_context)]
ReadSessionDep = Annotated[Session, Depends(get_session)]


def create_app(settings: Settings | None = None, *, db: Database | None = None) -> FastAPI:
    """Build the ASGI app. The database must already be migrated (``qiao init``)."""
    settings = settings or load_settings()
    kinds.register_builtins()
    expressions.register_builtins()
    context = AppContext(
        settings=settings,
        db=db or Database.from_url(settings.effective_database_url,
                                   busy_timeout_ms=settings.sqlite_busy_timeout_ms),
        secret_key=ensure_secret_key(settings),
    )
    app = FastAPI(title="Qiao", version=__version__, docs_url=None, redoc_url=None)
    app.state.qiao = context
    _install_error_handlers(app)
    _install_request_log(app)

    @app.get("/healthz", tags=["system"])
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

    for entry in sorted(entry_points(group="qiao.plugins"), key=lambda e: e.name):
        entry.load()(app, context)
    return app


def create_app_from_env() -> FastAPI:
    """Factory for ``uvicorn --factory`` (each worker process builds its own app)."""
    return create_app()


ANONYMOUS = Actor(user_id=None, name="anonymous")


def current_actor() -> Actor:
    """Who is calling. Until sign-in exists (the security issue) every call is anonymous."""
    return ANONYMOUS


ActorDep = Annotated[Actor, Depends(current_actor)]
