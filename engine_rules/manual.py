"""Manual rules: a templated message (SMS, WeCom, e-mail, in-app) a person sends about one
record from its page — "提醒客户补充资料".

A manual rule is an ordinary rule whose trigger is ``{"type": "manual", "form": …}``: its
condition, actions, channels, retries, dead letters and logs are the rule engine's. Running
it is one transaction: the rule run and its action runs (an outside channel's message is
queued for ``engine_rules.sender``, as any rule's is) and one audit entry naming who sent
what to which record. The idempotency key carries a nonce from the page, so a double click
sends once.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from engine_rules.actions import ACTIONS
from engine_rules.context import Fired, RuleContext
from engine_rules.models import Rule, RuleRun
from engine_rules.runner import run_rule, spec_of
from engine_rules.spec import RuleSpec
from platform_core.errors import DomainError, InvalidInput, NotFound
from platform_core.expressions import ExpressionError
from platform_core.security import audit
from platform_core.security.crypto import Keyring
from platform_core.settings import Settings
from platform_core.store import Actor

NONCE = 64


@dataclass(frozen=True)
class Manual:
    """One manual rule offered on a record page."""

    key: str
    name: str
    channels: tuple[str, ...]
    ready: bool  # every outside channel it uses is set up
    missing: tuple[str, ...]  # the channels that are not


def channel_ready(settings: Settings, channel: str) -> bool:
    """Whether messages on ``channel`` can go out with these (effective) settings."""
    return {"in_app": True, "sms": bool(settings.sms_gateway_url),
            "wecom": bool(settings.wecom_robot_url),
            "email": bool(settings.smtp_host)}.get(channel, True)


def offered(session: Session, app: str, form: str, settings: Settings,
            keys: tuple[str, ...] | None = None) -> list[Manual]:
    """The enabled manual rules of ``form`` (only ``keys`` if given), in name order."""
    rows = session.execute(select(Rule).where(Rule.app == app, Rule.trigger == "manual",
                                              Rule.enabled.is_(True))).scalars()
    out = []
    for rule in rows:
        spec = spec_of(rule)
        if spec.trigger.form != form or (keys is not None and rule.key not in keys):
            continue
        channels = tuple(dict.fromkeys(str(a.get("channel") or "webhook")
                                       for a in spec.actions if a.get("type") == "notify"))
        missing = tuple(c for c in channels if not channel_ready(settings, c))
        out.append(Manual(rule.key, spec.name, channels, not missing, missing))
    return sorted(out, key=lambda m: m.name)


def _rule(session: Session, app: str, form: str, key: str) -> tuple[Rule, RuleSpec]:
    rule = session.execute(select(Rule).where(Rule.app == app, Rule.key == key)
                           ).scalar_one_or_none()
    if rule is None or rule.trigger != "manual" or not rule.enabled or \
            spec_of(rule).trigger.form != form:
        raise NotFound(f"no manual rule {key!r} for form {form}", rule=key)
    return rule, spec_of(rule)


def preview(session: Session, *, app: str, form: str, key: str, record_id: int,
            actor: Actor, now: datetime, keyring: Keyring | None) -> list[dict[str, Any]]:
    """Each action as it would run now for the record (messages rendered; nothing
    written). The caller has checked that the person may read the record."""
    rule, spec = _rule(session, app, form, key)
    ctx = RuleContext.load(session, Fired(f"preview:{rule.id}", "manual", app, form,
                                          record_id), actor=actor, now=now, keyring=keyring,
                           test=True)
    if ctx.record is None:
        raise NotFound(f"record {record_id} does not exist", record_id=record_id)
    try:
        if spec.condition and not ctx.evaluate(spec.condition):
            raise InvalidInput(f"「{spec.name}」不适用于这条记录（条件不满足）",
                               rule=key)
        return [ACTIONS.get(c["type"]).preview(ctx, c) for c in spec.actions]
    except (ExpressionError, DomainError) as exc:
        if isinstance(exc, InvalidInput):
            raise
        raise InvalidInput(str(getattr(exc, "detail", exc)), rule=key) from None


def send(session: Session, *, app: str, form: str, key: str, record_id: int, actor: Actor,
         nonce: str, now: datetime, keyring: Keyring | None, client: str | None = None
         ) -> RuleRun:
    """Run the manual rule ``key`` on the record, as ``actor``, once per ``nonce``."""
    if not nonce or len(nonce) > NONCE or not nonce.replace("-", "").replace("_", "").isalnum():
        raise InvalidInput("a send needs a nonce of letters, digits, - and _ (URL-safe "
                           "base64, as the message page makes them)", field="nonce")
    rule, spec = _rule(session, app, form, key)
    fired = Fired(f"manual:{rule.id}:{record_id}:{nonce}", "manual", app, form, record_id,
                  payload={"by": actor.user_id})
    run = run_rule(session, rule, fired, now=now, keyring=keyring, actor=actor)
    session.flush()  # the run's id, for the audit entry
    if run.status == "skipped":
        raise InvalidInput(f"「{spec.name}」不适用于这条记录（条件不满足）", rule=key)
    if run.status in ("failed", "stopped"):
        raise InvalidInput(run.error or next((a.get("error") for a in run.actions
                                              if a.get("error")), "failed"), rule=key)
    audit.append(session, actor=actor, action="rule.manual_run",
                 target=f"{app}.{form}/{record_id}",
                 detail={"rule": key, "run": run.id,
                         "actions": [{"type": a["type"], "status": a["status"]}
                                     for a in run.actions]}, client=client)
    return run
