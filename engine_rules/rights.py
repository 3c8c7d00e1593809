"""The rights of a rule's ``run_as`` user, checked when the rule runs.

A rule with ``run_as: {"user": …}`` acts as that person, so it may only do what their
roles let them do *now*: a user who was disabled, removed, or lost a right since the rule
was saved stops the rule — its run fails with the reason in the run log (and a failed
action run, replayable once the right is back) and none of its actions write anything.

What each action needs, checked for every action before the first one runs:

- ``create_record``: ``create`` on the target form;
- ``update_record``: ``update`` on each target form, each target record inside the
  user's update scope; ``set_tags``: the same on the triggering record;
- every other action (messages, webhooks, to-dos, flows): ``read`` of the triggering
  record (inside the user's read scope), since it acts on or tells about that record.

A rule without ``run_as`` acts as the system, which these checks do not limit.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from sqlalchemy import select

from engine_forms.forms import published
from engine_forms.service import Caller, load_scoped
from platform_core.errors import DomainError
from platform_core.security.models import User
from platform_core.security.principal import Principal, load_principal

if TYPE_CHECKING:
    from engine_rules.context import RuleContext
    from engine_rules.spec import RuleSpec

Need = tuple[str, str, int | None]  # (form action, form, record id or None)


def _needs(ctx: RuleContext, config: Mapping[str, Any]) -> list[Need]:
    kind, record = config.get("type"), ctx.record
    if kind == "create_record":
        return [("create", str(config.get("form")), None)]
    if kind == "update_record":
        from engine_rules.actions import ACTIONS

        try:
            targets = ACTIONS.get("update_record").targets(ctx, config)
        except DomainError:
            return []  # no record: the action fails by itself, naming why
        return [("update", form, record_id) for form, record_id in targets]
    if record is None:
        return []
    if kind == "set_tags":
        return [("update", record.form, record.id)]
    return [("read", record.form, record.id)]


def _user(ctx: RuleContext, name: str) -> Principal | str:
    user = ctx.session.execute(select(User).where(User.username == name)
                               ).scalar_one_or_none()
    if user is None:
        return f"run_as: user {name!r} does not exist; the rule's actions did not run"
    if user.status != "active":
        return f"run_as: user {name!r} is {user.status}; the rule's actions did not run"
    return load_principal(ctx.session, user, via="rule")


def _refused(ctx: RuleContext, principal: Principal, need: Need) -> str | None:
    action, form, record_id = need
    app, name = ctx.fired.app, principal.username
    access = principal.access(app, form)
    if not access.allows(action):
        return (f"run_as: {name} may no longer {action} records of {app}.{form}; the "
                "rule's actions did not run")
    if record_id is None:
        return None
    try:
        load_scoped(ctx.session, Caller(principal, access, ctx.keyring),
                    published(ctx.session, app, form), record_id, action)
    except DomainError:
        return (f"run_as: record {record_id} of {app}.{form} is not one {name} may "
                f"{action} (outside their scope, or gone); the rule's actions did not run")
    return None


def refusal(ctx: RuleContext, spec: RuleSpec, done: Callable[[int], bool] = lambda _i: False
            ) -> tuple[int, str] | None:
    """``(action index, reason)`` of the first action the ``run_as`` user may not run now
    (``done(index)``: already run for this trigger, not checked again); None when all may
    run, or the rule acts as the system."""
    name = spec.run_as.user
    if not name:
        return None
    todo = [i for i in range(len(spec.actions)) if not done(i)]
    if not todo:
        return None
    principal = _user(ctx, name)
    if isinstance(principal, str):
        return todo[0], principal
    for index in todo:
        for need in _needs(ctx, spec.actions[index]):
            reason = _refused(ctx, principal, need)
            if reason:
                return index, reason
    return None
