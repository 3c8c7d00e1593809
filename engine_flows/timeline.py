"""The flow engine's timeline sources (``platform_core.timeline``).

- 流程 (``flows.history``): a flow started, a person's step entered (user task or
  approval; pass-through nodes such as gateways are left out), a step completed with
  its outcome and comment, a reject or return to an earlier step, a withdrawal, a task
  handed over, the flow completed or cancelled — from ``flow_history``;
- 待办 (``tasks.created``, ``tasks.overdue``, ``tasks.done``): a task created for
  someone, a task found overdue, a to-do (a rule's task, no flow) done. A flow task's
  completion is the 流程 entry "step completed", not a second line.

Each is one statement per page over the subjects' runs or tasks (indexes
``ix_flow_history_run_at``, ``ix_tasks_record_created``); flow specs are read once per
flow version on the page.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import exists, select
from sqlalchemy.orm import Session

from engine_flows.models import FlowHistory, FlowRun, FlowStep, Task
from engine_forms.reading import iso
from platform_core.errors import DomainError
from platform_core.timeline import Ask, Entry, Position, keyset, register_source

HUMAN = ("user_task", "approval")
FLOW_ACTIONS = ("flow_started", "step_entered", "task_completed", "went_back", "withdrawn",
                "transferred", "delegated", "reassigned", "flow_completed",
                "flow_cancelled")
DETAIL_KEYS = ("outcome", "comment", "reason", "from_user", "to_user", "assignee_id")


class _Specs:
    """Flow specs by (app, flow, version), read once per page."""

    def __init__(self, session: Session):
        self.session, self.cache = session, {}

    def get(self, app: str, flow: str, version: int) -> Any:
        from engine_flows.runtime import spec_of

        key = (app, flow, version)
        if key not in self.cache:
            try:
                self.cache[key] = spec_of(self.session, app, flow, version)
            except DomainError:  # a version gone (the app removed): names stay ids
                self.cache[key] = None
        return self.cache[key]


def _node_name(spec: Any, node_id: str | None) -> str | None:
    if node_id is None:
        return None
    node = spec.node(node_id) if spec is not None else None
    return (node.name or node_id) if node is not None else node_id


def _history(session: Session, ask: Ask) -> list[Entry]:
    human_step = exists().where(FlowStep.run_id == FlowHistory.run_id,
                                FlowStep.node_id == FlowHistory.node_id,
                                FlowStep.node_type.in_(HUMAN))
    stmt = (select(FlowHistory, FlowRun.app, FlowRun.flow, FlowRun.version,
                   FlowRun.record_id)
            .join(FlowRun, FlowRun.id == FlowHistory.run_id)
            .where(FlowRun.record_id.in_(ask.ids()), FlowHistory.action.in_(FLOW_ACTIONS),
                   (FlowHistory.action != "step_entered") | human_step))
    rows = session.execute(keyset(stmt, time_col=FlowHistory.at, id_col=FlowHistory.id,
                                  source="flows.history", ask=ask)).all()
    specs, out = _Specs(session), []
    for h, app, flow, version, record_id in rows:
        spec = specs.get(app, flow, version)
        detail = {k: h.detail[k] for k in DETAIL_KEYS if h.detail.get(k) not in (None, "")}
        detail |= {"run_id": h.run_id, "flow": flow,
                   "flow_name": spec.name if spec is not None else flow}
        if h.detail.get("from_node"):
            detail["from_step"] = _node_name(spec, h.detail["from_node"])
        out.append(Entry(Position(h.at, "flows.history", h.id), "flow", h.action,
                         ask.subject(record_id), actor_id=h.actor_id,
                         name=_node_name(spec, h.node_id), detail=detail))
    return out


def _task_source(source: str, action: str, time_col: Any, *conditions: Any) -> Any:
    def fetch(session: Session, ask: Ask) -> list[Entry]:
        stmt = select(Task).where(Task.record_id.in_(ask.ids()), *conditions)
        rows = session.execute(keyset(stmt, time_col=time_col, id_col=Task.id,
                                      source=source, ask=ask)).scalars()
        out = []
        for t in rows:
            at = getattr(t, time_col.key)
            actor = t.completed_by if action == "done" else None
            detail = {"task_id": t.id, "task_kind": t.kind, "assignee_id": t.assignee_id,
                      "due_at": iso(t.due_at),
                      "status": t.status}
            if action == "done":
                detail |= {"outcome": t.outcome, "comment": t.comment}
            out.append(Entry(Position(at, source, t.id), "tasks", f"task_{action}",
                             ask.subject(t.record_id), actor_id=actor, name=t.title,
                             detail=detail))
        return out

    return fetch


def register_builtins() -> None:
    """The flow engine's timeline sources (idempotent)."""
    register_source("flows.history", "flow", _history)
    register_source("tasks.created", "tasks",
                    _task_source("tasks.created", "created", Task.created_at))
    register_source("tasks.overdue", "tasks",
                    _task_source("tasks.overdue", "overdue", Task.overdue_at,
                                 Task.overdue_at.is_not(None)))
    register_source("tasks.done", "tasks",
                    _task_source("tasks.done", "done", Task.completed_at, Task.kind == "todo",
                                 Task.status == "done", Task.completed_at.is_not(None)))
