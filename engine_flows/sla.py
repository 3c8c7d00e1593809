"""The SLA scan: reminders before due, overdue marking, escalation, and timer nodes that
are due — scans over indexed columns (``ix_tasks_remind``, ``ix_tasks_due``,
``ix_tasks_escalate``, ``ix_flow_steps_wake``), never one timer per task.

Each kind is claimed in batches with a conditional update (``reminded_at``/``overdue_at``/
``escalated_at`` set once; PostgreSQL ``SKIP LOCKED`` lets several workers share), and
writes its outbox event (``task.reminder``, ``task.overdue``, ``task.escalated``) in the
same transaction, for the rules engine and webhooks. ``scan`` is registered in
``platform_core.scans`` and runs on every background tick; pass ``now`` to drive it
from a test clock.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from engine_flows.models import FlowHistory, FlowStep, Task
from engine_flows.runtime import engine_for, lock_run
from platform_core.db import Database
from platform_core.errors import DomainError
from platform_core.outbox import CASCADE_DEPTH, add_event
from platform_core.store import SYSTEM

log = logging.getLogger("qiao.flows")
BATCH = 500
RETRY = timedelta(hours=1)
# (event, the column that says when, the column that records it was handled)
KINDS = (("task.reminder", Task.remind_at, Task.reminded_at),
         ("task.overdue", Task.due_at, Task.overdue_at),
         ("task.escalated", Task.escalate_at, Task.escalated_at))


def _aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _task_event(session: Session, event: str, task: Task, form: str, now: datetime) -> None:
    due = _aware(task.due_at) if task.due_at else None
    payload: dict[str, Any] = {
        "task_id": task.id, "run_id": task.run_id, "flow": task.flow, "node": task.node_id,
        "step": task.title, "record_id": task.record_id, "assignee_id": task.assignee_id,
        "due_at": due.isoformat() if due else None}
    if due is not None and now >= due:
        late = now - due
        payload["overdue_hours"] = round(late.total_seconds() / 3600, 2)
        payload["overdue_days"] = late.days
    add_event(session, {"event_type": event, "app": task.app, "form": form,
                        "record_id": task.record_id, "payload": payload, "created_at": now,
                        "available_at": now, "depth": CASCADE_DEPTH.get()})


def _utc(now: datetime) -> datetime:
    """``now`` in UTC: SQLite stores timestamps as UTC text without a zone and compares
    text, so a clock given in Asia/Shanghai would fire everything eight hours early."""
    return _aware(now).astimezone(UTC)


def scan_tasks(session: Session, now: datetime) -> int:
    """Mark due reminders, overdue tasks and escalations; how many were marked."""
    now, done = _utc(now), 0
    for event, when, marked in KINDS:
        rows = list(session.execute(
            select(Task)
            .where(Task.status == "open", when.is_not(None), when <= now, marked.is_(None))
            .order_by(when).limit(BATCH).with_for_update(skip_locked=True)).scalars())
        for task in rows:
            setattr(task, marked.key, now)
            _task_event(session, event, task, task.form, now)
        done += len(rows)
    session.flush()
    return done


def wake_timers(session: Session, now: datetime) -> int:
    """Move on every timer step that is due; how many."""
    now = _utc(now)
    due = list(session.execute(
        select(FlowStep.id, FlowStep.run_id).where(
            FlowStep.status == "active", FlowStep.wake_at.is_not(None),
            FlowStep.wake_at <= now).order_by(FlowStep.wake_at).limit(BATCH)
        .with_for_update(skip_locked=True)).all())
    for step_id, run_id in due:
        try:
            with session.begin_nested():
                _wake(session, step_id, run_id, now)
        except DomainError as exc:  # the flow cannot go on: try again in an hour
            log.warning("timer step %s of run %s: %s", step_id, run_id, exc.detail)
            step = session.get(FlowStep, step_id)
            if step is not None:
                step.wake_at = now + RETRY
                session.add(FlowHistory(run_id=run_id, action="timer_failed",
                                        node_id=step.node_id, detail={"error": exc.detail},
                                        at=now))
    session.flush()
    return len(due)


def _wake(session: Session, step_id: int, run_id: int, now: datetime) -> None:
    run = lock_run(session, run_id)
    step = session.get(FlowStep, step_id)
    if run.status != "running" or step is None or step.status != "active":
        return
    eng = engine_for(session, run, actor=SYSTEM, now=now)
    node = eng.spec.node(step.node_id)
    if node is None:
        return
    eng.bump()
    eng.leave(step, node, "done")
    eng.advance()


def scan(db: Database, now: datetime) -> int:
    """One SLA and timer pass, in one transaction."""
    with db.write() as session:
        return scan_tasks(session, now) + wake_timers(session, now)
