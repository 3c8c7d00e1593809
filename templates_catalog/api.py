"""The template catalogue over HTTP, for administrators (rule ``admin``): list the
templates, install one (with or without its demo data, under a chosen key), export an
app as a bundle zip, install a bundle zip. The same operations as ``qiao template …``."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body, File, Form, UploadFile
from fastapi.responses import Response
from pydantic import BaseModel, Field

from platform_core.app import ActorDep, ContextDep
from platform_core.catalog import Installed, app_catalog
from platform_core.security.guard import rule

router = APIRouter(prefix="/api/v1", tags=["apps"])
KEY = r"^[a-z][a-z0-9_]{0,62}$"


class InstallBody(BaseModel):
    key: str | None = Field(default=None, pattern=KEY,
                            description="the new app's key (default: the template's)")
    demo: bool = Field(default=False, description="also load the template's demo data")


def _installed(done: Installed) -> dict[str, Any]:
    return {"app": done.app, "template": done.template, "version": done.version,
            "demo": done.demo}


@router.get("/templates", openapi_extra=rule("admin"))
def list_templates() -> dict[str, Any]:
    return {"items": [t.__dict__ for t in app_catalog().templates()]}


@router.post("/templates/{name}/install", status_code=201, openapi_extra=rule("admin"))
def install_template(ctx: ContextDep, actor: ActorDep, name: str,
                     body: Annotated[InstallBody, Body()]) -> dict[str, Any]:
    """Install template ``name`` as a new app (all of it or nothing); with ``demo``, its
    demo users and records too, which takes up to a minute."""
    return _installed(app_catalog().install(ctx, name, key=body.key, demo=body.demo,
                                            actor=actor, progress=lambda _line: None))


@router.get("/apps/{app}/bundle", openapi_extra=rule("admin"),
            responses={200: {"content": {"application/zip": {}}}})
def export_bundle(ctx: ContextDep, app: str) -> Response:
    """App ``app`` as a bundle zip: installable again here or on another Qiao."""
    data = app_catalog().export(ctx, app)
    return Response(data, media_type="application/zip", headers={
        "Content-Disposition": f'attachment; filename="{app}-bundle.zip"'})


@router.post("/apps/import", status_code=201, openapi_extra=rule("admin"))
async def import_bundle(ctx: ContextDep, actor: ActorDep, file: Annotated[UploadFile, File()],
                        key: Annotated[str | None, Form(pattern=KEY)] = None
                        ) -> dict[str, Any]:
    """Install a bundle zip (from ``GET /apps/{app}/bundle``) as a new app."""
    from starlette.concurrency import run_in_threadpool

    data = await file.read()
    done = await run_in_threadpool(app_catalog().install_bundle, ctx, data, key=key or None,
                                   actor=actor, progress=lambda _line: None)
    return _installed(done)
