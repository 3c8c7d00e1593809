"""Staff handover: everything one user owns or must do, moved to colleagues at once.

An administrator, or a user manager (a team lead: a role with the ``users`` right) for
people of their own department tree, picks the user who leaves and one or several
colleagues. ``plan`` computes what moves where; ``apply`` computes the very same plan and
carries it out in the caller's one transaction, so the preview is the result:

1. **records** the user owns (live ones, per form or every form of an app or of every
   app; a non-administrator only where they hold ``update`` and inside its row scope)
   get the new owner through the store's ``transfer_record`` — a history diff
   (负责人 A → B), a ``record.updated`` event — and one audit entry each
   (``record.handover``); a record takes the new owner's department, or keeps its own
   when the new owner has none;
2. **open tasks** assigned to the user (or delegated by them) go to the new owner of
   their record when the record moves, else to the next colleague in turn; a flow task
   gets a ``handed_over`` history entry and a ``task.reassigned`` event;
3. **candidate rows** (tasks the user could claim) are replaced by the same colleague;
4. **sequential signers** still waiting in a running flow are replaced likewise;
5. one audit entry for the operation (``user.handover``) with the counts.

Flow definitions that name the user (strategy ``users``) are published versions and are
not edited: the plan lists them so an administrator can change the flow.

Split: ``even`` — records in (app, form, id) order dealt round-robin over the colleagues
in the order given, so per form the counts differ by at most one; ``by_field`` —
``rule = {"field": key, "map": {value: user_id}}``: a record whose field has a mapped
value goes to that colleague, the others are dealt evenly as above.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import and_, func, or_, select
from sqlalchemy.orm import Session

from engine_flows.handover_moves import move_candidates, move_signers, move_tasks
from engine_flows.models import Flow, FlowRun, FlowVersion, Task, TaskCandidate
from engine_forms.forms import published
from engine_forms.models import App
from platform_core.errors import InvalidInput, NotFound
from platform_core.models import Record
from platform_core.security import audit
from platform_core.security.models import User
from platform_core.security.principal import Principal, row_filter
from platform_core.security.users import managed_user
from platform_core.store import Actor, transfer_record
from platform_core.store.query import compile_filter

SPLITS = ("even", "by_field")


class NothingToHandOver(InvalidInput):
    code = "nothing_to_hand_over"


@dataclass(frozen=True)
class Request:
    """What the caller asked: from whom, to whom, how, which forms (None: all)."""

    source_id: int
    to: Sequence[int]
    split: str = "even"
    rule: Mapping[str, Any] | None = None
    forms: Sequence[tuple[str, str | None]] | None = None  # (app, form or None: every form)


@dataclass
class Plan:
    """What moves where. ``records``: (record id, app, form, new owner);
    ``tasks``: (task id, new user, "assignee" | "owner"); ``candidates``: (task id, new
    user); ``signers``: (run id, new user)."""

    source: User
    targets: list[User]
    split: str
    records: list[tuple[int, str, str, int]] = field(default_factory=list)  # id, app, form, to
    tasks: list[tuple[int, int, str]] = field(default_factory=list)
    candidates: list[tuple[int, int]] = field(default_factory=list)
    signers: list[tuple[int, int]] = field(default_factory=list)
    skipped_forms: list[dict[str, str]] = field(default_factory=list)
    flow_references: list[dict[str, str]] = field(default_factory=list)

    def doc(self) -> dict[str, Any]:
        """The plan as the API and the pages show it."""
        forms: dict[tuple[str, str], Counter[int]] = {}
        for _rid, app, form, to in self.records:
            forms.setdefault((app, form), Counter())[to] += 1
        people = {u.id: u for u in self.targets}
        return {
            "from": _user_doc(self.source),
            "to": [_user_doc(u) for u in self.targets], "split": self.split,
            "forms": [{"app": app, "form": form, "count": sum(c.values()),
                       "by_user": {str(u): c.get(u, 0) for u in people}}
                      for (app, form), c in forms.items()],
            "records": len(self.records),
            "records_by_user": _counted(people, (r[3] for r in self.records)),
            "tasks": len(self.tasks),
            "tasks_by_user": _counted(people, (t[1] for t in self.tasks)),
            "candidates": len(self.candidates), "signers": len(self.signers),
            "skipped_forms": self.skipped_forms, "flow_references": self.flow_references}


def _counted(people: Mapping[int, User], ids: Iterator[int] | Any) -> dict[str, int]:
    counts = Counter(ids)
    return {str(u): counts.get(u, 0) for u in people}


def _user_doc(user: User) -> dict[str, Any]:
    return {"id": user.id, "username": user.username, "display_name": user.display_name,
            "department_id": user.department_id, "status": user.status}


# -- who and to whom ------------------------------------------------------------------------


def _person(session: Session, principal: Principal | None, user_id: int) -> User:
    """A user the caller may manage (a team lead: of their tree; else "not found")."""
    if principal is None:
        user = session.get(User, user_id)
        if user is None:
            raise NotFound(f"user {user_id} does not exist")
        return user
    return managed_user(session, principal, user_id)


def _targets(session: Session, principal: Principal | None, request: Request
             ) -> list[User]:
    ids = list(dict.fromkeys(request.to))
    if not ids:
        raise InvalidInput("to: choose at least one colleague to hand over to", field="to")
    if request.source_id in ids:
        raise InvalidInput("to: a user cannot hand over to themself", field="to")
    users = []
    for user_id in ids:
        try:
            user = _person(session, principal, user_id)
        except NotFound:
            raise InvalidInput(f"to: user {user_id} does not exist or is not in your "
                               "department tree", field="to") from None
        if user.status != "active":
            raise InvalidInput(f"to: {user.display_name} ({user.username}) is disabled",
                               field="to")
        users.append(user)
    return users


def _rule(request: Request, targets: list[User]) -> tuple[str | None, dict[str, int]]:
    if request.split not in SPLITS:
        raise InvalidInput(f"split: one of {', '.join(SPLITS)}", field="split")
    if request.split == "even":
        return None, {}
    rule = request.rule or {}
    key, mapping = rule.get("field"), rule.get("map")
    if not isinstance(key, str) or not key or not isinstance(mapping, Mapping) or not mapping:
        raise InvalidInput("rule: by_field needs {field, map: {value: user id}}",
                           field="rule")
    allowed = {u.id for u in targets}
    if any(v not in allowed for v in mapping.values()):
        raise InvalidInput("rule: every mapped user must be one of the colleagues in to",
                           field="rule")
    return key, {str(k): int(v) for k, v in mapping.items()}


# -- records -----------------------------------------------------------------------------


def _scope(request: Request) -> Any:
    if request.forms is None:
        return None
    if not request.forms:
        raise InvalidInput("forms: name at least one form, or null for every form",
                           field="forms")
    return or_(*(and_(Record.app == app, Record.form == form) if form else Record.app == app
                 for app, form in request.forms))


def _check_forms(session: Session, request: Request) -> None:
    for app, form in request.forms or ():
        if form:
            published(session, app, form)  # NotFound names the form
        elif session.get(App, app) is None:
            raise NotFound(f"app {app!r} does not exist", app=app)


def _owned_forms(session: Session, source: User, scope: Any) -> list[tuple[str, str]]:
    stmt = select(Record.app, Record.form).where(
        Record.owner_id == source.id, Record.deleted_at.is_(None)).group_by(
        Record.app, Record.form).order_by(Record.app, Record.form)
    if scope is not None:
        stmt = stmt.where(scope)
    return [(a, f) for a, f in session.execute(stmt).all()]


def owned_forms(session: Session, user_id: int) -> list[tuple[str, str, int]]:
    """(app, form, live records) the user owns: what a handover could move."""
    stmt = select(Record.app, Record.form, func.count()).where(
        Record.owner_id == user_id, Record.deleted_at.is_(None)).group_by(
        Record.app, Record.form).order_by(Record.app, Record.form)
    return [(a, f, n) for a, f, n in session.execute(stmt).all()]


def _movable(session: Session, principal: Principal | None, source: User, app: str,
             form: str, key: str | None) -> list[tuple[int, Any]] | None:
    """(id, the rule field's value) of the source's live records of one form that the
    caller may update, in id order; None when the caller holds no update right there."""
    stmt = select(Record.id, Record.data if key else Record.id).where(
        Record.app == app, Record.form == form, Record.owner_id == source.id,
        Record.deleted_at.is_(None)).order_by(Record.id)
    if principal is not None and not principal.is_admin:
        access = principal.access(app, form)
        if not access.allows("update"):
            return None
        scope = row_filter(session, principal, access, "update")
        if scope is not None:
            pub = published(session, app, form)
            stmt = stmt.where(compile_filter(scope, pub.fields,
                                             session.get_bind().dialect.name))
    return [(rid, (data or {}).get(key) if key else None)
            for rid, data in session.execute(stmt).all()]


class _Dealer:
    """Round-robin over the colleagues in the order given, one turn across all forms."""

    def __init__(self, targets: list[User]):
        self.ids, self.turn = [u.id for u in targets], 0

    def next(self) -> int:
        chosen = self.ids[self.turn % len(self.ids)]
        self.turn += 1
        return chosen


# -- the plan ----------------------------------------------------------------------------


def plan(session: Session, principal: Principal | None, request: Request) -> Plan:
    """What ``apply`` would do now (``principal`` None: the command line, as the system)."""
    source = _person(session, principal, request.source_id)
    targets = _targets(session, principal, request)
    key, mapping = _rule(request, targets)
    _check_forms(session, request)
    out = Plan(source=source, targets=targets, split=request.split)
    dealer = _Dealer(targets)
    for app, form in _owned_forms(session, source, _scope(request)):
        rows = _movable(session, principal, source, app, form, key)
        if rows is None:
            out.skipped_forms.append({"app": app, "form": form})
            continue
        for rid, value in rows:
            to = mapping.get(str(value)) if value is not None else None
            out.records.append((rid, app, form, to or dealer.next()))
    _plan_work(session, out, dealer)
    out.flow_references = _flow_references(session, source.username)
    return out


def _plan_work(session: Session, out: Plan, dealer: _Dealer) -> None:
    """Tasks follow their record to its new owner; others are dealt in turn."""
    new_owner = {rid: to for rid, _a, _f, to in out.records}
    src = out.source.id
    rows = session.execute(select(Task.id, Task.record_id, Task.assignee_id).where(
        Task.status == "open", or_(Task.assignee_id == src, Task.owner_id == src))
        .order_by(Task.id)).all()
    for task_id, record_id, assignee in rows:
        out.tasks.append((task_id, new_owner.get(record_id) or dealer.next(),
                          "assignee" if assignee == src else "owner"))
    rows = session.execute(select(Task.id, Task.record_id).join(
        TaskCandidate, TaskCandidate.task_id == Task.id).where(
        Task.status == "open", TaskCandidate.user_id == src).order_by(Task.id)).all()
    out.candidates = [(tid, new_owner.get(rid) or dealer.next()) for tid, rid in rows]
    runs = session.execute(select(FlowRun.id, FlowRun.state).where(
        FlowRun.status == "running").order_by(FlowRun.id)).all()
    out.signers = [(run_id, dealer.next()) for run_id, state in runs
                   if any(src in queue for queue in ((state or {}).get("signers") or {})
                          .values())]


def _named(assignee: Any, username: str) -> bool:
    if not isinstance(assignee, Mapping):
        return False
    return username in (assignee.get("users") or ()) or any(
        _named(inner, username) for inner in [*(assignee.get("map") or {}).values(),
                                              assignee.get("default")])


def _flow_references(session: Session, username: str) -> list[dict[str, str]]:
    """Steps of published flows whose assignment names the user."""
    rows = session.execute(select(FlowVersion.app, FlowVersion.flow, FlowVersion.spec).join(
        Flow, and_(Flow.app == FlowVersion.app, Flow.key == FlowVersion.flow,
                   Flow.published_version == FlowVersion.version))).all()
    return [{"app": app, "flow": flow, "node": node.get("id", "")}
            for app, flow, spec in rows for node in spec.get("nodes", [])
            if _named(node.get("assignee"), username)]


# -- applying it -----------------------------------------------------------------------------


def apply(session: Session, principal: Principal | None, request: Request, *, actor: Actor,
          now: datetime, client: str | None = None) -> Plan:
    """Carry out ``plan`` in the caller's transaction (all or nothing)."""
    done = plan(session, principal, request)
    if not (done.records or done.tasks or done.candidates or done.signers):
        raise NothingToHandOver(f"{done.source.display_name} has nothing to hand over in "
                                "the chosen forms")
    departments = {u.id: u.department_id for u in done.targets}
    for rid, app, form, to in done.records:
        rec = session.get(Record, rid)
        old_dept = rec.department_id if rec else None
        moved = transfer_record(session, rid, owner_id=to, actor=actor,
                                department_id=departments[to] or old_dept)
        audit.append(session, actor=actor, action="record.handover",
                     target=f"{app}.{form}/{rid}", client=client,
                     detail={"from": done.source.id, "owner_id": to,
                             "department_id": moved.department_id,
                             "row_version": moved.row_version})
    move_tasks(session, done.source.id, done.tasks, actor=actor, now=now)
    move_candidates(session, done.source.id, done.candidates)
    move_signers(session, done.source.id, done.signers, actor=actor, now=now)
    audit.append(session, actor=actor, action="user.handover", target=f"user:{done.source.id}",
                 client=client, detail={k: v for k, v in done.doc().items()
                                        if k not in ("from", "flow_references")})
    return done
