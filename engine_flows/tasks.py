"""Operations on tasks and runs: each checks the actor's right, runs in the caller's one
transaction, and writes history and outbox events.

Order of every operation: lock the run (operations on one run happen one after another;
one ``UPDATE … RETURNING`` that also bumps its ``row_version``) → load the task fresh, with
its step, and check it is still open → check who may do it (the assignee or,
for an unassigned task, a candidate; the owner of a delegated task sees it but waits for
the delegate to hand it back; flow managers — admins and roles with ``manage`` on the
flow's form — may reassign and cancel) → check the step allows the operation → apply →
run the flow on to its next waiting steps. Two people completing one task: the second
finds it done (409 ``task_closed``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import and_, bindparam, select, update
from sqlalchemy.orm import Session
from sqlalchemy.orm.attributes import set_committed_value

from engine_flows.models import FlowRun, FlowStep, FlowVersion, Task, TaskCandidate
from engine_flows.nodes import NODE_TYPES
from engine_flows.runtime import (
    Engine,
    check_running,
    engine_for,
    logged_together,
)
from engine_flows.spec import Node
from engine_forms import records as record_handler
from engine_forms.sealing import FieldCrypt
from platform_core.db import adopt
from platform_core.errors import Conflict, InvalidInput, NotFound
from platform_core.models import Record
from platform_core.security.crypto import Keyring
from platform_core.security.models import User
from platform_core.security.permissions import Forbidden
from platform_core.security.principal import Principal


class TaskClosed(Conflict):
    code, title = "task_closed", "Task already closed"


class NotAllowedHere(Forbidden):
    code = "operation_not_allowed"


class FieldsRequired(InvalidInput):
    code = "fields_required"


@dataclass(frozen=True)
class Who:
    """The acting principal, the keyring for sealed fields, and the operation's clock."""

    principal: Principal
    keyring: Keyring | None
    now: datetime

    @property
    def user_id(self) -> int:
        return self.principal.user_id

    def manages(self, app: str, form: str) -> bool:
        return self.principal.is_admin or self.principal.access(app, form).allows("manage")


# -- finding and checking ------------------------------------------------------------------


def candidates(session: Session, task_id: int) -> list[int]:
    return list(session.execute(select(TaskCandidate.user_id).where(
        TaskCandidate.task_id == task_id)).scalars())


def involved(session: Session, task: Task, who: Who) -> bool:
    return who.user_id in (task.assignee_id, task.owner_id) or (
        task.assignee_id is None and who.user_id in candidates(session, task.id))


def visible_task(session: Session, task_id: int, who: Who) -> Task:
    """The task if the caller takes part in it or manages its flow's form (else 404)."""
    return _visible(session, session.get(Task, task_id), task_id, who)


def _visible(session: Session, task: Task | None, task_id: int, who: Who) -> Task:
    if task is None or not (involved(session, task, who) or task.completed_by == who.user_id
                            or who.manages(task.app, task.form)):
        raise NotFound(f"task {task_id} does not exist", task_id=task_id)
    return task


@dataclass(frozen=True)
class _Claim:
    run: FlowRun | None  # locked and bumped; None for a to-do
    task: Task
    step: FlowStep | None  # held here: the identity map keeps only what is referenced
    stamp: Any  # the run's flow version's published_at (its spec's cache key)
    record: Record | None = None  # the run's record, held, when the caller asked for it


# The statements of every completion, built once with bound parameters: building them
# per call (SQLAlchemy's coercions and cache keys) cost more than running them.
# Core, answering every column (``adopt`` makes the run object): the ORM's UPDATE …
# RETURNING an entity cost a third more than the statement (30 µs a completion, SQLite).
_RUNS = FlowRun.__table__
_BUMP_RUN = (
    update(_RUNS)
    .where(_RUNS.c.id == select(Task.run_id).where(Task.id == bindparam("task_id"))
           .scalar_subquery())
    .values(row_version=_RUNS.c.row_version + 1).returning(*_RUNS.c))
_TASK = select(Task).where(Task.id == bindparam("task_id")) \
    .execution_options(populate_existing=True)
_TASK_STEP_STAMP = (
    select(Task, FlowStep, FlowVersion.published_at).where(Task.id == bindparam("task_id"))
    .outerjoin(FlowStep, FlowStep.id == Task.step_id)
    .outerjoin(FlowVersion, and_(FlowVersion.app == bindparam("run_app"),
                                 FlowVersion.flow == bindparam("run_flow"),
                                 FlowVersion.version == bindparam("run_version")))
    .execution_options(populate_existing=True))
# … with the run's record, held until the transaction ends (PostgreSQL ``FOR UPDATE``;
# SQLite's one writer needs none): a completion that writes the record reads it here, not
# in a statement of its own, and an edit cannot commit between that read and the write.
_TASK_STEP_STAMP_RECORD = (
    _TASK_STEP_STAMP.add_columns(Record).join(Record, Record.id == Task.record_id)
    .with_for_update(of=Record))
_TASKS = Task.__table__.c
_CLOSE = (  # the table's, not the mapped class's: Core, without the ORM's bulk layer
    update(Task.__table__)
    .where(_TASKS.id == bindparam("task_id"), _TASKS.status == "open",
           _TASKS.row_version == bindparam("seen_version"))
    .values(status="done", outcome=bindparam("to_outcome"), comment=bindparam("to_comment"),
            completed_by=bindparam("by_user"), completed_at=bindparam("at_time"),
            row_version=bindparam("next_version")))


def _claim(session: Session, task_id: int, who: Who, *,
           with_record: bool = False) -> _Claim:
    """Lock and bump the task's run, then read the task as it is now with its step (in
    the identity map for ``session.get``) — two statements. The run comes first, so
    whatever another operation on it committed meanwhile is seen; a caller who may not
    see the task gets 404 and the transaction, bump included, rolls back.
    ``with_record``: the run's record too, held (a completion that writes it)."""
    bumped = session.connection().execute(_BUMP_RUN, {"task_id": task_id}).mappings().first()
    run = None if bumped is None else adopt(session, FlowRun, bumped)
    if run is None:
        row = session.execute(_TASK, {"task_id": task_id}).first()
    else:
        row = session.execute(_TASK_STEP_STAMP_RECORD if with_record else _TASK_STEP_STAMP, {
            "task_id": task_id, "run_app": run.app, "run_flow": run.flow,
            "run_version": run.version}).first()
    task = _visible(session, row[0] if row else None, task_id, who)
    if run is None:
        return _Claim(None, task, None, None)
    assert row is not None
    return _Claim(run, task, row[1], row[2], row[3] if with_record else None)


def _open_task(session: Session, task_id: int, who: Who) -> tuple[Engine, Task, Node]:
    """Lock the task's run, then the task as it is now, open; its engine and node."""
    claim = _claim(session, task_id, who)
    if claim.run is None:
        raise NotAllowedHere(f"task {task_id} is a to-do: it is completed, transferred, "
                             "delegated or reassigned, nothing else", operation="flow")
    return _opened(session, claim, who)


def _opened(session: Session, claim: _Claim, who: Who) -> tuple[Engine, Task, Node]:
    run, task = claim.run, claim.task
    assert run is not None
    if task.status != "open":
        raise TaskClosed(f"task {task.id} is already {task.status}", task_id=task.id,
                         task_status=task.status)
    check_running(run)
    eng = engine_for(session, run, actor=who.principal.actor, now=who.now,
                     keyring=who.keyring, stamp=claim.stamp)
    node = eng.spec.node(task.node_id)
    if node is None:
        raise NotFound(f"node {task.node_id} is not in version {run.version}")
    return eng, task, node


def _must_act(session: Session, task: Task, who: Who) -> None:
    if who.user_id == task.assignee_id or (
            task.assignee_id is None and who.user_id in candidates(session, task.id)):
        return
    raise Forbidden(f"task {task.id} is assigned to someone else", task_id=task.id)


def _allowed(node: Node, operation: str) -> None:
    if node.allowed_actions is not None and operation not in node.allowed_actions:
        raise NotAllowedHere(f"{node.label}: {operation} is not allowed at this step",
                             operation=operation, node=node.id)


def _active_user(session: Session, user_id: int) -> int:
    user = session.get(User, user_id)
    if user is None or user.status != "active":
        raise InvalidInput(f"user {user_id} does not exist or is disabled", user_id=user_id)
    return user_id


# -- completing ------------------------------------------------------------------------------


def _apply_data(eng: Engine, node: Node, data: Mapping[str, Any], *, outcome: str,
                reader: Principal | None = None, held: Record | None = None) -> None:
    """The task's edits to the record: only the step's editable fields; then the fields
    the step requires for ``outcome`` must be filled (``StepFields.required_for``)."""
    editable = set(node.fields.editable) if node.fields else set()
    locked = sorted(k for k in data if k not in editable)
    if locked:
        from engine_forms.service import FieldReadOnly

        raise FieldReadOnly(f"{locked[0]}: this field is read-only at {node.label}",
                            field=locked[0], fields=locked)
    written = None
    if data:
        rec = held if held is not None else eng.record(for_update=True)
        written = record_handler.update(eng.session, eng.pub, rec.id, dict(data),
                                        expected_version=rec.row_version, actor=eng.actor,
                                        crypt=FieldCrypt(eng.pub, eng.keyring), reader=reader,
                                        current=rec)
    _check_required(eng, node, outcome, written=written)


def _check_required(eng: Engine, node: Node, outcome: str, *,
                    written: Record | None = None) -> None:
    """``FieldsRequired`` naming each field the step needs for ``outcome`` that is empty
    (``outcome`` in the problem when only that outcome needs one of them). ``written``:
    the record as this operation has just written it (and holds it), not read again."""
    wanted = node.fields.required_for(outcome) if node.fields else []
    if not wanted:
        return
    current = eng.data() if written is None else \
        FieldCrypt(eng.pub, eng.keyring).open(written.data)
    missing = [k for k in wanted if current.get(k) in (None, "", [])]
    if not missing:
        return
    labels = "、".join((eng.pub.spec.field(k).label if eng.pub.spec.field(k) else k)
                      for k in missing)
    assert node.fields is not None
    if all(k in node.fields.required for k in missing) and outcome != "reject":
        raise FieldsRequired(f"{labels}: 完成此步骤前必须填写 / required to complete "
                             f"{node.label}", fields=missing)
    raise FieldsRequired(f"{labels}: 选择「{outcome}」前必须填写 / required for outcome "
                         f"{outcome} at {node.label}", fields=missing, outcome=outcome)


def _close(eng: Engine, task: Task, outcome: str, comment: str | None) -> None:
    """Close the task if it is still open at the version read (else ``TaskClosed``).
    The values written are set on the object as they now stand in the row: no read back,
    and no search of the session for other copies to update (``synchronize_session``)."""
    values = {"status": "done", "outcome": outcome, "comment": comment,
              "completed_by": eng.actor.user_id, "completed_at": eng.now,
              "row_version": task.row_version + 1}
    done = eng.session.connection().execute(_CLOSE, {
        "task_id": task.id, "seen_version": task.row_version, "to_outcome": outcome,
        "to_comment": comment, "by_user": eng.actor.user_id, "at_time": eng.now,
        "next_version": task.row_version + 1})
    if done.rowcount != 1:
        raise TaskClosed(f"task {task.id} was closed by someone else", task_id=task.id)
    for key, value in values.items():
        set_committed_value(task, key, value)
    eng.history("task_completed", node_id=task.node_id, task_id=task.id, outcome=outcome,
                comment=comment)
    eng.emit("task.completed", task_id=task.id, node=task.node_id, step=task.title,
             outcome=outcome, assignee_id=task.assignee_id, comment=comment)


def _outcome(node: Node, task: Task, requested: str | None) -> str:
    outcomes = NODE_TYPES.get(node.type).outcomes(node)
    outcome = requested or outcomes[0]
    if outcome not in outcomes:
        raise InvalidInput(f"outcome {outcome!r} is not one of {', '.join(outcomes)} at "
                           f"{node.label}", field="outcome", outcomes=outcomes)
    if task.kind == "approval" and outcome not in ("approve", "reject"):
        raise InvalidInput("an approval is approved or rejected", field="outcome")
    return outcome


def complete(session: Session, task_id: int, who: Who, *, outcome: str | None = None,
             data: Mapping[str, Any] | None = None, comment: str | None = None,
             operation: str = "complete") -> Task:
    """Complete a task with an outcome (a delegate's completion hands it back to the
    owner instead); the step then decides whether the flow moves on."""
    claim = _claim(session, task_id, who, with_record=bool(data))
    if claim.run is None:
        from engine_flows.todo import complete_todo

        if operation != "complete":  # approve / reject belong to a flow's steps
            raise NotAllowedHere(f"task {task_id} is a to-do: it is completed, not "
                                 f"{operation} (that belongs to a flow's step)",
                                 operation=operation)
        return complete_todo(session, task_id, who, outcome=outcome, comment=comment)
    with logged_together(session):
        return _complete(session, claim, who, outcome=outcome, data=data or {},
                         comment=comment, operation=operation)


def _complete(session: Session, claim: _Claim, who: Who, *, outcome: str | None,
              data: Mapping[str, Any], comment: str | None, operation: str) -> Task:
    eng, task, node = _opened(session, claim, who)
    _must_act(session, task, who)
    _allowed(node, operation)
    outcome = _outcome(node, task, outcome)
    _apply_data(eng, node, data, outcome=outcome, reader=who.principal, held=claim.record)
    if task.owner_id is not None:  # a delegate resolves: back to the owner
        _hand_back(eng, task, outcome, comment)
        return task
    _close(eng, task, outcome, comment)
    step = claim.step
    assert step is not None
    decision = NODE_TYPES.get(node.type).decide(eng, node, step, task)  # type: ignore[attr-defined]
    if decision is not None:
        _cancel_siblings(eng, step, node)
        eng.leave(step, node, decision, by=who.user_id)
        eng.advance()
    session.flush()
    return task


def _hand_back(eng: Engine, task: Task, outcome: str, comment: str | None) -> None:
    """A delegate is done: the task is the owner's again. The event tells the owner (a
    notification rule) that the work is back in their inbox."""
    delegate = task.assignee_id
    task.assignee_id, task.owner_id = task.owner_id, None
    task.row_version += 1
    eng.history("delegation_resolved", node_id=task.node_id, task_id=task.id,
                comment=comment, outcome=outcome)
    eng.emit("task.reassigned", task_id=task.id, node=task.node_id, step=task.title,
             assignee_id=task.assignee_id, previous_assignee_id=delegate,
             how="delegation_resolved", comment=comment)
    eng.session.flush()


def _cancel_siblings(eng: Engine, step: FlowStep, node: Node) -> None:
    """The step is decided: its other signers' tasks are cancelled. Only an any/all
    approval has several open tasks at once (skipping the rest saves a statement on the
    hot path of every completion)."""
    if node.type != "approval" or (node.mode or "single") not in ("any", "all"):
        return
    eng.cancel_tasks([Task.step_id == step.id, Task.status == "open"],
                     "decided by another signer")


def _go_back(eng: Engine, step: FlowStep, target: str, reason: str) -> None:
    """Cancel what lies between ``target`` and here (this step included; another
    parallel branch goes on) and enter ``target`` anew."""
    ahead = eng.steps_reached_from(target)
    eng.cancel_active(reason, ahead + [s for s in [step] if s.status == "active"
                                       and s not in ahead])
    eng.history("went_back", node_id=target, reason=reason, from_node=step.node_id)
    eng.enter(target, step.id)
    eng.advance()


def reject(session: Session, task_id: int, who: Who, *, to: str | None = None,
           comment: str | None = None) -> Task:
    """Reject: along the step's ``reject`` edge, or back to an earlier step ``to`` that
    this run has passed through."""
    if to is None:
        return complete(session, task_id, who, outcome="reject", comment=comment,
                        operation="reject")
    eng, task, node = _open_task(session, task_id, who)
    _must_act(session, task, who)
    _allowed(node, "reject")
    target = eng.spec.node(to)
    visited = session.execute(select(FlowStep.id).where(
        FlowStep.run_id == eng.run.id, FlowStep.node_id == to, FlowStep.status == "done")
    ).first()
    # upstream of this step only: a step of another parallel branch is not "earlier"
    if target is None or not NODE_TYPES.get(target.type).user or not visited or \
            node.id not in eng.spec.downstream(to):
        raise InvalidInput(f"to: {to!r} is not an earlier step of this instance",
                           field="to")
    if node.reject_to is not None and to not in node.reject_to:
        raise InvalidInput(f"to: {node.label} may send work back only to "
                           f"{', '.join(node.reject_to) or 'no step'}", field="to")
    _check_required(eng, node, "reject")
    _close(eng, task, "reject", comment)
    _go_back(eng, session.get(FlowStep, task.step_id), to, f"rejected to {to}")  # type: ignore[arg-type]
    return task


def _previous_user_step(session: Session, step: FlowStep) -> FlowStep | None:
    prev = session.get(FlowStep, step.prev_step_id) if step.prev_step_id else None
    while prev is not None and not NODE_TYPES.get(prev.node_type).user:
        prev = session.get(FlowStep, prev.prev_step_id) if prev.prev_step_id else None
    return prev


def send_back(session: Session, task_id: int, who: Who, *, comment: str | None = None
              ) -> Task:
    """Return the work to the previous user step."""
    eng, task, node = _open_task(session, task_id, who)
    _must_act(session, task, who)
    _allowed(node, "return")
    step = session.get(FlowStep, task.step_id)
    assert step is not None
    prev = _previous_user_step(session, step)
    if prev is None:
        raise InvalidInput(f"{node.label}: there is no earlier step to return to")
    _close(eng, task, "return", comment)
    _go_back(eng, step, prev.node_id, f"returned to {prev.node_id}")
    return task
