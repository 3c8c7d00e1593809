"""``RuleSpec``: an if-then automation as validated JSON — a trigger, a condition in the
expression language, ordered actions, an enabled flag and who it runs as.

Trigger and action types are public API (``record.updated``, ``date_relative``,
``create_task``, ``notify`` …): never renamed, only deprecated. Action settings are
checked by each action type (``engine_rules.actions``); the meta-schema
(``GET /api/v1/rules/meta-schema``) fixes the envelope and the triggers.
"""

from __future__ import annotations

from functools import cache
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from platform_core.specs import SpecError, parse_spec

KEY = "^[a-z][a-z0-9_]{0,62}$"
RECORD_TRIGGERS = ("record.created", "record.updated", "record.deleted")
FLOW_TRIGGERS = ("flow.step_entered", "task.completed", "task.overdue", "flow.completed")
TRIGGERS = (*RECORD_TRIGGERS, *FLOW_TRIGGERS, "schedule", "date_relative", "manual")
MAX_ACTIONS = 20


class RuleSpecError(SpecError):
    """A rule that does not validate; ``problems`` names each one."""

    code, what = "invalid_rule", "rule"


class _Strict(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Trigger(_Strict):
    """When a rule runs:

    - ``record.created`` / ``record.updated`` / ``record.deleted`` of ``form``; an update
      only when one of ``fields`` really changed (``OLD.field`` holds the old values);
    - ``flow.step_entered`` (``flow``, optional ``step``), ``task.completed`` (``flow``,
      optional ``step``, ``outcome``), ``task.overdue`` (optional ``flow``/``step``;
      ``overdue_days``: N days after due instead of at due), ``flow.completed``;
    - ``schedule``: a ``cron`` line (Asia/Shanghai), optionally once per record of
      ``form`` matching ``filter``;
    - ``date_relative``: date ``field`` of ``form`` plus ``offset_days`` (−30: thirty days
      before), at ``at`` (HH:MM, Asia/Shanghai).
    - ``manual``: a person runs it on one record of ``form`` from its page (the record
      view's "send a message" action): a templated SMS/WeCom message, say.
    """

    type: Literal[TRIGGERS]  # type: ignore[valid-type]
    form: str | None = Field(default=None, pattern=KEY)
    fields: list[str] = Field(default_factory=list, max_length=50)
    flow: str | None = Field(default=None, pattern=KEY)
    step: str | None = Field(default=None, max_length=64)
    outcome: str | None = Field(default=None, max_length=64)
    overdue_days: int = Field(default=0, ge=0, le=3650)
    cron: str | None = Field(default=None, max_length=100)
    filter: dict[str, Any] | None = None
    field: str | None = Field(default=None, pattern=KEY)
    offset_days: int = Field(default=0, ge=-3650, le=3650)
    at: str = Field(default="09:00", pattern=r"^([01]\d|2[0-3]):[0-5]\d$")


class RunAs(_Strict):
    """Whose rights and name the actions carry: the system (default) or a user."""

    user: str | None = Field(default=None, max_length=64)


class RuleSpec(_Strict):
    """A whole rule."""

    key: str = Field(pattern=KEY)
    name: str = Field(min_length=1, max_length=100)
    description: str | None = Field(default=None, max_length=2000)
    enabled: bool = True
    trigger: Trigger
    condition: str | None = Field(default=None, max_length=4000)
    actions: list[dict[str, Any]] = Field(min_length=1, max_length=MAX_ACTIONS)
    run_as: RunAs = Field(default_factory=RunAs)

    def dump(self) -> dict[str, Any]:
        return self.model_dump(mode="json", exclude_defaults=True) | {
            "enabled": self.enabled}


ACTION_ENVELOPE = {"type": "object", "required": ["type"],
                   "properties": {"type": {"type": "string", "pattern": KEY}}}


@cache
def meta_schema() -> dict[str, Any]:
    """The JSON Schema every stored rule validates against (actions: their envelope;
    each action type checks its own settings)."""
    schema = RuleSpec.model_json_schema()
    schema["properties"]["actions"]["items"] = ACTION_ENVELOPE
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "Qiao rule"
    return schema


def parse_rule(raw: Any) -> RuleSpec:
    """Validate ``raw`` against the meta-schema and build the spec."""
    return parse_spec(RuleSpec, meta_schema(), raw, RuleSpecError, "rule")
