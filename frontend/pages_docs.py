"""``/docs``: Swagger UI (vendored, ``static/vendor/swagger-ui``) over the generated OpenAPI
document of an app the user can read, or over the platform's own ``/openapi.json``.

The page only chooses which document to show (``?app=``); the browser then fetches it
with the session cookie (a GET needs no CSRF token) and ``qiao-init.js`` starts Swagger
UI — no inline script. "Try it out" requests are the user's own, with their rights;
writes carry the page's CSRF token.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse

from engine_forms import forms as forms_handler
from frontend.web import render
from platform_core.app import ContextDep
from platform_core.security.guard import PrincipalDep, rule

router = APIRouter(include_in_schema=False)
PLATFORM = "/openapi.json"


@router.get("/docs", response_class=HTMLResponse, openapi_extra=rule("user"))
def docs(ctx: ContextDep, principal: PrincipalDep, request: Request,
         app: Annotated[str | None, Query(max_length=64)] = None) -> HTMLResponse:
    """The first app by default; ``?app=`` (empty: the platform's own API) to choose."""
    with ctx.db.read() as s:
        apps: list[dict[str, Any]] = [{"key": a.key, "name": a.name}
                                      for a in forms_handler.list_apps(s)
                                      if principal.app_allows(a.key, "read")]
    keys = [a["key"] for a in apps]
    chosen = (keys[:1] or [""])[0] if app is None else app if app in keys else ""
    spec = f"/api/v1/apps/{chosen}/openapi.json" if chosen else PLATFORM
    return render(request, "docs.html", apps=apps, chosen=chosen, spec=spec)
