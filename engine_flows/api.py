"""The flows and tasks API (``/api/v1``): definitions, instances, tasks, record progress
and the working-day calendar. Thin routes: each write is one ``Database.write()``
transaction; the services check rights beyond the route's rule (a task is its
assignee's, a run is readable with its record)."""

from __future__ import annotations

from datetime import date
from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, Path, Query, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy.orm import Session

from engine_flows import definitions, design, handover, inbox, instances, runs, tasks
from engine_flows.calendar import list_days, set_days
from engine_flows.models import FlowRun, Task
from engine_flows.spec import meta_schema
from engine_flows.tasks import Who
from engine_forms.forms import published
from engine_forms.service import load_scoped
from platform_core.app import ContextDep, IdPath
from platform_core.errors import NotFound
from platform_core.models import utcnow
from platform_core.security.guard import AccessDep, PrincipalDep, rule

router = APIRouter(prefix="/api/v1", tags=["flows"])
FLOW = "/apps/{app}/flows/{flow}"
TASK = "/tasks/{task_id}"


def get_who(ctx: ContextDep, principal: PrincipalDep) -> Who:
    return Who(principal, ctx.keyring, utcnow())


WhoDep = Annotated[Who, Depends(get_who)]


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class StartBody(_Body):
    record_id: int = Field(ge=1, le=2**63 - 1)


class CompleteBody(_Body):
    outcome: str | None = Field(default=None, max_length=64)
    data: dict[str, Any] = Field(default_factory=dict)
    comment: str | None = Field(default=None, max_length=2000)


class DecisionBody(_Body):
    data: dict[str, Any] = Field(default_factory=dict)
    comment: str | None = Field(default=None, max_length=2000)


class RejectBody(_Body):
    comment: str | None = Field(default=None, max_length=2000)
    to: str | None = Field(default=None, max_length=64, description="an earlier step's node "
                           "id; without it the step's reject edge is taken")


class CommentBody(_Body):
    comment: str | None = Field(default=None, max_length=2000)


class ToBody(_Body):
    to: int = Field(ge=1, le=2**63 - 1, description="a user id")


class SignerBody(_Body):
    user: int = Field(ge=1, le=2**63 - 1)


class CancelBody(_Body):
    reason: str | None = Field(default=None, max_length=500)


class MigrateBody(_Body):
    to_version: int | None = Field(default=None, ge=1)
    mapping: dict[str, str] = Field(default_factory=dict)
    run_ids: list[int] | None = None
    dry_run: bool = True


class Day(_Body):
    day: date
    workday: bool = False
    name: str | None = Field(default=None, max_length=100)


class Days(_Body):
    days: list[Day] = Field(max_length=1000)


# -- definitions ----------------------------------------------------------------------------


@router.get("/flows/meta-schema", openapi_extra=rule("user"))
def get_meta_schema() -> dict[str, Any]:
    return meta_schema()


@router.get("/apps/{app}/flows", openapi_extra=rule("app:read"))
def get_flows(ctx: ContextDep, app: str) -> dict[str, Any]:
    with ctx.db.read() as s:
        return {"items": [definitions.flow_doc(f) for f in definitions.list_flows(s, app)]}


@router.post("/apps/{app}/flows", status_code=201, openapi_extra=rule("app:manage"))
def post_flow(ctx: ContextDep, app: str,
              body: Annotated[dict[str, Any], Body()]) -> dict[str, Any]:
    with ctx.db.write() as s:
        return definitions.flow_doc(definitions.create_flow(s, app=app, raw=body))


@router.get(FLOW, openapi_extra=rule("app:read"))
def get_flow(ctx: ContextDep, app: str, flow: str) -> dict[str, Any]:
    with ctx.db.read() as s:
        return definitions.flow_doc(definitions.get_flow(s, app, flow))


@router.put(FLOW, openapi_extra=rule("app:manage"))
def put_flow(ctx: ContextDep, app: str, flow: str,
             body: Annotated[dict[str, Any], Body()]) -> dict[str, Any]:
    with ctx.db.write() as s:
        return definitions.flow_doc(definitions.put_draft(s, app=app, key=flow, raw=body))


@router.post(FLOW + "/validate", openapi_extra=rule("app:manage"))
def validate_flow(ctx: ContextDep, app: str, flow: str,
                  body: Annotated[dict[str, Any] | None, Body()] = None) -> dict[str, Any]:
    """Check the draft (or the definition sent) as publishing would: 200 ``{"ok": true}``
    or 422 ``invalid_flow`` listing every problem with its node."""
    with ctx.db.read() as s:
        raw = body if body is not None else definitions.get_flow(s, app, flow).draft
        definitions.validate(s, app, raw)
    return {"ok": True, "problems": []}


@router.post(FLOW + "/publish", status_code=201, openapi_extra=rule("app:manage"))
def publish_flow(ctx: ContextDep, principal: PrincipalDep, app: str,
                 flow: str) -> dict[str, Any]:
    with ctx.db.write() as s:
        return definitions.version_doc(definitions.publish(s, app=app, key=flow,
                                                           actor=principal.actor))


@router.post(FLOW + "/publish-preview", openapi_extra=rule("app:manage"))
def publish_preview(ctx: ContextDep, app: str, flow: str) -> dict[str, Any]:
    """What publishing the stored draft would do, without doing it: ``valid`` and its
    ``problems`` (each located on a ``node`` or an ``edge``), the ``diff`` to the
    published version (``layout`` ignored) and the ``running`` instances (all on older
    versions) per version and per node they wait at; ``unmapped``: nodes instances wait
    at that the draft no longer has."""
    with ctx.db.read() as s:
        return design.preview(s, app, flow)


@router.get(FLOW + "/overlay", openapi_extra=rule("app:manage"))
def get_overlay(ctx: ContextDep, app: str, flow: str,
                version: Annotated[int | None, Query(ge=1, le=2**31 - 1)] = None
                ) -> dict[str, Any]:
    """Per node: running instances ``waiting`` there, ``overdue`` ones (a task past due),
    and as the flow funnel report counts (top-level instances, records not deleted)
    ``reached``, ``completed`` visits and their ``median_seconds``. With ``version``,
    only instances of that version."""
    with ctx.db.read() as s:
        if version is not None:
            definitions.version_row(s, app, flow, version)
        return design.overlay(s, app, flow, utcnow(), version)


@router.get(FLOW + "/versions", openapi_extra=rule("app:read"))
def get_versions(ctx: ContextDep, app: str, flow: str) -> dict[str, Any]:
    with ctx.db.read() as s:
        return {"items": [definitions.version_doc(v) for v in definitions.versions(s, app,
                                                                                   flow)]}


@router.get(FLOW + "/versions/{version}", openapi_extra=rule("app:read"))
def get_version(ctx: ContextDep, app: str, flow: str,
                version: Annotated[int, Path(ge=1, le=2**31 - 1)]) -> dict[str, Any]:
    with ctx.db.read() as s:
        return definitions.version_doc(definitions.version_row(s, app, flow, version))


# -- instances ------------------------------------------------------------------------------


@router.post(FLOW + "/instances", status_code=201, openapi_extra=rule("app:update"))
def start_instance(ctx: ContextDep, who: WhoDep, app: str, flow: str,
                   body: StartBody) -> JSONResponse:
    with ctx.db.write() as s:
        run = runs.start(s, app=app, flow=flow, record_id=body.record_id, who=who)
        doc = instances.instance_doc(s, run, who.now)
    return JSONResponse(doc, status_code=201, headers={
        "Location": f"/api/v1/apps/{app}/flows/{flow}/instances/{run.id}"})


@router.get(FLOW + "/instances", openapi_extra=rule("app:read"))
def list_instances(ctx: ContextDep, who: WhoDep, app: str, flow: str,
                   status: Annotated[str | None, Query(pattern="^(running|completed|"
                                                       "cancelled)$")] = None,
                   record_id: Annotated[int | None, Query(ge=1, le=2**63 - 1)] = None,
                   node: Annotated[str | None, Query(max_length=64)] = None,
                   overdue: bool = False,
                   limit: Annotated[int, Query(ge=1, le=500)] = 100) -> dict[str, Any]:
    """Instances of the flow: every one for a flow manager; with ``record_id``, every one
    over that record for whoever may read it; else those one started or took part in.
    ``node``: running instances waiting at that node; ``overdue``: running instances
    with a task past due (at ``node``, with both)."""
    from sqlalchemy import or_, select

    from engine_flows.models import FlowStep

    with ctx.db.read() as s:
        flow_row = definitions.get_flow(s, app, flow)
        stmt = select(FlowRun).where(FlowRun.app == app, FlowRun.flow == flow)
        if not (who.manages(app, flow_row.draft["form"]) or (
                record_id and _reads_record(s, who, app, flow_row.draft["form"],
                                            record_id))):
            mine = select(Task.run_id).where(or_(Task.assignee_id == who.user_id,
                                                 Task.completed_by == who.user_id))
            stmt = stmt.where(or_(FlowRun.initiator_id == who.user_id, FlowRun.id.in_(mine)))
        if status:
            stmt = stmt.where(FlowRun.status == status)
        if record_id:
            stmt = stmt.where(FlowRun.record_id == record_id)
        if node or overdue:
            waiting = select(FlowStep.run_id).where(FlowStep.status == "active")
            if node:
                waiting = waiting.where(FlowStep.node_id == node)
            if overdue:
                waiting = waiting.where(FlowStep.id.in_(select(Task.step_id).where(
                    Task.status == "open", Task.due_at < who.now)))
            stmt = stmt.where(FlowRun.status == "running", FlowRun.id.in_(waiting))
        rows = s.execute(stmt.order_by(FlowRun.id.desc()).limit(limit)).scalars()
        return {"items": [instances.run_doc(r) for r in rows]}


def _reads_record(s: Any, who: Who, app: str, form: str, record_id: int) -> bool:
    from engine_forms.service import Caller

    access = who.principal.access(app, form)
    if not access.allows("read"):
        return False
    try:
        load_scoped(s, Caller(who.principal, access, who.keyring), published(s, app, form),
                    record_id, "read")
    except NotFound:
        return False
    return True


@router.get(FLOW + "/instances/{run_id}", openapi_extra=rule("app:read"))
def get_instance(ctx: ContextDep, who: WhoDep, app: str, flow: str,
                 run_id: IdPath) -> dict[str, Any]:
    with ctx.db.read() as s:
        run = runs.readable_run(s, run_id, who, app=app, flow=flow)
        return instances.instance_doc(s, run, who.now)


@router.post(FLOW + "/instances/{run_id}/cancel", openapi_extra=rule("app:update"))
def cancel_instance(ctx: ContextDep, who: WhoDep, app: str, flow: str, run_id: IdPath,
                    body: CancelBody | None = None) -> dict[str, Any]:
    with ctx.db.write() as s:
        runs.readable_run(s, run_id, who, app=app, flow=flow)
        run = runs.cancel(s, run_id, who, reason=body.reason if body else None)
        return instances.instance_doc(s, run, who.now)


@router.post(FLOW + "/instances/{run_id}/withdraw", openapi_extra=rule("app:read"))
def withdraw_instance(ctx: ContextDep, who: WhoDep, app: str, flow: str,
                      run_id: IdPath) -> dict[str, Any]:
    with ctx.db.write() as s:
        runs.readable_run(s, run_id, who, app=app, flow=flow)
        return instances.instance_doc(s, runs.withdraw(s, run_id, who), who.now)


@router.post(FLOW + "/migrations", openapi_extra=rule("app:manage"))
def migrate_instances(ctx: ContextDep, who: WhoDep, app: str, flow: str,
                      body: MigrateBody) -> dict[str, Any]:
    """Move running instances to a newer version with a node mapping; ``dry_run`` (the
    default) only reports what would happen."""
    with ctx.db.write() as s:
        return runs.migrate(s, app=app, flow=flow, to_version=body.to_version,
                            mapping=body.mapping, run_ids=body.run_ids,
                            dry_run=body.dry_run, who=who)


@router.get("/apps/{app}/forms/{form}/records/{record_id}/progress",
            openapi_extra=rule("form:read"))
def record_progress(ctx: ContextDep, who: WhoDep, access: AccessDep, app: str, form: str,
                    record_id: IdPath) -> dict[str, Any]:
    """Where the record's flows stand: which step, since when, who handles it."""
    from engine_forms.service import Caller

    with ctx.db.read() as s:
        caller = Caller(who.principal, access, who.keyring)
        load_scoped(s, caller, published(s, app, form), record_id, "read")
        return {"record_id": record_id, "flows": instances.progress(s, record_id, who.now)}


# -- tasks --------------------------------------------------------------------------------


@router.get("/tasks", openapi_extra=rule("user"))
def get_tasks(ctx: ContextDep, who: WhoDep, request: Request,
              assignee: Annotated[str, Query(pattern="^(me|all)$")] = "me",
              status: Annotated[str, Query(pattern="^(open|overdue|done|all)$")] = "open",
              app: Annotated[str | None, Query(max_length=64)] = None,
              flow: Annotated[str | None, Query(max_length=64)] = None,
              cursor: Annotated[int | None, Query(ge=1, le=2**63 - 1)] = None,
              limit: Annotated[int, Query(ge=1, le=500)] = 50) -> dict[str, Any]:
    with ctx.db.read() as s:
        items, after = inbox.list_tasks(s, who, assignee=assignee, status=status, app=app,
                                        flow=flow, cursor=cursor, limit=limit)
    nxt = str(request.url.include_query_params(cursor=after)) if after else None
    return {"items": items, "next": nxt}


@router.get(TASK, openapi_extra=rule("user"))
def get_task(ctx: ContextDep, who: WhoDep, task_id: IdPath) -> dict[str, Any]:
    with ctx.db.read() as s:
        return inbox.task_detail(s, tasks.visible_task(s, task_id, who), who)


def _answer(s: Session, who: Who, task: Task) -> dict[str, Any]:
    """What a task operation answers: the task as it now stands and its run with the
    steps it waits at, read in the operation's own transaction (so its writes are seen
    without reading the task or the run again)."""
    if task.run_id is None:  # a to-do
        return {"task": instances.task_summary(task, who.now), "instance": None}
    run, current = instances.run_and_current(s, task.run_id, who.now)
    return {"task": instances.task_summary(task, who.now),
            "instance": instances.run_doc(run) | {"current": current}}


@router.post(TASK + "/complete", openapi_extra=rule("user"))
def complete_task(ctx: ContextDep, who: WhoDep, task_id: IdPath,
                  body: CompleteBody) -> dict[str, Any]:
    with ctx.db.write() as s:
        task = tasks.complete(s, task_id, who, outcome=body.outcome, data=body.data,
                              comment=body.comment)
        return _answer(s, who, task)


@router.post(TASK + "/approve", openapi_extra=rule("user"))
def approve_task(ctx: ContextDep, who: WhoDep, task_id: IdPath,
                 body: DecisionBody | None = None) -> dict[str, Any]:
    body = body or DecisionBody()
    with ctx.db.write() as s:
        task = tasks.complete(s, task_id, who, outcome="approve", data=body.data,
                              comment=body.comment, operation="approve")
        return _answer(s, who, task)


@router.post(TASK + "/reject", openapi_extra=rule("user"))
def reject_task(ctx: ContextDep, who: WhoDep, task_id: IdPath,
                body: RejectBody | None = None) -> dict[str, Any]:
    body = body or RejectBody()
    with ctx.db.write() as s:
        task = tasks.reject(s, task_id, who, to=body.to, comment=body.comment)
        return _answer(s, who, task)


@router.post(TASK + "/return", openapi_extra=rule("user"))
def return_task(ctx: ContextDep, who: WhoDep, task_id: IdPath,
                body: CommentBody | None = None) -> dict[str, Any]:
    with ctx.db.write() as s:
        task = tasks.send_back(s, task_id, who, comment=body.comment if body else None)
        return _answer(s, who, task)


@router.post(TASK + "/transfer", openapi_extra=rule("user"))
def transfer_task(ctx: ContextDep, who: WhoDep, task_id: IdPath,
                  body: ToBody) -> dict[str, Any]:
    with ctx.db.write() as s:
        return _answer(s, who, handover.transfer(s, task_id, who, to=body.to))


@router.post(TASK + "/delegate", openapi_extra=rule("user"))
def delegate_task(ctx: ContextDep, who: WhoDep, task_id: IdPath,
                  body: ToBody) -> dict[str, Any]:
    with ctx.db.write() as s:
        return _answer(s, who, handover.delegate(s, task_id, who, to=body.to))


@router.post(TASK + "/claim", openapi_extra=rule("user"))
def claim_task(ctx: ContextDep, who: WhoDep, task_id: IdPath) -> dict[str, Any]:
    with ctx.db.write() as s:
        return _answer(s, who, handover.claim(s, task_id, who))


@router.post(TASK + "/add-signer", openapi_extra=rule("user"))
def add_signer(ctx: ContextDep, who: WhoDep, task_id: IdPath,
               body: SignerBody) -> dict[str, Any]:
    with ctx.db.write() as s:
        return _answer(s, who, handover.add_signer(s, task_id, who, user=body.user))


@router.post(TASK + "/reassign", openapi_extra=rule("user"))
def reassign_task(ctx: ContextDep, who: WhoDep, task_id: IdPath,
                  body: ToBody) -> dict[str, Any]:
    with ctx.db.write() as s:
        return _answer(s, who, handover.reassign(s, task_id, who, to=body.to))


# -- the working-day calendar -------------------------------------------------------------


@router.get("/calendar/days", openapi_extra=rule("user"))
def get_days(ctx: ContextDep,
             year: Annotated[int | None, Query(ge=2000, le=2100)] = None) -> dict[str, Any]:
    with ctx.db.read() as s:
        return {"items": [{"day": d.day.isoformat(), "workday": d.workday, "name": d.name}
                          for d in list_days(s, year)]}


@router.put("/calendar/days", openapi_extra=rule("admin"))
def put_days(ctx: ContextDep, body: Days,
             year: Annotated[int | None, Query(ge=2000, le=2100)] = None) -> dict[str, Any]:
    """Replace the holidays and make-up workdays (of ``year``, or all of them)."""
    with ctx.db.write() as s:
        count = set_days(s, ((d.day, d.workday, d.name) for d in body.days), year=year)
    return {"stored": count}
