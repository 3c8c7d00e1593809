"""Running rules: which rules an event triggers, and one rule's run over one trigger.

A run, in order (one ``RuleRun`` row records it all):

1. the trigger's own filters (the form, the fields that really changed, the step, the
   outcome); a rule they do not match does not run and is not logged;
2. a cascade deeper than ``MAX_DEPTH`` stops here, logged as ``stopped`` with a warning;
3. the condition (expression language; ``OLD.field`` is the value before an update);
   false → ``skipped``;
4. the actions, in order, each under its idempotency key ``<trigger>:<rule>:<index>``:
   one that already has an ``ActionRun`` is not run again; one that only writes rows
   runs now, in a savepoint, with its ``ActionRun`` (``done``); an outside call is
   written as a ``pending`` ``ActionRun`` for the sender. The first action that fails is
   logged (``failed``, replayable from the dead-letter list) and the rest of the rule's
   actions do not run. A rule acting as a ``run_as`` user first checks that user's
   rights as they are now (``engine_rules.rights``): one action they may not run fails
   the run before any action writes.

Everything runs in the caller's transaction (the dispatcher's, or a scan's), and the
events the actions write carry depth + 1 (``platform_core.outbox.CASCADE_DEPTH``).
"""

from __future__ import annotations

import logging
import time
from datetime import datetime
from functools import lru_cache
from typing import Any

from sqlalchemy import event, insert, select
from sqlalchemy.orm import Session

from engine_rules.actions import ACTIONS
from engine_rules.context import Fired, RuleContext
from engine_rules.models import ActionRun, Rule, RuleRun
from engine_rules.rights import refusal
from engine_rules.spec import RuleSpec, Trigger
from platform_core.db import dumps
from platform_core.errors import DomainError
from platform_core.expressions import ExpressionError
from platform_core.models import OutboxEvent, utcnow
from platform_core.outbox import CASCADE_DEPTH
from platform_core.security.crypto import Keyring
from platform_core.security.models import User
from platform_core.store import Actor

log = logging.getLogger("qiao.rules")
MAX_DEPTH = 5


def _stamp_depth(session: Session, _context: Any, _instances: Any) -> None:
    """Every outbox event added without a depth takes the cascade depth of the code that
    wrote it (``CASCADE_DEPTH``): a flow a rule started, a task it completed … so a
    cascade through any engine stops at ``MAX_DEPTH``, not only through records."""
    depth = CASCADE_DEPTH.get()
    if depth:
        for obj in session.new:
            if isinstance(obj, OutboxEvent) and not obj.depth:
                obj.depth = depth


def track_depth() -> None:
    """Install ``_stamp_depth`` on every session (idempotent; at start-up)."""
    if not event.contains(Session, "before_flush", _stamp_depth):
        event.listen(Session, "before_flush", _stamp_depth)


def matches(trigger: Trigger, fired: Fired) -> bool:
    """Whether an event passes the trigger's own filters (step 1)."""
    payload = fired.payload
    if trigger.form and trigger.form != fired.form:
        return False
    if trigger.flow and trigger.flow != payload.get("flow"):
        return False
    if trigger.step and trigger.step != payload.get("node"):
        return False
    if trigger.outcome and trigger.outcome != payload.get("outcome"):
        return False
    if trigger.type == "record.updated" and trigger.fields:
        changes = payload.get("changes") or {}
        return any(key in changes for key in trigger.fields)
    return not (trigger.type == "task.overdue" and trigger.overdue_days and
                fired.key.startswith("evt:"))  # N days late: the overdue scan fires it


@lru_cache(maxsize=1024)
def _parsed(_rule_id: int, _version: int, _saved: Any, spec_json: str) -> RuleSpec:
    return RuleSpec.model_validate_json(spec_json)


def spec_of(rule: Rule) -> RuleSpec:
    """The rule's spec, validated once per saved version (every event reads it)."""
    return _parsed(rule.id, rule.version, rule.updated_at, dumps(rule.spec))


def rules_for(session: Session, fired: Fired) -> list[Rule]:
    """The enabled rules ``fired`` triggers. The rules of an app and event type are read
    once per dispatcher transaction (a batch of events; no rule is saved inside it)."""
    cache = session.info.setdefault("rules_for", {})
    rows = cache.get((fired.app, fired.event_type))
    if rows is None:
        rows = cache[(fired.app, fired.event_type)] = list(session.execute(select(Rule).where(
            Rule.app == fired.app, Rule.trigger == fired.event_type, Rule.enabled.is_(True))
            .order_by(Rule.id)).scalars())
    return [r for r in rows if matches(spec_of(r).trigger, fired)]


def actor_of(session: Session, rule: Rule, spec: RuleSpec) -> Actor:
    """Who the actions act as: the rule's ``run_as`` user, else the system."""
    if spec.run_as.user:
        user = session.execute(select(User).where(User.username == spec.run_as.user)
                               ).scalar_one_or_none()
        if user is not None and user.status == "active":
            return Actor(user_id=user.id, department_id=user.department_id,
                         name=user.username)
    return Actor(user_id=None, name=f"rule:{rule.key}")


def run_rule(session: Session, rule: Rule, fired: Fired, *, now: datetime,
             keyring: Keyring | None = None, actor: Actor | None = None,
             loaded: dict[str, RuleContext] | None = None,
             quiet: list[RuleRun] | None = None) -> RuleRun:
    """Run ``rule`` for ``fired`` (steps 2–4 of the module docstring); ``actor``: the
    person who ran a manual rule (its actions carry their name); ``loaded``: shared by
    the rules of one event, which read the form and the record once; ``quiet``: where a
    run that ran no action (most are skipped by their condition) is put instead of the
    session, for the caller to write them all in one INSERT."""
    started = time.perf_counter()
    spec = spec_of(rule)
    run = RuleRun(rule_id=rule.id, rule_version=rule.version, trigger_key=fired.key,
                  event_type=fired.event_type, record_id=fired.record_id,
                  depth=fired.depth, status="done", actions=[], at=now)
    if quiet is None:
        session.add(run)
    else:
        quiet.append(run)
    if fired.depth >= MAX_DEPTH:
        log.warning("rule %s.%s not run for %s: cascade depth %s reached", rule.app,
                    rule.key, fired.key, fired.depth)
        run.status, run.error = "stopped", f"cascade depth {fired.depth} ≥ {MAX_DEPTH}"
        return _finish(session, run, started)
    like = None if loaded is None else loaded.get(fired.key)
    ctx = RuleContext.load(session, fired, actor=actor or actor_of(session, rule, spec),
                           now=now, keyring=keyring, like=like)
    if loaded is not None and like is None:  # a copy as read, before any action runs
        loaded[fired.key] = RuleContext.load(session, fired, actor=ctx.actor, now=now,
                                             keyring=keyring, like=ctx)
    try:
        run.condition = bool(ctx.evaluate(spec.condition)) if spec.condition else True
    except (ExpressionError, DomainError) as exc:
        run.status, run.error = "failed", f"condition: {getattr(exc, 'detail', exc)}"
        return _finish(session, run, started)
    if not run.condition:
        run.status = "skipped"
        return _finish(session, run, started)
    if quiet is not None:  # it acts: written now, its id named by its action runs
        quiet.remove(run)
        session.add(run)
    session.flush()  # the run's id, for its action runs
    refused = None if actor is not None else refusal(
        ctx, spec, lambda i: _done(session, _key(fired, rule, i)))
    if refused is not None:
        run.actions = [_refuse(ctx, rule, spec, run, *refused)]
        run.status, run.error = "failed", refused[1]
        return _finish(session, run, started)
    token = CASCADE_DEPTH.set(fired.depth + 1)
    try:
        run.actions = _run_actions(ctx, rule, spec, run)
    finally:
        CASCADE_DEPTH.reset(token)
    if any(a["status"] == "failed" for a in run.actions):
        run.status = "failed"
    return _finish(session, run, started)


def _key(fired: Fired, rule: Rule, index: int) -> str:
    return f"{fired.key}:{rule.id}:{index}"[:200]


def _done(session: Session, key: str) -> bool:
    return session.execute(select(ActionRun.id).where(ActionRun.key == key)).first() \
        is not None


def _refuse(ctx: RuleContext, rule: Rule, spec: RuleSpec, run: RuleRun, index: int,
            reason: str) -> dict[str, Any]:
    """The action the ``run_as`` user may not run, as a failed (replayable) action run."""
    config = spec.actions[index]
    ctx.session.add(ActionRun(key=_key(ctx.fired, rule, index), rule_id=rule.id,
                              rule_run_id=run.id, app=rule.app, action_type=config["type"],
                              status="failed", last_error=reason[:2000],
                              request={"config": config}, created_at=ctx.now))
    ctx.session.flush()
    return {"index": index, "type": config["type"], "status": "failed", "error": reason}


def _run_actions(ctx: RuleContext, rule: Rule, spec: RuleSpec, run: RuleRun
                 ) -> list[dict[str, Any]]:
    session, out = ctx.session, []
    for index, config in enumerate(spec.actions):
        key = _key(ctx.fired, rule, index)
        kind = ACTIONS.get(config["type"])
        if _done(session, key):
            out.append({"index": index, "type": kind.key, "status": "already_done"})
            continue
        row = ActionRun(key=key, rule_id=rule.id, rule_run_id=run.id, app=rule.app,
                        action_type=kind.key, created_at=ctx.now)
        try:
            with session.begin_nested():
                if kind.external and not getattr(kind, "runs_inline", lambda _c: False)(
                        config):
                    row.status, row.request = "pending", kind.prepare(ctx, config)
                    row.next_attempt_at = ctx.now
                else:
                    row.status, row.result, row.done_at = "done", kind.run(ctx, config), \
                        ctx.now
                session.add(row)
                session.flush()
        except (DomainError, ExpressionError) as exc:
            row.status, row.last_error = "failed", str(getattr(exc, "detail", exc))[:2000]
            row.request = {"config": config}
            session.add(row)
            session.flush()
            out.append({"index": index, "type": kind.key, "status": "failed",
                        "error": row.last_error})
            break
        out.append({"index": index, "type": kind.key, "status": row.status,
                    "result": row.result or None})
    return out


_RUN_COLUMNS = tuple(c for c in RuleRun.__table__.columns if c.key != "id")


def _row(run: RuleRun) -> dict[str, Any]:
    """The run as the columns of an INSERT, the model's scalar defaults filled in."""
    row = {}
    for column in _RUN_COLUMNS:
        value = getattr(run, column.key)
        default = column.default
        if value is None and default is not None and default.is_scalar:
            value = default.arg
        row[column.key] = value
    return row


def _finish(session: Session, run: RuleRun, started: float) -> RuleRun:  # noqa: ARG001
    """The run's time. Not flushed here: the runs of one event (most of them skipped by
    their condition) are written together, in one INSERT, with the event's rows."""
    run.duration_ms = round((time.perf_counter() - started) * 1000)
    return run


class RulesHandler:
    """The outbox handler (``HANDLERS["rules"]``): every enabled rule an event
    triggers, run in the dispatcher's transaction."""

    def __init__(self, keyring: Keyring | None = None):
        self.keyring = keyring

    def handle(self, session: Session, event: Any) -> None:
        if event.app is None:
            return
        fired = Fired(key=f"evt:{event.id}", event_type=event.event_type, app=event.app,
                      form=event.form, record_id=event.record_id,
                      payload=event.payload or {}, depth=event.depth or 0)
        loaded: dict[str, RuleContext] = {}
        quiet: list[RuleRun] = []
        session.info["publishes_nothing"] = True  # forms' versions read once per batch
        for rule in rules_for(session, fired):
            run_rule(session, rule, fired, now=utcnow(), keyring=self.keyring, loaded=loaded,
                     quiet=quiet)
        if quiet:  # the runs that only looked: one INSERT of many rows
            session.execute(insert(RuleRun), [_row(run) for run in quiet])

    def interest(self, session: Session) -> set[tuple[str, str]]:
        """The (app, event type) pairs some enabled rule is triggered by (the outbox
        dispatcher hands this handler no other event)."""
        return {(app, trigger) for app, trigger in session.execute(
            select(Rule.app, Rule.trigger).where(Rule.enabled.is_(True)).distinct())}

    def for_context(self, context: Any) -> RulesHandler:
        """This handler with the running app's keyring (sealed fields opened)."""
        return RulesHandler(context.keyring)
