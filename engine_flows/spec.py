"""``FlowSpec``: a flow as validated JSON — nodes, edges, and per node who acts, what they
may see and edit, how long they have.

Loading a spec runs the meta-schema (``META_SCHEMA``, JSON Schema 2020-12 generated from
these models) and builds the immutable models; the graph and its references (form
fields, roles, users, expressions) are checked by ``engine_flows.validation`` before a
version is published. Node types are public API (``user_task``, ``approval`` …): never
renamed, only deprecated.
"""

from __future__ import annotations

from functools import cache, cached_property
from typing import Any, Literal

from jsonschema import Draft202012Validator
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from engine_flows.problems import locate_all
from platform_core.errors import InvalidInput

FORMAT_VERSION = 1
KEY = "^[a-z][a-z0-9_]{0,62}$"
NODE_ID = "^[A-Za-z][A-Za-z0-9_]{0,63}$"
STRATEGIES = ("users", "role", "department_role", "field", "initiator", "initiator_manager",
              "round_robin", "least_loaded", "mapping")
OPERATIONS = ("complete", "approve", "reject", "return", "transfer", "delegate",
              "add_signer", "claim")


class FlowSpecError(InvalidInput):
    """A flow definition that does not validate; ``problems`` names each, with its node;
    given the definition (``raw``), ``located`` says the same per node / edge
    (``engine_flows.problems.locate``) for the designer to mark."""

    code = "invalid_flow"

    def __init__(self, problems: list[str], raw: Any = None):
        located = locate_all(problems, raw)
        super().__init__(f"the flow definition has {len(problems)} problem(s): "
                         + "; ".join(problems[:5]), problems=problems, located=located)
        self.problems, self.located = problems, located


class _Strict(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True)


class Assignee(_Strict):
    """Who gets a step's task. ``strategy`` picks how; the other keys are its settings:

    - ``users``: ``users`` (usernames); ``role``: every member of ``role``;
    - ``department_role``: members of ``role`` in the record's department;
    - ``field``: the user in record field ``field`` (``owner`` = the record's owner);
    - ``initiator`` / ``initiator_manager`` (the manager of the initiator's department);
    - ``round_robin`` / ``least_loaded``: one member of ``role`` in turn / with the fewest
      open tasks; with ``by_field``, only members of the department named by that record
      field (or by ``teams[value]``);
    - ``mapping``: record field ``field`` → a strategy per value (``map``), else ``default``.
    """

    strategy: Literal[STRATEGIES]  # type: ignore[valid-type]
    users: list[str] = Field(default_factory=list, max_length=100)
    role: str | None = Field(default=None, pattern=KEY)
    field: str | None = Field(default=None, pattern=KEY)
    by_field: str | None = Field(default=None, pattern=KEY)
    teams: dict[str, str] = Field(default_factory=dict)
    map: dict[str, Assignee] = Field(default_factory=dict)
    default: Assignee | None = None


class Sla(_Strict):
    """Time allowed at a step: ``hours`` or ``working_days`` (calendar with holidays),
    a reminder ``remind_before_hours`` before due, an escalation event
    ``escalate_after_hours`` past due."""

    hours: float | None = Field(default=None, gt=0, le=24 * 366)
    working_days: int | None = Field(default=None, gt=0, le=366)
    remind_before_hours: float | None = Field(default=None, gt=0)
    escalate_after_hours: float | None = Field(default=None, ge=0)


class StepFields(_Strict):
    """Field permissions at a step: what the assignee may edit (``editable``), only see
    (``readonly``) or not see (``hidden``), and what must be filled to complete it:
    ``required`` for every outcome that moves the work on (not a rejection), and
    ``required_on`` per outcome (outcome → fields, on top of ``required``) — a product
    must be chosen to submit a match, not to mark the customer lost."""

    editable: list[str] = Field(default_factory=list)
    readonly: list[str] = Field(default_factory=list)
    hidden: list[str] = Field(default_factory=list)
    required: list[str] = Field(default_factory=list)
    required_on: dict[str, list[str]] = Field(default_factory=dict, max_length=50)

    def required_for(self, outcome: str) -> list[str]:
        """The fields to fill before leaving the step with ``outcome``."""
        always = [] if outcome == "reject" else self.required
        return list(dict.fromkeys([*always, *self.required_on.get(outcome, [])]))


class Wait(_Strict):
    """A timer: wait ``minutes``/``hours``/``days``, or until record date field
    ``until_field`` plus ``offset_days``, at ``at`` (HH:MM, Asia/Shanghai)."""

    minutes: float | None = Field(default=None, gt=0)
    hours: float | None = Field(default=None, gt=0)
    days: float | None = Field(default=None, gt=0)
    until_field: str | None = Field(default=None, pattern=KEY)
    offset_days: int = 0
    at: str | None = Field(default=None, pattern=r"^([01]\d|2[0-3]):[0-5]\d$")


class Node(_Strict):
    """One node. Keys a type does not use must be absent (checked per type)."""

    id: str = Field(pattern=NODE_ID)
    type: str
    name: str | None = Field(default=None, max_length=100)
    assignee: Assignee | None = None
    sla: Sla | None = None
    fields: StepFields | None = None
    allowed_actions: list[Literal[OPERATIONS]] | None = None  # type: ignore[valid-type]
    # reject back to an earlier step: only to these (None: any earlier step it passed)
    reject_to: list[str] | None = Field(default=None, max_length=100)
    outcomes: list[str] | None = None  # user_task: the buttons (default ["submit"])
    mode: Literal["single", "any", "all", "sequential"] | None = None  # approval
    wait: Wait | None = None  # timer
    flow: str | None = Field(default=None, pattern=KEY)  # sub-flow: the flow to run
    record_field: str | None = Field(default=None, pattern=KEY)  # sub-flow: on a linked rec
    actions: list[dict[str, Any]] | None = None  # service step: rule actions, in order

    @property
    def label(self) -> str:
        return self.name or self.id


class Edge(_Strict):
    """``from`` → ``to``; ``on`` an outcome (approve, reject, a button), or a
    ``condition`` in the expression language (gateways), or the gateway's ``default``."""

    source: str = Field(alias="from")
    to: str
    on: str | None = None
    condition: str | None = None
    default: bool = False
    name: str | None = None


class PublicDocuments(_Strict):
    """The documents still missing, from a subtable of the form: its rows whose
    ``received`` column (a boolean) is not true, named by their ``item`` column."""

    field: str = Field(pattern=KEY)
    item: str = Field(default="item", pattern=KEY)
    received: str = Field(default="received", pattern=KEY)


class PublicPage(_Strict):
    """What the customer's progress page (``/p/{token}``) of a record shows — and nothing
    else: the record's ``title_field`` (default: the form's), ``name_field`` masked (a
    field, or ``relation.field`` of a linked record), the steps listed in ``steps`` in
    plain words (node id → text; other nodes are never shown), the documents still
    missing and the record owner's name and phone. Links live ``expires_days`` unless
    chosen otherwise."""

    title: str | None = Field(default=None, max_length=100)
    title_field: str | None = Field(default=None, pattern=KEY)
    name_field: str | None = Field(default=None, pattern=r"^[a-z][a-z0-9_]{0,62}"
                                                         r"(\.[a-z][a-z0-9_]{0,62})?$")
    steps: dict[str, str] = Field(min_length=1, max_length=200)
    documents: PublicDocuments | None = None
    contact: bool = True
    expires_days: int = Field(default=30, ge=1, le=366)


class Position(_Strict):
    """Where the flow designer draws a node (its top-left corner, in canvas pixels)."""

    x: float = Field(ge=-100_000, le=100_000)
    y: float = Field(ge=-100_000, le=100_000)


class FlowSpec(_Strict):
    """A whole flow: it runs over records of ``form``; with ``public``, a record's
    customer may follow it on a progress page (``engine_flows.progress_links``).
    ``layout`` is the drawing only (node id → position): the engine never reads it, a
    node without a position is laid out automatically, and versions that differ only
    in it run the same."""

    format_version: int = FORMAT_VERSION
    key: str = Field(pattern=KEY)
    name: str = Field(min_length=1, max_length=100)
    form: str = Field(pattern=KEY)
    description: str | None = None
    nodes: list[Node] = Field(min_length=1, max_length=500)
    edges: list[Edge] = Field(default_factory=list, max_length=2000)
    public: PublicPage | None = None
    layout: dict[str, Position] = Field(default_factory=dict, max_length=500)

    @cached_property
    def _by_id(self) -> dict[str, Node]:
        return {n.id: n for n in self.nodes}

    def node(self, node_id: str) -> Node | None:
        return self._by_id.get(node_id)

    def outgoing(self, node_id: str) -> list[Edge]:
        return [e for e in self.edges if e.source == node_id]

    def incoming(self, node_id: str) -> list[Edge]:
        return [e for e in self.edges if e.to == node_id]

    def downstream(self, node_id: str) -> frozenset[str]:
        """``node_id`` and every node a token leaving it can reach."""
        seen, todo = {node_id}, [node_id]
        while todo:
            for edge in self.outgoing(todo.pop()):
                if edge.to not in seen:
                    seen.add(edge.to)
                    todo.append(edge.to)
        return frozenset(seen)

    @property
    def start(self) -> Node:
        return next(n for n in self.nodes if n.type == "start")

    def dump(self) -> dict[str, Any]:
        return self.model_dump(by_alias=True, exclude_defaults=True, mode="json") | {
            "format_version": self.format_version}


@cache
def meta_schema() -> dict[str, Any]:
    """The JSON Schema every stored flow definition validates against."""
    schema = FlowSpec.model_json_schema(by_alias=True)
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "Qiao flow definition"
    return schema


def _where(path: Any) -> str:
    return ".".join(str(p) for p in path) or "flow"


def parse_flow(raw: Any) -> FlowSpec:
    """Validate ``raw`` against the meta-schema and build the spec (``FlowSpecError``
    lists every structural problem; the graph is checked by ``validation.check_flow``)."""
    validator = Draft202012Validator(meta_schema())
    problems = [f"{_where(e.absolute_path)}: {e.message}"
                for e in sorted(validator.iter_errors(raw), key=lambda e: list(e.path))]
    if problems:
        raise FlowSpecError(problems[:50], raw)
    if isinstance(raw, dict):
        raw = {**raw, "format_version": raw.get("format_version", FORMAT_VERSION)}
    try:
        return FlowSpec.model_validate(raw)
    except ValidationError as exc:  # what JSON Schema cannot say (none expected)
        raise FlowSpecError([f"{_where(e['loc'])}: {e['msg']}" for e in exc.errors()],
                            raw) from None
