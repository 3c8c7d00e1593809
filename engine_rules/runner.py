"""Running rules: which rules an event triggers, and one rule's run over one trigger.

A run, in order (one ``RuleRun`` row records it all):

1. the trigger's own filters (the form, the fields that really changed, the step, the
   outcome); a rule they do not match does not run and is not logged;
2. a cascade deeper than ``MAX_DEPTH`` stops here, logged as ``stopped`` with a warning;
3. the condition (expression language; ``OLD.field`` is the value before an update);
   false → ``skipped``;
4. the actions, in order, each under its idempotency key ``<trigger>:<rule>:<index>``:
   one that already has an ``ActionRun`` is not run again; one that only writes rows
   runs now (in a savepoint, unless it writes only as its last step) and is ``done``; an
   outside call is a ``pending`` ``ActionRun`` for the sender. The first action that
   fails is logged (``failed``, replayable from the dead-letter list) and the rest of
   the rule's actions do not run. A rule acting as a ``run_as`` user first checks that
   user's rights as they are now (``engine_rules.rights``): one action they may not run
   fails the run before any action writes. The run's row is written when its actions
   are done, then its action runs (one INSERT).

For an outbox event (``run_event``) every rule is judged first (steps 1–3, all against
the record as of the event, read once), then the rules whose condition held act in rule
order; then the runs are written (one INSERT for all that ran no action) and the action
runs (one INSERT for all).

Everything runs in the caller's transaction (the dispatcher's, or a scan's), and the
events the actions write carry depth + 1 (``platform_core.outbox.CASCADE_DEPTH``).
"""

from __future__ import annotations

import logging
import time
from contextlib import nullcontext
from datetime import datetime
from functools import lru_cache
from typing import Any

from sqlalchemy import event, select
from sqlalchemy.orm import Session

from engine_rules.actions import ACTIONS
from engine_rules.context import Fired, RuleContext
from engine_rules.models import ActionRun, Rule, RuleRun
from engine_rules.rights import refusal
from engine_rules.spec import RuleSpec, Trigger
from platform_core.db import allocate_ids, dumps, one_of
from platform_core.errors import DomainError, NotFound
from platform_core.expressions import ExpressionError
from platform_core.models import OutboxEvent, Record, utcnow
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


def _matching(session: Session, fired: Fired) -> list[tuple[Rule, RuleSpec]]:
    """The enabled rules ``fired`` triggers, with their specs. The rules of an app and
    event type are read (and their specs validated) once per dispatcher transaction (a
    batch of events; no rule is saved inside it)."""
    cache = session.info.setdefault("rules_for", {})
    pairs = cache.get((fired.app, fired.event_type))
    if pairs is None:
        pairs = cache[(fired.app, fired.event_type)] = [(r, spec_of(r)) for r in session.execute(
            select(Rule).where(Rule.app == fired.app, Rule.trigger == fired.event_type,
                               Rule.enabled.is_(True)).order_by(Rule.id)).scalars()]
    return [(rule, spec) for rule, spec in pairs if matches(spec.trigger, fired)]


def rules_for(session: Session, fired: Fired) -> list[Rule]:
    """The enabled rules ``fired`` triggers (read once per dispatcher transaction)."""
    return [rule for rule, _spec in _matching(session, fired)]


def actor_of(session: Session, rule: Rule, spec: RuleSpec) -> Actor:
    """Who the actions act as: the rule's ``run_as`` user, else the system."""
    if spec.run_as.user:
        user = session.execute(select(User).where(User.username == spec.run_as.user)
                               ).scalar_one_or_none()
        if user is not None and user.status == "active":
            return Actor(user_id=user.id, department_id=user.department_id,
                         name=user.username)
    return Actor(user_id=None, name=f"rule:{rule.key}")


def _run_row(rule: Rule, fired: Fired, now: datetime) -> dict[str, Any]:
    """A run's columns before it is judged (every column: rows of many runs are written
    by one INSERT)."""
    return {"rule_id": rule.id, "rule_version": rule.version, "trigger_key": fired.key,
            "event_type": fired.event_type, "record_id": fired.record_id,
            "depth": fired.depth, "condition": None, "status": "done", "actions": [],
            "error": None, "test": False, "duration_ms": 0, "at": now}


def _stopped(rule: Rule, fired: Fired, row: dict[str, Any]) -> None:
    """Step 2: a cascade too deep stops here (the rule's actions could trigger it again)."""
    log.warning("rule %s.%s not run for %s: cascade depth %s reached", rule.app, rule.key,
                fired.key, fired.depth)
    row["status"], row["error"] = "stopped", f"cascade depth {fired.depth} ≥ {MAX_DEPTH}"


def _judge(ctx: RuleContext, spec: RuleSpec, row: dict[str, Any]) -> bool:
    """Step 3, the condition, written into ``row``; whether the actions run."""
    try:
        row["condition"] = bool(ctx.evaluate(spec.condition)) if spec.condition else True
    except (ExpressionError, DomainError) as exc:
        row["status"], row["error"] = "failed", f"condition: {getattr(exc, 'detail', exc)}"
        return False
    if not row["condition"]:
        row["status"] = "skipped"
    return row["condition"]


def _elapsed_ms(started: float) -> int:
    return round((time.perf_counter() - started) * 1000)


def run_rule(session: Session, rule: Rule, fired: Fired, *, now: datetime,
             keyring: Keyring | None = None, actor: Actor | None = None) -> RuleRun:
    """Run ``rule`` for ``fired`` (steps 2–4 of the module docstring) and add its run to
    the session; ``actor``: the person who ran a manual rule (its actions carry their
    name, and the ``run_as`` check does not apply)."""
    started = time.perf_counter()
    spec, row = spec_of(rule), _run_row(rule, fired, now)
    if fired.depth >= MAX_DEPTH:
        _stopped(rule, fired, row)
    else:
        ctx = RuleContext.load(session, fired, actor=actor or actor_of(session, rule, spec),
                               now=now, keyring=keyring)
        if _judge(ctx, spec, row):
            return _write_run(session, row, _act(ctx, rule, spec, row, started,
                                                 manual=actor is not None))
    row["duration_ms"] = _elapsed_ms(started)
    run = RuleRun(**row)
    session.add(run)
    return run


def run_event(session: Session, fired: Fired, *, now: datetime,
              keyring: Keyring | None = None, first_try: bool = False,
              defer: bool = False) -> None:
    """Every enabled rule ``fired`` (an outbox event) triggers: first each one judged
    (steps 2–3) against the event's record, read once; then the rules whose condition
    held act, in rule order, after one look-up of the actions already done (none for
    an event on its ``first_try``); then the runs are written with their action runs
    (``_write_runs``). ``defer``: the runs are kept in the session for ``write_deferred``,
    which writes a dispatcher batch's runs together (the dispatcher calls it before the
    batch's events are marked processed, in the same transaction)."""
    pairs = _matching(session, fired)
    if not pairs:
        return
    runs: list[dict[str, Any]] = []
    acting: list[tuple[Rule, RuleSpec, dict[str, Any], float]] = []
    base: RuleContext | None = None
    for rule, spec in pairs:
        started, row = time.perf_counter(), _run_row(rule, fired, now)
        runs.append(row)
        if fired.depth >= MAX_DEPTH:
            _stopped(rule, fired, row)
        else:
            # one read of the record as of the event serves every rule's condition
            base = base or RuleContext.load(session, fired, actor=Actor(user_id=None),
                                            now=now, keyring=keyring)
            if _judge(base, spec, row):
                acting.append((rule, spec, row, time.perf_counter() - started))
                continue
        row["duration_ms"] = _elapsed_ms(started)
    action_rows: dict[int, list[dict[str, Any]]] = {}
    if acting and base is not None:
        # An event no dispatcher had claimed before has no action runs yet (they commit
        # with the claim that marks it processed; a failure or crash undoes both).
        done = set() if first_try else _done_keys(session, [
            _key(fired, rule, i) for rule, spec, _row, _t in acting
            for i in range(len(spec.actions))])
        for rule, spec, row, judged in acting:
            ctx = RuleContext.load(session, fired, actor=actor_of(session, rule, spec),
                                   now=now, keyring=keyring, like=base)
            action_rows[id(row)] = _act(ctx, rule, spec, row, time.perf_counter() - judged,
                                        manual=False, done=done)
    if defer:
        session.info.setdefault(_DEFERRED, []).append((runs, action_rows))
    else:
        _write_runs(session, runs, action_rows)


_DEFERRED = "rules_deferred_runs"


def write_deferred(session: Session) -> None:
    """The runs ``run_event(…, defer=True)`` kept, written at once (three statements
    for a whole batch of events instead of two or more per event)."""
    deferred = session.info.pop(_DEFERRED, None)
    if deferred:
        _write_runs(session, [row for runs, _ in deferred for row in runs],
                    {key: rows for _, by_row in deferred for key, rows in by_row.items()})


def drop_deferred(session: Session) -> None:
    """Forget the kept runs: the work that made them was rolled back."""
    session.info.pop(_DEFERRED, None)


def _write_runs(session: Session, runs: list[dict[str, Any]],
                action_rows: dict[int, list[dict[str, Any]]]) -> None:
    """Runs and their action runs (keyed by ``id(row)`` of the run's row): the runs' ids
    are taken first (``allocate_ids``), so the runs are one INSERT of many rows, in the
    order they were judged, and the action runs pointing at them one more."""
    if not runs:
        return
    table, actions = RuleRun.__table__, []
    for run_id, row in zip(allocate_ids(session, table, len(runs)), runs, strict=True):
        row["id"] = run_id
        actions += [a | {"rule_run_id": run_id} for a in action_rows.get(id(row), ())]
    session.execute(table.insert(), runs)
    if actions:
        session.execute(ActionRun.__table__.insert(), actions)


def _write_run(session: Session, row: dict[str, Any],
               action_rows: list[dict[str, Any]]) -> RuleRun:
    """One rule's run added to the session (its id names its action runs), then its
    action runs in one INSERT."""
    run = RuleRun(**row)
    session.add(run)
    session.flush()
    if action_rows:
        session.execute(ActionRun.__table__.insert(),
                        [a | {"rule_run_id": run.id} for a in action_rows])
    return run


def _act(ctx: RuleContext, rule: Rule, spec: RuleSpec, row: dict[str, Any], started: float,
         *, manual: bool, done: set[str] | None = None) -> list[dict[str, Any]]:
    """Step 4 for a rule whose condition held: the ``run_as`` check, then the actions;
    the run's outcome written into ``row``, the rows of its action runs returned (the
    caller writes both). ``done``: the action keys of this trigger already run (looked
    up if None)."""
    session, fired = ctx.session, ctx.fired
    if done is None:
        done = _done_keys(session, [_key(fired, rule, i) for i in range(len(spec.actions))])
    action_rows: list[dict[str, Any]] = []
    refused = None if manual else refusal(ctx, spec, lambda i: _key(fired, rule, i) in done)
    if refused is not None:
        index, reason = refused
        action_rows.append(_refused_row(ctx, rule, spec, index, reason))
        row["actions"] = [{"index": index, "type": spec.actions[index]["type"],
                           "status": "failed", "error": reason}]
        row["status"], row["error"] = "failed", reason
    else:
        token = CASCADE_DEPTH.set(fired.depth + 1)
        try:
            row["actions"] = _run_actions(ctx, rule, spec, done, action_rows)
        finally:
            CASCADE_DEPTH.reset(token)
        if any(a["status"] == "failed" for a in row["actions"]):
            row["status"] = "failed"
    row["duration_ms"] = _elapsed_ms(started)
    return action_rows


def _key(fired: Fired, rule: Rule, index: int) -> str:
    return f"{fired.key}:{rule.id}:{index}"[:200]


def _done_keys(session: Session, keys: list[str]) -> set[str]:
    """Those of ``keys`` that already have an action run (a trigger handled again)."""
    found: set[str] = set()
    for start in range(0, len(keys), 500):
        found.update(session.execute(select(ActionRun.key).where(
            ActionRun.key.in_(keys[start:start + 500]))).scalars())
    return found


def _action_row(ctx: RuleContext, rule: Rule, index: int, action_type: str
                ) -> dict[str, Any]:
    """An action run's columns (all of them: the runs of a rule are one INSERT)."""
    return {"key": _key(ctx.fired, rule, index), "rule_id": rule.id, "app": rule.app,
            "action_type": action_type, "status": "done", "request": {}, "result": {},
            "attempts": 0, "next_attempt_at": None, "last_error": None,
            "created_at": ctx.now, "done_at": None}


def _refused_row(ctx: RuleContext, rule: Rule, spec: RuleSpec, index: int, reason: str
                 ) -> dict[str, Any]:
    """The action the ``run_as`` user may not run, as a failed (replayable) action run."""
    config = spec.actions[index]
    return _action_row(ctx, rule, index, config["type"]) | {
        "status": "failed", "last_error": reason[:2000], "request": {"config": config}}


def _run_actions(ctx: RuleContext, rule: Rule, spec: RuleSpec, done: set[str],
                 rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Each action in order (its action run's row appended to ``rows``) until one fails.
    An action that could fail after writing runs in a savepoint, so a failure leaves
    nothing of it; one that writes only as its last step (``contained``) needs none."""
    session, out = ctx.session, []
    for index, config in enumerate(spec.actions):
        kind = ACTIONS.get(config["type"])
        row = _action_row(ctx, rule, index, kind.key)
        if row["key"] in done:
            out.append({"index": index, "type": kind.key, "status": "already_done"})
            continue
        try:
            with nullcontext() if kind.contained(config) else session.begin_nested():
                if kind.external and not getattr(kind, "runs_inline", lambda _c: False)(
                        config):
                    row["status"], row["request"] = "pending", kind.prepare(ctx, config)
                    row["next_attempt_at"] = ctx.now
                else:
                    row["result"], row["done_at"] = kind.run(ctx, config), ctx.now
        except (DomainError, ExpressionError) as exc:
            row["status"], row["last_error"] = "failed", str(getattr(exc, "detail", exc)
                                                             )[:2000]
            row["request"] = {"config": config}
            rows.append(row)
            out.append({"index": index, "type": kind.key, "status": "failed",
                        "error": row["last_error"]})
            break
        rows.append(row)
        out.append({"index": index, "type": kind.key, "status": row["status"],
                    "result": row["result"] or None})
    return out


def _read_records(session: Session, ids: list[int]) -> list[Record]:
    found: list[Record] = []
    read = _READ[session.get_bind().dialect.name]
    for start in range(0, len(ids), 500):
        found += session.execute(read, {"ids": ids[start:start + 500]}).scalars().all()
    return found


def _read(dialect: str) -> Any:
    """The records of a list of ids (passed as ``db.one_of`` says)."""
    return select(Record).where(one_of(Record.id, dialect))


_READ = {dialect: _read(dialect) for dialect in ("postgresql", "sqlite")}


def _targets(session: Session, records: list[Record]) -> set[int]:
    """The ids the relation fields of ``records`` hold."""
    from engine_forms.forms import published

    relations: dict[tuple[str, str], list[str]] = {}
    found: set[int] = set()
    for rec in records:
        keys = relations.get((rec.app, rec.form))
        if keys is None:
            try:
                spec = published(session, rec.app, rec.form).spec
            except NotFound:
                spec = None
            keys = relations[(rec.app, rec.form)] = [
                f.key for f in (spec.fields if spec else ()) if f.type == "relation"]
        for key in keys:
            value = rec.data.get(key)
            for target in value if isinstance(value, list) else (value,):
                if isinstance(target, int) and not isinstance(target, bool):
                    found.add(target)
    return found


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
        session.info["publishes_nothing"] = True  # recipients read once per batch
        run_event(session, fired, now=utcnow(), keyring=self.keyring,
                  first_try=event.id in session.info.get("outbox_fresh", ()), defer=True)

    def finish(self, session: Session, *, failed: bool = False) -> None:
        """The end of the events handed over since the last call (a batch, or one event
        retried alone): their rule runs written, or forgotten if that work ``failed``
        (rolled back)."""
        if failed:
            drop_deferred(session)
        else:
            write_deferred(session)

    def prepare(self, session: Session, events: list[Any]) -> None:
        """The records of a batch's events, read in one statement and held for the
        batch: each event's rules then find theirs in the session (``RuleContext.load``)
        instead of reading it alone. Read after the events were claimed, a record is at
        least at its event's version; a later one is rewound from its history."""
        ids = sorted({e.record_id for e in events if e.record_id is not None})
        held = session.info.setdefault("rules_records", [])  # the session's map is weak
        records = _read_records(session, ids)
        # and the records they point at, which conditions such as ``customer.status``
        # follow (one statement, not one per event)
        session.info["publishes_nothing"] = True
        held += records + _read_records(session, sorted(_targets(session, records) - set(ids)))

    def interest(self, session: Session) -> set[tuple[str, str]]:
        """The (app, event type) pairs some enabled rule is triggered by (the outbox
        dispatcher hands this handler no other event)."""
        return {(app, trigger) for app, trigger in session.execute(
            select(Rule.app, Rule.trigger).where(Rule.enabled.is_(True)).distinct())}

    def for_context(self, context: Any) -> RulesHandler:
        """This handler with the running app's keyring (sealed fields opened)."""
        return RulesHandler(context.keyring)
