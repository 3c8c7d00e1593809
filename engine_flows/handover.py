"""Handing work to someone else: transfer, delegate, claim, add a signer, and an
admin's reassignment. Same order of checks as ``engine_flows.tasks``; none of these moves
the flow, each writes history and a ``task.reassigned`` event. A to-do (no flow) is
transferred, delegated and reassigned the same way by ``engine_flows.todo``."""

from __future__ import annotations

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from engine_flows import todo
from engine_flows.models import FlowStep, Task, TaskCandidate
from engine_flows.nodes import create_task
from engine_flows.runtime import Engine
from engine_flows.tasks import (
    NotAllowedHere,
    Who,
    _active_user,
    _allowed,
    _must_act,
    _open_task,
    candidates,
    visible_task,
)
from platform_core.errors import Conflict, InvalidInput
from platform_core.security.permissions import Forbidden


def _hand(session: Session, task: Task, to: int, action: str, eng: Engine) -> None:
    old = task.assignee_id
    task.assignee_id = to
    task.row_version += 1
    session.execute(delete(TaskCandidate).where(TaskCandidate.task_id == task.id))
    eng.history(action, node_id=task.node_id, task_id=task.id, from_user=old, to_user=to)
    eng.emit("task.reassigned", task_id=task.id, node=task.node_id, step=task.title,
             assignee_id=to, previous_assignee_id=old, how=action)
    session.flush()


def _is_todo(session: Session, task_id: int, who: Who) -> bool:
    return visible_task(session, task_id, who).run_id is None


def transfer(session: Session, task_id: int, who: Who, *, to: int) -> Task:
    """The assignee gives the task to someone else for good."""
    if _is_todo(session, task_id, who):
        return todo.transfer_todo(session, task_id, who, to=to)
    eng, task, node = _open_task(session, task_id, who)
    _must_act(session, task, who)
    _allowed(node, "transfer")
    if task.owner_id is not None:
        raise Conflict("a delegated task goes back to its owner; it cannot be transferred")
    _hand(session, task, _active_user(session, to), "transferred", eng)
    return task


def delegate(session: Session, task_id: int, who: Who, *, to: int) -> Task:
    """Someone else works the task and hands it back (their completion returns it to the
    owner, who completes it)."""
    if _is_todo(session, task_id, who):
        return todo.delegate_todo(session, task_id, who, to=to)
    eng, task, node = _open_task(session, task_id, who)
    _must_act(session, task, who)
    _allowed(node, "delegate")
    if task.owner_id is not None:
        raise Conflict("this task is already delegated")
    if to == who.user_id:
        raise InvalidInput("to: delegate to someone else", field="to")
    task.owner_id = who.user_id
    _hand(session, task, _active_user(session, to), "delegated", eng)
    return task


def claim(session: Session, task_id: int, who: Who) -> Task:
    """A candidate takes an unassigned task."""
    eng, task, node = _open_task(session, task_id, who)
    _allowed(node, "claim")
    if task.assignee_id is not None:
        raise Conflict(f"task {task_id} is already assigned", task_id=task_id)
    if who.user_id not in candidates(session, task.id):
        raise Forbidden(f"you are not a candidate for task {task_id}")
    _hand(session, task, who.user_id, "claimed", eng)
    return task


def reassign(session: Session, task_id: int, who: Who, *, to: int) -> Task:
    """A flow manager gives any open task (even an unassigned one) to someone."""
    if _is_todo(session, task_id, who):
        return todo.reassign_todo(session, task_id, who, to=to)
    eng, task, _node = _open_task(session, task_id, who)
    if not who.manages(eng.run.app, eng.run.form):
        raise Forbidden("only a flow manager (manage right on the form) may reassign")
    task.owner_id = None
    _hand(session, task, _active_user(session, to), "reassigned", eng)
    return task


def add_signer(session: Session, task_id: int, who: Who, *, user: int) -> Task:
    """Another signer on an approval: for any/all approvals a task of their own, for a
    sequential one the next in line after the caller."""
    eng, task, node = _open_task(session, task_id, who)
    _must_act(session, task, who)
    _allowed(node, "add_signer")
    mode = node.mode or "single"
    if task.kind != "approval" or mode == "single":
        raise NotAllowedHere(f"{node.label}: signers are added to an approval of mode any, "
                             "all or sequential", operation="add_signer")
    _active_user(session, user)
    step = session.get(FlowStep, task.step_id)
    assert step is not None
    if mode == "sequential":
        signers = dict(eng.run.state.get("signers", {}))
        queue = [u for u in signers.get(str(step.id), []) if u != user]
        signers[str(step.id)] = [user, *queue]
        eng.run.state = {**eng.run.state, "signers": signers}
        _signer_added(eng, task, user, task.id)
        return task
    taken = session.execute(select(Task.id).where(
        Task.step_id == step.id, Task.status == "open", Task.assignee_id == user)).first()
    if taken:
        raise Conflict(f"user {user} already signs at this step")
    seq = session.execute(select(func.max(Task.seq)).where(Task.step_id == step.id)
                          ).scalar() or 0
    new = create_task(eng, node, step, user, kind="approval", seq=seq + 1)
    _signer_added(eng, task, user, new.id)
    return new


def _signer_added(eng: Engine, task: Task, user: int, signer_task: int) -> None:
    """History and event of an added signer (a sequential signer's own task comes only
    when their turn does, so the event is the only trace until then)."""
    eng.history("signer_added", node_id=task.node_id, task_id=signer_task, user=user)
    eng.emit("task.signer_added", task_id=task.id, node=task.node_id, step=task.title,
             user_id=user, signer_task_id=signer_task if signer_task != task.id else None)
