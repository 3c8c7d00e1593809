"""Webhook subscriptions (administrators): per app, the list and a new subscription (its
signing secret shown once, on the response that made it); per subscription its delivery
log with each delivery's status, a ping, a replay of a dead letter, and removal.

Each action calls the webhooks API's handler itself (``platform_core.webhooks.api``): the
same destination check (SSRF, DNS), the same audit entries, the same refusals (a paused
subscription is not pinged, a pending delivery is not replayed), shown as a message.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Form, Query, Request
from fastapi.responses import HTMLResponse, Response
from pydantic import ValidationError

from engine_forms.forms import get_app, list_apps
from frontend.pages_channels import integration_page
from frontend.pages_me import invalid
from frontend.web import error_page, redirect
from platform_core.app import ContextDep, IdPath
from platform_core.errors import DomainError
from platform_core.security.guard import PrincipalDep, rule
from platform_core.webhooks.api import (
    AppKey,
    NewWebhook,
    delete_webhook,
    get_deliveries,
    get_webhook,
    get_webhooks,
    ping_webhook,
    post_webhook,
    replay_delivery,
)
from platform_core.webhooks.events import SUBSCRIBABLE

router = APIRouter(include_in_schema=False)
PAGE = "/admin/webhooks"
ADMIN = rule("admin")
EVENTS = tuple(e for e in SUBSCRIBABLE if e != "ping")  # ping: only the test sends it
Status = Literal["pending", "delivered", "dead"]


def _apps(ctx: ContextDep) -> list[dict[str, str]]:
    with ctx.db.read() as s:
        return [{"key": a.key, "name": a.name} for a in list_apps(s)]


def _list_page(ctx: ContextDep, request: Request, app: str | None, *, status: int = 200,
               **extra: Any) -> HTMLResponse:
    apps = _apps(ctx)
    chosen = app or (apps[0]["key"] if apps else None)
    hooks = get_webhooks(ctx, chosen)["items"] if chosen else []
    return integration_page(request, "webhooks.html", status=status, apps=apps,
                            app=chosen, hooks=hooks, events=EVENTS, **extra)


def _known(ctx: ContextDep, app: str) -> None:
    with ctx.db.read() as s:
        get_app(s, app)  # NotFound: an app that is not there


@router.get(PAGE, response_class=HTMLResponse, openapi_extra=ADMIN)
def webhooks(ctx: ContextDep, request: Request,
             app: Annotated[str, Query(max_length=64)] = "") -> HTMLResponse:
    if app:
        try:
            _known(ctx, app)
        except DomainError as exc:
            return error_page(request, exc)
    return _list_page(ctx, request, app or None)


@router.post(PAGE + "/{app}", response_class=HTMLResponse, openapi_extra=ADMIN)
def webhook_create(ctx: ContextDep, request: Request, principal: PrincipalDep, app: AppKey,
                   name: Annotated[str, Form(max_length=100)] = "",
                   url: Annotated[str, Form(max_length=2000)] = "",
                   event_types: Annotated[list[str] | None, Form()] = None) -> Response:
    """A new subscription; its signing secret is on this response and nowhere else."""
    typed = {"name": name, "url": url, "event_types": list(event_types or ())}
    try:
        _known(ctx, app)
        try:
            body = NewWebhook(name=name.strip(), url=url.strip(),
                              event_types=typed["event_types"])
        except ValidationError as exc:
            raise invalid(exc) from exc
        created = post_webhook(ctx, principal, app, body)
    except DomainError as exc:
        return _list_page(ctx, request, app, status=exc.status, error=exc.detail,
                          typed=typed)
    return _list_page(ctx, request, app, status=201, created=created)


def _hook_page(ctx: ContextDep, request: Request, app: str, webhook_id: int, status_filter:
               str | None, *, status: int = 200, **extra: Any) -> HTMLResponse:
    try:
        hook = get_webhook(ctx, app, webhook_id)
        log = get_deliveries(ctx, app, webhook_id, status=status_filter, before=None,
                             limit=100)
    except DomainError as exc:
        return error_page(request, exc)
    return integration_page(request, "webhook.html", status=status, hook=hook,
                            deliveries=log["items"], more=log["next_before"] is not None,
                            status_filter=status_filter, **extra)


@router.get(PAGE + "/{app}/{webhook_id}", response_class=HTMLResponse, openapi_extra=ADMIN)
def webhook_view(ctx: ContextDep, request: Request, app: AppKey, webhook_id: IdPath,
                 status: Status | None = None) -> HTMLResponse:
    return _hook_page(ctx, request, app, webhook_id, status)


def _back(app: str, webhook_id: int, msg: str) -> Response:
    return redirect(f"{PAGE}/{app}/{webhook_id}", msg)


@router.post(PAGE + "/{app}/{webhook_id}/test", response_class=HTMLResponse,
             openapi_extra=ADMIN)
def webhook_ping(ctx: ContextDep, request: Request, app: AppKey,
                 webhook_id: IdPath) -> Response:
    """Queue a ``ping`` (sent by the background loop like every delivery)."""
    try:
        ping_webhook(ctx, app, webhook_id)
    except DomainError as exc:
        return _hook_page(ctx, request, app, webhook_id, None, status=exc.status,
                          error=exc.detail)
    return _back(app, webhook_id, "webhook_ping")


@router.post(PAGE + "/{app}/{webhook_id}/deliveries/{delivery_id}/replay",
             response_class=HTMLResponse, openapi_extra=ADMIN)
def webhook_replay(ctx: ContextDep, request: Request, principal: PrincipalDep, app: AppKey,
                   webhook_id: IdPath, delivery_id: IdPath) -> Response:
    """Queue the same body again (a new delivery; a dead letter gets another chance)."""
    try:
        replay_delivery(ctx, principal, app, webhook_id, delivery_id)
    except DomainError as exc:
        return _hook_page(ctx, request, app, webhook_id, None, status=exc.status,
                          error=exc.detail)
    return _back(app, webhook_id, "webhook_replayed")


@router.post(PAGE + "/{app}/{webhook_id}/delete", response_class=HTMLResponse,
             openapi_extra=ADMIN)
def webhook_delete(ctx: ContextDep, request: Request, principal: PrincipalDep, app: AppKey,
                   webhook_id: IdPath) -> Response:
    try:
        delete_webhook(ctx, principal, app, webhook_id)
    except DomainError as exc:
        return error_page(request, exc)
    return redirect(f"{PAGE}?app={app}", "webhook_deleted")
