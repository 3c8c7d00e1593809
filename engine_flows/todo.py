"""To-dos: tasks about a record that no flow waits for (a rule's ``create_task``: "30
days before maturity, revisit the customer"), and moving a flow's step on from outside
(a rule's ``advance_flow``: "all documents collected → on to risk review").

A to-do lives in the same inbox, with the same SLA scan (due, overdue), as a flow's
tasks; it is completed (or claimed by completing, for candidates), transferred or
delegated by its assignee (a delegate's completion hands it back to the owner, as for a
flow's task) and reassigned by a manager of its form — the operations that move a flow
(reject, return, add a signer) are refused — and writes ``task.created`` /
``task.reassigned`` / ``task.completed`` events like any task.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from engine_flows.assign import Situation, resolve_assignees
from engine_flows.models import FlowRun, Task, TaskCandidate
from engine_flows.spec import Assignee
from engine_flows.tasks import TaskClosed, Who, _active_user, _must_act, visible_task
from platform_core.errors import Conflict, InvalidInput
from platform_core.models import Record
from platform_core.outbox import CASCADE_DEPTH, add_event
from platform_core.security.permissions import Forbidden
from platform_core.store import Actor


def _event(session: Session, event_type: str, task: Task, now: datetime,
           **payload: Any) -> None:
    body = {"task_id": task.id, "record_id": task.record_id, "step": task.title,
            "node": task.node_id, "assignee_id": task.assignee_id,
            "due_at": task.due_at.isoformat() if task.due_at else None, **payload}
    add_event(session, {"event_type": event_type, "app": task.app, "form": task.form,
                        "record_id": task.record_id, "payload": body, "created_at": now,
                        "available_at": now, "depth": CASCADE_DEPTH.get()})


def create_todo(session: Session, *, app: str, record: Record, data: Mapping[str, Any],
                title: str, assignee: Mapping[str, Any], due_at: datetime | None,
                actor: Actor, now: datetime) -> Task:
    """A to-do about ``record`` for whoever the assignment strategy picks (several:
    candidates who claim it; nobody: unassigned, for a manager to reassign)."""
    spec = Assignee.model_validate(dict(assignee))
    people = resolve_assignees(session, spec, Situation.of(
        record, data, initiator_id=actor.user_id, pool=f"{app}.todo"))
    task = Task(run_id=None, step_id=None, app=app, form=record.form, flow=None,
                node_id="todo", kind="todo", record_id=record.id, title=title,
                status="open", assignee_id=people[0] if len(people) == 1 else None,
                due_at=due_at, created_at=now)
    session.add(task)
    session.flush()
    if len(people) > 1:
        from engine_flows.models import TaskCandidate

        session.add_all(TaskCandidate(task_id=task.id, user_id=u) for u in people)
    _event(session, "task.created", task, now, actor_id=actor.user_id)
    if not people:
        _event(session, "task.unassigned", task, now, actor_id=actor.user_id)
    session.flush()
    return task


def complete_todo(session: Session, task_id: int, who: Who, *, outcome: str | None,
                  comment: str | None) -> Task:
    """Mark a to-do done (its assignee, or a candidate)."""
    task = session.execute(select(Task).where(Task.id == task_id).with_for_update()
                           ).scalar_one()
    visible_task(session, task_id, who)
    if task.status != "open":
        raise TaskClosed(f"task {task_id} is already {task.status}", task_id=task_id,
                         task_status=task.status)
    _must_act(session, task, who)
    if task.owner_id is not None:  # a delegate is done: back to the owner, still open
        delegate = task.assignee_id
        task.assignee_id, task.owner_id = task.owner_id, None
        task.row_version += 1
        _event(session, "task.reassigned", task, who.now, actor_id=who.user_id,
               previous_assignee_id=delegate, how="delegation_resolved", comment=comment)
        session.flush()
        return task
    task.status, task.outcome, task.comment = "done", outcome or "done", comment
    task.completed_by, task.completed_at = who.user_id, who.now
    task.row_version += 1
    _event(session, "task.completed", task, who.now, actor_id=who.user_id,
           outcome=task.outcome, comment=comment)
    session.flush()
    return task


def _open_todo(session: Session, task_id: int, who: Who) -> Task:
    """The to-do, locked, as it is now, open (else 404 / 409)."""
    visible_task(session, task_id, who)
    task = session.execute(select(Task).where(Task.id == task_id).with_for_update()
                           .execution_options(populate_existing=True)).scalar_one()
    if task.status != "open":
        raise TaskClosed(f"task {task_id} is already {task.status}", task_id=task_id,
                         task_status=task.status)
    return task


def _hand(session: Session, task: Task, to: int, how: str, who: Who) -> Task:
    old = task.assignee_id
    task.assignee_id = to
    task.row_version += 1
    session.execute(delete(TaskCandidate).where(TaskCandidate.task_id == task.id))
    _event(session, "task.reassigned", task, who.now, actor_id=who.user_id,
           previous_assignee_id=old, how=how)
    session.flush()
    return task


def transfer_todo(session: Session, task_id: int, who: Who, *, to: int) -> Task:
    """The assignee gives the to-do to someone else for good."""
    task = _open_todo(session, task_id, who)
    _must_act(session, task, who)
    if task.owner_id is not None:
        raise Conflict("a delegated task goes back to its owner; it cannot be transferred")
    return _hand(session, task, _active_user(session, to), "transferred", who)


def delegate_todo(session: Session, task_id: int, who: Who, *, to: int) -> Task:
    """Someone else does the to-do; their completion hands it back to the owner."""
    task = _open_todo(session, task_id, who)
    _must_act(session, task, who)
    if task.owner_id is not None:
        raise Conflict("this task is already delegated")
    if to == who.user_id:
        raise InvalidInput("to: delegate to someone else", field="to")
    _active_user(session, to)
    task.owner_id = who.user_id
    return _hand(session, task, to, "delegated", who)


def reassign_todo(session: Session, task_id: int, who: Who, *, to: int) -> Task:
    """A manager of the to-do's form gives it (even an unassigned one) to someone."""
    task = _open_todo(session, task_id, who)
    if not who.manages(task.app, task.form):
        raise Forbidden("only a manager of the form (manage right) may reassign")
    task.owner_id = None
    return _hand(session, task, _active_user(session, to), "reassigned", who)


def advance_step(session: Session, *, app: str, flow: str, record_id: int, step: str,
                 outcome: str | None, actor: Actor, now: datetime,
                 keyring: Any = None) -> list[int]:
    """Complete, as ``actor`` (a rule), the open tasks at ``step`` of the record's running
    instance of ``flow``; the ids completed (none when it is not at that step)."""
    from engine_flows.nodes import NODE_TYPES
    from engine_flows.runtime import engine_for, lock_run

    run_id = session.execute(select(FlowRun.id).where(
        FlowRun.app == app, FlowRun.flow == flow, FlowRun.record_id == record_id,
        FlowRun.status == "running")).scalar()
    if run_id is None:
        return []
    run = lock_run(session, run_id)
    eng = engine_for(session, run, actor=actor, now=now, keyring=keyring)
    node = eng.spec.node(step)
    if node is None:
        raise InvalidInput(f"advance_flow: {step!r} is not a step of flow {flow}")
    outcomes = NODE_TYPES.get(node.type).outcomes(node)
    chosen = outcome or (outcomes[0] if outcomes else "done")
    if chosen not in outcomes:
        raise InvalidInput(f"advance_flow: {chosen!r} is not an outcome of {node.label}")
    tasks = list(session.execute(select(Task).where(
        Task.run_id == run.id, Task.node_id == step, Task.status == "open")
        .order_by(Task.id)).scalars())
    done = []
    for task in tasks:
        session.refresh(task)
        if task.status != "open":
            continue  # an earlier completion here closed it (an any-approval)
        _close_as_system(eng, node, task, chosen)
        done.append(task.id)
    return done


def _close_as_system(eng: Any, node: Any, task: Task, outcome: str) -> None:
    from engine_flows.models import FlowStep
    from engine_flows.nodes import NODE_TYPES
    from engine_flows.tasks import _cancel_siblings, _close

    eng.bump()
    _close(eng, task, outcome, "advanced by a rule")
    step = eng.session.get(FlowStep, task.step_id)
    decision = NODE_TYPES.get(node.type).decide(eng, node, step, task)
    if decision is not None:
        _cancel_siblings(eng, step, node)
        eng.leave(step, node, decision, by=eng.actor.user_id)
        eng.advance()
