"""Where the case stands, on the record page: each flow run over the record with its
current step(s) — who, since when, due when, on time / due soon / overdue — the flow
drawn as a strip of steps, and, for a step the viewer may act on, the step's form right
there (its editable fields, a comment, the outcome buttons and whatever else the node
allows: reject to an earlier step, return, transfer, delegate, claim). A "start" button
when the form has a published flow that is not running and the viewer may start it.

Order of events for a submit: the record must be readable by the viewer (its route rule
and row scope) and the task must belong to this record → ``steps.read_submission`` →
``steps.perform`` (one transaction through the flow services) → back to the record page
with a flash message; a refusal shows the record's panel on a page of its own, with the
messages beside the fields and what was typed.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response
from sqlalchemy import select
from sqlalchemy.orm import Session

from engine_flows import definitions, inbox, instances, runs, standing
from engine_flows.models import FlowRun, FlowStep, Task
from engine_flows.runtime import spec_of
from engine_flows.spec import FlowSpec, Node
from engine_flows.tasks import Who
from engine_forms import service
from engine_forms.forms import published
from frontend.web import redirect, render
from frontend.workspace.fields import people_options
from frontend.workspace.pages_record import caller_of, posted_form
from frontend.workspace.steps import (
    needs_of,
    outcome_labels,
    perform,
    problems_of,
    read_submission,
    step_sections,
)
from frontend.workspace.values import record_url
from platform_core.app import ContextDep, IdPath
from platform_core.errors import DomainError, NotFound
from platform_core.models import utcnow
from platform_core.security.guard import AccessDep, PrincipalDep, rule

router = APIRouter(include_in_schema=False)
STANDS = "/apps/{app}/forms/{form}/records/{record_id}/stands"
MAX_RUNS = 10


@dataclass
class Failed:
    """A refused submit: which task, what was typed, and the messages."""

    task_id: int
    typed: dict[str, Any]
    comment: str
    errors: dict[str, str] = field(default_factory=dict)
    error: str | None = None


def _allows(node: Node, operation: str) -> bool:
    return node.allowed_actions is None or operation in node.allowed_actions


def _reject_targets(s: Session, spec: FlowSpec, run: FlowRun, node: Node) -> list[Any]:
    """Where a reject may send the work: the step's reject edge (value "") for an
    approval, then the earlier user steps this run has done, in the flow's order."""
    out: list[tuple[str, str]] = []
    edge = next((e for e in spec.outgoing(node.id) if e.on == "reject"), None)
    if edge is not None and node.type == "approval" and spec.node(edge.to):
        out.append(("", spec.node(edge.to).label))  # type: ignore[union-attr]
    done = set(s.execute(select(FlowStep.node_id).where(
        FlowStep.run_id == run.id, FlowStep.status == "done")).scalars())
    order = standing.main_path(spec) + spec.nodes
    seen = {edge.to} if out and edge is not None else set()
    for n in order:
        if n.id in seen or n.id == node.id or n.id not in done:
            continue
        seen.add(n.id)
        if standing.drawn(n) == "step" and node.id in spec.downstream(n.id) and (
                node.reject_to is None or n.id in node.reject_to):
            out.append((n.id, n.label))
    return out


def _can_return(s: Session, task: Task) -> bool:
    step = s.get(FlowStep, task.step_id) if task.step_id else None
    prev = s.get(FlowStep, step.prev_step_id) if step and step.prev_step_id else None
    while prev is not None:
        if prev.node_type in ("user_task", "approval"):
            return True
        prev = s.get(FlowStep, prev.prev_step_id) if prev.prev_step_id else None
    return False


def _task_form(s: Session, ctx: Any, who: Who, spec: FlowSpec, run: FlowRun, task: Task,
               failed: Failed | None, people: list[dict[str, Any]]) -> dict[str, Any]:
    """The viewer's form for one task they may act on (or claim)."""
    detail = inbox.task_detail(s, task, who)
    node = spec.node(task.node_id)
    assert node is not None
    mine = failed if failed is not None and failed.task_id == task.id else None
    claim = task.assignee_id is None
    sections = [] if claim else step_sections(
        s, ctx, who.principal, detail, mine.typed if mine else None,
        mine.errors if mine else {}, editable_only=True)
    free = task.owner_id is None  # a delegated task goes back to its owner, not onwards
    return {"task": detail, "sections": sections, "claim": claim,
            "approve": task.kind == "approval" and _allows(node, "approve"),
            "outcomes": [] if task.kind == "approval" else detail["step"]["outcomes"],
            "reject_to": _reject_targets(s, spec, run, node)
            if _allows(node, "reject") else [],
            "can_return": _allows(node, "return") and _can_return(s, task),
            "can_transfer": free and _allows(node, "transfer"),
            "can_delegate": free and _allows(node, "delegate"),
            "people": [p for p in people if p["value"] != str(who.user_id)],
            "needs": [] if claim else needs_of(s, detail),
            "typed_comment": mine.comment if mine else "",
            "errors": mine.errors if mine else {}, "error": mine.error if mine else None}


def _mine(task: Task, who: Who, cands: dict[int, list[int]]) -> bool:
    return task.assignee_id == who.user_id or (
        task.assignee_id is None and who.user_id in cands.get(task.id, []))


def _run_view(s: Session, ctx: Any, who: Who, run: FlowRun,
              failed: Failed | None, people: list[dict[str, Any]]) -> dict[str, Any]:
    spec = spec_of(s, run.app, run.flow, run.version)
    view: dict[str, Any] = {"id": run.id, "name": spec.name, "status": run.status,
                            "started_at": run.started_at, "ended_at": run.ended_at,
                            "strip": standing.strip_of(s, spec, run), "current": []}
    if run.status != "running":
        end = standing.end_reached(s, spec, run)
        view["outcome"] = end.label if end is not None and end.name else None
        return view
    open_tasks = instances.task_rows(s, [run.id], open_only=True)
    cands = instances.candidates_of(s, [t.id for t in open_tasks])
    sla = standing.sla_states(s, open_tasks, who.now)
    for step in instances.current_steps(s, run, who.now):
        mine = [t for t in open_tasks if t.id in step["tasks"]]
        view["current"].append(step | {
            "sla": next((sla[t.id] for t in mine if t.id in sla), None),
            "waiting_delegate": [t.id for t in mine if t.owner_id == who.user_id],
            "forms": [_task_form(s, ctx, who, spec, run, t, failed, people)
                      for t in mine if _mine(t, who, cands)]})
    return view


def _startable(s: Session, app: str, form: str, access: Any,
               running: set[str]) -> list[dict[str, str]]:
    if not access.allows("update"):
        return []
    return [{"key": f.key, "name": str(f.draft.get("name") or f.key)}
            for f in definitions.list_flows(s, app)
            if f.published_version is not None and f.draft.get("form") == form
            and f.key not in running]


def stands_context(s: Session, ctx: Any, who: Who, access: Any, app: str, form: str,
                   record_id: int, failed: Failed | None = None) -> dict[str, Any]:
    """Everything ``_stands.html`` draws for one viewer of one record."""
    rows = list(s.execute(select(FlowRun).where(
        FlowRun.record_id == record_id, FlowRun.app == app, FlowRun.form == form)
        .order_by(FlowRun.id.desc()).limit(MAX_RUNS)).scalars())
    rows.sort(key=lambda r: r.status != "running")  # running first, newest first
    people = people_options(s, "user") if rows else []
    running = {r.flow for r in rows if r.status == "running"}
    return {"app": app, "form": form, "record_id": record_id,
            "runs": [_run_view(s, ctx, who, r, failed, people) for r in rows],
            "startable": _startable(s, app, form, access, running),
            "outcomes": outcome_labels()}


def _readable(s: Session, request: Request, ctx: Any, principal: Any, access: Any,
              app: str, form: str, record_id: int) -> dict[str, Any]:
    caller = caller_of(request, ctx, principal, access)
    pub = published(s, app, form)
    return service.read_one(s, caller, pub, record_id) | {"_pub": pub}


@router.get(STANDS, response_class=HTMLResponse, openapi_extra=rule("form:read"))
def stands(ctx: ContextDep, principal: PrincipalDep, access: AccessDep, request: Request,
           app: str, form: str, record_id: IdPath) -> HTMLResponse:
    """The panel (an htmx fragment of the record page; empty without flows)."""
    who = Who(principal, ctx.keyring, utcnow())
    with ctx.db.read() as s:
        # the record must be in the viewer's read scope (404 otherwise); its values are
        # not needed here, so not read with its lookups and roll-ups as the page does
        pub = published(s, app, form)
        caller = service.narrowed(s, caller_of(request, ctx, principal, access), pub)
        service.load_scoped(s, caller, pub, record_id, "read")
        values = stands_context(s, ctx, who, access, app, form, record_id)
    return render(request, "workspace/_stands.html", **values)


@router.post(STANDS + "/start", response_class=HTMLResponse,
             openapi_extra=rule("form:update"))
async def start_flow(ctx: ContextDep, principal: PrincipalDep, access: AccessDep,
                     request: Request, app: str, form: str, record_id: IdPath) -> Response:
    """Start the posted flow over the record (the flow services check the rights)."""
    posted = await posted_form(request)
    who = Who(principal, ctx.keyring, utcnow())
    flow = str(posted.get("flow") or "")
    try:
        with ctx.db.write() as s:
            _readable(s, request, ctx, principal, access, app, form, record_id)
            if definitions.get_flow(s, app, flow).draft.get("form") != form:
                raise NotFound(f"flow {flow!r} does not run over {form}")
            runs.start(s, app=app, flow=flow, record_id=record_id, who=who)
    except DomainError as exc:
        return _failed_page(ctx, principal, access, request, app, form, record_id,
                            Failed(0, {}, "", error=exc.detail), exc.status)
    return redirect(record_url(app, form, record_id), "flow_started")


@router.post(STANDS + "/{task_id}", response_class=HTMLResponse,
             openapi_extra=rule("form:read"))
async def act(ctx: ContextDep, principal: PrincipalDep, access: AccessDep,
              request: Request, app: str, form: str, record_id: IdPath,
              task_id: IdPath) -> Response:
    """Work a task of this record from its page (see the module docstring)."""
    posted = await posted_form(request)
    who = Who(principal, ctx.keyring, utcnow())
    with ctx.db.read() as s:
        _readable(s, request, ctx, principal, access, app, form, record_id)
        task = s.get(Task, task_id)
        if task is None or task.record_id != record_id or task.app != app:
            raise NotFound(f"task {task_id} does not exist", task_id=task_id)
        sub = read_submission(s, who, task_id, posted)
    try:
        perform(ctx, who, task_id, sub)
    except DomainError as exc:
        errors, error = problems_of(exc)
        failed = Failed(task_id, sub.typed, sub.comment, errors, error)
        return _failed_page(ctx, principal, access, request, app, form, record_id, failed,
                            exc.status)
    return redirect(record_url(app, form, record_id), sub.flash)


def _failed_page(ctx: Any, principal: Any, access: Any, request: Request, app: str,
                 form: str, record_id: int, failed: Failed, status: int) -> HTMLResponse:
    """The panel on a page of its own, holding the refusal's messages and what was
    typed (the record page loads its panel fresh; this one must keep the input)."""
    who = Who(principal, ctx.keyring, utcnow())
    with ctx.db.read() as s:
        doc = _readable(s, request, ctx, principal, access, app, form, record_id)
        pub = doc["_pub"]
        title = service.titles(s, caller_of(request, ctx, principal, access), pub,
                               {record_id}).get(record_id, f"#{record_id}")
        values = stands_context(s, ctx, who, access, app, form, record_id, failed)
    return render(request, "workspace/stands_page.html", status=status, title=title,
                  record_link=record_url(app, form, record_id), failed=failed, **values)
