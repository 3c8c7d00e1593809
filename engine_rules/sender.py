"""The action sender: outside calls of rules (e-mail, SMS, WeCom, webhooks) made from
their pending ``ActionRun`` rows, with retries and a dead-letter list.

``send_due`` runs on every background tick, in three steps like webhook deliveries:
claim due rows with a lease (PostgreSQL ``SKIP LOCKED``: several workers share them) in
one short transaction → make each call outside any transaction → record each outcome in
one more. Success → ``done``; failure → ``attempts`` + 1 and the next try after an
exponential backoff (``QIAO_RULES_BACKOFF_SECONDS`` × 2ⁿ, at most an hour); after
``QIAO_RULES_MAX_ATTEMPTS`` → ``dead``, listed for admins and replayable. A crash between
a call and its record sends it once more when the lease ends (at least once: a receiver
drops duplicates by ``X-Qiao-Action``, the action run's key).

An SMS to several numbers keeps the numbers already reached (``result.sent``): a retry,
or a replay, sends only to those that failed. A destination the SSRF guard refuses (a
private address, plain http to a host not allow-listed, a malformed URL) cannot succeed
on a later try: it is ``dead`` at once, with the guard's reason.

The channels' settings are those an administrator saved (``platform_core.channels``)
over the environment's, read once per batch that has something to send.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import smtplib
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import httpx
from sqlalchemy import or_, select

from engine_rules.models import ActionRun
from engine_rules.notify import render
from platform_core import __version__
from platform_core.channels.store import effective_settings
from platform_core.db import Database
from platform_core.errors import DomainError, InvalidInput
from platform_core.mail import NoMailServer, send_mail
from platform_core.outbox import retry_delay
from platform_core.security.crypto import Keyring
from platform_core.settings import Settings
from platform_core.webhooks.ssrf import AllowList, check_url

log = logging.getLogger("qiao.rules.sender")
LEASE = timedelta(seconds=60)
BATCH = 50


class SendFailed(Exception):
    """A call that did not go through; the message is kept as ``last_error``."""


class Refused(SendFailed):
    """A destination the SSRF guard refuses: no retry can help."""


@dataclass(frozen=True)
class Job:
    id: int
    key: str
    request: dict[str, Any]
    sent: tuple[str, ...] = ()  # SMS numbers an earlier attempt reached


@dataclass(frozen=True)
class Outcome:
    """One attempt: ``error`` None when it went through; ``final``: dead at once;
    ``sent``: every SMS number reached so far."""

    error: str | None = None
    final: bool = False
    sent: tuple[str, ...] = ()


def claim(db: Database, *, worker: str, now: datetime, batch: int = BATCH) -> list[Job]:
    with db.write() as session:
        rows = list(session.execute(
            select(ActionRun).where(ActionRun.status == "pending",
                                    ActionRun.next_attempt_at <= now,
                                    or_(ActionRun.claimed_until.is_(None),
                                        ActionRun.claimed_until <= now))
            .order_by(ActionRun.next_attempt_at, ActionRun.id).limit(batch)
            .with_for_update(skip_locked=True)).scalars())
        for row in rows:
            row.claimed_by, row.claimed_until = worker, now + LEASE
        return [Job(r.id, r.key, dict(r.request), tuple((r.result or {}).get("sent") or ()))
                for r in rows]


def send_due(db: Database, settings: Settings, *, client: httpx.Client, worker: str,
             now: datetime, keyring: Keyring | None = None) -> int:
    """Claim, send and record the due outside actions; how many were tried."""
    jobs = claim(db, worker=worker, now=now)
    if jobs:  # the channels as saved in the database over the environment's: one read
        settings = effective_settings(db, settings, keyring)
    outcomes = [(job, try_send(job, settings, client)) for job in jobs]
    if outcomes:
        with db.write() as session:
            for job, outcome in outcomes:
                _record(session.get(ActionRun, job.id), outcome, settings, now)
    return len(jobs)


def try_send(job: Job, settings: Settings, client: httpx.Client) -> Outcome:
    """Make one outside call and say how it went (never raises)."""
    reached = list(job.sent)
    try:
        send(job, settings, client, reached)
    except Refused as exc:
        return Outcome(f"refused: {exc}"[:2000], final=True, sent=tuple(reached))
    except (SendFailed, DomainError, httpx.HTTPError, OSError, smtplib.SMTPException) as exc:
        return Outcome(f"{type(exc).__name__}: {getattr(exc, 'detail', exc)}"[:2000],
                       sent=tuple(reached))
    except Exception as exc:  # a bug costs one attempt, not the batch
        log.exception("action run %s: unexpected error", job.id)
        return Outcome(f"{type(exc).__name__}: {exc}"[:2000], sent=tuple(reached))
    return Outcome(sent=tuple(reached))


def attempt(job: Job, settings: Settings, client: httpx.Client) -> str | None:
    """Make one outside call: None when it went through, else what went wrong."""
    return try_send(job, settings, client).error


def _record(row: ActionRun | None, outcome: Outcome, settings: Settings,
            now: datetime) -> None:
    if row is None or row.status != "pending":
        return
    row.attempts += 1
    row.claimed_until = None
    if outcome.sent:
        row.result = {**(row.result or {}), "sent": list(outcome.sent)}
    error = outcome.error
    if error is None:
        row.status, row.done_at, row.last_error = "done", now, None
        return
    row.last_error = error
    if outcome.final or row.attempts >= settings.rules_max_attempts:
        row.status = "dead"
        log.warning("action run %s (%s) is dead after %s attempts: %s", row.id,
                    row.action_type, row.attempts, error)
    else:
        row.next_attempt_at = now + retry_delay(row.attempts, settings.rules_backoff_seconds)


# -- the channels --------------------------------------------------------------------------


def send(job: Job, settings: Settings, client: httpx.Client,
         reached: list[str] | None = None) -> None:
    """Make one outside call; raise on failure (``reached``: the SMS numbers that went
    through, those already in it skipped)."""
    request = job.request
    channel = request.get("channel")
    if channel == "email":
        _email(request, settings)
    elif channel == "sms":
        _sms(job, request, settings, client, [] if reached is None else reached)
    elif channel == "wecom":
        url = request.get("robot") or settings.wecom_robot_url
        if not url:
            raise SendFailed("no WeCom robot: set one on /admin/channels (or "
                             "QIAO_WECOM_ROBOT_URL) or the action's robot")
        text = f"{request['title']}\n{request['body']}" if request.get("title") else \
            request["body"]
        _http(job, client, settings, "POST", url, json.dumps(
            {"msgtype": "text", "text": {"content": text,
                                         "mentioned_mobile_list": request.get("to", [])}},
            ensure_ascii=False))
    elif channel == "webhook":
        _http(job, client, settings, request.get("method", "POST"), request["url"],
              request.get("body"))
    else:
        raise SendFailed(f"unknown channel {channel!r}")


def _http(job: Job, client: httpx.Client, settings: Settings, method: str, url: str,
          body: str | None, headers: dict[str, str] | None = None) -> None:
    try:
        destination = check_url(url, AllowList.parse(settings.webhook_allow_hosts))
    except InvalidInput as exc:
        if exc.extra.get("reason") == "unresolvable":
            raise  # DNS may answer on a later try
        raise Refused(exc.detail) from None
    all_headers = {**destination.headers, "User-Agent": f"Qiao-Rules/{__version__}",
                   "X-Qiao-Action": job.key, **(headers or {})}
    if body is not None:
        all_headers.setdefault("Content-Type", "application/json")
    request = client.build_request(method, destination.url, headers=all_headers,
                                   content=body.encode() if body is not None else None,
                                   timeout=settings.webhook_timeout_seconds,
                                   extensions=destination.extensions)
    response = client.send(request, follow_redirects=False)
    if not 200 <= response.status_code < 300:
        raise SendFailed(f"HTTP {response.status_code}: {response.text[:300]}")
    if "errcode" in response.text[:200]:  # WeCom answers 200 with an error code
        try:
            code = response.json().get("errcode", 0)
        except ValueError:
            code = 0
        if code:
            raise SendFailed(f"errcode {code}: {response.text[:300]}")


def _sms(job: Job, request: dict[str, Any], settings: Settings, client: httpx.Client,
         reached: list[str]) -> None:
    """One gateway call per number not in ``reached`` (each that goes through is added
    to it); the body from ``QIAO_SMS_BODY_TEMPLATE`` (``phone``, ``message``), signed
    with HMAC-SHA256 in ``QIAO_SMS_SIGNATURE_HEADER`` if a secret is set."""
    if not settings.sms_gateway_url:
        raise SendFailed("no SMS gateway: set one on /admin/channels (or "
                         "QIAO_SMS_GATEWAY_URL)")
    failed: list[str] = []
    for phone in request["to"]:
        if phone in reached:
            continue
        body = render(settings.sms_body_template, {"phone": phone,
                                                   "message": request["body"],
                                                   "title": request.get("title")})
        headers = {}
        if settings.sms_secret:
            mac = hmac.new(settings.sms_secret.encode(), body.encode(), hashlib.sha256)
            headers[settings.sms_signature_header] = mac.hexdigest()
        try:
            _http(job, client, settings, settings.sms_method, settings.sms_gateway_url,
                  body, headers)
        except Refused:
            raise  # the gateway itself is refused: no number can go through
        except (SendFailed, httpx.HTTPError, OSError) as exc:
            if len(request["to"]) == 1:
                raise
            failed.append(f"{phone}: {exc}"[:300])
        else:
            reached.append(phone)
    if failed:
        raise SendFailed(f"{len(failed)} of {len(request['to'])} numbers failed "
                         f"({'; '.join(failed)[:1500]})")


def _email(request: dict[str, Any], settings: Settings) -> None:
    try:
        send_mail(settings, to=list(request["to"]), subject=request.get("title") or "Qiao",
                  text=request["body"])
    except NoMailServer as exc:
        raise SendFailed(str(exc)) from None
