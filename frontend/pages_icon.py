"""``/favicon.ico``: browsers ask for it at the root whatever the page says; the pages name
``/static/favicon.svg`` (``<link rel="icon">``) and this serves the same bridge as an ICO
(16, 32 and 48 px) for the rest. Public, like the static files."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import FileResponse

from frontend.web import STATIC_DIR
from platform_core.security.guard import rule

router = APIRouter(include_in_schema=False)


@router.get("/favicon.ico", openapi_extra=rule("public"))
def favicon() -> FileResponse:
    return FileResponse(STATIC_DIR / "favicon.ico", media_type="image/x-icon",
                        headers={"Cache-Control": "public, max-age=86400"})
