"""The rules engine's timeline sources (``platform_core.timeline``), kind 自动化:

- ``rules.runs``: a rule that fired for the record (its condition held; test runs and
  skipped runs are left out), with how its actions went;
- ``rules.notices``: each notification a rule sent about the record — channel, the
  recipients (phone numbers and e-mail addresses masked by their field type's mask;
  in-app recipients are users, named on the page) and whether it was delivered, is
  still pending or went dead (the dead-letter list).

One statement each per page (indexes ``ix_rule_runs_record_at``,
``ix_action_runs_rule_run_id``).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from engine_rules.models import ActionRun, Rule, RuleRun
from platform_core.timeline import Ask, Entry, Position, keyset, register_source

DELIVERY = {"done": "delivered", "pending": "pending", "dead": "dead", "failed": "failed"}
# the field type whose mask hides a recipient of each channel
RECIPIENT_TYPES = {"sms": "phone", "email": "email"}


def _rule_name(rule: Rule) -> str:
    return str((rule.spec or {}).get("name") or rule.key)


def _runs(session: Session, ask: Ask) -> list[Entry]:
    stmt = (select(RuleRun, Rule).join(Rule, Rule.id == RuleRun.rule_id)
            .where(RuleRun.record_id.in_(ask.ids()), RuleRun.test.is_(False),
                   RuleRun.status.in_(("done", "failed"))))
    rows = session.execute(keyset(stmt, time_col=RuleRun.at, id_col=RuleRun.id,
                                  source="rules.runs", ask=ask)).all()
    out = []
    for run, rule in rows:
        actions = [{"type": a.get("type"), "status": a.get("status")}
                   for a in run.actions or [] if isinstance(a, dict)]
        out.append(Entry(Position(run.at, "rules.runs", run.id), "automation", "rule_fired",
                         ask.subject(run.record_id), name=_rule_name(rule),
                         detail={"rule": rule.key, "status": run.status,
                                 "event": run.event_type, "actions": actions,
                                 "error": run.error}))
    return out


def masked_recipients(channel: str, recipients: list[Any]) -> list[str]:
    """Phone numbers and addresses as a viewer sees them: masked like the field type
    masks its values (``138****1234``, ``z***@example.com``)."""
    from engine_forms.fieldtypes import FIELD_TYPES

    key = RECIPIENT_TYPES.get(channel)
    kind = FIELD_TYPES.get(key) if key and key in FIELD_TYPES else None
    if kind is None:
        return ["*" * min(len(str(r)), 8) for r in recipients]
    return [kind.mask(str(r), None) for r in recipients]


def _notices(session: Session, ask: Ask) -> list[Entry]:
    stmt = (select(ActionRun, RuleRun.record_id, Rule)
            .join(RuleRun, RuleRun.id == ActionRun.rule_run_id)
            .join(Rule, Rule.id == ActionRun.rule_id)
            .where(RuleRun.record_id.in_(ask.ids()), ActionRun.action_type == "notify"))
    rows = session.execute(keyset(stmt, time_col=ActionRun.created_at, id_col=ActionRun.id,
                                  source="rules.notices", ask=ask)).all()
    out = []
    for action, record_id, rule in rows:
        request, result = action.request or {}, action.result or {}
        channel = str(request.get("channel") or result.get("channel") or "in_app")
        detail: dict[str, Any] = {"channel": channel, "rule": rule.key,
                                  "status": DELIVERY.get(action.status, action.status),
                                  "attempts": action.attempts}
        if channel == "in_app":
            detail["users"] = [u for u in result.get("users") or [] if isinstance(u, int)]
        else:
            detail["recipients"] = masked_recipients(channel, list(request.get("to") or []))
        # no error text: a gateway's message may quote the unmasked number
        out.append(Entry(Position(action.created_at, "rules.notices", action.id),
                         "automation", "notified", ask.subject(record_id),
                         name=str(request.get("title") or _rule_name(rule)), detail=detail))
    return out


def register_builtins() -> None:
    """The rules engine's timeline sources (idempotent)."""
    register_source("rules.runs", "automation", _runs)
    register_source("rules.notices", "automation", _notices)
