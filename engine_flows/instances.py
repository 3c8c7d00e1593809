"""Flow instances: starting one over a record, and reading where it stands.

``start_run`` pins the run to the flow's latest published version; ``instance_doc`` is
the full picture (current steps with who and since when, tasks, history) and
``progress`` the short one a customer-facing status view shows.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from engine_flows.definitions import latest
from engine_flows.models import FlowHistory, FlowRun, FlowStep, Task, TaskCandidate
from engine_flows.runtime import engine_for, spec_of
from engine_forms.forms import published
from engine_forms.records import load_record
from platform_core.errors import Conflict
from platform_core.models import Record
from platform_core.security.crypto import Keyring
from platform_core.security.models import User
from platform_core.store import Actor


def iso(moment: datetime | None) -> str | None:
    from platform_core.webhooks.events import iso as iso_z

    return iso_z(moment) if moment is not None else None


def start_run(session: Session, *, app: str, flow: str, record_id: int, actor: Actor,
              now: datetime, keyring: Keyring | None = None,
              parent_step_id: int | None = None,
              initiator_id: int | None = None) -> FlowRun:
    """Start ``flow`` over record ``record_id`` and run it to its first waiting steps.
    Its initiator is ``actor`` unless named (a sub-flow keeps its parent's initiator:
    whoever completed the step before it does not become the owner of the child).

    A record runs one instance of a flow at a time (409 while one is running)."""
    version = latest(session, app, flow)
    form = version.spec["form"]
    load_record(session, published(session, app, form), record_id)
    # the record's row lock makes a second start of the same flow wait here and then see
    # the first one's run (PostgreSQL; SQLite's writer lock already serialises)
    session.execute(select(Record.id).where(Record.id == record_id).with_for_update())
    running = session.execute(select(FlowRun.id).where(
        FlowRun.record_id == record_id, FlowRun.app == app, FlowRun.flow == flow,
        FlowRun.status == "running")).first()
    if running:
        raise Conflict(f"record {record_id} already runs flow {flow!r} (instance "
                       f"{running[0]})", run_id=running[0])
    run = FlowRun(app=app, flow=flow, version=version.version, form=form,
                  record_id=record_id, status="running",
                  initiator_id=actor.user_id if initiator_id is None else initiator_id,
                  parent_step_id=parent_step_id, started_at=now)
    session.add(run)
    session.flush()
    eng = engine_for(session, run, actor=actor, now=now, keyring=keyring)
    eng.history("flow_started", version=run.version)
    eng.emit("flow.started", node=eng.spec.start.id)
    eng.enter(eng.spec.start.id, None)
    eng.advance()
    session.flush()
    return run


def _names(session: Session, ids: set[int]) -> dict[int, str]:
    if not ids:
        return {}
    return dict(session.execute(select(User.id, User.display_name).where(User.id.in_(ids)))
                .all())


def task_rows(session: Session, run_ids: list[int], *, open_only: bool) -> list[Task]:
    stmt = select(Task).where(Task.run_id.in_(run_ids))
    if open_only:
        stmt = stmt.where(Task.status == "open")
    return list(session.execute(stmt.order_by(Task.id)).scalars())


def candidates_of(session: Session, task_ids: list[int]) -> dict[int, list[int]]:
    out: dict[int, list[int]] = {}
    if task_ids:
        for task_id, user_id in session.execute(select(
                TaskCandidate.task_id, TaskCandidate.user_id).where(
                TaskCandidate.task_id.in_(task_ids)).order_by(TaskCandidate.user_id)):
            out.setdefault(task_id, []).append(user_id)
    return out


def current_steps(session: Session, run: FlowRun, now: datetime) -> list[dict[str, Any]]:
    """The run's active steps: node, name, since when, and who is to act."""
    return run_and_current(session, run.id, now)[1]


def run_and_current(session: Session, run_id: int, now: datetime
                    ) -> tuple[FlowRun, list[dict[str, Any]]]:
    """The run and its active steps (``current_steps``) with one query — the run, its
    active steps, their open tasks and the assignees' names joined — and one more for
    candidates when a task has none assigned."""
    rows = session.execute(
        select(FlowRun, FlowStep, Task, User.display_name)
        .outerjoin(FlowStep, (FlowStep.run_id == FlowRun.id) & (FlowStep.status == "active"))
        .outerjoin(Task, (Task.step_id == FlowStep.id) & (Task.status == "open"))
        .outerjoin(User, User.id == Task.assignee_id)
        .where(FlowRun.id == run_id).order_by(FlowStep.id, Task.id)).all()
    run = rows[0][0]
    spec = spec_of(session, run.app, run.flow, run.version)
    steps = list(dict.fromkeys(r[1] for r in rows if r[1] is not None))
    tasks = [r[2] for r in rows if r[2] is not None]
    names = {r[2].assignee_id: r[3] for r in rows if r[2] is not None and r[2].assignee_id}
    cands = candidates_of(session, [t.id for t in tasks if not t.assignee_id])
    names |= _names(session, {u for c in cands.values() for u in c} - set(names))
    out = []
    for step in steps:
        node = spec.node(step.node_id)
        mine = [t for t in tasks if t.step_id == step.id]
        people = [{"id": t.assignee_id, "name": names.get(t.assignee_id)}
                  for t in mine if t.assignee_id] + [
            {"id": u, "name": names.get(u), "candidate": True}
            for t in mine if not t.assignee_id for u in cands.get(t.id, [])]
        due = min((t.due_at for t in mine if t.due_at), default=None)
        out.append({"node": step.node_id, "name": node.label if node else step.node_id,
                    "type": step.node_type, "since": iso(step.entered_at),
                    "wake_at": iso(step.wake_at), "due_at": iso(due),
                    "overdue": bool(due and _aware(due) < now), "assignees": people,
                    "tasks": [t.id for t in mine]})
    return run, out


def _aware(moment: datetime) -> datetime:
    from datetime import UTC

    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def run_doc(run: FlowRun) -> dict[str, Any]:
    return {"id": run.id, "app": run.app, "flow": run.flow, "version": run.version,
            "form": run.form, "record_id": run.record_id, "status": run.status,
            "initiator_id": run.initiator_id, "parent_step_id": run.parent_step_id,
            "started_at": iso(run.started_at), "ended_at": iso(run.ended_at),
            "row_version": run.row_version}


def instance_doc(session: Session, run: FlowRun, now: datetime) -> dict[str, Any]:
    history = session.execute(select(FlowHistory).where(FlowHistory.run_id == run.id)
                              .order_by(FlowHistory.id)).scalars()
    tasks = task_rows(session, [run.id], open_only=False)
    return run_doc(run) | {
        "current": current_steps(session, run, now),
        "tasks": [task_summary(t, now) for t in tasks],
        "history": [{"action": h.action, "node": h.node_id, "task_id": h.task_id,
                     "actor_id": h.actor_id, "at": iso(h.at), "detail": h.detail}
                    for h in history]}


def task_summary(task: Task, now: datetime) -> dict[str, Any]:
    return {"id": task.id, "run_id": task.run_id, "app": task.app, "flow": task.flow,
            "node": task.node_id, "title": task.title, "kind": task.kind,
            "status": task.status, "record_id": task.record_id,
            "assignee_id": task.assignee_id, "owner_id": task.owner_id,
            "due_at": iso(task.due_at),
            "overdue": bool(task.status == "open" and task.due_at
                            and _aware(task.due_at) < now),
            "outcome": task.outcome, "comment": task.comment,
            "completed_by": task.completed_by, "completed_at": iso(task.completed_at),
            "created_at": iso(task.created_at), "row_version": task.row_version}


def progress(session: Session, record_id: int, now: datetime) -> list[dict[str, Any]]:
    """Each flow run over the record, newest first: status, and for a running one which
    step(s) it is at, since when and who is handling it."""
    runs = session.execute(select(FlowRun).where(FlowRun.record_id == record_id)
                           .order_by(FlowRun.id.desc())).scalars()
    out = []
    for run in runs:
        spec = spec_of(session, run.app, run.flow, run.version)
        out.append({"run_id": run.id, "flow": run.flow, "flow_name": spec.name,
                    "status": run.status, "started_at": iso(run.started_at),
                    "ended_at": iso(run.ended_at),
                    "current": current_steps(session, run, now)
                    if run.status == "running" else []})
    return out
