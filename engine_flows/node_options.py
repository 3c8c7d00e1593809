"""What the flow designer may set on each node type, read from the engine's own registry
and spec models (never a second list kept by hand): a new node type, strategy, operation
or service action shows up in the designer's palette and property panel by itself.

``node_options()`` answers, per registered node type, the keys it accepts (``keys`` of
``NODE_TYPES``), whether people act on it, its fixed outcomes (a user task's are its
``outcomes``), and, once for all, the assignee strategies, operations, approval modes,
SLA / step-field / timer settings (field name → JSON type, from the pydantic models) and
the service-step action types registered in ``SERVICE_ACTIONS``.
"""

from __future__ import annotations

from typing import Any, get_args

from engine_flows.actions import SERVICE_ACTIONS
from engine_flows.nodes import BASE_KEYS, NODE_TYPES
from engine_flows.spec import OPERATIONS, STRATEGIES, Node, Sla, StepFields, Wait


def _settings(model: Any) -> dict[str, str]:
    """Field name → its JSON type (``number``, ``integer``, ``string``, ``array`` …)."""
    schema = model.model_json_schema()
    out = {}
    for name, prop in schema["properties"].items():
        kinds = [p.get("type") for p in prop.get("anyOf", [prop]) if p.get("type") != "null"]
        out[name] = str(kinds[0] if kinds else "string")
    return out


def _modes() -> list[str]:
    annotation = Node.model_fields["mode"].annotation
    literal = next(a for a in get_args(annotation) if get_args(a))
    return list(get_args(literal))


def node_options() -> dict[str, Any]:
    """The option description the designer builds its palette and panels from."""
    types = {}
    for key, kind in NODE_TYPES.items():
        probe = Node(id="probe", type=key)
        types[key] = {"keys": sorted(BASE_KEYS | kind.keys), "user": kind.user,
                      "waits": kind.waits,
                      "outcomes": None if "outcomes" in kind.keys else kind.outcomes(probe)}
    return {"types": types, "strategies": list(STRATEGIES), "operations": list(OPERATIONS),
            "modes": _modes(), "sla": _settings(Sla), "fields": _settings(StepFields),
            "wait": _settings(Wait), "service_actions": list(SERVICE_ACTIONS)}
