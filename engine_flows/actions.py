"""Actions a service step runs (``SERVICE_ACTIONS``), in order, in the operation's
transaction.

The flow engine ships ``set_fields`` (values from expressions over the record). The rules
engine sits above this layer; it registers its own actions here at start-up, so a
service step can run any rule action without this package importing it. An action
``{"type": …}`` whose type is not registered is refused when the flow is published.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, ClassVar, Protocol

from engine_flows.runtime import write_log
from engine_forms import records as record_handler
from engine_forms.sealing import FieldCrypt
from platform_core.errors import InvalidInput
from platform_core.expressions import ExpressionError
from platform_core.registry import Registry, check_configs

if TYPE_CHECKING:
    from engine_flows.models import FlowStep
    from engine_flows.runtime import Engine
    from engine_flows.spec import Node


class ServiceAction(Protocol):
    """One kind of action: ``check`` at publish time, ``run`` in a service step."""

    def check(self, config: Mapping[str, Any], spec: Any) -> list[str]: ...

    def run(self, eng: Engine, config: Mapping[str, Any]) -> dict[str, Any]: ...


class SetFields:
    """``{"type": "set_fields", "values": {"field": "<expression>", …}}``: the record's
    fields set to the values of expressions over the record (validated like any write)."""

    key: ClassVar[str] = "set_fields"

    def check(self, config: Mapping[str, Any], spec: Any) -> list[str]:
        values = config.get("values")
        if not isinstance(values, dict) or not values:
            return ["set_fields needs 'values': {field: expression}"]
        return [f"set_fields: {key!r} is not a field of form {spec.form.key}"
                for key in values if spec.form.field(key) is None]

    def run(self, eng: Engine, config: Mapping[str, Any]) -> dict[str, Any]:
        from engine_flows.validation import expression_of

        data, changes = eng.data(for_update=True), {}
        for key, text in config["values"].items():
            formula = expression_of(eng.session, eng.run.app, eng.spec, str(text))
            changes[key] = formula.evaluate(data, eng.env())
        rec = eng.record()
        record_handler.update(eng.session, eng.pub, rec.id, _storable(changes),
                              expected_version=rec.row_version, actor=eng.actor,
                              crypt=FieldCrypt(eng.pub, eng.keyring))
        return {"fields": sorted(changes)}


def _storable(changes: Mapping[str, Any]) -> dict[str, Any]:
    from decimal import Decimal

    return {k: (str(v) if isinstance(v, Decimal) else
                v.isoformat() if hasattr(v, "isoformat") else v) for k, v in changes.items()}


SERVICE_ACTIONS: Registry[ServiceAction] = Registry("service step action")


def register_builtins() -> None:
    if SetFields.key not in SERVICE_ACTIONS:
        SERVICE_ACTIONS.register(SetFields.key, SetFields())


def check_actions(actions: list[dict[str, Any]], spec: Any) -> list[str]:
    return check_configs(SERVICE_ACTIONS, actions, spec)


def run_actions(eng: Engine, node: Node, step: FlowStep) -> None:
    for i, config in enumerate(node.actions or []):
        write_log(eng.session)  # the flow's events so far come before the action's own
        try:
            result = SERVICE_ACTIONS.get(config["type"]).run(eng, config)
        except ExpressionError as exc:
            raise InvalidInput(f"{node.label}: actions[{i}]: {exc.detail}",
                               node=node.id) from None
        # detail key ``kind``: ``action`` is the history row's own column
        eng.history("action_ran", node_id=node.id, step_id=step.id, kind=config["type"],
                    result=result)
