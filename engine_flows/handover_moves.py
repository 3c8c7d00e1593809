"""The flow side of a staff handover (``engine_flows.staff_handover``): open tasks,
candidate rows and waiting sequential signers moved from one user to the colleagues the
plan chose. Each runs in the caller's transaction; a flow task moves through the same
``_hand`` as a manager's reassignment (history, ``task.reassigned`` event), with
``how = "handed_over"``."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from engine_flows.handover import _hand
from engine_flows.models import Task, TaskCandidate
from engine_flows.runtime import Engine, engine_for, lock_run
from engine_flows.todo import _event
from platform_core.store import Actor

HOW = "handed_over"


def _engine(session: Session, run_id: int, actor: Actor, now: datetime) -> Engine:
    eng = engine_for(session, lock_run(session, run_id), actor=actor, now=now)
    eng.bump()
    return eng


def move_tasks(session: Session, source_id: int, moves: Sequence[tuple[int, int, str]], *,
               actor: Actor, now: datetime) -> None:
    """``moves``: (task id, new user, "assignee" | "owner") — the owner of a task the
    source delegated gets it back when the delegate is done."""
    for task_id, to, role in moves:
        task = session.get(Task, task_id)
        assert task is not None
        if task.run_id is None:  # a to-do: no run, no flow history
            old, task.assignee_id = task.assignee_id, to
            task.row_version += 1
            _event(session, "task.reassigned", task, now, actor_id=actor.user_id,
                   previous_assignee_id=old, how=HOW)
            continue
        eng = _engine(session, task.run_id, actor, now)
        session.refresh(task)
        if role == "assignee":
            _hand(session, task, to, HOW, eng)
        else:
            task.owner_id = to
            task.row_version += 1
            eng.history(HOW, node_id=task.node_id, task_id=task.id, from_owner=source_id,
                        to_owner=to)
    session.flush()


def move_candidates(session: Session, source_id: int,
                    moves: Sequence[tuple[int, int]]) -> None:
    """The source's candidate rows replaced by the chosen colleague's (once)."""
    for task_id, to in moves:
        session.execute(delete(TaskCandidate).where(TaskCandidate.task_id == task_id,
                                                    TaskCandidate.user_id == source_id))
        if not session.execute(select(TaskCandidate.user_id).where(
                TaskCandidate.task_id == task_id, TaskCandidate.user_id == to)).first():
            session.add(TaskCandidate(task_id=task_id, user_id=to))
    session.flush()


def move_signers(session: Session, source_id: int, moves: Sequence[tuple[int, int]], *,
                 actor: Actor, now: datetime) -> None:
    """A sequential approval's waiting signers: the source replaced in each queue (a
    colleague already in it keeps their place)."""
    for run_id, to in moves:
        eng = _engine(session, run_id, actor, now)
        signers = {}
        for step, queue in (eng.run.state.get("signers") or {}).items():
            replaced = [to if u == source_id else u for u in queue]
            signers[step] = list(dict.fromkeys(replaced))
        eng.run.state = {**eng.run.state, "signers": signers}
        eng.history("signer_replaced", user=to, previous_user=source_id, how=HOW)
    session.flush()
