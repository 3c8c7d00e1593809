"""The action registry (``ACTIONS``) and the actions that only write rows.

An action type is a small class: ``check(config, spec)`` at save time (a list of
problems), then either ``run(ctx, config)`` — rows written in the dispatcher's
transaction, a result for the run log — or, for an *outside* action (``external``),
``prepare(ctx, config)`` — the request to send, stored as a pending ``ActionRun`` — and
``send(request, sender)`` in the action sender. New types are added by registering a
class (``ACTIONS.register``), e.g. from another package at start-up.

Built in here: ``create_record``, ``update_record`` (the record, a linked one, or the
records linking to it), ``set_tags``, ``create_task`` (a to-do outside any flow),
``start_flow``, ``advance_flow``. Notifications and webhooks: ``engine_rules.notify``.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import timedelta
from decimal import Decimal
from typing import TYPE_CHECKING, Any, ClassVar

from sqlalchemy import bindparam, select
from sqlalchemy.orm import Session, aliased

from engine_forms import records as record_handler
from engine_forms.forms import published
from engine_forms.sealing import FieldCrypt
from engine_rules import action_settings as forms_of
from engine_rules.context import held_copy
from platform_core.errors import InvalidInput
from platform_core.models import Record
from platform_core.registry import Registry, check_configs
from platform_core.store import links_to

if TYPE_CHECKING:
    from engine_rules.context import RuleContext


def lock_records(session: Session, ids: list[int]) -> dict[int, Record]:
    """Hold the rows of the records an action is about to change (PostgreSQL ``FOR
    UPDATE``, in id order; SQLite's one writer needs none) and read them as they are
    then: a person's edit committing between the rule's read and its write would
    otherwise make the rule's write a version conflict — a failed run, an effect lost.
    Now the edit goes first and the rule changes the record as the edit left it.

    One statement reads the rows' versions; a record the session already holds at that
    version (the rule's own read of the trigger, the copy the last update wrote) is
    current and is not read again — only the others are (a second statement)."""
    return _lock(session, ids)[0]


def lock_records_reading(session: Session, ids: list[int], other: int
                         ) -> tuple[dict[int, Record], int | None]:
    """``lock_records``, and in the same statement the row version of record ``other``
    as it is now (not locked); None when it is gone."""
    return _lock(session, ids, other)


def _lock(session: Session, ids: list[int], other: int | None = None
          ) -> tuple[dict[int, Record], int | None]:
    if not ids:
        return {}, None if other is None else session.execute(
            _VERSION_OF, {"other": other}).scalar()
    rows = session.execute(_VERSIONS if other is None else _VERSIONS_AND_OTHER,
                           {"ids": sorted(set(ids)), "other": other}).all()
    held = {row[0]: rec for row in rows if (rec := held_copy(session, row[0], row[1]))
            is not None}
    stale = [row[0] for row in rows if row[0] not in held]
    if stale:
        held.update({rec.id: rec for rec in session.execute(
            select(Record).where(Record.id.in_(stale))
            .execution_options(populate_existing=True)).scalars()})
    return held, rows[0][2] if other is not None and rows else None


_VERSIONS = (select(Record.id, Record.row_version)
             .where(Record.id.in_(bindparam("ids", expanding=True))).order_by(Record.id)
             .with_for_update())
_OTHER = aliased(Record)
_VERSION_OF = select(_OTHER.row_version).where(_OTHER.id == bindparam("other"))
# the other record's version beside the locked rows: FOR UPDATE OF records does not
# reach into the scalar sub-select
_VERSIONS_AND_OTHER = (select(Record.id, Record.row_version, _VERSION_OF.scalar_subquery())
                       .where(Record.id.in_(bindparam("ids", expanding=True)))
                       .order_by(Record.id).with_for_update(of=Record.__table__))


def hold(ctx: RuleContext, ids: list[int]) -> dict[int, Record]:
    """``lock_records`` for an action of ``ctx``; the triggering record is read as it is
    now too (from the same statement when it is one of ``ids``)."""
    held = lock_records(ctx.session, ids)
    if ctx.record is not None and ctx.record.id in held:
        ctx.reopen()
    else:
        ctx.refresh()
    return held


class Action:
    """Base of every action type."""

    key: ClassVar[str]
    external: ClassVar[bool] = False
    settings: ClassVar[type[Any] | None] = None  # a pydantic model: the editor's form

    def check(self, config: Mapping[str, Any], spec: Any) -> list[str]:  # noqa: ARG002
        return []

    def contained(self, config: Mapping[str, Any]) -> bool:  # noqa: ARG002
        """Whether a failure of this action can leave nothing written (it writes only as
        its very last step): it then runs without a savepoint around it."""
        return False

    def run(self, ctx: RuleContext, config: Mapping[str, Any]) -> dict[str, Any]:
        raise NotImplementedError

    def preview(self, ctx: RuleContext, config: Mapping[str, Any]) -> dict[str, Any]:
        """What the action would do, without doing it (a rule's test run)."""
        return {"would": self.key, **self._values_preview(ctx, config)}

    def _values_preview(self, ctx: RuleContext, config: Mapping[str, Any]) -> dict[str, Any]:
        values = config.get("values")
        return {"values": evaluate_values(ctx, values)} if isinstance(values, dict) else {}


ACTIONS: Registry[Action] = Registry("rule action")


def storable(value: Any) -> Any:
    if isinstance(value, Decimal):
        return str(value)
    return value.isoformat() if hasattr(value, "isoformat") else value


def evaluate_values(ctx: RuleContext, values: Mapping[str, Any]) -> dict[str, Any]:
    """``{field: expression}`` → ``{field: value}`` over the triggering record."""
    return {key: storable(ctx.evaluate(str(text))) for key, text in values.items()}


def _needs(config: Mapping[str, Any], *keys: str) -> list[str]:
    return [f"{config.get('type')} needs {k!r}" for k in keys if not config.get(k)]


class CreateRecord(Action):
    """``{"type": "create_record", "form": "follow_up", "values": {"customer":
    "customer", "note": "\\"到期回访\\""}}``"""

    key = "create_record"
    settings = forms_of.CreateRecordSettings

    def check(self, config: Mapping[str, Any], spec: Any) -> list[str]:
        return _needs(config, "form", "values")

    def run(self, ctx: RuleContext, config: Mapping[str, Any]) -> dict[str, Any]:
        pub = published(ctx.session, ctx.fired.app, config["form"])
        rec = record_handler.create(ctx.session, pub, evaluate_values(ctx, config["values"]),
                                    actor=ctx.actor, crypt=FieldCrypt(pub, ctx.keyring))
        return {"record_id": rec.id, "form": config["form"]}


class UpdateRecord(Action):
    """``{"type": "update_record", "values": {...}}`` — the triggering record; with
    ``"via": "customer"`` the record that relation field links to; with ``"related":
    {"form": "loan_case", "via": "customer"}`` every record of that form linking here."""

    key = "update_record"
    settings = forms_of.UpdateRecordSettings

    def check(self, config: Mapping[str, Any], spec: Any) -> list[str]:
        problems = _needs(config, "values")
        related = config.get("related")
        if related is not None and not (isinstance(related, dict) and related.get("form")):
            problems.append("update_record: 'related' needs the linking 'form' (and 'via', "
                            "its relation field)")
        return problems

    def contained(self, config: Mapping[str, Any]) -> bool:
        """One record (the trigger's, or the one ``via`` links to): the values, the
        validation, uniqueness and links are all checked before its first write, so a
        failure leaves nothing written. ``related`` changes many, one after another."""
        return not isinstance(config.get("related"), dict)

    def targets(self, ctx: RuleContext, config: Mapping[str, Any]) -> list[tuple[str, int]]:
        if ctx.record is None:
            raise InvalidInput("update_record needs a record: this trigger has none")
        related = config.get("related")
        if isinstance(related, dict):
            linking = links_to(ctx.session, ctx.record.id, form=related["form"],
                               field=related.get("via"))
            return [(related["form"], rec.id) for _field, rec in linking]
        via = config.get("via")
        if via:
            linked = ctx.data.get(via)
            target = ctx.pub.spec.field(via) if ctx.pub else None
            if not isinstance(linked, int) or target is None:
                return []
            return [(target.config["target"], linked)]
        return [(ctx.record.form, ctx.record.id)]

    def run(self, ctx: RuleContext, config: Mapping[str, Any]) -> dict[str, Any]:
        if config.get("via") and ctx.record is not None:
            targets, held = self._linked_now(ctx, config)
        else:
            targets = self.targets(ctx, config)
            # values from the records as they are now: never undo a later change
            held = hold(ctx, [record_id for _form, record_id in targets])
        values, done = evaluate_values(ctx, config["values"]), []
        for form, record_id in targets:
            pub = published(ctx.session, ctx.fired.app, form)
            rec = held.get(record_id) or record_handler.load_record(ctx.session, pub,
                                                                     record_id)
            record_handler.update(ctx.session, pub, record_id, values,
                                  expected_version=rec.row_version, actor=ctx.actor,
                                  crypt=FieldCrypt(pub, ctx.keyring), current=rec)
            done.append(record_id)
        ctx.reopen()  # the update re-read the record into the session's copy
        return {"records": done, "fields": sorted(values)}

    def _linked_now(self, ctx: RuleContext, config: Mapping[str, Any]
                    ) -> tuple[list[tuple[str, int]], dict[int, Record]]:
        """The record the trigger links to ``via`` as the link is now, locked, and the
        trigger as it is now. The link is taken from the session's copy of the trigger
        and locked in the statement that reads the trigger's version: when that copy
        is current (nearly always), one statement does it all; when the trigger has
        moved since, it is read again, and a link that changed meanwhile is locked
        too."""
        ctx.reopen()  # the session's copy, not the values as of the event
        targets = self.targets(ctx, config)
        held, version = lock_records_reading(
            ctx.session, [record_id for _form, record_id in targets], ctx.record.id)
        if version is None or held_copy(ctx.session, ctx.record.id, version) is None:
            ctx.refresh()
            moved = self.targets(ctx, config)
            if moved != targets:
                targets = moved
                held = lock_records(ctx.session, [record_id for _form, record_id in moved])
        return targets, held


class SetTags(Action):
    """``{"type": "set_tags", "field": "tags", "add": ["高价值"], "remove": ["沉睡"]}`` on
    a multi-select field of the record."""

    key = "set_tags"
    settings = forms_of.SetTagsSettings

    def check(self, config: Mapping[str, Any], spec: Any) -> list[str]:
        problems = _needs(config, "field")
        if not (config.get("add") or config.get("remove")):
            problems.append("set_tags needs 'add' or 'remove'")
        return problems

    def run(self, ctx: RuleContext, config: Mapping[str, Any]) -> dict[str, Any]:
        if ctx.record is None or ctx.pub is None:
            raise InvalidInput("set_tags needs a record: this trigger has none")
        hold(ctx, [ctx.record.id])  # the tags it has now, not at the event: keep later changes
        key = config["field"]
        current = list(ctx.data.get(key) or [])
        tags = [t for t in current if t not in set(config.get("remove") or [])]
        tags += [t for t in config.get("add") or [] if t not in tags]
        if tags != current:
            record_handler.update(ctx.session, ctx.pub, ctx.record.id, {key: tags},
                                  expected_version=ctx.record.row_version, actor=ctx.actor,
                                  crypt=FieldCrypt(ctx.pub, ctx.keyring))
            ctx.reopen()  # the update re-read the record into the session's copy
        return {"field": key, "tags": tags, "changed": tags != current}

    def preview(self, ctx: RuleContext, config: Mapping[str, Any]) -> dict[str, Any]:
        return {"would": self.key, "field": config["field"], "add": config.get("add"),
                "remove": config.get("remove")}


class CreateTask(Action):
    """``{"type": "create_task", "title": "到期回访", "assignee": {"field": "owner"},
    "due_in_days": 7}`` — a to-do in the assignee's inbox, about the record. The
    assignee is any flow assignment strategy (``{"field": …}`` is short for
    ``{"strategy": "field", "field": …}``)."""

    key = "create_task"
    settings = forms_of.CreateTaskSettings

    def check(self, config: Mapping[str, Any], spec: Any) -> list[str]:
        from engine_rules.notify import template_problems

        problems = _needs(config, "title", "assignee")
        if config.get("title"):
            problems += template_problems(config["title"], "create_task title")
        assignee = config.get("assignee")
        if assignee is not None:
            problems += _assignee_problems(assignee)
        days = config.get("due_in_days")
        if days is not None and not (isinstance(days, int | float) and 0 < days <= 3650):
            problems.append("create_task: 'due_in_days' is a number of days, 1 to 3650")
        return problems

    def run(self, ctx: RuleContext, config: Mapping[str, Any]) -> dict[str, Any]:
        from engine_flows.todo import create_todo
        from engine_rules.notify import render

        if ctx.record is None:
            raise InvalidInput("create_task needs a record: this trigger has none")
        due = ctx.now + timedelta(days=config["due_in_days"]) \
            if config.get("due_in_days") else None
        title = render(str(config["title"]), ctx.scope())[:200] or "待办"
        task = create_todo(ctx.session, app=ctx.fired.app, record=ctx.record,
                           data=ctx.data, title=title,
                           assignee=_assignee(config["assignee"]), due_at=due,
                           actor=ctx.actor, now=ctx.now)
        return {"task_id": task.id, "assignee_id": task.assignee_id}


def _assignee(raw: Mapping[str, Any]) -> dict[str, Any]:
    return dict(raw) if "strategy" in raw else {"strategy": "field", **raw}


def _assignee_problems(raw: Any) -> list[str]:
    from pydantic import ValidationError

    from engine_flows.spec import Assignee

    if not isinstance(raw, dict):
        return ["create_task: 'assignee' is an assignment strategy object"]
    try:
        Assignee.model_validate(_assignee(raw))
    except ValidationError as exc:
        return [f"create_task assignee: {'.'.join(str(p) for p in e['loc'])}: {e['msg']}"
                for e in exc.errors()][:5]
    return []


class StartFlow(Action):
    """``{"type": "start_flow", "flow": "loan_service"}`` over the triggering record."""

    key = "start_flow"
    settings = forms_of.StartFlowSettings

    def check(self, config: Mapping[str, Any], spec: Any) -> list[str]:
        return _needs(config, "flow")

    def run(self, ctx: RuleContext, config: Mapping[str, Any]) -> dict[str, Any]:
        from engine_flows.instances import start_run

        if ctx.record is None:
            raise InvalidInput("start_flow needs a record: this trigger has none")
        run = start_run(ctx.session, app=ctx.fired.app, flow=config["flow"],
                        record_id=ctx.record.id, actor=ctx.actor, now=ctx.now,
                        keyring=ctx.keyring)
        return {"run_id": run.id}


class AdvanceFlow(Action):
    """``{"type": "advance_flow", "flow": "loan_service", "step": "docs", "outcome":
    "submit"}`` — complete the open task(s) of that step of the record's running instance
    as the system (e.g. "all documents collected → on to risk review")."""

    key = "advance_flow"
    settings = forms_of.AdvanceFlowSettings

    def check(self, config: Mapping[str, Any], spec: Any) -> list[str]:
        return _needs(config, "flow", "step")

    def run(self, ctx: RuleContext, config: Mapping[str, Any]) -> dict[str, Any]:
        from engine_flows.todo import advance_step

        if ctx.record is None:
            raise InvalidInput("advance_flow needs a record: this trigger has none")
        done = advance_step(ctx.session, app=ctx.fired.app, flow=config["flow"],
                            record_id=ctx.record.id, step=config["step"],
                            outcome=config.get("outcome"), actor=ctx.actor, now=ctx.now,
                            keyring=ctx.keyring)
        return {"tasks": done}


def register_builtins() -> None:
    from engine_rules import notify

    for cls in (CreateRecord, UpdateRecord, SetTags, CreateTask, StartFlow, AdvanceFlow,
                notify.Notify, notify.CallWebhook):
        if cls.key not in ACTIONS:
            ACTIONS.register(cls.key, cls())


def check_actions(actions: list[Mapping[str, Any]], spec: Any) -> list[str]:
    return check_configs(ACTIONS, actions, spec)
