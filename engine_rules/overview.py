"""What an admin sees of an app's rules at a glance: each rule's recent runs (counts over
a window, the last run), whether it is *failing*, why it was last turned off, and the
app's run log filtered by rule, outcome and record.

A rule is **failing** when, within the window, one of its runs failed (its condition or
an action went wrong), or it has an action run that is failed or dead now (the
dead-letter list) — whatever its on/off switch says. All counts are one grouped query
each, not a loop over rules.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import case, func, select
from sqlalchemy.orm import Session

from engine_rules.models import ActionRun, Rule, RuleRun
from platform_core.security.models import AuditEntry

OUTCOMES = ("done", "skipped", "failed", "stopped")
DEAD = ("dead", "failed")


@dataclass(frozen=True)
class RuleStats:
    """One rule's runs since the window's start: ``runs`` (its trigger matched),
    ``fired`` (the condition held), ``failed``; ``last_at``: its last run ever;
    ``dead``: its failed or dead action runs now."""

    runs: int = 0
    fired: int = 0
    failed: int = 0
    last_at: datetime | None = None
    dead: int = 0

    @property
    def failing(self) -> bool:
        return bool(self.failed or self.dead)


def stats(session: Session, app: str, *, since: datetime) -> dict[int, RuleStats]:
    """``{rule id: RuleStats}`` for the app's rules (test runs left out)."""
    in_window = RuleRun.at >= since
    rows = session.execute(
        select(RuleRun.rule_id,
               func.sum(case((in_window, 1), else_=0)),
               func.sum(case((in_window & RuleRun.condition.is_(True), 1), else_=0)),
               func.sum(case((in_window & (RuleRun.status == "failed"), 1), else_=0)),
               func.max(RuleRun.at))
        .join(Rule, Rule.id == RuleRun.rule_id)
        .where(Rule.app == app, RuleRun.test.is_(False))
        .group_by(RuleRun.rule_id)).all()
    dead = dict(session.execute(
        select(ActionRun.rule_id, func.count()).where(
            ActionRun.app == app, ActionRun.status.in_(DEAD))
        .group_by(ActionRun.rule_id)).all())
    out = {rid: RuleStats(int(n or 0), int(f or 0), int(x or 0), last, dead.get(rid, 0))
           for rid, n, f, x, last in rows}
    for rid, count in dead.items():
        out.setdefault(rid, RuleStats(dead=count))
    return out


def switches(session: Session, app: str) -> dict[str, dict[str, Any]]:
    """``{rule key: {"enabled", "reason", "at", "by"}}``: the last time each rule was
    turned on or off from the list or the API (the audit log keeps every one)."""
    prefix = f"rule:{app}."
    rows = session.execute(
        select(AuditEntry).where(AuditEntry.action.in_(("rule.enabled", "rule.disabled")),
                                 AuditEntry.target.startswith(prefix, autoescape=True))
        .order_by(AuditEntry.id.desc())).scalars()
    out: dict[str, dict[str, Any]] = {}
    for row in rows:
        key = (row.target or "")[len(prefix):]
        if key not in out:
            out[key] = {"enabled": row.action == "rule.enabled",
                        "reason": (row.detail or {}).get("reason"), "at": row.at,
                        "by": row.actor_name}
    return out


def app_runs(session: Session, app: str, *, rule: str | None = None,
             status: str | None = None, record_id: int | None = None, limit: int = 50,
             before: int | None = None) -> list[tuple[RuleRun, str]]:
    """The app's run log, newest first, with each run's rule key; ``before``: the id of
    the last run of the previous page."""
    stmt = select(RuleRun, Rule.key).join(Rule, Rule.id == RuleRun.rule_id).where(
        Rule.app == app, RuleRun.test.is_(False))
    if rule:
        stmt = stmt.where(Rule.key == rule)
    if status:
        stmt = stmt.where(RuleRun.status == status)
    if record_id:
        stmt = stmt.where(RuleRun.record_id == record_id)
    if before:
        stmt = stmt.where(RuleRun.id < before)
    return [(run, key) for run, key in session.execute(
        stmt.order_by(RuleRun.id.desc()).limit(limit)).all()]
