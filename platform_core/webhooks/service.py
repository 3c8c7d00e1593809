"""Subscriptions and the delivery log: the domain operations behind the webhooks API.

Each function works in the caller's transaction; every change of a subscription and
every replay is audited in it. The destination is checked (``checked_url``) before the
transaction opens, since that resolves DNS. A subscription's secret is returned by
``create_subscription`` once and never again: only its sealed form is stored.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

from sqlalchemy import select
from sqlalchemy.orm import Session

from platform_core.errors import Conflict, NotFound
from platform_core.models import utcnow
from platform_core.security import audit
from platform_core.security.crypto import Keyring
from platform_core.settings import Settings
from platform_core.store import Actor
from platform_core.webhooks.events import iso, ping_body
from platform_core.webhooks.models import WebhookDelivery, WebhookSubscription
from platform_core.webhooks.signing import new_secret, seal_secret
from platform_core.webhooks.ssrf import AllowList, check_url


def checked_url(settings: Settings, url: str) -> str:
    """``url`` if webhooks may reach it now (422 with the reason otherwise)."""
    check_url(url, AllowList.parse(settings.webhook_allow_hosts))
    return url


def subscription_doc(sub: WebhookSubscription) -> dict[str, Any]:
    """A subscription as the API shows it: never its secret."""
    return {"id": sub.id, "app": sub.app, "name": sub.name, "url": sub.url,
            "event_types": sub.event_types, "active": sub.active,
            "created_by": sub.created_by, "created_at": iso(sub.created_at),
            "updated_at": iso(sub.updated_at)}


def delivery_doc(d: WebhookDelivery) -> dict[str, Any]:
    """One line of the delivery log."""
    return {"id": d.id, "subscription_id": d.subscription_id, "event_id": d.event_id,
            "event_type": d.event_type, "status": d.status, "attempts": d.attempts,
            "next_attempt_at": iso(d.next_attempt_at) if d.status == "pending" else None,
            "last_status_code": d.last_status_code, "last_error": d.last_error,
            "replay_of": d.replay_of, "created_at": iso(d.created_at),
            "delivered_at": iso(d.delivered_at) if d.delivered_at else None, "body": d.body}


def _audit(session: Session, actor: Actor, action: str, sub: WebhookSubscription,
           **detail: Any) -> None:
    audit.append(session, actor=actor, action=f"webhook.{action}", target=f"webhook:{sub.id}",
                 detail={"app": sub.app, **detail})


def _summary(values: dict[str, Any]) -> dict[str, Any]:
    """What the audit log keeps of a change: the URL's host only (a URL may carry a
    token in its path), and never a secret."""
    out = {k: v for k, v in values.items() if k not in ("url", "secret")}
    if "url" in values:
        out["host"] = urlsplit(values["url"]).hostname
    if "secret" in values:
        out["secret"] = "changed"
    return out


def list_subscriptions(session: Session, app: str) -> list[WebhookSubscription]:
    return list(session.execute(select(WebhookSubscription).where(
        WebhookSubscription.app == app).order_by(WebhookSubscription.id)).scalars())


def get_subscription(session: Session, app: str, webhook_id: int) -> WebhookSubscription:
    sub = session.get(WebhookSubscription, webhook_id)
    if sub is None or sub.app != app:
        raise NotFound(f"webhook {webhook_id} does not exist in app {app}",
                       webhook_id=webhook_id)
    return sub


def create_subscription(session: Session, keyring: Keyring, *, app: str, name: str, url: str,
                        event_types: list[str], secret: str | None, active: bool,
                        actor: Actor) -> tuple[WebhookSubscription, str]:
    """A new subscription and its plain secret (generated when none is given)."""
    secret = secret or new_secret()
    now = utcnow()
    sub = WebhookSubscription(app=app, name=name, url=url, event_types=event_types,
                              secret=seal_secret(keyring, app, secret), active=active,
                              created_by=actor.user_id, created_at=now, updated_at=now)
    session.add(sub)
    session.flush()
    _audit(session, actor, "create", sub, **_summary(
        {"name": name, "url": url, "event_types": event_types, "active": active}))
    return sub, secret


def update_subscription(session: Session, keyring: Keyring, sub: WebhookSubscription,
                        changes: dict[str, Any], *, actor: Actor) -> WebhookSubscription:
    """Apply ``changes`` (name, url, event_types, active, secret); the URL is checked."""
    for key, value in changes.items():
        setattr(sub, key, seal_secret(keyring, sub.app, value) if key == "secret" else value)
    sub.updated_at = utcnow()
    session.flush()
    _audit(session, actor, "update", sub, **_summary(changes))
    return sub


def delete_subscription(session: Session, sub: WebhookSubscription, *, actor: Actor) -> None:
    """Remove it with its delivery log (the foreign key cascades)."""
    _audit(session, actor, "delete", sub, name=sub.name)
    session.delete(sub)
    session.flush()


def list_deliveries(session: Session, sub: WebhookSubscription, *, status: str | None,
                    before: int | None, limit: int) -> list[WebhookDelivery]:
    """The delivery log, newest first; ``before`` is the cursor (a delivery id)."""
    query = (select(WebhookDelivery).where(WebhookDelivery.subscription_id == sub.id)
             .order_by(WebhookDelivery.id.desc()).limit(limit))
    if status:
        query = query.where(WebhookDelivery.status == status)
    if before:
        query = query.where(WebhookDelivery.id < before)
    return list(session.execute(query).scalars())


def _require_active(sub: WebhookSubscription) -> None:
    if not sub.active:
        raise Conflict(f"webhook {sub.id} is paused; set it active first", webhook_id=sub.id)


def replay(session: Session, sub: WebhookSubscription, delivery_id: int, *,
           actor: Actor) -> WebhookDelivery:
    """A new pending delivery with the same body (same event ``id``), ``replay_of`` set."""
    _require_active(sub)
    original = session.get(WebhookDelivery, delivery_id)
    if original is None or original.subscription_id != sub.id:
        raise NotFound(f"delivery {delivery_id} does not exist in webhook {sub.id}",
                       delivery_id=delivery_id)
    if original.status == "pending":
        raise Conflict(f"delivery {delivery_id} is still pending (next try "
                       f"{iso(original.next_attempt_at)}): there is nothing to replay yet",
                       delivery_id=delivery_id)
    copy = _queue(session, sub, original.event_type, original.body, replay_of=original.id)
    _audit(session, actor, "replay", sub, delivery_id=original.id, replay_id=copy.id)
    return copy


def queue_ping(session: Session, sub: WebhookSubscription,
               now: datetime | None = None) -> WebhookDelivery:
    """A ``ping`` delivery, to try the receiver and its signature check."""
    _require_active(sub)
    return _queue(session, sub, "ping", ping_body(sub, now or utcnow()), replay_of=None)


def _queue(session: Session, sub: WebhookSubscription, event_type: str,
           body: dict[str, Any], *, replay_of: int | None) -> WebhookDelivery:
    now = utcnow()
    delivery = WebhookDelivery(subscription_id=sub.id, event_id=None, event_type=event_type,
                               body=body, status="pending", attempts=0, next_attempt_at=now,
                               replay_of=replay_of, created_at=now)
    session.add(delivery)
    session.flush()
    return delivery
