"""Tables of the flow engine: definitions (draft + immutable versions), runs, steps,
tasks, the run history, the working-day calendar and round-robin cursors.

Spec and run are apart (STYLE.md §1): a ``FlowRun`` points at ``(app, flow, version)`` and
never copies the spec. Its position is the set of its *active* ``FlowStep`` rows (one per
token: a waiting user step, timer, join or sub-flow), so "which step, since when, who"
and the funnel of a flow (issue 9) are plain queries over ``flow_steps``.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from sqlalchemy import Date, DateTime, ForeignKey, Index, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from platform_core.models import Base, Id, Json, utcnow

RUN_FORMAT_VERSION = 1


class Flow(Base):
    """A flow's mutable draft and the number of its latest published version."""

    __tablename__ = "flows"

    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    app: Mapped[str] = mapped_column(ForeignKey("apps.key", ondelete="CASCADE"))
    key: Mapped[str] = mapped_column(String(64))
    draft: Mapped[dict[str, Any]] = mapped_column(Json)
    published_version: Mapped[int | None] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)

    __table_args__ = (UniqueConstraint("app", "key", name="uq_flows_app_key"),)


class FlowVersion(Base):
    """One published, immutable version of a flow."""

    __tablename__ = "flow_versions"

    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    app: Mapped[str] = mapped_column(String(64))
    flow: Mapped[str] = mapped_column(String(64))
    version: Mapped[int] = mapped_column(Integer)
    spec: Mapped[dict[str, Any]] = mapped_column(Json)
    published_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    published_by: Mapped[int | None] = mapped_column(Id)

    __table_args__ = (UniqueConstraint("app", "flow", "version",
                                       name="uq_flow_versions_app_flow_version"),)


class FlowRun(Base):
    """One flow instance over one record, pinned to the version it started with.

    ``status``: running → completed | cancelled (only forward). ``row_version`` is bumped
    by every operation, so two operations on one run serialise (the loser gets 409).
    ``state`` is versioned JSON (``format_version``) for what is not a step row.
    """

    __tablename__ = "flow_runs"

    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    app: Mapped[str] = mapped_column(String(64))
    flow: Mapped[str] = mapped_column(String(64))
    version: Mapped[int] = mapped_column(Integer)
    form: Mapped[str] = mapped_column(String(64))
    record_id: Mapped[int] = mapped_column(ForeignKey("records.id", ondelete="CASCADE"))
    status: Mapped[str] = mapped_column(String(16), default="running")
    initiator_id: Mapped[int | None] = mapped_column(Id)
    parent_step_id: Mapped[int | None] = mapped_column(Id)  # a sub-flow's calling step
    state: Mapped[dict[str, Any]] = mapped_column(
        Json, default=lambda: {"format_version": RUN_FORMAT_VERSION})
    row_version: Mapped[int] = mapped_column(Integer, default=1)
    started_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    ended_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))

    __table_args__ = (Index("ix_flow_runs_record_id", "record_id"),
                      Index("ix_flow_runs_app_flow_status", "app", "flow", "status"))


class FlowStep(Base):
    """One visit of a node by a run: entered, then left (done) or cancelled.

    ``status``: active (waiting: user step, approval, timer, join, sub-flow) → done |
    cancelled. Pass-through nodes (start, gateways, service steps, end) get a row that is
    done at once, so the history shows the whole path. ``wake_at`` is a timer's due time,
    scanned through an index; ``arrived`` counts a join's incoming branches.
    """

    __tablename__ = "flow_steps"

    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    run_id: Mapped[int] = mapped_column(ForeignKey("flow_runs.id", ondelete="CASCADE"))
    node_id: Mapped[str] = mapped_column(String(64))
    node_type: Mapped[str] = mapped_column(String(32))
    status: Mapped[str] = mapped_column(String(16), default="active")
    prev_step_id: Mapped[int | None] = mapped_column(Id)
    outcome: Mapped[str | None] = mapped_column(String(64))
    arrived: Mapped[int] = mapped_column(Integer, default=0)
    wake_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    entered_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    left_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    left_by: Mapped[int | None] = mapped_column(Id)

    __table_args__ = (Index("ix_flow_steps_run_id", "run_id", "status"),
                      Index("ix_flow_steps_wake", "status", "wake_at"))


class Task(Base):
    """Work for a person at a user step or approval.

    ``assignee_id`` is who must act; with several candidates and no assignee, any
    candidate (``task_candidates``) may claim or complete it. ``status``: open → done |
    cancelled; *overdue* is an open task past ``due_at`` (``overdue_at`` records when the
    scan noticed). ``owner_id`` is set while the task is delegated (the delegate resolves
    it back to the owner). ``seq`` orders sequential signers.
    """

    __tablename__ = "tasks"

    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    # none of run, step and flow for a to-do (a rule's ``create_task``): a task about a
    # record that no flow waits for
    run_id: Mapped[int | None] = mapped_column(ForeignKey("flow_runs.id", ondelete="CASCADE"))
    step_id: Mapped[int | None] = mapped_column(ForeignKey("flow_steps.id",
                                                           ondelete="CASCADE"))
    app: Mapped[str] = mapped_column(String(64))
    form: Mapped[str] = mapped_column(String(64))
    flow: Mapped[str | None] = mapped_column(String(64))
    node_id: Mapped[str] = mapped_column(String(64))
    kind: Mapped[str] = mapped_column(String(16), default="task")  # task | approval | todo
    record_id: Mapped[int] = mapped_column(Id)
    title: Mapped[str] = mapped_column(String(200))
    status: Mapped[str] = mapped_column(String(16), default="open")
    assignee_id: Mapped[int | None] = mapped_column(Id)
    owner_id: Mapped[int | None] = mapped_column(Id)
    seq: Mapped[int] = mapped_column(Integer, default=0)
    due_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    remind_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    reminded_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    overdue_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    escalate_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    escalated_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    outcome: Mapped[str | None] = mapped_column(String(64))
    comment: Mapped[str | None] = mapped_column(String(2000))
    completed_by: Mapped[int | None] = mapped_column(Id)
    completed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    row_version: Mapped[int] = mapped_column(Integer, default=1)

    __table_args__ = (Index("ix_tasks_assignee", "assignee_id", "status"),
                      Index("ix_tasks_due", "status", "due_at"),
                      Index("ix_tasks_remind", "status", "remind_at"),
                      Index("ix_tasks_escalate", "status", "escalate_at"),
                      Index("ix_tasks_run_id", "run_id", "status"),
                      Index("ix_tasks_record_created", "record_id", "created_at"))


class TaskCandidate(Base):
    """A user who may claim an unassigned task (a role's members, say)."""

    __tablename__ = "task_candidates"

    task_id: Mapped[int] = mapped_column(ForeignKey("tasks.id", ondelete="CASCADE"),
                                         primary_key=True)
    user_id: Mapped[int] = mapped_column(Id, primary_key=True)

    __table_args__ = (Index("ix_task_candidates_user_id", "user_id"),)


class FlowHistory(Base):
    """What happened to a run, in order: started, step entered/left, task created,
    completed, transferred, delegated, rejected, withdrawn, migrated, cancelled…"""

    __tablename__ = "flow_history"

    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    run_id: Mapped[int] = mapped_column(ForeignKey("flow_runs.id", ondelete="CASCADE"))
    action: Mapped[str] = mapped_column(String(32))
    node_id: Mapped[str | None] = mapped_column(String(64))
    task_id: Mapped[int | None] = mapped_column(Id)
    actor_id: Mapped[int | None] = mapped_column(Id)
    detail: Mapped[dict[str, Any]] = mapped_column(Json, default=dict)
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)

    __table_args__ = (Index("ix_flow_history_run_id", "run_id", "id"),
                      Index("ix_flow_history_run_at", "run_id", "at"))


class CalendarDay(Base):
    """An exception to the Monday–Friday working week: a holiday (``workday`` false) or a
    weekend day worked in exchange (调休, ``workday`` true)."""

    __tablename__ = "calendar_days"

    day: Mapped[date] = mapped_column(Date, primary_key=True)
    workday: Mapped[bool] = mapped_column(default=False)
    name: Mapped[str | None] = mapped_column(String(100))


class AssignmentCursor(Base):
    """The last user a round-robin pool handed work to."""

    __tablename__ = "assignment_cursors"

    pool: Mapped[str] = mapped_column(String(255), primary_key=True)
    last_user_id: Mapped[int] = mapped_column(Id)


class ProgressLink(Base):
    """A signed, expiring link that lets a record's customer see its flow progress
    (``engine_flows.progress_links``). The URL's token is ``nonce`` plus an HMAC of it
    under the installation's secret: a forged token is refused without a look-up, and
    the row decides the rest (revoked, expired). The token is never stored in a form that
    gives it away without the secret; the row counts its opens."""

    __tablename__ = "progress_links"

    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    app: Mapped[str] = mapped_column(String(64))
    form: Mapped[str] = mapped_column(String(64))
    flow: Mapped[str] = mapped_column(String(64))
    record_id: Mapped[int] = mapped_column(ForeignKey("records.id", ondelete="CASCADE"))
    nonce: Mapped[str] = mapped_column(String(32), unique=True)
    via: Mapped[str] = mapped_column(String(16), default="page")  # page | api | rule
    created_by: Mapped[int | None] = mapped_column(Id)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    revoked_by: Mapped[int | None] = mapped_column(Id)
    last_opened_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    open_count: Mapped[int] = mapped_column(Integer, default=0)

    __table_args__ = (Index("ix_progress_links_record_id", "record_id"),)
