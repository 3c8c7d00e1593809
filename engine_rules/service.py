"""Rules as admins manage them: save (a new immutable version each time), enable and
disable, test against a record without side effects, the run log, dead letters and
replay. Every function runs in the caller's transaction."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from engine_forms.forms import get_app, published
from engine_rules.actions import ACTIONS, check_actions
from engine_rules.context import Fired, RuleContext
from engine_rules.models import ActionRun, Rule, RuleRun, RuleVersion
from engine_rules.rights import refusal
from engine_rules.runner import actor_of
from engine_rules.scans import cron_trigger
from engine_rules.spec import RuleSpec, RuleSpecError, parse_rule
from platform_core.errors import Conflict, DomainError, InvalidInput, NotFound
from platform_core.expressions import ExpressionError
from platform_core.models import OutboxEvent, utcnow
from platform_core.security.crypto import Keyring
from platform_core.store import Actor
from platform_core.webhooks.events import iso

DEAD = ("dead", "failed")
RESERVED_KEYS = frozenset({"new"})  # /apps/{app}/rules/new is the editor of a new rule


def _problems(session: Session, app: str, spec: RuleSpec) -> list[str]:
    """What the meta-schema cannot see: the trigger's subject, the condition, actions."""
    trig, problems = spec.trigger, []
    needs = {"record.created": ["form"], "record.updated": ["form"],
             "record.deleted": ["form"], "date_relative": ["form", "field"],
             "schedule": ["cron"], "flow.step_entered": ["flow"],
             "task.completed": ["flow"], "flow.completed": ["flow"], "manual": ["form"]}
    problems += [f"trigger: {trig.type} needs {k!r}" for k in needs.get(trig.type, [])
                 if not getattr(trig, k)]
    if trig.cron:
        try:
            cron_trigger(trig.cron)
        except ValueError as exc:
            problems.append(f"trigger.cron: {exc}")
    if trig.flow and not _flow_exists(session, app, trig.flow):
        problems.append(f"trigger: flow {trig.flow!r} does not exist in app {app!r}")
    form = trig.form or _flow_form(session, app, trig.flow)
    pub = None
    if form:
        try:
            pub = published(session, app, form)
        except DomainError as exc:
            problems.append(f"trigger: {exc.detail}")
    if pub is not None:
        for key in [*trig.fields, *([trig.field] if trig.field else [])]:
            if pub.spec.field(key) is None:
                problems.append(f"trigger: {key!r} is not a field of form {form}")
    problems += check_actions(spec.actions, spec)
    if form and pub is None:
        return problems  # expressions cannot be checked without the form
    ctx = RuleContext(session, Fired("check", trig.type, app, form), Actor(None), utcnow(),
                      pub=pub)
    if spec.condition:
        try:
            if ctx.formula(spec.condition).type.name not in ("boolean", "blank"):
                problems.append("condition: must be TRUE/FALSE")
        except ExpressionError as exc:
            problems.append(f"condition: {exc.detail}")
    for i, config in enumerate(spec.actions):
        if config.get("type") in ACTIONS:
            problems += [f"actions[{i}]: {p}" for p in _action_problems(ctx, config)]
    return problems


def _action_problems(ctx: RuleContext, config: dict[str, Any]) -> list[str]:
    """An action's expressions over the triggering record, and the form, fields and flow
    it names (what ``Action.check`` cannot see without the database)."""
    session, app, pub, problems = ctx.session, ctx.fired.app, ctx.pub, []

    def expression(where: str, text: Any) -> None:
        try:
            ctx.formula(str(text))
        except ExpressionError as exc:
            problems.append(f"{where}: {exc.detail}")

    def form_of(key: str) -> Any:
        try:
            return published(session, app, key)
        except DomainError as exc:
            problems.append(str(exc.detail))
            return None

    kind = config["type"]
    values = config.get("values")
    if isinstance(values, dict):
        for key, text in values.items():
            expression(f"values.{key}", text)
    to = config.get("to")
    if isinstance(to, dict) and to.get("field"):
        expression("to.field", to["field"])
    target = None
    if kind == "create_record" and config.get("form"):
        target = form_of(str(config["form"]))
    elif kind == "update_record":
        related, via = config.get("related"), config.get("via")
        if isinstance(related, dict) and related.get("form"):
            target = form_of(str(related["form"]))
            link = target.spec.field(related.get("via") or "") if target else None
            if target is not None and related.get("via") and (
                    link is None or link.type != "relation"):
                problems.append(f"related.via: {related['via']!r} is not a relation field "
                                f"of form {related['form']}")
        elif via:
            field = pub.spec.field(str(via)) if pub else None
            if field is None or field.type != "relation":
                problems.append(f"via: {via!r} is not a relation field of the trigger's form")
            else:
                target = form_of(field.config["target"])
        else:
            target = pub
    elif kind == "set_tags" and config.get("field"):
        field = pub.spec.field(str(config["field"])) if pub else None
        if field is None or field.type != "multiselect":
            problems.append(f"set_tags: {config['field']!r} is not a multiselect field of "
                            "the trigger's form")
    elif kind in ("start_flow", "advance_flow") and config.get("flow"):
        flow = str(config["flow"])
        if not _flow_exists(session, app, flow):
            problems.append(f"flow {flow!r} does not exist in app {app!r}")
        elif pub is not None and _flow_form(session, app, flow) != pub.spec.key:
            problems.append(f"flow {flow!r} runs over another form than {pub.spec.key!r}")
    if target is not None and isinstance(values, dict):
        problems += [f"values: {key!r} is not a field of form {target.spec.key}"
                     for key in values if target.spec.field(key) is None]
    return problems


def _flow_exists(session: Session, app: str, flow: str) -> bool:
    from engine_flows.definitions import get_flow

    try:
        get_flow(session, app, flow)
    except DomainError:
        return False
    return True


def _flow_form(session: Session, app: str, flow: str | None) -> str | None:
    if not flow:
        return None
    from engine_flows.definitions import get_flow

    try:
        return get_flow(session, app, flow).draft.get("form")
    except DomainError:
        return None


def _subject(spec: RuleSpec) -> str | None:
    return spec.trigger.form or spec.trigger.flow


def check(session: Session, *, app: str, raw: Any) -> RuleSpec:
    """A working copy checked exactly as ``save`` checks it, and nothing saved: the spec,
    or ``RuleSpecError`` naming every problem (``condition: …``, ``actions[1]: …``)."""
    get_app(session, app)
    spec = parse_rule(raw)
    problems = _problems(session, app, spec)
    if problems:
        raise RuleSpecError(problems)
    return spec


def save(session: Session, *, app: str, raw: Any, actor: Actor, key: str | None = None
         ) -> Rule:
    """Create a rule (``key`` None) or save a new version of rule ``key``."""
    get_app(session, app)
    spec = parse_rule(raw)
    if key is not None and spec.key != key:
        raise InvalidInput(f"key: the key of a rule cannot change ({key!r})", field="key")
    problems = _problems(session, app, spec)
    if problems:
        raise RuleSpecError(problems)
    now = utcnow()
    if key is None:
        if spec.key in RESERVED_KEYS:
            raise RuleSpecError([f"key: {spec.key!r} is reserved (the rule editor's address "
                                 "for a new rule); choose another key"])
        if session.execute(select(Rule.id).where(Rule.app == app, Rule.key == spec.key)
                           ).first():
            raise Conflict(f"rule {spec.key!r} already exists in app {app!r}")
        rule = Rule(app=app, key=spec.key, version=1, created_at=now, enabled_at=now)
        session.add(rule)
    else:
        rule = get_rule(session, app, key)
        rule.version += 1
        if spec.enabled and not rule.enabled:
            rule.enabled_at = now
    rule.spec, rule.trigger, rule.subject = spec.dump(), spec.trigger.type, _subject(spec)
    rule.enabled, rule.updated_at = spec.enabled, now
    session.flush()
    session.add(RuleVersion(rule_id=rule.id, version=rule.version, spec=rule.spec,
                            saved_at=now, saved_by=actor.user_id))
    session.flush()
    return rule


def set_enabled(session: Session, app: str, key: str, enabled: bool, actor: Actor,
                reason: str | None = None) -> Rule:
    """Turn a rule on or off (a new version), with the reason kept in the audit log
    (``rule.enabled`` / ``rule.disabled``, target ``rule:<app>.<key>``) where the rule
    list shows it. Nothing changes, and nothing is logged, when it already is so."""
    rule = get_rule(session, app, key)
    if rule.enabled == enabled:
        return rule
    reason = (reason or "").strip()[:500] or None
    rule = save(session, app=app, raw={**rule.spec, "enabled": enabled}, actor=actor,
                key=key)
    from platform_core.security.audit import append

    append(session, actor=actor, action="rule.enabled" if enabled else "rule.disabled",
           target=f"rule:{app}.{key}", detail={"version": rule.version, "reason": reason})
    return rule


def get_rule(session: Session, app: str, key: str) -> Rule:
    rule = session.execute(select(Rule).where(Rule.app == app, Rule.key == key)
                           ).scalar_one_or_none()
    if rule is None:
        raise NotFound(f"rule {key!r} does not exist in app {app!r}", rule=key)
    return rule


def delete(session: Session, app: str, key: str) -> None:
    session.delete(get_rule(session, app, key))
    session.flush()


def test_run(session: Session, app: str, key: str, *, record_id: int | None,
             now: datetime, keyring: Keyring | None) -> dict[str, Any]:
    """What the rule would do for a record: the condition's result and each action's
    preview — nothing is written (the caller rolls back; the log row is its own)."""
    rule = get_rule(session, app, key)
    spec = RuleSpec.model_validate(rule.spec)
    return preview(session, app, spec, record_id=record_id, now=now, keyring=keyring,
                   rule=rule)


def preview(session: Session, app: str, spec: RuleSpec, *, record_id: int | None,
            now: datetime, keyring: Keyring | None, rule: Rule | None = None
            ) -> dict[str, Any]:
    """``test_run`` of a spec — a saved rule's, or a working copy not saved yet (its
    actions act as the system, or its ``run_as`` user: ``error`` names an action that
    user may not run now). A rule about records needs ``record_id`` (422 without)."""
    form = spec.trigger.form or _flow_form(session, app, spec.trigger.flow)
    if record_id is None and form is not None:
        raise InvalidInput(f"record_id：请选一条记录来试运行 / record_id: this rule runs on "
                           f"a record of form {form}: give the record_id of the record to "
                           "test it on", field="record_id")
    fired = Fired(f"test:{rule.id if rule else 0}", spec.trigger.type, app, form, record_id)
    actor = actor_of(session, rule or Rule(id=0, key=spec.key), spec)
    ctx = RuleContext.load(session, fired, actor=actor, now=now, keyring=keyring, test=True)
    if record_id is not None and ctx.record is None:
        raise NotFound(f"record {record_id} does not exist", record_id=record_id)
    out: dict[str, Any] = {"rule": spec.key, "version": rule.version if rule else None,
                           "record_id": record_id}
    try:
        out["condition"] = bool(ctx.evaluate(spec.condition)) if spec.condition else True
        out["actions"] = [ACTIONS.get(c["type"]).preview(ctx, c) for c in spec.actions] \
            if out["condition"] else []
        refused = refusal(ctx, spec) if out["condition"] else None
        if refused is not None:
            out["error"] = refused[1]
    except (ExpressionError, DomainError) as exc:
        out["error"] = str(getattr(exc, "detail", exc))
    return out


def runs(session: Session, app: str, key: str, *, limit: int, before: int | None
         ) -> list[RuleRun]:
    rule = get_rule(session, app, key)
    stmt = select(RuleRun).where(RuleRun.rule_id == rule.id)
    if before:
        stmt = stmt.where(RuleRun.id < before)
    return list(session.execute(stmt.order_by(RuleRun.id.desc()).limit(limit)).scalars())


def dead_letters(session: Session, app: str, *, limit: int) -> list[ActionRun]:
    return list(session.execute(select(ActionRun).where(
        ActionRun.app == app, ActionRun.status.in_(DEAD)).order_by(ActionRun.id.desc())
        .limit(limit)).scalars())


def replay(session: Session, app: str, action_run_id: int, *, now: datetime,
           keyring: Keyring | None) -> ActionRun:
    """Try a dead-lettered action again: an outside call goes back to the sender; a
    failed inside action reruns its rule for the same trigger (actions already done are
    skipped by their keys)."""
    row = session.get(ActionRun, action_run_id)
    if row is None or row.app != app:
        raise NotFound(f"action run {action_run_id} does not exist")
    if row.status not in DEAD:
        raise Conflict(f"action run {action_run_id} is {row.status}, not dead")
    if row.status == "dead":
        row.status, row.attempts, row.next_attempt_at = "pending", 0, now
        row.last_error = None
        session.flush()
        return row
    return _rerun(session, row, now=now, keyring=keyring)


def _rerun(session: Session, row: ActionRun, *, now: datetime, keyring: Keyring | None
           ) -> ActionRun:
    from engine_rules.runner import run_rule

    rule = session.get(Rule, row.rule_id)
    run = session.get(RuleRun, row.rule_run_id) if row.rule_run_id else None
    if rule is None or run is None:
        raise Conflict("the rule or its run is gone; nothing to replay")
    form, payload = _form_of(session, rule), _trigger_payload(session, run.trigger_key)
    if run.trigger_key.startswith("evt:"):
        event = session.get(OutboxEvent, int(run.trigger_key.split(":")[1]))
        form = event.form if event is not None else form
    fired = Fired(run.trigger_key, run.event_type or rule.trigger, rule.app, form,
                  run.record_id, payload, run.depth)
    session.delete(row)  # its key is free again: the rerun runs it
    session.flush()
    run_rule(session, rule, fired, now=now, keyring=keyring)
    fresh = session.execute(select(ActionRun).where(ActionRun.key == row.key)
                            ).scalar_one_or_none()
    return fresh or row


def _trigger_payload(session: Session, trigger_key: str) -> dict[str, Any]:
    """What the rule saw of its trigger, again: the outbox event's payload (``changes``
    for ``OLD``, the step, the assignee …), or a date trigger's target date."""
    kind, _, rest = trigger_key.partition(":")
    if kind == "evt" and rest.isdigit():
        event = session.get(OutboxEvent, int(rest))
        return dict(event.payload or {}) if event is not None else {}
    if kind == "date":
        return {"target_date": rest.rsplit(":", 1)[-1]}
    if kind == "overdue" and rest.rsplit(":", 1)[-1].isdigit():
        from engine_rules.scans import overdue_payload

        return overdue_payload(session, int(rest.rsplit(":", 1)[-1]))
    return {}


def _form_of(session: Session, rule: Rule) -> str | None:
    spec = RuleSpec.model_validate(rule.spec)
    return spec.trigger.form or _flow_form(session, rule.app, spec.trigger.flow)


def rule_doc(rule: Rule) -> dict[str, Any]:
    return {"app": rule.app, "key": rule.key, "version": rule.version,
            "enabled": rule.enabled, "spec": rule.spec,
            "updated_at": iso(rule.updated_at)}


def run_doc(run: RuleRun) -> dict[str, Any]:
    return {"id": run.id, "version": run.rule_version, "trigger": run.trigger_key,
            "event_type": run.event_type, "record_id": run.record_id, "depth": run.depth,
            "condition": run.condition, "status": run.status, "actions": run.actions,
            "error": run.error, "duration_ms": run.duration_ms, "at": iso(run.at)}


def action_doc(row: ActionRun) -> dict[str, Any]:
    return {"id": row.id, "key": row.key, "rule_id": row.rule_id, "type": row.action_type,
            "status": row.status, "attempts": row.attempts, "last_error": row.last_error,
            "request": row.request, "created_at": iso(row.created_at)}


def unread(session: Session, user_id: int) -> int:
    from engine_rules.models import Notification

    return session.execute(select(func.count()).select_from(Notification).where(
        Notification.user_id == user_id, Notification.read_at.is_(None))).scalar_one()

