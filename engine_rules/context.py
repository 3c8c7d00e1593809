"""What a rule sees when it runs: the trigger (``Fired``), the record as it is now, its
values before an update (``OLD.field``), the task and flow of a flow event — and the
expression schema and environment to evaluate conditions and values over them.

``OLD`` is a relation of the form onto itself whose "record" is the old values: the
expression language follows it like ``customer.city``, in Python only.

The record is the one of the event (its data at the event's ``row_version``): the
condition and the messages describe what happened, even when the dispatcher comes to
the event after later changes. Actions that write to records (``update_record``,
``set_tags``) re-read it first (``refresh``) and compute from the record as it is now,
so they never undo a change made after the event.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import bindparam, inspect, select
from sqlalchemy.orm import Session

from engine_forms.expr import schema_of
from engine_forms.forms import Published, published, resolver
from engine_forms.sealing import FieldCrypt
from platform_core.errors import InvalidInput
from platform_core.expressions import ExprSchema, Formula
from platform_core.expressions.schema import OLD
from platform_core.expressions.values import Env
from platform_core.models import Record, RecordHistory
from platform_core.security.crypto import Keyring
from platform_core.store import Actor

OLD_ID = -1  # the id ``OLD`` points at; no record has it


def as_of(session: Session, record: Record, version: Any) -> dict[str, Any]:
    """The record's data as it was at ``row_version`` ``version`` (the event's): later
    changes undone from its history, so a rule handling an event after the record moved
    on sees the record of that event (three quick updates are three different events)."""
    data = dict(record.data)
    if not isinstance(version, int) or version >= record.row_version:
        return data
    later = session.execute(select(RecordHistory.diff).where(
        RecordHistory.record_id == record.id, RecordHistory.row_version > version)
        .order_by(RecordHistory.row_version.desc(), RecordHistory.id.desc())).scalars()
    for diff in later:
        for key, pair in (diff or {}).items():
            if not (isinstance(pair, list) and pair):
                continue
            if pair[0] is None:
                data.pop(key, None)
            else:
                data[key] = pair[0]
    return data


class _Lazy:
    """A template value computed the first time it is shown (``{{ progress_url }}``
    creates a link only in the messages that use it)."""

    def __init__(self, make: Any):
        self._make, self._value = make, None

    def __str__(self) -> str:
        if self._value is None:
            self._value = self._make()
        return self._value


_VERSION = select(Record.row_version).where(Record.id == bindparam("id"))


def held_copy(session: Session, record_id: int, version: int) -> Record | None:
    """The session's copy of the record when it is loaded and at ``version`` (the row
    version moves with every write of the record: same version, same values)."""
    rec = session.identity_map.get(Session.identity_key(Record, record_id))
    if rec is None:
        return None
    state = inspect(rec)
    if state.modified or state.expired_attributes & {"data", "row_version"}:
        return None
    return rec if rec.row_version == version else None


@dataclass(frozen=True)
class Fired:
    """One reason to run rules: an outbox event, a date coming due, a cron tick.

    ``key`` identifies it for good (``evt:42``, ``date:…``): with the rule and the action
    index it makes each action run's idempotency key.
    """

    key: str
    event_type: str
    app: str
    form: str | None = None
    record_id: int | None = None
    payload: Mapping[str, Any] = field(default_factory=dict)
    depth: int = 0


@dataclass
class RuleContext:
    """One rule's run over one trigger (see the module docstring)."""

    session: Session
    fired: Fired
    actor: Actor
    now: datetime
    keyring: Keyring | None = None
    test: bool = False
    pub: Published | None = None
    record: Record | None = None
    data: dict[str, Any] = field(default_factory=dict)
    old: dict[str, Any] | None = None
    _formulas: dict[str, Formula] = field(default_factory=dict)

    @classmethod
    def load(cls, session: Session, fired: Fired, *, actor: Actor, now: datetime,
             keyring: Keyring | None = None, test: bool = False,
             like: RuleContext | None = None) -> RuleContext:
        """The context of one rule's run; ``like``: another rule's context of the same
        trigger, loaded before any action ran — its reads (form, record, values as of
        the event, old values) are taken over instead of read again."""
        ctx = cls(session, fired, actor, now, keyring, test)
        if like is not None:
            ctx.pub, ctx.record, ctx.data = like.pub, like.record, dict(like.data)
            ctx.old = None if like.old is None else dict(like.old)
            return ctx
        if fired.form:
            ctx.pub = published(session, fired.app, fired.form)
        if fired.record_id is not None:
            record = session.get(Record, fired.record_id)
            # only a record of the trigger's app and form (a test run names any id)
            if record is not None and record.app == fired.app and (
                    fired.form is None or record.form == fired.form):
                ctx.record = record
            if ctx.record is not None and ctx.pub is not None:
                crypt = FieldCrypt(ctx.pub, keyring)
                data = as_of(session, ctx.record, fired.payload.get("row_version"))
                ctx.data = crypt.open(data)
                changes = fired.payload.get("changes")
                if isinstance(changes, dict) and fired.event_type == "record.updated":
                    ctx.old = crypt.open(data | {k: v[0] for k, v in changes.items()
                                                 if isinstance(v, list) and v})
        return ctx

    def refresh(self) -> None:
        """The record as it is now (an earlier action, or a person's edit committed since,
        may have changed it): its row version is read, and the whole row only when the
        session's copy is not at that version."""
        if self.record is not None and self.pub is not None:
            version = self.session.execute(_VERSION, {"id": self.record.id}).scalar()
            if version is None or held_copy(self.session, self.record.id, version) is None:
                self.session.refresh(self.record)
            self.reopen()

    def reopen(self) -> None:
        """``data`` from the session's copy of the record, which was just read again (by
        ``lock_records``, or by the store's update, which reads the record it wrote)."""
        if self.record is not None and self.pub is not None:
            self.data = FieldCrypt(self.pub, self.keyring).open(self.record.data)

    # -- expressions ---------------------------------------------------------------------

    def schema(self) -> ExprSchema:
        if self.pub is None:
            return ExprSchema.of({}, app=self.fired.app)
        kinds = {f.key: self.pub.compiled.kinds[f.key] for f in self.pub.spec.fields
                 if f.type == "formula" and f.key in self.pub.compiled.kinds}
        base = schema_of(self.pub.spec, kinds, app=self.fired.app,
                         resolve=resolver(self.session, self.fired.app))
        return ExprSchema(base.fields, tuple(sorted({*base.relations, (OLD, base)})),
                          base.subtables, base.app, base.form)

    def formula(self, text: str) -> Formula:
        if text not in self._formulas:
            self._formulas[text] = _shared_formula(self, text)
        return self._formulas[text]

    def evaluate(self, text: str) -> Any:
        old = self.old if self.old is not None else self.data
        session = self.session

        def follow(record_id: int) -> Mapping[str, Any] | None:
            if record_id == OLD_ID:
                return old
            # from the session when held there: the dispatcher reads a batch's related
            # records in one statement (``RulesHandler.prepare``), and the store's writes
            # refresh the session's copy, so an earlier action's change is seen
            record = session.get(Record, record_id)
            return record.data if record is not None and record.deleted_at is None else None

        return self.formula(text).evaluate({**self.data, OLD: OLD_ID}, Env(related=follow))

    # -- templates -----------------------------------------------------------------------

    def progress_url(self) -> str:
        """The URL of the record's customer progress page: its live link, or a new one
        (``engine_flows.progress_links.live_link``); a test run makes none."""
        from engine_flows import progress_links

        if self.record is None:
            raise InvalidInput("progress_url: the rule's trigger has no record")
        site = progress_links.bound_site()
        if self.test:
            return f"{site.base_url}/p/…"
        link = progress_links.live_link(self.session, app=self.record.app,
                                        form=self.record.form, record_id=self.record.id,
                                        actor=self.actor, now=self.now)
        return site.url(link.nonce)

    def scope(self) -> dict[str, Any]:
        """What message templates see: ``record``, ``old``, ``event``, ``task``, ``flow``,
        ``step`` and ``progress_url`` (made only when a template shows it)."""
        payload = dict(self.fired.payload)
        return {"progress_url": _Lazy(self.progress_url),
                "record": dict(self.data), "old": dict(self.old or {}), "event": payload,
                "app": self.fired.app, "form": self.fired.form,
                "record_id": self.fired.record_id,
                "task": {"id": payload.get("task_id"), "title": payload.get("step"),
                         "outcome": payload.get("outcome"),
                         "due_at": payload.get("due_at"),
                         "overdue_days": payload.get("overdue_days")},
                "flow": {"key": payload.get("flow"), "run_id": payload.get("run_id")},
                "step": {"id": payload.get("node"), "name": payload.get("step")}}


# (id of the compiled form, app, text) → (that form, the formula): a condition is parsed
# and checked once per published version of its form, not once per event. A form
# published again (or a relation target of it) is a new ``Published``: a new key; the
# form kept in the value keeps its id from being reused while the entry lives.
_FORMULAS: dict[tuple[int, str, str], tuple[Any, Formula]] = {}


def _shared_formula(ctx: RuleContext, text: str) -> Formula:
    if ctx.pub is None:
        return Formula.build(text, ctx.schema())
    key = (id(ctx.pub), ctx.fired.app, text)
    hit = _FORMULAS.get(key)
    if hit is not None and hit[0] is ctx.pub:
        return hit[1]
    formula = Formula.build(text, ctx.schema())
    if len(_FORMULAS) > 4096:
        _FORMULAS.clear()
    _FORMULAS[key] = (ctx.pub, formula)
    return formula
