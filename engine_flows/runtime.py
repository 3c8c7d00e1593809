"""The engine loop: one ``Engine`` per operation on one run, inside the caller's
transaction.

Lifecycle of a token, in order (SpiffWorkflow's loop, without ``eval``):

1. ``enter(node)`` writes a ``FlowStep`` (active), history ``step_entered`` and the outbox
   event ``flow.step_entered``; the node type's ``enter`` then either *waits* (user step,
   approval, timer, join not yet complete, sub-flow) or returns an outcome at once
   (start, gateway, parallel split, service step);
2. ``leave(step, outcome)`` marks the step done (``flow.step_left``) and asks the node
   type which edges to follow; each target is entered next;
3. the loop runs until only waiting steps remain; an ``end`` node completes the run
   (``flow.completed``; a sub-flow then resumes its calling step).

Steps only move forward (active → done | cancelled). Going back — reject to an earlier
step, return, withdraw — cancels the active steps and enters the earlier node anew.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from datetime import datetime
from functools import lru_cache
from typing import Any

from sqlalchemy import bindparam, insert, select, text, update
from sqlalchemy.orm import Session
from sqlalchemy.orm.attributes import set_committed_value

from engine_flows.models import FlowHistory, FlowRun, FlowStep, Task
from engine_flows.spec import Edge, FlowSpec, Node
from engine_forms.forms import Published
from engine_forms.records import env_for
from engine_forms.sealing import FieldCrypt
from platform_core.db import dumps, insert_now
from platform_core.errors import Conflict, DomainError
from platform_core.models import OutboxEvent, Record
from platform_core.outbox import CASCADE_DEPTH, hold_events, release_events
from platform_core.security.crypto import Keyring
from platform_core.store import Actor

MAX_STEPS_PER_OPERATION = 1000  # pass-through nodes looping without a wait


class FlowStuck(DomainError):
    """The flow cannot go on from a node (no edge matches, a loop without any wait)."""

    status, code, title = 409, "flow_stuck", "Flow cannot continue"


_RECORD = select(Record).where(Record.id == bindparam("record_id")) \
    .execution_options(populate_existing=True)
_RECORD_LOCKED = _RECORD.with_for_update()
_LEAVE = (update(FlowStep.__table__).where(FlowStep.__table__.c.id == bindparam("step_id"))
          .values(status=bindparam("to_status"), outcome=bindparam("to_outcome"),
                  left_at=bindparam("to_left_at"), left_by=bindparam("to_left_by")))


class Engine:
    """Runs one run forward from an operation (see the module docstring)."""

    def __init__(self, session: Session, run: FlowRun, spec: FlowSpec,
                 pub: Published | None = None, *, actor: Actor, now: datetime,
                 keyring: Keyring | None = None):
        self.session, self.run, self.spec, self._pub = session, run, spec, pub
        self.actor, self.now, self.keyring = actor, now, keyring
        self._queue: deque[tuple[str, int | None]] = deque()
        self._env: Any = None

    @property
    def pub(self) -> Published:
        """The run's form as published now, looked up when first needed: a step that
        neither reads nor writes the record (most hand-overs) costs no query for it."""
        if self._pub is None:
            from engine_forms.forms import published

            self._pub = published(self.session, self.run.app, self.run.form)
        return self._pub

    # -- the record ----------------------------------------------------------------------

    def record(self, *, for_update: bool = False) -> Record:
        """The run's record as of now (a task's data or a service step may have changed
        it). ``for_update``: its row held until the transaction ends (PostgreSQL ``FOR
        UPDATE``; SQLite's one writer needs none), for a read-then-write — an edit
        committing between the read and the write would otherwise turn the step's write
        into a version conflict and fail the person's whole completion."""
        locked = for_update and self.session.get_bind().dialect.name == "postgresql"
        return self.session.execute(_RECORD_LOCKED if locked else _RECORD,
                                    {"record_id": self.run.record_id}).scalar_one()

    def data(self, *, for_update: bool = False) -> Mapping[str, Any]:
        """The record's data as of now, opened (a condition sees clear values)."""
        return FieldCrypt(self.pub, self.keyring).open(self.record(for_update=for_update).data)

    def record_and_data(self) -> tuple[Record, Mapping[str, Any]]:
        """The record as of now and its data opened, with one read."""
        rec = self.record()
        return rec, FieldCrypt(self.pub, self.keyring).open(rec.data)

    def env(self) -> Any:
        if self._env is None:
            self._env = env_for(self.session)
        return self._env

    # -- writing ---------------------------------------------------------------------------

    def history(self, action: str, *, node_id: str | None = None, task_id: int | None = None,
                **detail: Any) -> None:
        _log(self.session, FlowHistory, {
            "run_id": self.run.id, "action": action, "node_id": node_id, "task_id": task_id,
            "actor_id": self.actor.user_id, "detail": detail, "at": self.now})

    def emit(self, event_type: str, **payload: Any) -> None:
        """An outbox event in this transaction (webhooks and the rules engine read it)."""
        run = self.run
        body = {"run_id": run.id, "flow": run.flow, "version": run.version,
                "record_id": run.record_id, "actor_id": self.actor.user_id, **payload}
        _log(self.session, OutboxEvent, {
            "event_type": event_type, "app": run.app, "form": run.form,
            "record_id": run.record_id, "payload": body, "created_at": self.now,
            "available_at": self.now, "depth": CASCADE_DEPTH.get()})

    # -- the loop ----------------------------------------------------------------------------

    def enter(self, node_id: str, prev_step_id: int | None) -> None:
        self._queue.append((node_id, prev_step_id))

    def advance(self) -> None:
        """Enter queued nodes until only waiting steps remain."""
        from engine_flows.nodes import NODE_TYPES

        count = 0
        while self._queue and self.run.status == "running":
            count += 1
            if count > MAX_STEPS_PER_OPERATION:
                raise FlowStuck("the flow passes through more than "
                                f"{MAX_STEPS_PER_OPERATION} steps without waiting: a loop "
                                "of gateways?", run_id=self.run.id)
            node_id, prev = self._queue.popleft()
            node = self.spec.node(node_id)
            if node is None:
                raise FlowStuck(f"node {node_id!r} is not in version {self.run.version}")
            kind = NODE_TYPES.get(node.type)
            step = kind.arrive(self, node, prev)
            if step is None:  # merged into a waiting step (a join)
                continue
            outcome = kind.enter(self, node, step)
            if outcome is not None:
                self.leave(step, node, outcome)

    def new_step(self, node: Node, prev: int | None, *, done: str | None = None) -> FlowStep:
        """The step of a token entering ``node``; ``done``: already left with that outcome
        (an end node: one INSERT, not an INSERT and an UPDATE)."""
        step = FlowStep(run_id=self.run.id, node_id=node.id, node_type=node.type,
                        status="active", prev_step_id=prev, entered_at=self.now, arrived=1)
        if done is not None:
            step.status, step.outcome, step.left_at = "done", done, self.now
        insert_now(self.session, step)
        self.history("step_entered", node_id=node.id, step_id=step.id)
        self.emit("flow.step_entered", node=node.id, step=node.label, step_id=step.id,
                  node_type=node.type)
        return step

    def leave(self, step: FlowStep, node: Node, outcome: str, *,
              by: int | None = None) -> None:
        from engine_flows.nodes import NODE_TYPES

        self.close_step(step, outcome, by=by)
        self.history("step_left", node_id=node.id, step_id=step.id, outcome=outcome)
        self.emit("flow.step_left", node=node.id, step=node.label, step_id=step.id,
                  outcome=outcome)
        for edge in NODE_TYPES.get(node.type).route(self, node, step, outcome):
            self.enter(edge.to, step.id)

    def close_step(self, step: FlowStep, outcome: str, *, by: int | None = None) -> None:
        """Mark ``step`` done with ``outcome`` in its row at once (a prepared UPDATE) and
        on the object as the row now stands: nothing is left for a flush to write."""
        values = {"status": "done", "outcome": outcome, "left_at": self.now, "left_by": by}
        self.session.connection().execute(_LEAVE, {"step_id": step.id, **{
            f"to_{k}": v for k, v in values.items()}})
        for key, value in values.items():
            set_committed_value(step, key, value)

    def edges_for(self, node: Node, outcome: str) -> list[Edge]:
        """The edges taken on ``outcome``: those ``on`` it, else the unlabelled ones."""
        out = self.spec.outgoing(node.id)
        chosen = [e for e in out if e.on == outcome] or [e for e in out if e.on is None]
        if not chosen and node.type != "end":
            raise FlowStuck(f"{node.label}: no edge for outcome {outcome!r}", node=node.id,
                            outcome=outcome)
        return chosen

    # -- whole-run changes -----------------------------------------------------------------

    def active_steps(self) -> list[FlowStep]:
        return list(self.session.execute(select(FlowStep).where(
            FlowStep.run_id == self.run.id, FlowStep.status == "active")
            .order_by(FlowStep.id)).scalars())

    def steps_reached_from(self, target: str) -> list[FlowStep]:
        """The active steps a token entering ``target`` again would reach: what going back
        to ``target`` cancels. Inside one branch of a parallel split, the other branches
        keep their steps, and a join keeps its waiting step (the tokens that arrived from
        the other branches still count) unless the split itself lies ahead again."""
        ahead = self.spec.downstream(target)
        splits = [n.id for n in self.spec.nodes if n.type == "parallel" and n.id in ahead]

        def reached(step: FlowStep) -> bool:
            if step.node_id not in ahead:
                return False
            return step.node_type != "join" or any(
                step.node_id in self.spec.downstream(split) for split in splits)

        return [step for step in self.active_steps() if reached(step)]

    def cancel_active(self, reason: str, steps: list[FlowStep] | None = None) -> None:
        """Cancel ``steps`` (default: every active one) with their open tasks and the
        sub-flows they started."""
        everything = steps is None
        steps = self.active_steps() if steps is None else steps
        for step in steps:
            step.status, step.left_at = "cancelled", self.now
            self.history("step_cancelled", node_id=step.node_id, step_id=step.id,
                         reason=reason)
        where = [Task.run_id == self.run.id, Task.status == "open"]
        if not everything:
            where.append(Task.step_id.in_([s.id for s in steps]))
        self.cancel_tasks(where, reason)
        calling = [s.id for s in steps if s.node_type == "subflow"]  # only these start runs
        for child in self.session.execute(select(FlowRun).where(
                FlowRun.parent_step_id.in_(calling),
                FlowRun.status == "running")).scalars() if calling else ():
            child_engine = engine_for(self.session, child, actor=self.actor, now=self.now,
                                      keyring=self.keyring)
            child_engine.finish("cancelled", reason=reason)
        self.session.flush()

    def cancel_tasks(self, where: list[Any], reason: str) -> None:
        """Cancel the open tasks matching ``where``, each with a ``task.cancelled`` event
        (its inbox entry is gone: a rule or a webhook may tell the person)."""
        gone = self.session.execute(select(Task.id, Task.node_id, Task.title,
                                           Task.assignee_id, Task.due_at).where(*where)).all()
        if not gone:
            return
        self.session.execute(update(Task).where(Task.id.in_([t.id for t in gone]),
                                                Task.status == "open")
                             .values(status="cancelled", completed_at=self.now,
                                     row_version=Task.row_version + 1))
        for task in gone:
            self.emit("task.cancelled", task_id=task.id, node=task.node_id, step=task.title,
                      assignee_id=task.assignee_id, reason=reason,
                      due_at=task.due_at.isoformat() if task.due_at else None)

    def finish(self, status: str, **detail: Any) -> None:
        """End the run: completed (an end node) or cancelled."""
        if self.run.status != "running":
            return
        self.cancel_active(f"flow {status}")
        self.run.status, self.run.ended_at = status, self.now
        self.history(f"flow_{status}", **detail)
        self.emit(f"flow.{status}", **detail)
        self._queue.clear()
        if status == "completed" and self.run.parent_step_id is not None:
            self._resume_parent()

    def _resume_parent(self) -> None:
        from engine_flows.nodes import NODE_TYPES  # noqa: F401 - registry filled

        step = self.session.get(FlowStep, self.run.parent_step_id)
        if step is None or step.status != "active":
            return
        parent = self.session.get(FlowRun, step.run_id)
        if parent is None or parent.status != "running":
            return
        eng = engine_for(self.session, parent, actor=self.actor, now=self.now,
                         keyring=self.keyring)
        eng.leave(step, eng.spec.node(step.node_id), "completed")  # type: ignore[arg-type]
        eng.advance()

    def bump(self) -> None:
        """This operation's claim on the run: a stale copy fails instead of racing."""
        self.run.row_version += 1
        self.session.flush()


# -- history and outbox rows, written together ---------------------------------------------

_LOG = "qiao_flow_log"


_Logged = type[FlowHistory] | type[OutboxEvent]


def _log(session: Session, model: _Logged, values: dict[str, Any]) -> None:
    pending = session.info.get(_LOG)
    if pending is None:
        session.add(model(**values))
    else:
        pending[model].append(values)


@contextmanager
def logged_together(session: Session) -> Iterator[None]:
    """Keep the history rows and outbox events of an operation until it ends, then write
    them with one INSERT per table: the step and task rows in between are flushed for
    their ids, and each of those flushes would otherwise write the rows gathered so far
    (a completion handing over: three INSERTs of each instead of one). Nothing reads
    these rows' ids, so they go without RETURNING, which SQLite needs to insert several
    rows in one go (SQLAlchemy would otherwise insert them one by one to match ids to
    objects). Rows keep their order. On an error they are dropped with the transaction
    that rolls back. Nested blocks share the outer one's rows."""
    if _LOG in session.info:
        yield
        return
    # the store's own events (a record the operation updates) join the same list
    session.info[_LOG] = {FlowHistory: [], OutboxEvent: hold_events(session)}
    try:
        yield
        write_log(session)
        session.flush()
    finally:
        session.info.pop(_LOG, None)
        release_events(session)


def write_log(session: Session) -> None:
    """Write the rows kept so far; also before work that may write outbox events of its
    own at once (a service step's actions: a record created), so that the events stay in
    order. (A record update's event joins the kept ones: ``platform_core.outbox.add_event``.)"""
    pending = session.info.get(_LOG) or {}
    if any(pending.values()):
        session.flush()  # events other code added before these go first (no autoflush)
    history, events = pending.get(FlowHistory), pending.get(OutboxEvent)
    if history and events and session.get_bind().dialect.name == "postgresql":
        session.execute(_LOGGED_TOGETHER, {**_arrays("h", _HISTORY_COLUMNS, history),
                                           **_arrays("e", _EVENT_COLUMNS, events)})
        history.clear()
        events.clear()
    for model, rows in pending.items():
        if rows:
            # the table, not the mapped class: a plain executemany, without the ORM's
            # bulk machinery (which costs as much again as the INSERT itself)
            session.execute(insert(model.__table__), rows)
            rows.clear()


_HISTORY_COLUMNS = {"run_id": "BIGINT", "action": "TEXT", "node_id": "TEXT",
                    "task_id": "BIGINT", "actor_id": "BIGINT", "detail": "JSONB",
                    "at": "TIMESTAMPTZ"}
_EVENT_COLUMNS = {"event_type": "TEXT", "app": "TEXT", "form": "TEXT", "record_id": "BIGINT",
                  "payload": "JSONB", "depth": "INTEGER", "created_at": "TIMESTAMPTZ",
                  "available_at": "TIMESTAMPTZ"}


def _unnested(prefix: str, columns: dict[str, str]) -> str:
    """``unnest`` of one array parameter per column, in the rows' order; JSON arrives as
    text (the engine's own serialiser) and becomes JSONB row by row."""
    arrays = ", ".join(f"CAST(:{prefix}_{key} AS {'TEXT' if kind == 'JSONB' else kind}[])"
                       for key, kind in columns.items())
    values = ", ".join(f"r.{key}::JSONB" if kind == "JSONB" else f"r.{key}"
                       for key, kind in columns.items())
    return (f"SELECT {values} FROM unnest({arrays}) WITH ORDINALITY "
            f"AS r({', '.join(columns)}, n) ORDER BY r.n")


def _arrays(prefix: str, columns: dict[str, str], rows: list[dict[str, Any]]
            ) -> dict[str, list[Any]]:
    """``_unnested``'s parameters: per column, its values in the rows' order."""
    return {f"{prefix}_{key}": [dumps(row[key]) if kind == "JSONB" else row[key]
                                for row in rows] for key, kind in columns.items()}


# PostgreSQL: an operation's history rows and outbox events in one statement (the
# history's INSERT in a writing WITH), one round trip instead of two. One array per
# column, so the SQL text is the same for any number of rows and the driver prepares it.
_LOGGED_TOGETHER = text(
    f"WITH logged AS (INSERT INTO flow_history ({', '.join(_HISTORY_COLUMNS)}) "
    f"{_unnested('h', _HISTORY_COLUMNS)}) "
    f"INSERT INTO outbox ({', '.join(_EVENT_COLUMNS)}, attempts) "
    f"SELECT e.*, 0 FROM ({_unnested('e', _EVENT_COLUMNS)}) AS e")


def lock_run(session: Session, run_id: int) -> FlowRun:
    """The run, locked for this transaction (PostgreSQL ``FOR UPDATE``; SQLite's writer
    lock already serialises): operations on one run happen one after another."""
    from platform_core.errors import NotFound

    run = session.execute(select(FlowRun).where(FlowRun.id == run_id)
                          .with_for_update()).scalar_one_or_none()
    if run is None:
        raise NotFound(f"flow instance {run_id} does not exist", run_id=run_id)
    session.refresh(run)
    return run


@lru_cache(maxsize=256)
def _spec(spec_json: str) -> FlowSpec:
    return FlowSpec.model_validate_json(spec_json)


# (app, flow, version, published at) → spec: a stamp is unique per publication (an app
# deleted and installed again publishes its versions anew), as for forms' ``published``.
_BY_STAMP: dict[tuple[str, str, int, Any], FlowSpec] = {}
_SESSION_SPECS = "qiao_flow_specs"


def spec_of(session: Session, app: str, flow: str, version: int, *,
            stamp: Any = None) -> FlowSpec:
    """A published version's spec. Published versions never change: within one session
    a version is read once, and a caller that read the version's ``published_at``
    (``stamp``) with its own query finds it in this process's cache without another."""
    from engine_flows.definitions import version_row

    key = (app, flow, version)
    known = session.info.setdefault(_SESSION_SPECS, {})
    spec = known.get(key) or (_BY_STAMP.get((*key, stamp)) if stamp is not None else None)
    if spec is None:
        row = version_row(session, app, flow, version)
        spec = _spec(dumps(row.spec))
        if len(_BY_STAMP) > 1024:
            _BY_STAMP.clear()
        _BY_STAMP[(*key, row.published_at)] = spec
    known[key] = spec
    return spec


def engine_for(session: Session, run: FlowRun, *, actor: Actor, now: datetime,
               keyring: Keyring | None = None, stamp: Any = None) -> Engine:
    spec = spec_of(session, run.app, run.flow, run.version, stamp=stamp)
    return Engine(session, run, spec, actor=actor, now=now, keyring=keyring)


def check_running(run: FlowRun) -> None:
    if run.status != "running":
        raise Conflict(f"flow instance {run.id} is {run.status}", run_id=run.id,
                       run_status=run.status)
