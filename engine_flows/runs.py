"""Operations on whole runs: start (with the caller's rights), cancel, withdraw, and
migrating running instances to a newer version of their flow."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from engine_flows.definitions import latest, version_row
from engine_flows.instances import start_run
from engine_flows.models import FlowRun, FlowStep, Task
from engine_flows.nodes import NODE_TYPES
from engine_flows.runtime import check_running, engine_for, lock_run
from engine_flows.spec import FlowSpec
from engine_flows.tasks import Who, _previous_user_step
from engine_forms.forms import published
from engine_forms.service import Caller, load_scoped
from platform_core.errors import Conflict, InvalidInput, NotFound
from platform_core.security.permissions import Forbidden


def caller_of(who: Who, app: str, form: str) -> Caller:
    return Caller(who.principal, who.principal.access(app, form), who.keyring)


def start(session: Session, *, app: str, flow: str, record_id: int, who: Who) -> FlowRun:
    """Start ``flow`` over a record the caller may update (else 403 / 404)."""
    form = latest(session, app, flow).spec["form"]
    caller = caller_of(who, app, form)
    caller.access.require("update")
    load_scoped(session, caller, published(session, app, form), record_id, "update")
    return start_run(session, app=app, flow=flow, record_id=record_id,
                     actor=who.principal.actor, now=who.now, keyring=who.keyring)


def readable_run(session: Session, run_id: int, who: Who, *, app: str | None = None,
                 flow: str | None = None) -> FlowRun:
    """The run if the caller may read its record (404 otherwise, as for a record)."""
    run = session.get(FlowRun, run_id)
    if run is None or (app and run.app != app) or (flow and run.flow != flow):
        raise NotFound(f"flow instance {run_id} does not exist", run_id=run_id)
    caller = caller_of(who, run.app, run.form)
    participant = session.execute(select(Task.id).where(
        Task.run_id == run.id, (Task.assignee_id == who.user_id)
        | (Task.completed_by == who.user_id) | (Task.owner_id == who.user_id))).first()
    if participant or run.initiator_id == who.user_id:
        return run
    if not caller.access.allows("read"):
        raise NotFound(f"flow instance {run_id} does not exist", run_id=run_id)
    load_scoped(session, caller, published(session, run.app, run.form), run.record_id,
                "read")
    return run


def cancel(session: Session, run_id: int, who: Who, *, reason: str | None = None
           ) -> FlowRun:
    """The initiator or a flow manager stops a running instance. A sub-flow's instance
    is stopped through its parent (409 here): alone, it would leave the parent waiting
    for good at its sub-flow step."""
    run = lock_run(session, readable_run(session, run_id, who).id)
    check_running(run)
    if run.parent_step_id is not None:
        parent = session.get(FlowStep, run.parent_step_id)
        if parent is not None and parent.status == "active":
            raise Conflict(f"instance {run.id} is a sub-flow of instance {parent.run_id}: "
                           "cancel that one", parent_run_id=parent.run_id)
    if run.initiator_id != who.user_id and not who.manages(run.app, run.form):
        raise Forbidden("only the initiator or a flow manager may cancel this instance")
    eng = engine_for(session, run, actor=who.principal.actor, now=who.now,
                     keyring=who.keyring)
    eng.bump()
    eng.finish("cancelled", reason=reason)
    session.flush()
    return run


def withdraw(session: Session, run_id: int, who: Who) -> FlowRun:
    """Take back what one just submitted: allowed to whoever completed the step before
    the current one(s), while none of the current steps' tasks has been acted on."""
    run = lock_run(session, readable_run(session, run_id, who).id)
    check_running(run)
    eng = engine_for(session, run, actor=who.principal.actor, now=who.now,
                     keyring=who.keyring)
    active = [s for s in eng.active_steps() if NODE_TYPES.get(s.node_type).user]
    sources = {(p.id if p else None) for p in (_previous_user_step(session, s)
                                               for s in active)}
    source = session.get(FlowStep, next(iter(sources))) if len(sources) == 1 and \
        None not in sources else None
    if source is None or source.left_by != who.user_id:
        raise Forbidden("only who completed the previous step may withdraw it")
    acted = session.execute(select(Task.id).where(
        Task.step_id.in_([s.id for s in active]),
        (Task.status == "done") | (Task.owner_id.is_not(None)))).first()
    if acted:
        raise Conflict("the next step has already started; it can no longer be withdrawn")
    eng.bump()
    eng.cancel_active(f"withdrawn by {who.user_id}", eng.steps_reached_from(source.node_id))
    eng.history("withdrawn", node_id=source.node_id)
    eng.emit("flow.withdrawn", node=source.node_id, step_id=source.id)
    eng.enter(source.node_id, source.id)
    eng.advance()
    session.execute(update(Task).where(Task.run_id == run.id, Task.status == "open",
                                       Task.node_id == source.node_id)
                    .values(assignee_id=who.user_id))
    session.flush()
    return run


# -- migrating instances to a new version -----------------------------------------------


def _plan(session: Session, run: FlowRun, target: FlowSpec, mapping: Mapping[str, str]
          ) -> dict[str, Any]:
    steps = list(session.execute(select(FlowStep).where(
        FlowStep.run_id == run.id, FlowStep.status == "active")).scalars())
    moves, problems = {}, []
    for step in steps:
        to = mapping.get(step.node_id, step.node_id)
        node = target.node(to)
        if node is None:
            problems.append(f"{step.node_id}: no node {to!r} in the new version; map it")
        elif node.type != step.node_type:
            problems.append(f"{step.node_id} → {to}: a {step.node_type} step cannot become "
                            f"a {node.type}")
        else:
            moves[step.node_id] = to
    return {"run_id": run.id, "record_id": run.record_id, "from_version": run.version,
            "moves": moves, "problems": problems, "ok": not problems}


def migrate(session: Session, *, app: str, flow: str, to_version: int | None,
            mapping: Mapping[str, str], run_ids: list[int] | None, dry_run: bool,
            who: Who) -> dict[str, Any]:
    """Move running instances (all, or ``run_ids``) of older versions to ``to_version``
    (default: the latest), renaming their current nodes by ``mapping``. A dry run only
    reports; otherwise every instance must be movable or none is moved."""
    target_row = version_row(session, app, flow, to_version) if to_version else \
        latest(session, app, flow)
    form = target_row.spec["form"]
    if not who.manages(app, form):
        raise Forbidden("only a flow manager (manage right on the form) may migrate")
    target = FlowSpec.model_validate(target_row.spec)
    bad = sorted(v for v in mapping.values() if target.node(v) is None)
    if bad:
        raise InvalidInput(f"mapping: {bad[0]!r} is not a node of version "
                           f"{target_row.version}", field="mapping")
    stmt = select(FlowRun).where(FlowRun.app == app, FlowRun.flow == flow,
                                 FlowRun.status == "running",
                                 FlowRun.version != target_row.version).order_by(FlowRun.id)
    if run_ids:
        stmt = stmt.where(FlowRun.id.in_(run_ids))
    runs = list(session.execute(stmt.with_for_update()).scalars())
    plans = [_plan(session, run, target, mapping) for run in runs]
    failed = [p for p in plans if not p["ok"]]
    report = {"to_version": target_row.version, "dry_run": dry_run, "instances": plans,
              "movable": len(plans) - len(failed), "blocked": len(failed)}
    if dry_run or not plans:
        return report
    if failed:
        raise InvalidInput(f"{len(failed)} instance(s) cannot be migrated: "
                           f"{failed[0]['problems'][0]}", report=report)
    for run, plan in zip(runs, plans, strict=True):
        _apply(session, run, plan, target_row.version, who)
    report["migrated"] = len(plans)
    return report


def _apply(session: Session, run: FlowRun, plan: dict[str, Any], version: int,
           who: Who) -> None:
    moves = plan["moves"]
    for old, new in moves.items():
        session.execute(update(FlowStep).where(FlowStep.run_id == run.id,
                                               FlowStep.status == "active",
                                               FlowStep.node_id == old)
                        .values(node_id=new))
        session.execute(update(Task).where(Task.run_id == run.id, Task.status == "open",
                                           Task.node_id == old).values(node_id=new))
    old_version = run.version
    run.version = version
    run.row_version += 1
    eng = engine_for(session, run, actor=who.principal.actor, now=who.now,
                     keyring=who.keyring)
    eng.history("migrated", from_version=old_version, to_version=version, moves=moves)
    eng.emit("flow.migrated", from_version=old_version, to_version=version)
    session.flush()
