"""Notifications and outside calls: the ``notify`` and ``call_webhook`` actions.

A message is a Jinja2 template rendered in a sandbox bounded in time and size
(``engine_rules.templating``) with what the rule sees (``record``,
``old``, ``task``, ``flow``, ``step``, ``event``, and ``progress_url``: the record's
customer progress page, whose live link is reused or made when a message shows it);
recipients are users, a role's
members, the record's owner, the task's assignee, or a phone/e-mail/user field of the
record (``customer.mobile`` follows a relation). Channels (``CHANNELS``):

- ``in_app``: rows in the notification centre, written in the dispatcher's transaction;
- ``email`` (SMTP from settings), ``sms`` (a generic HTTP gateway from settings),
  ``wecom`` (a WeCom group robot), and the ``call_webhook`` action: *outside* calls, kept
  as pending action runs and sent by ``engine_rules.sender`` with retries.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, ClassVar

from sqlalchemy import select

from engine_flows.assign import role_members
from engine_rules import action_settings
from engine_rules.actions import Action
from engine_rules.models import Notification
from engine_rules.templating import render, template_problems
from platform_core.errors import InvalidInput
from platform_core.security.models import User

if TYPE_CHECKING:
    from engine_rules.context import RuleContext

CHANNELS = ("in_app", "email", "sms", "wecom")


# -- recipients --------------------------------------------------------------------------


def _field_values(ctx: RuleContext, path: str) -> list[Any]:
    value = ctx.evaluate(path)
    values = value if isinstance(value, list) else [value]
    return [v for v in values if v not in (None, "")]


def user_ids(ctx: RuleContext, to: Mapping[str, Any]) -> list[int]:
    """The users ``to`` names (in-app messages, a user's mobile)."""
    session, ids = ctx.session, []
    # the named users and role members are read once per dispatcher batch (one
    # transaction in which no one is added, disabled or given a role)
    known = session.info.setdefault("rule_recipients", {}) \
        if session.info.get("publishes_nothing") else {}
    if to.get("users"):
        key = ("users", tuple(to["users"]))
        if key not in known:
            known[key] = list(session.execute(select(User.id).where(
                User.username.in_(to["users"]), User.status == "active")).scalars())
        ids += known[key]
    if to.get("role"):
        key = ("role", to["role"])
        if key not in known:
            known[key] = list(role_members(session, to["role"]))
        ids += known[key]
    if to.get("owner") and ctx.record is not None and ctx.record.owner_id:
        ids.append(ctx.record.owner_id)
    if to.get("assignee") and ctx.fired.payload.get("assignee_id"):
        ids.append(int(ctx.fired.payload["assignee_id"]))
    if to.get("field"):
        ids += [v for v in _field_values(ctx, to["field"]) if isinstance(v, int)]
    return list(dict.fromkeys(ids))


def addresses(ctx: RuleContext, to: Mapping[str, Any], channel: str) -> list[str]:
    """Phone numbers (sms) or e-mail addresses (email) ``to`` names: a field of the
    record (the customer's), or the users' mobiles."""
    found = [str(v) for v in _field_values(ctx, to["field"])] if to.get("field") else []
    if channel == "sms" and any(to.get(k) for k in ("users", "role", "owner", "assignee")):
        rest = {k: v for k, v in to.items() if k != "field"}
        ids = user_ids(ctx, rest)
        found += [m for m in ctx.session.execute(select(User.mobile).where(
            User.id.in_(ids))).scalars() if m]
    return list(dict.fromkeys(found))


# -- the actions -------------------------------------------------------------------------


def _shows_progress_url(*templates: Any) -> bool:
    """Whether a template may show ``progress_url`` (which makes a link when shown)."""
    return any("progress_url" in str(t) for t in templates if t)


class Notify(Action):
    """``{"type": "notify", "channel": "sms", "to": {"field": "customer.mobile"},
    "title": "进度通知", "template": "您好，您的贷款业务已进入「{{ step.name }}」阶段。"}``"""

    key = "notify"
    settings = action_settings.NotifySettings
    external = True  # except in_app, see ``runs_inline``

    def check(self, config: Mapping[str, Any], spec: Any) -> list[str]:
        channel = config.get("channel")
        if channel not in CHANNELS:
            return [f"notify: channel must be one of {', '.join(CHANNELS)}"]
        problems = template_problems(config.get("template"), "notify")
        to = config.get("to")
        if channel != "wecom" and not (isinstance(to, dict) and to):
            problems.append("notify needs 'to': users, role, owner, assignee or field")
        return problems

    @staticmethod
    def runs_inline(config: Mapping[str, Any]) -> bool:
        return config.get("channel") == "in_app"

    def contained(self, config: Mapping[str, Any]) -> bool:
        """Rendering and finding recipients write nothing — unless a template shows
        ``progress_url``, which may make a link — and the notices are written last."""
        return not _shows_progress_url(config.get("title"), config.get("template"))

    def message(self, ctx: RuleContext, config: Mapping[str, Any]) -> tuple[str, str]:
        scope = ctx.scope()
        title = render(str(config.get("title") or "通知"), scope)[:200]
        return title, render(str(config["template"]), scope)

    def run(self, ctx: RuleContext, config: Mapping[str, Any]) -> dict[str, Any]:
        """In-app: one notification per recipient, now."""
        title, body = self.message(ctx, config)
        ids = user_ids(ctx, config.get("to") or {})
        if ids:  # the last step (see ``contained``): one INSERT of every recipient's row
            ctx.session.execute(Notification.__table__.insert(), [
                {"user_id": user_id, "app": ctx.fired.app, "title": title, "body": body,
                 "record_id": ctx.fired.record_id, "link": None, "read_at": None,
                 "created_at": ctx.now} for user_id in ids])
        return {"channel": "in_app", "users": ids}

    def prepare(self, ctx: RuleContext, config: Mapping[str, Any]) -> dict[str, Any]:
        """An outside channel: the request the sender will make (recipients resolved and
        the message rendered now, as of the trigger)."""
        channel = config["channel"]
        title, body = self.message(ctx, config)
        to = config.get("to") or {}
        recipients = addresses(ctx, to, channel) if channel != "wecom" else \
            [str(m) for m in to.get("mobiles", [])]
        if channel != "wecom" and not recipients:
            raise InvalidInput(f"notify by {channel}: nobody to send to")
        return {"channel": channel, "to": recipients, "title": title, "body": body,
                "robot": config.get("robot")}

    def preview(self, ctx: RuleContext, config: Mapping[str, Any]) -> dict[str, Any]:
        if self.runs_inline(config):
            title, body = self.message(ctx, config)
            return {"would": "notify", "channel": "in_app", "title": title, "body": body,
                    "users": user_ids(ctx, config.get("to") or {})}
        return {"would": "notify", **self.prepare(ctx, config)}


class CallWebhook(Action):
    """``{"type": "call_webhook", "url": "https://erp.example/hook", "method": "POST",
    "body": "{\\"case\\": {{ record_id }}}"}`` — an outside HTTP call (SSRF-checked)."""

    key = "call_webhook"
    settings = action_settings.CallWebhookSettings
    external: ClassVar[bool] = True

    def check(self, config: Mapping[str, Any], spec: Any) -> list[str]:
        problems = [] if str(config.get("url", "")).startswith(("http://", "https://")) \
            else ["call_webhook needs an http(s) 'url'"]
        if config.get("method", "POST") not in ("POST", "PUT", "PATCH", "GET"):
            problems.append("call_webhook: method is POST, PUT, PATCH or GET")
        if config.get("body") is not None:
            problems += template_problems(config["body"], "call_webhook body")
        return problems

    def contained(self, config: Mapping[str, Any]) -> bool:
        """Preparing the call writes nothing unless the body shows ``progress_url``."""
        return not _shows_progress_url(config.get("body"))

    def prepare(self, ctx: RuleContext, config: Mapping[str, Any]) -> dict[str, Any]:
        body = render(str(config["body"]), ctx.scope()) if config.get("body") else None
        return {"channel": "webhook", "url": config["url"],
                "method": config.get("method", "POST"), "body": body}

    def preview(self, ctx: RuleContext, config: Mapping[str, Any]) -> dict[str, Any]:
        return {"would": "call_webhook", **self.prepare(ctx, config)}
