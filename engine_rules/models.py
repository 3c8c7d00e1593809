"""Tables of the rules engine: rules (with immutable versions), each run's log, each
action run under its idempotency key, in-app notifications and the marks that make
scheduled and date-relative triggers fire once.

Exactly once: an action run's ``key`` is ``<event>:<rule>:<action index>`` and unique.
An action that only writes rows (create a record, a task, an in-app notification) runs
in the dispatcher's transaction together with its ``ActionRun`` row — both or neither.
An action that calls out (e-mail, SMS, WeCom, webhook) is written as a *pending*
``ActionRun`` in that transaction and sent afterwards by the action sender, which
retries with backoff and ends in the dead-letter list (``status = dead``).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Boolean, DateTime, ForeignKey, Index, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from platform_core.models import Base, Id, Json, utcnow


class Rule(Base):
    """A rule of an app: its current spec and version, and whether it is on."""

    __tablename__ = "rules"

    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    app: Mapped[str] = mapped_column(ForeignKey("apps.key", ondelete="CASCADE"))
    key: Mapped[str] = mapped_column(String(64))
    version: Mapped[int] = mapped_column(Integer, default=1)
    spec: Mapped[dict[str, Any]] = mapped_column(Json)
    trigger: Mapped[str] = mapped_column(String(32))  # spec.trigger.type, for matching
    subject: Mapped[str | None] = mapped_column(String(64))  # its form or flow
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    enabled_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)

    __table_args__ = (UniqueConstraint("app", "key", name="uq_rules_app_key"),
                      Index("ix_rules_match", "app", "trigger", "enabled"))


class RuleVersion(Base):
    """One saved, immutable version of a rule (a run names the version it followed)."""

    __tablename__ = "rule_versions"

    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    rule_id: Mapped[int] = mapped_column(ForeignKey("rules.id", ondelete="CASCADE"))
    version: Mapped[int] = mapped_column(Integer)
    spec: Mapped[dict[str, Any]] = mapped_column(Json)
    saved_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    saved_by: Mapped[int | None] = mapped_column(Id)

    __table_args__ = (UniqueConstraint("rule_id", "version",
                                       name="uq_rule_versions_rule_version"),)


class RuleRun(Base):
    """One evaluation of a rule: what triggered it, the condition's result, each action's
    outcome, how long it took. ``test`` runs (no side effects) are logged too."""

    __tablename__ = "rule_runs"

    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    rule_id: Mapped[int] = mapped_column(ForeignKey("rules.id", ondelete="CASCADE"))
    rule_version: Mapped[int] = mapped_column(Integer)
    trigger_key: Mapped[str] = mapped_column(String(160))  # evt:42, cron:…, date:…
    event_type: Mapped[str | None] = mapped_column(String(64))
    record_id: Mapped[int | None] = mapped_column(Id)
    depth: Mapped[int] = mapped_column(Integer, default=0)
    condition: Mapped[bool | None] = mapped_column(Boolean)
    status: Mapped[str] = mapped_column(String(16))  # done | skipped | failed | stopped
    actions: Mapped[list[Any]] = mapped_column(Json, default=list)
    error: Mapped[str | None] = mapped_column(String(2000))
    test: Mapped[bool] = mapped_column(Boolean, default=False)
    duration_ms: Mapped[int] = mapped_column(Integer, default=0)
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)

    __table_args__ = (Index("ix_rule_runs_rule_id", "rule_id", "id"),
                      Index("ix_rule_runs_record_at", "record_id", "at"))


class ActionRun(Base):
    """One action of one rule for one trigger, under its idempotency ``key``.

    ``status``: done (ran in the dispatcher's transaction, or sent) | pending (an outside
    call waiting for the sender) | dead (gave up after ``max_attempts``; replayable).
    """

    __tablename__ = "action_runs"

    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    key: Mapped[str] = mapped_column(String(200), unique=True)
    rule_id: Mapped[int] = mapped_column(ForeignKey("rules.id", ondelete="CASCADE"))
    rule_run_id: Mapped[int | None] = mapped_column(Id)
    app: Mapped[str] = mapped_column(String(64))
    action_type: Mapped[str] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(16))
    request: Mapped[dict[str, Any]] = mapped_column(Json, default=dict)  # outside calls
    result: Mapped[dict[str, Any]] = mapped_column(Json, default=dict)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    claimed_by: Mapped[str | None] = mapped_column(String(128))
    claimed_until: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    last_error: Mapped[str | None] = mapped_column(String(2000))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    done_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))

    __table_args__ = (Index("ix_action_runs_due", "status", "next_attempt_at"),
                      Index("ix_action_runs_rule_id", "rule_id", "id"),
                      Index("ix_action_runs_rule_run_id", "rule_run_id"))


class Notification(Base):
    """An in-app notification (the notification centre: unread until read)."""

    __tablename__ = "notifications"

    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    user_id: Mapped[int] = mapped_column(Id)
    app: Mapped[str | None] = mapped_column(String(64))
    title: Mapped[str] = mapped_column(String(200))
    body: Mapped[str] = mapped_column(String(4000))
    record_id: Mapped[int | None] = mapped_column(Id)
    link: Mapped[str | None] = mapped_column(String(500))
    read_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)

    __table_args__ = (Index("ix_notifications_user", "user_id", "read_at", "id"),)


class TriggerMark(Base):
    """A scheduled or date-relative firing that happened: (rule, subject, moment) once."""

    __tablename__ = "trigger_marks"

    rule_id: Mapped[int] = mapped_column(ForeignKey("rules.id", ondelete="CASCADE"),
                                         primary_key=True)
    subject: Mapped[str] = mapped_column(String(64), primary_key=True)  # record:7, task:3
    moment: Mapped[str] = mapped_column(String(32), primary_key=True)  # the target date
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
