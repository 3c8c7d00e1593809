"""Sending due webhook deliveries: claim, POST, record — never I/O inside a transaction.

``deliver_due`` runs in three steps:

1. **claim** (one transaction): pending deliveries whose ``next_attempt_at`` has come,
   of active subscriptions, with no live lease, oldest first, up to ``batch``; each gets
   the lease ``claimed_by``/``claimed_until`` (PostgreSQL: ``FOR UPDATE SKIP LOCKED``, so
   two workers claim different rows; SQLite: the write lock). The lease lasts long enough
   for the whole batch to time out, so no other worker sends them meanwhile;
2. **send** (no transaction): check the destination again (SSRF, DNS may have changed),
   POST the body signed (``signing``), redirects not followed, timeout
   ``QIAO_WEBHOOK_TIMEOUT_SECONDS``;
3. **record** (one transaction per delivery, only if the lease is still ours): a 2xx →
   ``delivered``; anything else (another status, a network error, a refused destination)
   → ``attempts`` + 1 and the next try after ``retry_delay``, or ``dead`` once
   ``QIAO_WEBHOOK_MAX_ATTEMPTS`` tries failed.

A crash between 2 and 3 means the delivery is sent again after the lease: deliveries are
at least once, and the body's ``id`` lets a receiver drop a duplicate.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import httpx
from sqlalchemy import or_, select

from platform_core import __version__
from platform_core.db import Database, dumps
from platform_core.errors import DomainError
from platform_core.models import utcnow
from platform_core.outbox import default_worker_id
from platform_core.security.crypto import Keyring
from platform_core.settings import Settings
from platform_core.webhooks.models import WebhookDelivery, WebhookSubscription
from platform_core.webhooks.signing import open_secret, sign
from platform_core.webhooks.ssrf import AllowList, check_url

log = logging.getLogger("qiao.webhooks")
MAX_DELAY = timedelta(hours=24)
GROWTH = 6  # 10 s, 1 min, 6 min, 36 min, 3.6 h, 21.6 h, then 24 h
SNIPPET = 300  # characters of a failed response kept in last_error


def retry_delay(attempts: int, base_seconds: int) -> timedelta:
    """The wait after the ``attempts``-th failed try."""
    return min(timedelta(seconds=base_seconds * GROWTH ** max(attempts - 1, 0)), MAX_DELAY)


@dataclass(frozen=True)
class Job:
    """A claimed delivery and what sending it needs."""

    id: int
    event_type: str
    body: dict[str, Any]
    app: str
    url: str
    secret: str  # sealed


@dataclass(frozen=True)
class Outcome:
    status_code: int | None
    error: str | None

    @property
    def ok(self) -> bool:
        return self.status_code is not None and 200 <= self.status_code < 300


def deliver_due(db: Database, keyring: Keyring, settings: Settings, *, client: httpx.Client,
                now: datetime | None = None, worker_id: str | None = None,
                batch: int = 10) -> int:
    """Send one batch of due deliveries (see the module docstring); how many were tried."""
    now = now or utcnow()
    worker = worker_id or default_worker_id()
    lease = timedelta(seconds=batch * (settings.webhook_timeout_seconds + 5) + 30)
    jobs = claim_due(db, worker=worker, now=now, batch=batch, lease=lease)
    allow = AllowList.parse(settings.webhook_allow_hosts)
    for job in jobs:
        outcome = send(client, job, keyring=keyring, allow=allow, now=now,
                       timeout=settings.webhook_timeout_seconds)
        record(db, job.id, outcome, worker=worker, now=now, settings=settings)
    return len(jobs)


def claim_due(db: Database, *, worker: str, now: datetime, batch: int,
              lease: timedelta) -> list[Job]:
    """Step 1: lease up to ``batch`` due deliveries to ``worker``."""
    stmt = (select(WebhookDelivery, WebhookSubscription)
            .join(WebhookSubscription, WebhookSubscription.id == WebhookDelivery.subscription_id)
            .where(WebhookDelivery.status == "pending", WebhookDelivery.next_attempt_at <= now,
                   or_(WebhookDelivery.claimed_until.is_(None),
                       WebhookDelivery.claimed_until <= now),
                   WebhookSubscription.active.is_(True))
            .order_by(WebhookDelivery.next_attempt_at, WebhookDelivery.id).limit(batch)
            .with_for_update(of=WebhookDelivery, skip_locked=True))
    with db.write() as session:
        rows = session.execute(stmt).all()
        for delivery, _sub in rows:
            delivery.claimed_by, delivery.claimed_until = worker, now + lease
        return [Job(d.id, d.event_type, d.body, s.app, s.url, s.secret) for d, s in rows]


def send(client: httpx.Client, job: Job, *, keyring: Keyring, allow: AllowList,
         now: datetime, timeout: float) -> Outcome:
    """Step 2: one POST; never raises (every failure is an ``Outcome``)."""
    try:
        destination = check_url(job.url, allow)
        secret = open_secret(keyring, job.app, job.secret)
    except DomainError as exc:
        return Outcome(None, f"not sent: {exc.detail}")
    body = dumps(job.body).encode()
    timestamp = str(int(now.timestamp()))
    headers = {**destination.headers, "Content-Type": "application/json",
               "User-Agent": f"Qiao-Webhooks/{__version__}", "X-Qiao-Event": job.event_type,
               "X-Qiao-Delivery": str(job.id), "X-Qiao-Timestamp": timestamp,
               "X-Qiao-Signature": sign(secret, timestamp, body)}
    request = client.build_request("POST", destination.url, content=body, headers=headers,
                                   timeout=timeout, extensions=destination.extensions)
    try:
        response = client.send(request, follow_redirects=False, stream=True)
        try:
            if 200 <= response.status_code < 300:
                return Outcome(response.status_code, None)
            return Outcome(response.status_code, _failure(response))
        finally:
            response.close()
    except httpx.HTTPError as exc:
        return Outcome(None, f"{type(exc).__name__}: {exc}"[:2000])
    except Exception as exc:  # a bug must cost one attempt, not the rest of the batch
        log.exception("webhook delivery %s: unexpected error", job.id)
        return Outcome(None, f"{type(exc).__name__}: {exc}"[:2000])


def _failure(response: httpx.Response) -> str:
    """``HTTP 500: <the start of the body>`` (bounded: the body is never read whole)."""
    what = f"HTTP {response.status_code}"
    if response.is_redirect:
        return f"{what}: redirects are not followed (subscribe the final URL)"
    head, deadline = b"", time.monotonic() + 1.0  # a receiver dripping bytes can't hold us
    for chunk in response.iter_bytes():
        head += chunk
        if len(head) >= SNIPPET or time.monotonic() > deadline:
            break
    text = " ".join(head.decode("utf-8", "replace").split())[:SNIPPET]
    return f"{what}: {text}" if text else what


def record(db: Database, delivery_id: int, outcome: Outcome, *, worker: str, now: datetime,
           settings: Settings) -> None:
    """Step 3: the outcome, unless another worker took the delivery over meanwhile."""
    with db.write() as session:
        d = session.execute(select(WebhookDelivery).where(WebhookDelivery.id == delivery_id)
                            .with_for_update()).scalar_one_or_none()
        if d is None or d.claimed_by != worker or d.status != "pending":
            return  # deleted with its subscription, or the lease ran out and was retaken
        d.attempts += 1
        d.claimed_until = None
        d.last_status_code, d.last_error = outcome.status_code, outcome.error
        if outcome.ok:
            d.status, d.delivered_at = "delivered", now
        elif d.attempts >= settings.webhook_max_attempts:
            d.status = "dead"
            log.warning("webhook delivery %s is dead after %s attempts: %s", d.id,
                        d.attempts, outcome.error)
        else:
            d.next_attempt_at = now + retry_delay(d.attempts, settings.webhook_backoff_seconds)
