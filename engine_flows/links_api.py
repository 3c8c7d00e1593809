"""The customer progress links API (``/api/v1``): create, list and revoke the links of a
record (``engine_flows.progress_links``). Whoever may update the record (rule
``form:update`` and the update row scope) manages its links; a record outside that scope
is 404, like the record itself. Each write is one transaction, audited."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from engine_flows import progress_links
from engine_forms.forms import published
from engine_forms.service import Caller, load_scoped
from platform_core.app import ContextDep, IdPath
from platform_core.models import utcnow
from platform_core.security.guard import AccessDep, PrincipalDep, client_of, rule

router = APIRouter(prefix="/api/v1", tags=["flows"])
LINKS = "/apps/{app}/forms/{form}/records/{record_id}/progress-links"
LinkPath = Annotated[int, Path(ge=1, le=2**63 - 1)]


class CreateBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    days: int | None = Field(default=None, ge=1, le=366, description="how long the link "
                             "lives; default: the flow's public.expires_days (30)")


def site_of(ctx: Any) -> progress_links.Site:
    return progress_links.Site(ctx.secret_key, ctx.settings.base_url)


def _check(s: Any, ctx: Any, request: Request, principal: Any, access: Any, app: str,
           form: str, record_id: int) -> None:
    caller = Caller(principal, access, ctx.keyring, client_of(request))
    load_scoped(s, caller, published(s, app, form), record_id, "update")


@router.post(LINKS, status_code=201, openapi_extra=rule("form:update"))
def create_link(ctx: ContextDep, principal: PrincipalDep, access: AccessDep,
                request: Request, app: str, form: str, record_id: IdPath,
                body: CreateBody | None = None) -> JSONResponse:
    """A new link to the record's progress page (the URL to send to its customer)."""
    now = utcnow()
    with ctx.db.write() as s:
        _check(s, ctx, request, principal, access, app, form, record_id)
        link = progress_links.create_link(s, app=app, form=form, record_id=record_id,
                                          actor=principal.actor, now=now,
                                          days=body.days if body else None, via="api")
        doc = progress_links.link_doc(link, site_of(ctx), now)
    return JSONResponse(doc, status_code=201)


@router.get(LINKS, openapi_extra=rule("form:update"))
def list_links(ctx: ContextDep, principal: PrincipalDep, access: AccessDep,
               request: Request, app: str, form: str, record_id: IdPath) -> dict[str, Any]:
    """The record's links, newest first: status, opens, and the URL of a live one."""
    now = utcnow()
    with ctx.db.read() as s:
        _check(s, ctx, request, principal, access, app, form, record_id)
        links = progress_links.links_of(s, app=app, form=form, record_id=record_id)
        return {"items": [progress_links.link_doc(x, site_of(ctx), now) for x in links]}


@router.post(LINKS + "/{link_id}/revoke", openapi_extra=rule("form:update"))
def revoke_link(ctx: ContextDep, principal: PrincipalDep, access: AccessDep,
                request: Request, app: str, form: str, record_id: IdPath,
                link_id: LinkPath) -> dict[str, Any]:
    """Revoke a link: from now on it opens nothing (404)."""
    now = utcnow()
    with ctx.db.write() as s:
        _check(s, ctx, request, principal, access, app, form, record_id)
        link = progress_links.link_of(s, app=app, form=form, record_id=record_id,
                                      link_id=link_id)
        progress_links.revoke(s, link, actor=principal.actor, now=now)
        return progress_links.link_doc(link, site_of(ctx), now)
