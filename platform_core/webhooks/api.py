"""Webhooks API (``/api/v1/apps/{app}/webhooks…``): subscriptions, the delivery log,
replay and a test ping. Every route needs ``app:manage`` on the app.

Thin routes over ``service``: the URL is checked (SSRF, DNS) before a transaction opens;
each write is one transaction, audited inside it. Bodies refuse unknown keys.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Path, Query
from fastapi.responses import Response
from pydantic import Field, field_validator

from platform_core.app import ContextDep, IdPath
from platform_core.security.api_auth import Strict
from platform_core.security.guard import PrincipalDep, rule
from platform_core.webhooks import service
from platform_core.webhooks.events import SUBSCRIBABLE, EventType

router = APIRouter(prefix="/api/v1", tags=["webhooks"])
MANAGE = rule("app:manage")
AppKey = Annotated[str, Path(pattern="^[a-z][a-z0-9_]{0,63}$")]
Secret = Annotated[str, Field(min_length=16, max_length=128, pattern="^[!-~]+$",
                              description="printable ASCII; generated when not given")]
EventTypes = Annotated[list[EventType], Field(min_length=1, max_length=len(SUBSCRIBABLE))]


def _unique(types: list[str] | None) -> list[str] | None:
    return None if types is None else list(dict.fromkeys(types))


class NewWebhook(Strict):
    name: str = Field(min_length=1, max_length=100)
    url: str = Field(min_length=1, max_length=2000)
    event_types: EventTypes
    secret: Secret | None = None
    active: bool = True

    _dedupe = field_validator("event_types")(_unique)


class WebhookChange(Strict):
    name: str | None = Field(default=None, min_length=1, max_length=100)
    url: str | None = Field(default=None, min_length=1, max_length=2000)
    event_types: EventTypes | None = None
    secret: Secret | None = None
    active: bool | None = None

    _dedupe = field_validator("event_types")(_unique)


@router.get("/apps/{app}/webhooks", openapi_extra=MANAGE)
def get_webhooks(ctx: ContextDep, app: AppKey) -> dict[str, Any]:
    with ctx.db.read() as s:
        return {"items": [service.subscription_doc(w) for w in service.list_subscriptions(s, app)]}


@router.post("/apps/{app}/webhooks", status_code=201, openapi_extra=MANAGE)
def post_webhook(ctx: ContextDep, principal: PrincipalDep, app: AppKey,
                 body: NewWebhook) -> dict[str, Any]:
    """Subscribe; the response holds the signing ``secret`` — the only time it is shown."""
    service.checked_url(ctx.settings, body.url)
    with ctx.db.write() as s:
        sub, secret = service.create_subscription(
            s, ctx.keyring, app=app, name=body.name, url=body.url,
            event_types=list(body.event_types), secret=body.secret, active=body.active,
            actor=principal.actor)
        return service.subscription_doc(sub) | {"secret": secret}


@router.get("/apps/{app}/webhooks/{webhook_id}", openapi_extra=MANAGE)
def get_webhook(ctx: ContextDep, app: AppKey, webhook_id: IdPath) -> dict[str, Any]:
    with ctx.db.read() as s:
        return service.subscription_doc(service.get_subscription(s, app, webhook_id))


@router.patch("/apps/{app}/webhooks/{webhook_id}", openapi_extra=MANAGE)
def patch_webhook(ctx: ContextDep, principal: PrincipalDep, app: AppKey, webhook_id: IdPath,
                  body: WebhookChange) -> dict[str, Any]:
    """Change name, url, event types, active, or set a new secret (not returned)."""
    changes = {k: v for k, v in body.model_dump(exclude_unset=True).items() if v is not None}
    if "url" in changes:
        service.checked_url(ctx.settings, changes["url"])
    with ctx.db.write() as s:
        sub = service.get_subscription(s, app, webhook_id)
        return service.subscription_doc(
            service.update_subscription(s, ctx.keyring, sub, changes, actor=principal.actor))


@router.delete("/apps/{app}/webhooks/{webhook_id}", status_code=204, openapi_extra=MANAGE)
def delete_webhook(ctx: ContextDep, principal: PrincipalDep, app: AppKey,
                   webhook_id: IdPath) -> Response:
    with ctx.db.write() as s:
        service.delete_subscription(s, service.get_subscription(s, app, webhook_id),
                                    actor=principal.actor)
    return Response(status_code=204)


@router.get("/apps/{app}/webhooks/{webhook_id}/deliveries", openapi_extra=MANAGE)
def get_deliveries(ctx: ContextDep, app: AppKey, webhook_id: IdPath,
                   status: Literal["pending", "delivered", "dead"] | None = None,
                   before: Annotated[int | None, Query(description="cursor: deliveries "
                                                                   "older than this id")] = None,
                   limit: Annotated[int, Query(ge=1, le=500)] = 100) -> dict[str, Any]:
    """The delivery log, newest first (``status=dead``: the dead letters);
    ``next_before`` pages further back."""
    with ctx.db.read() as s:
        sub = service.get_subscription(s, app, webhook_id)
        rows = service.list_deliveries(s, sub, status=status, before=before, limit=limit)
    return {"items": [service.delivery_doc(d) for d in rows],
            "next_before": rows[-1].id if len(rows) == limit else None}


@router.post("/apps/{app}/webhooks/{webhook_id}/deliveries/{delivery_id}/replay",
             status_code=202, openapi_extra=MANAGE)
def replay_delivery(ctx: ContextDep, principal: PrincipalDep, app: AppKey, webhook_id: IdPath,
                    delivery_id: IdPath) -> dict[str, Any]:
    """Queue the same body again (a new delivery, ``replay_of`` set)."""
    with ctx.db.write() as s:
        sub = service.get_subscription(s, app, webhook_id)
        return service.delivery_doc(service.replay(s, sub, delivery_id,
                                                   actor=principal.actor))


@router.post("/apps/{app}/webhooks/{webhook_id}/test", status_code=202, openapi_extra=MANAGE)
def ping_webhook(ctx: ContextDep, app: AppKey, webhook_id: IdPath) -> dict[str, Any]:
    """Queue a ``ping`` delivery (sent by the background loop like any other)."""
    with ctx.db.write() as s:
        return service.delivery_doc(service.queue_ping(
            s, service.get_subscription(s, app, webhook_id)))
