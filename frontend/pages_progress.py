"""Customer progress links on the pages: the customer's own page ``/p/{token}`` (no
sign-in) and the record page's panel where staff create, copy and revoke links.

The customer's page is built by ``engine_flows.progress_links.open_link`` and shows only
what the flow's ``public`` block names, on a bare page (no top bar, menus, script or link
elsewhere), never cached, indexed or sent as a referrer. Every refusal — a tampered,
unknown, expired or revoked link, a deleted record — is the same bare 404 page; too
many opens a minute (per client, per link) give the same page with 429.

The panel (``…/records/{id}/progress-links``) is an htmx partial loaded by the record
page; it is empty for whoever may not update the record or where no flow of the form
has a progress page. Creating and revoking post back to it (a plain form post without
htmx returns to the record page).
"""

from __future__ import annotations

import time
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response
from sqlalchemy.exc import OperationalError

from engine_flows import progress_links
from engine_flows.links_api import site_of
from engine_forms.forms import published
from engine_forms.service import Caller, load_scoped
from frontend import i18n
from frontend.i18n import _
from frontend.web import NO_STORE, TEMPLATES, redirect, render
from platform_core import __version__
from platform_core.app import ContextDep, IdPath
from platform_core.errors import NotFound
from platform_core.models import utcnow
from platform_core.security.guard import AccessDep, PrincipalDep, client_of, rule

router = APIRouter(include_in_schema=False)
LINKS = "/apps/{app}/forms/{form}/records/{record_id}/progress-links"
PUBLIC_HEADERS = NO_STORE | {"Referrer-Policy": "no-referrer",
                             "X-Robots-Tag": "noindex, nofollow"}
DAYS = (7, 30, 90)


def _public(request: Request, template: str, status: int, **values: Any) -> HTMLResponse:
    context = {"version": __version__, "lang": i18n.current_locale()} | values
    headers = PUBLIC_HEADERS | ({"Retry-After": "60" if status == 429 else "1"}
                                if status in (429, 503) else {})
    return TEMPLATES.TemplateResponse(request, template, context, status_code=status,
                                      headers=headers)


@router.get("/p/{token}", response_class=HTMLResponse, openapi_extra=rule("public"))
def customer_page(ctx: ContextDep, request: Request, token: str) -> HTMLResponse:
    """The customer's progress page, or the same bare 404 for every refusal."""
    page: Any = None
    for attempt in range(3):  # SQLite's one writer may be busy a moment: the open writes
        try:
            page = progress_links.open_link(
                ctx.db, site_of(ctx), token[:200], client=client_of(request), now=utcnow(),
                per_minute=ctx.settings.progress_rate_per_minute, keyring=ctx.keyring)
            break
        except OperationalError as exc:
            if "database is locked" not in str(exc.orig) or attempt == 2:
                if "database is locked" in str(exc.orig):
                    return _public(request, "public/gone.html", 503, throttled=True)
                raise
            time.sleep(0.2 * (attempt + 1))
    if page == progress_links.THROTTLED:
        return _public(request, "public/gone.html", 429, throttled=True)
    if not isinstance(page, dict):
        return _public(request, "public/gone.html", 404)
    return _public(request, "public/progress.html", 200, page=page)


# -- the staff's panel ----------------------------------------------------------------------


def _may_manage(s: Any, caller: Caller, app: str, form: str, record_id: int) -> bool:
    """Read the record (404 outside the read scope, as its page); whether the caller may
    also update it — who may manage its links."""
    pub = published(s, app, form)
    load_scoped(s, caller, pub, record_id, "read")
    if not caller.access.allows("update"):
        return False
    try:
        load_scoped(s, caller, pub, record_id, "update")
    except NotFound:
        return False
    return True


def _panel(request: Request, ctx: Any, caller: Caller, app: str, form: str, record_id: int,
           status: int = 200, **values: Any) -> Response:
    now = utcnow()
    with ctx.db.read() as s:
        if not _may_manage(s, caller, app, form, record_id):
            return HTMLResponse("", headers=NO_STORE)
        spec = progress_links.public_flow(s, app, form)
        if spec is None or spec.public is None:
            return HTMLResponse("", headers=NO_STORE)
        links = [progress_links.link_doc(x, site_of(ctx), now) for x in
                 progress_links.links_of(s, app=app, form=form, record_id=record_id)]
    default = spec.public.expires_days if spec.public.expires_days in DAYS else 30
    return render(request, "workspace/_progress_links.html", status=status, app=app,
                  form=form, record_id=record_id, links=links, default_days=default,
                  **values)


def _caller(request: Request, ctx: Any, principal: Any, access: Any) -> Caller:
    return Caller(principal, access, ctx.keyring, client_of(request))


@router.get(LINKS, response_class=HTMLResponse, openapi_extra=rule("form:read"))
def links_panel(ctx: ContextDep, principal: PrincipalDep, access: AccessDep,
                request: Request, app: str, form: str, record_id: IdPath) -> Response:
    return _panel(request, ctx, _caller(request, ctx, principal, access), app, form,
                  record_id)


def _done(request: Request, ctx: Any, caller: Caller, app: str, form: str, record_id: int,
          **values: Any) -> Response:
    if request.headers.get("HX-Request") != "true":
        return redirect(f"/apps/{app}/forms/{form}/records/{record_id}")
    return _panel(request, ctx, caller, app, form, record_id, **values)


@router.post(LINKS, response_class=HTMLResponse, openapi_extra=rule("form:update"))
async def create_link(ctx: ContextDep, principal: PrincipalDep, access: AccessDep,
                      request: Request, app: str, form: str, record_id: IdPath) -> Response:
    caller = _caller(request, ctx, principal, access)
    days = str((await request.form()).get("days") or "")
    # htmx swaps only a 2xx answer: a refusal shows in the panel it replaces
    status = 200 if request.headers.get("HX-Request") == "true" else 422
    if not days.isdigit() or not 1 <= int(days) <= 366:
        return _panel(request, ctx, caller, app, form, record_id, status=status,
                      error=_("有效期为 1 到 366 天。"))
    with ctx.db.write() as s:
        load_scoped(s, caller, published(s, app, form), record_id, "update")
        if progress_links.public_flow(s, app, form) is None:
            return _panel(request, ctx, caller, app, form, record_id, status=status,
                          error=_("这个表单的流程没有设置客户进度页。"))
        progress_links.create_link(s, app=app, form=form, record_id=record_id,
                                   actor=principal.actor, now=utcnow(), days=int(days))
    return _done(request, ctx, caller, app, form, record_id, created=True)


@router.post(LINKS + "/{link_id}/revoke", response_class=HTMLResponse,
             openapi_extra=rule("form:update"))
def revoke_link(ctx: ContextDep, principal: PrincipalDep, access: AccessDep,
                request: Request, app: str, form: str, record_id: IdPath,
                link_id: IdPath) -> Response:
    caller = _caller(request, ctx, principal, access)
    with ctx.db.write() as s:
        load_scoped(s, caller, published(s, app, form), record_id, "update")
        link = progress_links.link_of(s, app=app, form=form, record_id=record_id,
                                      link_id=link_id)
        progress_links.revoke(s, link, actor=principal.actor, now=utcnow())
    return _done(request, ctx, caller, app, form, record_id, revoked=True)
