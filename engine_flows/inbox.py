"""The task inbox: a person's tasks (open, overdue, done), and one task with the record as
its step lets them see it.

At a step the assignee sees the fields their role may read (when the record is in their
role's read scope) plus the step's editable and
read-only fields, less the step's hidden ones; masked fields stay masked unless the role
may unmask. Keyset pages by task id, newest first.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import and_, exists, or_, select
from sqlalchemy.orm import Session

from engine_flows.instances import candidates_of, task_summary
from engine_flows.models import FlowRun, Task, TaskCandidate
from engine_flows.nodes import NODE_TYPES
from engine_flows.runtime import spec_of
from engine_flows.tasks import Who
from engine_forms.forms import published
from engine_forms.sealing import FieldCrypt
from engine_forms.service import Caller, load_scoped, masked_keys
from platform_core.errors import InvalidInput, NotFound
from platform_core.models import Record
from platform_core.security.permissions import Forbidden

STATUSES = ("open", "overdue", "done", "all")


def list_tasks(session: Session, who: Who, *, assignee: str, status: str,
               app: str | None, flow: str | None, cursor: int | None, limit: int
               ) -> tuple[list[dict[str, Any]], int | None]:
    """``assignee=me``: assigned to me, delegated by me or claimable by me (done:
    completed by me);
    ``assignee=all``: everyone's (administrators only)."""
    if status not in STATUSES:
        raise InvalidInput(f"status: one of {', '.join(STATUSES)}", field="status")
    stmt = select(Task)
    if assignee == "all":
        if not who.principal.is_admin:
            raise Forbidden("assignee=all: administrators only")
    elif assignee == "me":
        # assigned to me, delegated by me (back to me when the delegate is done), or
        # offered to me among candidates
        mine = or_(Task.assignee_id == who.user_id, Task.owner_id == who.user_id, and_(
            Task.assignee_id.is_(None), exists().where(
                TaskCandidate.task_id == Task.id, TaskCandidate.user_id == who.user_id)))
        stmt = stmt.where(Task.completed_by == who.user_id if status == "done" else mine)
    else:
        raise InvalidInput("assignee: me or all", field="assignee")
    if status in ("open", "overdue"):
        stmt = stmt.where(Task.status == "open")
    if status == "overdue":
        stmt = stmt.where(Task.due_at.is_not(None), Task.due_at < who.now)
    if status == "done":
        stmt = stmt.where(Task.status == "done")
    if app:
        stmt = stmt.where(Task.app == app)
    if flow:
        stmt = stmt.where(Task.flow == flow)
    if cursor:
        stmt = stmt.where(Task.id < cursor)
    rows = list(session.execute(stmt.order_by(Task.id.desc()).limit(limit + 1)).scalars())
    more = len(rows) > limit
    rows = rows[:limit]
    cands = candidates_of(session, [t.id for t in rows if t.assignee_id is None])
    items = [task_summary(t, who.now) | {"candidates": cands.get(t.id, [])} for t in rows]
    return items, (rows[-1].id if more else None)


def _readable_record(session: Session, who: Who, pub: Any, access: Any,
                     record_id: int) -> bool:
    """Whether the caller's role may read the record anyway (its read scope holds it): then
    the step shows what the role may read, besides the step's own fields."""
    if not access.allows("read"):
        return False
    try:
        load_scoped(session, Caller(who.principal, access, who.keyring), pub, record_id,
                    "read")
    except NotFound:
        return False
    return True


def task_detail(session: Session, task: Task, who: Who) -> dict[str, Any]:
    """The task, its step's rules (fields, outcomes, allowed operations) and the record
    as the step shows it to this person."""
    run = session.get(FlowRun, task.run_id) if task.run_id is not None else None
    spec = spec_of(session, run.app, run.flow, run.version) if run is not None else None
    node = spec.node(task.node_id) if spec is not None else None  # a to-do: no step
    pub = published(session, task.app, task.form)
    fields = node.fields if node is not None else None
    access = who.principal.access(task.app, task.form)
    step_visible = set(fields.editable + fields.readonly) if fields else set()
    hidden = set(fields.hidden) if fields else set()
    rec = session.get(Record, task.record_id)
    data = FieldCrypt(pub, who.keyring).open(rec.data) if rec is not None else {}
    masked = masked_keys(pub, access)
    in_scope = _readable_record(session, who, pub, access, task.record_id)
    shown = {}
    for key, value in data.items():
        spec_field = pub.spec.field(key)
        readable = in_scope and access.readable(key)
        if spec_field is None or key in hidden or not (readable or key in step_visible):
            continue
        shown[key] = (spec_field.field_type.mask(value, spec_field)
                      if key in masked and value is not None else value)
    kind = NODE_TYPES.get(node.type) if node is not None else None
    return task_summary(task, who.now) | {
        "form": task.form, "flow_version": run.version if run is not None else None,
        "candidates": candidates_of(session, [task.id]).get(task.id, []),
        "step": {"node": task.node_id, "name": node.label if node else task.node_id,
                 "type": node.type if node else None,
                 "mode": node.mode if node else None,
                 "outcomes": kind.outcomes(node) if kind and node else ["done"],
                 "allowed_actions": node.allowed_actions if node else None,
                 "fields": fields.model_dump() if fields else None},
        "record": {"id": task.record_id, "data": shown}}

