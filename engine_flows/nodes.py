"""Node types (``NODE_TYPES``): what each kind of node does when a token arrives, enters,
and leaves. One small class per type; ``register_builtins`` fills the registry.

A type says which node keys it accepts (``keys``), what it checks at publish time
(``check``, used by ``engine_flows.validation``), and at run time:

- ``arrive``: the step row for a token (a join merges tokens into one waiting step);
- ``enter``: an outcome to leave at once, or ``None`` to wait;
- ``route``: the edges to follow on an outcome;
- ``decide`` (user steps): the step's outcome after one of its tasks is done, or
  ``None`` while other signers are still due.
"""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta
from typing import TYPE_CHECKING, Any, ClassVar

from sqlalchemy import select
from sqlalchemy.orm import Session

from engine_flows.assign import Situation, resolve_assignees
from engine_flows.calendar import LOCAL, due_times
from engine_flows.models import FlowRun, FlowStep, Task, TaskCandidate
from engine_flows.spec import Edge, Node
from platform_core.db import insert_now
from platform_core.errors import DomainError
from platform_core.registry import Registry

if TYPE_CHECKING:
    from engine_flows.runtime import Engine

BASE_KEYS = frozenset({"id", "type", "name"})
USER_KEYS = frozenset({"assignee", "sla", "fields", "allowed_actions", "reject_to"})


class NodeType:
    """Base: a pass-through node with one way on."""

    key: ClassVar[str]
    keys: ClassVar[frozenset[str]] = frozenset()
    waits: ClassVar[bool] = False  # a step where the run can stand still
    user: ClassVar[bool] = False  # a step people act on (tasks)

    def check(self, node: Node, spec: Any) -> list[str]:
        return []

    def arrive(self, eng: Engine, node: Node, prev: int | None) -> FlowStep | None:
        return eng.new_step(node, prev)

    def enter(self, eng: Engine, node: Node, step: FlowStep) -> str | None:
        return "done"

    def route(self, eng: Engine, node: Node, step: FlowStep, outcome: str
              ) -> list[Edge]:
        return eng.edges_for(node, outcome)

    def outcomes(self, node: Node) -> list[str]:
        return ["done"]


class Start(NodeType):
    key = "start"


class End(NodeType):
    """Completes the run (and every branch still open: a terminating end)."""

    key = "end"

    def arrive(self, eng: Engine, node: Node, prev: int | None) -> FlowStep | None:
        return eng.new_step(node, prev, done="end")

    def enter(self, eng: Engine, node: Node, step: FlowStep) -> str | None:
        eng.finish("completed", node=node.id)
        return None

    def outcomes(self, node: Node) -> list[str]:
        return []


class Gateway(NodeType):
    """Exclusive gateway: the first edge whose condition holds, else the default edge."""

    key = "gateway"

    def route(self, eng: Engine, node: Node, step: FlowStep, outcome: str) -> list[Edge]:
        from engine_flows.validation import condition_of

        data, default = eng.data(), None
        for edge in eng.spec.outgoing(node.id):
            if edge.default:
                default = edge
            elif edge.condition and condition_of(eng.session, eng.run.app, eng.spec,
                                                 edge.condition).evaluate(data, eng.env()):
                step.outcome = f"to:{edge.to}"
                return [edge]
        if default is None:
            raise FlowFault(f"{node.label}: no condition holds and there is no default edge",
                            node=node.id)
        step.outcome = f"to:{default.to}"
        return [default]


class Parallel(NodeType):
    """Parallel split: every outgoing edge at once."""

    key = "parallel"

    def route(self, eng: Engine, node: Node, step: FlowStep, outcome: str) -> list[Edge]:
        return eng.spec.outgoing(node.id)


class Join(NodeType):
    """Parallel join: waits until a token has come in on every incoming edge."""

    key, waits = "join", True

    def arrive(self, eng: Engine, node: Node, prev: int | None) -> FlowStep | None:
        waiting = eng.session.execute(select(FlowStep).where(
            FlowStep.run_id == eng.run.id, FlowStep.node_id == node.id,
            FlowStep.status == "active")).scalar_one_or_none()
        if waiting is None:
            return eng.new_step(node, prev)
        waiting.arrived += 1
        eng.history("join_arrived", node_id=node.id, step_id=waiting.id,
                    arrived=waiting.arrived)
        if waiting.arrived >= len(eng.spec.incoming(node.id)):
            eng.leave(waiting, node, "done")
        return None

    def enter(self, eng: Engine, node: Node, step: FlowStep) -> str | None:
        return "done" if step.arrived >= len(eng.spec.incoming(node.id)) else None


class Service(NodeType):
    """Runs rule actions on the record (``SERVICE_ACTIONS``), then goes on."""

    key, keys = "service", frozenset({"actions"})

    def check(self, node: Node, spec: Any) -> list[str]:
        from engine_flows.actions import check_actions

        if not node.actions:
            return [f"{node.label}: a service step needs 'actions'"]
        return [f"{node.label}: {p}" for p in check_actions(node.actions, spec)]

    def enter(self, eng: Engine, node: Node, step: FlowStep) -> str | None:
        from engine_flows.actions import run_actions

        run_actions(eng, node, step)
        return "done"


class Timer(NodeType):
    """Waits a duration, or until a date field of the record (± days, at a time); the
    SLA scan (``engine_flows.sla.wake_timers``) moves it on."""

    key, keys, waits = "timer", frozenset({"wait"}), True

    def check(self, node: Node, spec: Any) -> list[str]:
        wait = node.wait
        if wait is None:
            return [f"{node.label}: a timer needs 'wait'"]
        durations = [x for x in (wait.minutes, wait.hours, wait.days) if x]
        if bool(durations) == bool(wait.until_field):
            return [f"{node.label}: wait either a duration or until_field, one of them"]
        return []

    def enter(self, eng: Engine, node: Node, step: FlowStep) -> str | None:
        step.wake_at = wake_time(node, eng.data(), eng.now)
        eng.history("timer_set", node_id=node.id, step_id=step.id,
                    wake_at=step.wake_at.isoformat() if step.wake_at else None)
        return "done" if step.wake_at is None or step.wake_at <= eng.now else None


def wake_time(node: Node, data: Any, now: datetime) -> datetime | None:
    """When a timer fires; ``None`` (at once) when the date field is empty."""
    wait = node.wait
    assert wait is not None
    if not wait.until_field:
        return now + timedelta(minutes=wait.minutes or 0, hours=wait.hours or 0,
                               days=wait.days or 0)
    raw = data.get(wait.until_field)
    if not raw:
        return None
    day = datetime.fromisoformat(str(raw)[:10]).date() + timedelta(days=wait.offset_days)
    clock = time.fromisoformat(wait.at) if wait.at else time(0, 0)
    return datetime.combine(day, clock, LOCAL).astimezone(UTC)


class SubFlow(NodeType):
    """Runs another flow (on this record, or on the record linked by ``record_field``)
    and goes on when it completes."""

    key, keys, waits = "subflow", frozenset({"flow", "record_field"}), True

    def check(self, node: Node, spec: Any) -> list[str]:
        return [] if node.flow else [f"{node.label}: a sub-flow needs 'flow'"]

    def enter(self, eng: Engine, node: Node, step: FlowStep) -> str | None:
        from engine_flows.instances import start_run

        record_id = eng.run.record_id
        if node.record_field:
            linked = eng.data().get(node.record_field)
            if not isinstance(linked, int):
                raise FlowFault(f"{node.label}: field {node.record_field} links no record",
                                node=node.id)
            record_id = linked
        child = start_run(eng.session, app=eng.run.app, flow=node.flow or "",
                          record_id=record_id, actor=eng.actor, now=eng.now,
                          keyring=eng.keyring, parent_step_id=step.id,
                          initiator_id=eng.run.initiator_id)
        eng.history("subflow_started", node_id=node.id, step_id=step.id, child=child.id)
        # A child that completed at once has already resumed this step
        # (``Engine._resume_parent``); leaving it here too would run the rest twice.
        return None

    def outcomes(self, node: Node) -> list[str]:
        return ["completed"]


class FlowFault(DomainError):
    """The flow's data does not let it go on (a gateway without a match …)."""

    status, code, title = 409, "flow_stuck", "Flow cannot continue"


# -- steps people act on -------------------------------------------------------------------


class UserTask(NodeType):
    """A task for one person (or one of several candidates); its outcome is the button
    pressed (``outcomes``, default ``submit``)."""

    key, keys = "user_task", USER_KEYS | {"outcomes"}
    waits = user = True

    def check(self, node: Node, spec: Any) -> list[str]:
        return [] if node.assignee else [f"{node.label}: a user step needs an assignee"]

    def outcomes(self, node: Node) -> list[str]:
        return list(node.outcomes or ["submit"])

    def enter(self, eng: Engine, node: Node, step: FlowStep) -> str | None:
        people = assignees(eng, node)
        create_task(eng, node, step, people[0] if len(people) == 1 else None,
                    candidates=people if len(people) > 1 else ())
        return None

    def decide(self, eng: Engine, node: Node, step: FlowStep, task: Task) -> str | None:
        return task.outcome


class Approval(NodeType):
    """Approve or reject, by one person (``single``), the first of several (``any``),
    every one (``all``: one rejection decides) or each in turn (``sequential``)."""

    key, keys = "approval", USER_KEYS | {"mode"}
    waits = user = True

    def check(self, node: Node, spec: Any) -> list[str]:
        return [] if node.assignee else [f"{node.label}: an approval needs an assignee"]

    def outcomes(self, node: Node) -> list[str]:
        return ["approve", "reject"]

    def enter(self, eng: Engine, node: Node, step: FlowStep) -> str | None:
        people, mode = assignees(eng, node), node.mode or "single"
        if mode == "single" or not people:
            create_task(eng, node, step, people[0] if len(people) == 1 else None,
                        candidates=people if len(people) > 1 else (), kind="approval")
        elif mode == "sequential":
            create_task(eng, node, step, people[0], kind="approval", seq=0)
            signers = eng.run.state.get("signers", {})
            eng.run.state = {**eng.run.state,
                             "signers": {**signers, str(step.id): people[1:]}}
        else:
            for seq, person in enumerate(people):
                create_task(eng, node, step, person, kind="approval", seq=seq)
        return None

    def decide(self, eng: Engine, node: Node, step: FlowStep, task: Task) -> str | None:
        mode = node.mode or "single"
        if task.outcome == "reject" or mode in ("single", "any"):
            return task.outcome
        if mode == "sequential":
            queue = list(eng.run.state.get("signers", {}).get(str(step.id), []))
            if queue:
                signers = dict(eng.run.state.get("signers", {}))
                signers[str(step.id)] = queue[1:]
                eng.run.state = {**eng.run.state, "signers": signers}
                create_task(eng, node, step, queue[0], kind="approval", seq=task.seq + 1)
                return None
            return "approve"
        still_open = eng.session.execute(select(Task.id).where(
            Task.step_id == step.id, Task.status == "open", Task.id != task.id)).first()
        return None if still_open else "approve"


def assignees(eng: Engine, node: Node) -> list[int]:
    assert node.assignee is not None
    situation = Situation(source=eng.record_and_data, initiator_id=eng.run.initiator_id,
                          pool=f"{eng.run.app}.{eng.run.flow}.{node.id}")
    return resolve_assignees(eng.session, node.assignee, situation)


def create_task(eng: Engine, node: Node, step: FlowStep, assignee: int | None, *,
                candidates: Any = (), kind: str = "task", seq: int = 0) -> Task:
    """A task at ``step`` with its due, reminder and escalation times; events
    ``task.created`` (and ``task.unassigned`` when nobody could be chosen)."""
    due, remind, escalate = due_times(eng.session, node.sla, eng.now)
    task = Task(run_id=eng.run.id, step_id=step.id, app=eng.run.app, form=eng.run.form,
                flow=eng.run.flow,
                node_id=node.id, kind=kind, record_id=eng.run.record_id,
                title=node.label[:200], status="open", assignee_id=assignee, seq=seq,
                due_at=due, remind_at=remind, escalate_at=escalate, created_at=eng.now)
    insert_now(eng.session, task)
    for user_id in candidates:
        eng.session.add(TaskCandidate(task_id=task.id, user_id=user_id))
    eng.history("task_created", node_id=node.id, task_id=task.id, assignee_id=assignee,
                candidates=list(candidates))
    payload = {"task_id": task.id, "node": node.id, "step": node.label,
               "assignee_id": assignee, "due_at": due.isoformat() if due else None}
    eng.emit("task.created", **payload)
    if assignee is None and not candidates:
        eng.emit("task.unassigned", **payload)
    return task


NODE_TYPES: Registry[NodeType] = Registry("flow node type")


def register_builtins() -> None:
    for cls in (Start, End, UserTask, Approval, Gateway, Parallel, Join, Service, Timer,
                SubFlow):
        if cls.key not in NODE_TYPES:
            NODE_TYPES.register(cls.key, cls())


def child_runs(session: Session, step_ids: list[int]) -> list[FlowRun]:
    return list(session.execute(select(FlowRun).where(
        FlowRun.parent_step_id.in_(step_ids))).scalars())
