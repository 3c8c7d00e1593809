"""The route that serves the app document: ``GET /api/v1/apps/{app}/openapi.json``."""

from __future__ import annotations

from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import JSONResponse

from engine_forms.openapi.document import build_document
from platform_core.app import ContextDep
from platform_core.security.guard import PrincipalDep, api_routes, route_rule, rule


def routes_of(app: FastAPI) -> dict[tuple[str, str], str]:
    """(METHOD, path template) → rule, for every route of the running app."""
    return {(method, route.path): route_rule(route) or ""
            for route in api_routes(app) for method in route.methods}


router = APIRouter(prefix="/api/v1", tags=["forms"])


@router.get("/apps/{app}/openapi.json", openapi_extra=rule("app:read"))
def app_openapi(ctx: ContextDep, principal: PrincipalDep, request: Request,
                app: str) -> JSONResponse:
    """The OpenAPI document of ``app`` as the caller may use it (never cached)."""
    with ctx.db.read() as s:
        return JSONResponse(build_document(s, app, principal, routes_of(request.app),
                                           request.app.openapi()))
