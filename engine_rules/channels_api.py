"""Channels API (``/api/v1/channels``, administrators): the SMTP server, the SMS gateway
and the WeCom robot the rules (and scheduled reports) send through, and a test message.

What is saved here replaces the environment's ``QIAO_SMTP_*`` / ``QIAO_SMS_*`` /
``QIAO_WECOM_ROBOT_URL`` (``platform_core.channels.store``). Secrets are write-only: a
request sets (text), clears (``""``) or keeps (left out, or null) one; a response says
only ``<name>_set`` and ``<name>_from``.

Saving, in order: the body is checked (unknown keys refused, lengths, patterns) → each
URL goes through the same destination check as at send time (``check_url``: scheme,
SSRF, DNS) and the SMS body template is rendered once with sample values, both before
any transaction → one transaction writes every channel of the body, audited. The test
sends one real message with the saved settings through the sender the rules use, and
answers what happened (``ok`` and the exact ``error``); only bad input is a problem+json.
"""

from __future__ import annotations

import re
import uuid
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Body
from pydantic import Field

from engine_rules.notify import render
from engine_rules.sender import Job, attempt
from platform_core.app import ContextDep
from platform_core.channels import store
from platform_core.errors import DomainError, InvalidInput
from platform_core.models import utcnow
from platform_core.security import audit
from platform_core.security.api_admin import EMAIL
from platform_core.security.api_auth import Strict
from platform_core.security.guard import PrincipalDep, rule
from platform_core.security.models import User
from platform_core.security.principal import Principal
from platform_core.webhooks.background import http_client
from platform_core.webhooks.events import iso
from platform_core.webhooks.service import checked_url

router = APIRouter(prefix="/api/v1", tags=["channels"])
ADMIN = rule("admin")
ChannelKey = Literal["smtp", "sms", "wecom"]
SENDER_CHANNEL = {"smtp": "email", "sms": "sms", "wecom": "wecom"}  # sender's names
MOBILE = r"^\+?[0-9][0-9 -]{4,19}$"
ONE_LINE = r"^[^\r\n]*$"  # header values: a line break would inject a header
Secret = Annotated[str | None, Field(max_length=2000,
                                     description="write-only: text sets it, \"\" clears "
                                                 "it, null or left out keeps it")]


def _default(channel: str, name: str) -> Any:
    return store.default(channel, name)


class SmtpChannel(Strict):
    host: str = Field(default="", max_length=255, pattern=r"^[A-Za-z0-9.:\[\]-]*$")
    port: int = Field(default=_default("smtp", "port"), ge=1, le=65535)
    user: str = Field(default="", max_length=255, pattern=ONE_LINE)
    password: Secret = None
    from_address: str = Field(default=_default("smtp", "from_address"), min_length=3,
                              max_length=254, pattern=r"^[^\r\n]*@[^\r\n]*$")
    starttls: bool = False


class SmsChannel(Strict):
    gateway_url: str = Field(default="", max_length=2000)
    method: Literal["POST", "PUT"] = "POST"
    body_template: str = Field(default=_default("sms", "body_template"), min_length=1,
                               max_length=4000)
    secret: Secret = None
    signature_header: str = Field(default=_default("sms", "signature_header"),
                                  pattern=r"^[A-Za-z0-9-]{1,64}$")


class WecomChannel(Strict):
    robot_url: Secret = None


class ChannelsChange(Strict):
    """Each channel given replaces its saved settings (fields left out take their
    defaults; secrets left out are kept); ``null`` forgets them (the environment's apply
    again); a channel left out is not touched."""

    smtp: SmtpChannel | None = None
    sms: SmsChannel | None = None
    wecom: WecomChannel | None = None


def channels_doc(ctx: Any) -> dict[str, Any]:
    """Every channel as it applies now (secrets only as ``_set`` / ``_from``)."""
    with ctx.db.read() as s:
        saved = store.rows(s)
        return {key: store.channel_doc(key, ctx.settings, saved.get(key), ctx.keyring)
                for key in store.CHANNELS}


@router.get("/channels", openapi_extra=ADMIN)
def get_channels(ctx: ContextDep) -> dict[str, Any]:
    return channels_doc(ctx)


def _check_url(ctx: Any, where: str, url: str | None) -> None:
    if url:
        try:
            checked_url(ctx.settings, url)
        except DomainError as exc:
            raise InvalidInput(f"{where}: {exc.detail}", field=where) from None


def _check(ctx: Any, body: ChannelsChange) -> None:
    """The checks a send would make, made now so a bad value is refused at save time."""
    if body.sms is not None:
        _check_url(ctx, "sms.gateway_url", body.sms.gateway_url)
        try:
            render(body.sms.body_template, {"phone": "13800000000", "message": "测试",
                                            "title": "Qiao"})
        except DomainError as exc:
            raise InvalidInput(f"sms.body_template: {exc.detail}",
                               field="sms.body_template") from None
    if body.wecom is not None:
        _check_url(ctx, "wecom.robot_url", body.wecom.robot_url)


@router.put("/channels", openapi_extra=ADMIN)
def put_channels(ctx: ContextDep, principal: PrincipalDep,
                 body: ChannelsChange) -> dict[str, Any]:
    """Save (or with ``null`` forget) the channels given; every channel as it now applies."""
    _check(ctx, body)
    with ctx.db.write() as s:
        for key in store.CHANNELS:
            if key not in body.model_fields_set:
                continue
            change = getattr(body, key)
            if change is None:
                store.reset(s, channel=key, actor=principal.actor)
                continue
            spec = store.CHANNELS[key]
            sent = change.model_dump()
            store.save(s, ctx.keyring, channel=key,
                       config={name: sent[name] for name in spec.fields},
                       secrets={name: sent[name] for name in spec.secrets},
                       actor=principal.actor)
    return channels_doc(ctx)


# -- a test message ---------------------------------------------------------------------


class TestMessage(Strict):
    to: str | None = Field(default=None, max_length=254,
                           description="e-mail address (smtp) or mobile (sms; wecom: "
                                       "@-mentioned); default: the caller's own")


def _recipient(ctx: Any, principal: Principal, channel: str, to: str | None) -> list[str]:
    """Who the test goes to: the given address, else the caller's own (422 if none)."""
    with ctx.db.read() as s:
        me = s.get(User, principal.user_id)
        own = {"smtp": me.email, "sms": me.mobile, "wecom": None}[channel]
    to = (to or "").strip() or own
    if channel == "wecom":
        if to and not re.fullmatch(MOBILE, to):
            raise InvalidInput("to: not a mobile number (whom the robot @-mentions)",
                               field="to")
        return [to] if to else []
    if not to:
        what = "e-mail address" if channel == "smtp" else "mobile number"
        raise InvalidInput(f"to: give an {what} (your own has none)", field="to")
    if not re.fullmatch(EMAIL if channel == "smtp" else MOBILE, to):
        what = "an e-mail address" if channel == "smtp" else "a mobile number"
        raise InvalidInput(f"to: {to!r} is not {what}", field="to")
    return [to]


def send_test(ctx: Any, principal: Principal, channel: str, to: str | None) -> dict[str, Any]:
    """Send one test message through ``channel`` with the settings as they apply now."""
    recipients = _recipient(ctx, principal, channel, to)
    now = utcnow()
    job = Job(id=0, key=f"channel-test:{uuid.uuid4()}", request={
        "channel": SENDER_CHANNEL[channel], "to": recipients, "title": "Qiao 测试消息",
        "body": f"这是 Qiao（{ctx.settings.base_url}）的测试消息，由 {principal.display_name} "
                f"于 {now:%Y-%m-%d %H:%M} UTC 发送。/ A test message from Qiao."})
    settings = store.effective_settings(ctx.db, ctx.settings, ctx.keyring)
    with http_client() as client:
        error = attempt(job, settings, client)
    with ctx.db.write() as s:
        audit.append(s, actor=principal.actor, action="channel.test",
                     target=f"channel:{channel}",
                     detail={"ok": error is None, "error": error[:200] if error else None})
    return {"channel": channel, "to": recipients, "ok": error is None, "error": error,
            "sent_at": iso(now)}


@router.post("/channels/{channel}/test", openapi_extra=ADMIN)
def test_channel(ctx: ContextDep, principal: PrincipalDep, channel: ChannelKey,
                 body: Annotated[TestMessage | None, Body()] = None) -> dict[str, Any]:
    """Send a real test message (to ``to``, else the caller's own e-mail or mobile) with
    the saved settings: ``ok`` true, or false with the exact ``error``."""
    return send_test(ctx, principal, channel, body.to if body else None)
