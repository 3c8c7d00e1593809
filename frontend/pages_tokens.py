"""Every API token (administrators): who holds it, its scopes, use and expiry; a new
token for an integration, acting as a chosen user within scopes (apps or forms, read or
read-write; the secret shown once, on the response that made it); revoking any token.

Each action calls the administration API's handler itself (``GET``/``POST``/``DELETE
/api/v1/tokens``): same checks, same audit entries. The rows are the personal page's
(``_token_row.html``), with a holder column and this page's revoke address.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, Response
from pydantic import ValidationError
from sqlalchemy import select

from frontend.pages_channels import integration_page
from frontend.pages_me import EXPIRY_DAYS, invalid, scopes_of
from frontend.web import redirect, render
from platform_core.app import ContextDep, IdPath
from platform_core.errors import DomainError
from platform_core.security.api_admin import IntegrationToken, delete_token, get_tokens, post_token
from platform_core.security.api_auth import token_doc
from platform_core.security.guard import PrincipalDep, rule
from platform_core.security.models import ApiToken, User

router = APIRouter(include_in_schema=False)
PAGE = "/admin/tokens"
ADMIN = rule("admin")


def _holders(ctx: ContextDep) -> dict[int, str]:
    """Usernames by id (every user: a disabled one may still hold a token)."""
    with ctx.db.read() as s:
        return dict(s.execute(select(User.id, User.username)).all())


def _active_users(ctx: ContextDep) -> list[dict[str, Any]]:
    with ctx.db.read() as s:
        rows = s.execute(select(User.id, User.username, User.display_name).where(
            User.status == "active").order_by(User.username)).all()
    return [{"id": r.id, "username": r.username, "name": r.display_name} for r in rows]


def _page(ctx: ContextDep, request: Request, *, status: int = 200,
          **extra: Any) -> HTMLResponse:
    return integration_page(request, "tokens.html", status=status,
                            tokens=get_tokens(ctx)["items"], owners=_holders(ctx),
                            users=_active_users(ctx), expiry_days=EXPIRY_DAYS,
                            token_base=PAGE, **extra)


@router.get(PAGE, response_class=HTMLResponse, openapi_extra=ADMIN)
def tokens(ctx: ContextDep, request: Request) -> HTMLResponse:
    return _page(ctx, request)


@router.post(PAGE, response_class=HTMLResponse, openapi_extra=ADMIN)
def token_create(ctx: ContextDep, request: Request, principal: PrincipalDep,
                 name: Annotated[str, Form(max_length=100)] = "",
                 user_id: Annotated[int | None, Form(ge=1, le=2**63 - 1)] = None,
                 limit: Annotated[str, Form(max_length=1000)] = "",
                 access: Annotated[str, Form(max_length=10)] = "read",
                 expires_in_days: Annotated[int, Form(ge=1, le=3650)] = 90) -> Response:
    """A token for an integration; its secret is on this response and nowhere else."""
    typed = {"name": name, "user_id": user_id, "limit": limit, "access": access,
             "expires_in_days": expires_in_days}
    try:
        try:
            body = IntegrationToken(name=name.strip(), user_id=user_id,
                                    scopes=scopes_of(limit, access),
                                    expires_in_days=expires_in_days)
        except ValidationError as exc:
            raise invalid(exc) from exc
        created = post_token(ctx, principal, body)
    except DomainError as exc:
        return _page(ctx, request, status=exc.status, error=exc.detail, typed=typed)
    return _page(ctx, request, status=201, new_token=created)


@router.post(PAGE + "/{token_id}/revoke", response_class=HTMLResponse, openapi_extra=ADMIN)
def token_revoke(ctx: ContextDep, request: Request, principal: PrincipalDep,
                 token_id: IdPath) -> Response:
    try:
        delete_token(ctx, principal, token_id)
    except DomainError as exc:
        return _page(ctx, request, status=exc.status, error=exc.detail)
    if request.headers.get("hx-request"):  # htmx swaps just this token's row
        with ctx.db.read() as s:
            row = token_doc(s.get(ApiToken, token_id))
        return render(request, "_token_row.html", token=row, owners=_holders(ctx),
                      token_base=PAGE)
    return redirect(PAGE, "token_revoked")
