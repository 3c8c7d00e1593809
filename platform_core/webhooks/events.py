"""Which events a subscription can receive, their body, and the outbox fan-out handler.

The body of every delivery (``docs/webhooks.md``)::

    {"id": "evt_42", "type": "record.updated", "app": "crm", "form": "customer",
     "record_id": 7, "occurred_at": "2026-…Z", "data": {<the outbox payload>}}

``id`` names the event, not the delivery: retries and replays repeat it, so a receiver
can drop duplicates by it. ``data`` is the outbox payload as written by the change
(``record_id``, ``row_version``, ``actor_id``, ``changes``) with every sealed (encrypted)
value replaced by null: ciphertexts are never sent and nothing is decrypted for a webhook.
"""

from __future__ import annotations

import secrets
from datetime import UTC, datetime
from typing import Any, Literal, get_args

from sqlalchemy import select
from sqlalchemy.orm import Session

from platform_core.models import OutboxEvent
from platform_core.outbox import HANDLERS
from platform_core.security.crypto import walk_sealed
from platform_core.webhooks.models import WebhookDelivery, WebhookSubscription

EventType = Literal["record.created", "record.updated", "record.deleted", "record.restored",
                    "flow.started", "flow.step_entered", "flow.completed", "flow.cancelled",
                    "task.created", "task.completed", "task.overdue", "task.cancelled",
                    "ping", "*"]
SUBSCRIBABLE: tuple[str, ...] = get_args(EventType)
# What an outbox event may fan out to; "*" means each of these (not internal events such
# as record.migrated, nor ping, which only the test endpoint sends).
DOMAIN_EVENTS = frozenset(SUBSCRIBABLE) - {"ping", "*"}


def iso(moment: datetime) -> str:
    """UTC, ISO 8601 with ``Z`` (SQLite returns naive timestamps: they are UTC)."""
    aware = moment if moment.tzinfo else moment.replace(tzinfo=UTC)
    return aware.astimezone(UTC).isoformat().replace("+00:00", "Z")


def matches(subscribed: list[str], event_type: str) -> bool:
    return event_type in subscribed or (event_type in DOMAIN_EVENTS and "*" in subscribed)


def scrub(payload: Any) -> Any:
    """``payload`` with every sealed value replaced by null."""
    return walk_sealed(payload, lambda _sealed: None)


def event_body(event: OutboxEvent) -> dict[str, Any]:
    return {"id": f"evt_{event.id}", "type": event.event_type, "app": event.app,
            "form": event.form, "record_id": event.record_id,
            "occurred_at": iso(event.created_at), "data": scrub(event.payload)}


def ping_body(sub: WebhookSubscription, now: datetime) -> dict[str, Any]:
    return {"id": f"ping_{secrets.token_hex(8)}", "type": "ping", "app": sub.app,
            "form": None, "record_id": None, "occurred_at": iso(now),
            "data": {"subscription_id": sub.id, "name": sub.name}}


class WebhookFanOut:
    """The outbox handler: one pending delivery per active subscription of the event's app
    that wants its type and existed when it happened. Idempotent — a subscription that
    already has a delivery of this event gets no second one — since the dispatcher may
    hand an event over again."""

    def interest(self, session: Session) -> set[tuple[str, str]]:
        """The (app, event type) pairs some active subscription wants (the outbox
        dispatcher hands this handler no other event)."""
        pairs: set[tuple[str, str]] = set()
        for app, types in session.execute(select(
                WebhookSubscription.app, WebhookSubscription.event_types).where(
                WebhookSubscription.active.is_(True))):
            pairs |= {(app, t) for t in DOMAIN_EVENTS if matches(types or [], t)}
        return pairs

    def handle(self, session: Session, event: OutboxEvent) -> None:
        if event.app is None or event.event_type not in DOMAIN_EVENTS:
            return
        subs = session.execute(select(WebhookSubscription.id, WebhookSubscription.event_types)
                               .where(WebhookSubscription.app == event.app,
                                      WebhookSubscription.active.is_(True),
                                      # not what happened before it subscribed, even
                                      # when the dispatcher reaches the event later
                                      WebhookSubscription.created_at <= event.created_at)
                               .order_by(WebhookSubscription.id)).all()
        wanted = [sid for sid, types in subs if matches(types or [], event.event_type)]
        if not wanted:
            return
        done = set(session.execute(select(WebhookDelivery.subscription_id).where(
            WebhookDelivery.event_id == event.id,
            WebhookDelivery.subscription_id.in_(wanted))).scalars())
        body = event_body(event)
        session.add_all(WebhookDelivery(subscription_id=sid, event_id=event.id,
                                        event_type=event.event_type, body=body,
                                        status="pending", attempts=0,
                                        next_attempt_at=event.created_at)  # due since then
                        for sid in wanted if sid not in done)
        session.flush()


def register_builtins() -> None:
    """Register the fan-out with the outbox dispatcher (idempotent)."""
    if "webhooks" not in HANDLERS:
        HANDLERS.register("webhooks", WebhookFanOut())
