"""Front-end pages, plugged into the app factory through the ``qiao.plugins`` group."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse
from fastapi.templating import Jinja2Templates

from platform_core import __version__
from platform_core.security.guard import rule

TEMPLATES = Jinja2Templates(directory=str(Path(__file__).parent / "templates"))


def register(app: FastAPI, context: Any) -> None:
    """Add the workspace pages to ``app``."""

    @app.get("/", response_class=HTMLResponse, include_in_schema=False,
             openapi_extra=rule("public"))
    def home(request: Request) -> HTMLResponse:
        return TEMPLATES.TemplateResponse(
            request, "home.html",
            {"version": __version__, "dialect": context.db.dialect})
