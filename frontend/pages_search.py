"""Global search from the top bar: ``/search/results`` answers the box as the user types
(an htmx fragment of a few records per form), ``/search?q=`` is the full page (the box
is a plain GET form, so it works without JavaScript too).

Both are ``engine_forms.search`` run as the signed-in user: only forms they may read,
within their row scope, hidden fields never searched, masked values shown masked.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from engine_forms import search
from frontend.web import render
from platform_core.app import ContextDep
from platform_core.security.guard import PrincipalDep, client_of, rule

router = APIRouter(include_in_schema=False)
DROPDOWN = 5  # records per form in the box's list
PAGE = 20  # records per form on the results page


def _groups(request: Request, ctx: Any, principal: Any, q: str, limit: int) -> list[Any]:
    if not q:
        return []
    with ctx.db.read() as s:
        return search.search(s, principal, ctx.keyring, q, limit=limit,
                             client=client_of(request))


def _views(groups: list[Any]) -> list[dict[str, Any]]:
    """What the templates show of each form's hits: labels resolved, links made."""
    out = []
    for g in groups:
        spec = g.pub.spec
        out.append({
            "form": spec, "app": g.app, "more": g.more,
            "list_url": f"/apps/{g.app}/forms/{spec.key}",
            "items": [{"id": h.id, "title": h.title,
                       "url": f"/apps/{g.app}/forms/{spec.key}/records/{h.id}",
                       "values": [(spec.field(k), v) for k, v in h.values]}
                      for h in g.hits]})
    return out


def _query(request: Request) -> str:
    return (request.query_params.get("q") or "").strip()[:search.MAX_TEXT]


@router.get("/search", response_class=HTMLResponse, openapi_extra=rule("user"))
def search_page(ctx: ContextDep, principal: PrincipalDep, request: Request) -> HTMLResponse:
    q = _query(request)
    groups = _views(_groups(request, ctx, principal, q, PAGE))
    return render(request, "search.html", q=q, groups=groups, per_form=PAGE)


@router.get("/search/results", response_class=HTMLResponse, openapi_extra=rule("user"))
def search_results(ctx: ContextDep, principal: PrincipalDep,
                   request: Request) -> HTMLResponse:
    q = _query(request)
    groups = _views(_groups(request, ctx, principal, q, DROPDOWN))
    return render(request, "_search_results.html", q=q, groups=groups)
