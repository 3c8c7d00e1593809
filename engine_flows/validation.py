"""Publish-time checks of a flow: the graph and everything it refers to.

``check_flow`` returns every problem, each naming its node: one start; known node types
carrying only their own keys; edges between existing nodes; every node reachable from
the start and every path able to reach an end; gateways with conditions that type-check
as TRUE/FALSE over the form and exactly one default edge; each outcome of a user step
with a way on; parallel splits joined by one join with an edge from each branch;
assignees resolvable (roles, users, fields exist); step fields and timer fields are
fields of the form; sub-flows exist over the right form.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from sqlalchemy.orm import Session

from engine_flows.assign import check_assignee
from engine_flows.nodes import BASE_KEYS, NODE_TYPES
from engine_flows.spec import FlowSpec, Node
from engine_forms.expr import schema_of
from engine_forms.forms import Published, published
from platform_core.errors import DomainError
from platform_core.expressions import ExpressionError, Formula


@dataclass(frozen=True)
class FlowContext:
    """What a flow is checked against: its spec and the published form it runs over."""

    flow: FlowSpec
    form: Any  # FormSpec
    pub: Published


# compiled conditions per published form version: id(compiled form) → (it, {text: formula})
_FORMULAS: dict[int, tuple[Any, dict[str, Formula]]] = {}


def expression_of(session: Session, app: str, spec: FlowSpec, text: str) -> Formula:
    """``text`` checked against the flow's form (latest published version), cached."""
    pub = published(session, app, spec.form)
    slot = _FORMULAS.get(id(pub.compiled))
    if slot is None or slot[0] is not pub.compiled:
        if len(_FORMULAS) > 256:
            _FORMULAS.clear()
        slot = _FORMULAS[id(pub.compiled)] = (pub.compiled, {})
    formula = slot[1].get(text)
    if formula is None:
        kinds = {f.key: pub.compiled.kinds[f.key] for f in pub.spec.fields
                 if f.type == "formula" and f.key in pub.compiled.kinds}
        formula = slot[1][text] = Formula.build(text, schema_of(pub.spec, kinds, app=app))
    return formula


def condition_of(session: Session, app: str, spec: FlowSpec, text: str) -> Formula:
    return expression_of(session, app, spec, text)


def _reachable(spec: FlowSpec, start: str, forward: bool = True) -> set[str]:
    seen, todo = {start}, [start]
    while todo:
        node = todo.pop()
        edges = spec.outgoing(node) if forward else spec.incoming(node)
        for edge in edges:
            nxt = edge.to if forward else edge.source
            if nxt not in seen:
                seen.add(nxt)
                todo.append(nxt)
    return seen


def _structure(spec: FlowSpec) -> list[str]:
    problems, ids = [], [n.id for n in spec.nodes]
    problems += [f"node {i}: the id is used twice" for i in sorted({i for i in ids
                                                                    if ids.count(i) > 1})]
    starts = [n for n in spec.nodes if n.type == "start"]
    if len(starts) != 1:
        problems.append(f"the flow needs exactly one start node, not {len(starts)}")
    if not any(n.type == "end" for n in spec.nodes):
        problems.append("the flow needs an end node")
    for i, edge in enumerate(spec.edges):
        for end in (edge.source, edge.to):
            if spec.node(end) is None:
                problems.append(f"edges[{i}]: node {end!r} does not exist")
    problems += [f"{node.id}: unknown node type {node.type!r} (known: "
                 f"{', '.join(NODE_TYPES)})" for node in spec.nodes
                 if node.type not in NODE_TYPES]
    return problems


def _keys(spec: FlowSpec) -> list[str]:
    """Keys a node's type does not use. Not fatal like ``_structure``: the graph can
    still be checked, so the designer sees these with every other problem at once."""
    problems = []
    for node in spec.nodes:
        extra = sorted(set(node.model_fields_set) - BASE_KEYS - NODE_TYPES.get(node.type).keys)
        if extra:
            problems.append(f"{node.id}: a {node.type} node has no {extra[0]!r}")
    return problems


def _graph(spec: FlowSpec) -> list[str]:
    problems: list[str] = []
    start = spec.start
    if spec.incoming(start.id):
        problems.append(f"{start.id}: nothing may lead back into the start")
    reached = _reachable(spec, start.id)
    ends = [n.id for n in spec.nodes if n.type == "end"]
    finishing = set().union(*(_reachable(spec, e, forward=False) for e in ends))
    for node in spec.nodes:
        if node.id not in reached:
            problems.append(f"{node.id}: not reachable from the start")
        elif node.id not in finishing:
            problems.append(f"{node.id}: no path from here reaches an end")
        if node.type == "end" and spec.outgoing(node.id):
            problems.append(f"{node.id}: an end node has no outgoing edges")
        elif node.type != "end" and not spec.outgoing(node.id):
            problems.append(f"{node.id}: the path stops here without an end node")
    return problems


def _edges(ctx: FlowContext, session: Session, app: str) -> list[str]:
    spec, problems = ctx.flow, []
    for node in spec.nodes:
        out = spec.outgoing(node.id)
        if node.type == "gateway":
            defaults = [e for e in out if e.default]
            if len(defaults) != 1:
                problems.append(f"{node.id}: a gateway needs exactly one default edge")
            for edge in out:
                if not edge.default and not edge.condition:
                    problems.append(f"{node.id} → {edge.to}: a gateway edge needs a "
                                    "condition (or is the default)")
                if edge.condition:
                    problems += _condition_problems(session, app, spec, node, edge.condition)
            continue
        problems += [f"{node.id} → {e.to}: only gateway edges carry a condition or default"
                     for e in out if e.condition or e.default]
        if node.type in NODE_TYPES and node.type != "end":
            problems += _outcome_problems(node, out)
    return problems


def _condition_problems(session: Session, app: str, spec: FlowSpec, node: Node,
                        text: str) -> list[str]:
    try:
        formula = condition_of(session, app, spec, text)
    except ExpressionError as exc:
        return [f"{node.id}: condition {text!r}: {exc.detail}"]
    if formula.type.name not in ("boolean", "blank"):
        return [f"{node.id}: condition {text!r} is {formula.type.name}, not TRUE/FALSE"]
    return []


def _outcome_problems(node: Node, out: list[Any]) -> list[str]:
    kind = NODE_TYPES.get(node.type)
    outcomes = kind.outcomes(node)
    problems = [f"{node.id} → {e.to}: {e.on!r} is not an outcome of this step (it has: "
                f"{', '.join(outcomes)})" for e in out if e.on and e.on not in outcomes]
    if node.type in ("parallel",):
        return problems
    unlabelled = any(e.on is None for e in out)
    for outcome in outcomes:
        if not unlabelled and not any(e.on == outcome for e in out):
            problems.append(f"{node.id}: no edge for outcome {outcome!r}")
    return problems


def _parallel(spec: FlowSpec) -> list[str]:
    problems = []
    for node in spec.nodes:
        if node.type == "parallel":
            branches = spec.outgoing(node.id)
            if len(branches) < 2:
                problems.append(f"{node.id}: a parallel split needs two or more branches")
                continue
            joins = [_joins_reached(spec, b.to) for b in branches]
            common = set.intersection(*joins) if joins else set()
            if not common:
                problems.append(f"{node.id}: its branches are not joined by one join node")
                continue
            join = min(common, key=lambda j: _distance(spec, node.id, j))
            if len(spec.incoming(join)) != len(branches):
                problems.append(f"{join}: joins {len(spec.incoming(join))} edges but "
                                f"{node.id} splits into {len(branches)}")
        if node.type == "join" and len(spec.incoming(node.id)) < 2:
            problems.append(f"{node.id}: a join needs two or more incoming edges")
    return problems


def _joins_reached(spec: FlowSpec, start: str) -> set[str]:
    return {n for n in _reachable(spec, start) if (spec.node(n) or Node(id="x", type="x"))
            .type == "join"} | ({start} if (spec.node(start) and spec.node(start).type
                                           == "join") else set())


def _distance(spec: FlowSpec, source: str, target: str) -> int:
    frontier, seen, hops = {source}, {source}, 0
    while frontier and target not in frontier:
        hops += 1
        frontier = {e.to for n in frontier for e in spec.outgoing(n)} - seen
        seen |= frontier
    return hops


def _references(ctx: FlowContext, session: Session, app: str) -> list[str]:
    problems: list[str] = []
    form = ctx.form
    for node in ctx.flow.nodes:
        if node.type not in NODE_TYPES:
            continue
        problems += NODE_TYPES.get(node.type).check(node, ctx)
        if node.assignee is not None:
            problems += [f"{node.id}: {p}" for p in check_assignee(session, node.assignee,
                                                                    form)]
        if node.fields is not None:
            problems += _step_field_problems(node, form)
        problems += _reject_to_problems(ctx.flow, node)
        if node.sla is not None and (node.sla.hours is None) == (node.sla.working_days
                                                                   is None):
            problems.append(f"{node.id}: sla needs hours or working_days (one of them)")
        if node.wait is not None and node.wait.until_field and \
                form.field(node.wait.until_field) is None:
            problems.append(f"{node.id}: wait.until_field {node.wait.until_field!r} is not a "
                            f"field of form {form.key}")
        if node.type == "subflow" and node.flow:
            problems += _subflow_problems(session, app, ctx, node)
    return problems


def _step_field_problems(node: Node, form: Any) -> list[str]:
    """Step fields are fields of the form; what must be filled must be editable here;
    ``required_on`` names outcomes of the step."""
    fields, problems = node.fields, []
    assert fields is not None
    lists = {"editable": fields.editable, "readonly": fields.readonly,
             "hidden": fields.hidden, "required": fields.required} | {
        f"required_on.{outcome}": keys for outcome, keys in fields.required_on.items()}
    for name, keys in lists.items():
        problems += [f"{node.id}: fields.{name}: {k!r} is not a field of form {form.key}"
                     for k in keys if form.field(k) is None]
        if name.startswith("required"):
            problems += [f"{node.id}: fields.{name}: {k!r} must also be editable"
                         for k in keys if form.field(k) is not None
                         and k not in fields.editable]
    if fields.required_on and node.type in NODE_TYPES:
        outcomes = NODE_TYPES.get(node.type).outcomes(node)
        problems += [f"{node.id}: fields.required_on: {o!r} is not an outcome of this step "
                     f"(it has: {', '.join(outcomes)})" for o in fields.required_on
                     if o not in outcomes]
    return problems


def _reject_to_problems(spec: FlowSpec, node: Node) -> list[str]:
    """``reject_to`` names earlier steps people act on, and ``reject`` is allowed."""
    if node.reject_to is None:
        return []
    problems = []
    if node.allowed_actions is not None and "reject" not in node.allowed_actions:
        problems.append(f"{node.id}: reject_to is set but reject is not an allowed action")
    for target in node.reject_to:
        other = spec.node(target)
        if other is None or other.type not in NODE_TYPES or \
                not NODE_TYPES.get(other.type).user:
            problems.append(f"{node.id}: reject_to: {target!r} is not a step people act on")
        elif target == node.id or node.id not in spec.downstream(target):
            problems.append(f"{node.id}: reject_to: {target!r} is not an earlier step")
    return problems


def _subflow_problems(session: Session, app: str, ctx: FlowContext, node: Node) -> list[str]:
    from engine_flows.definitions import get_flow

    try:
        other = get_flow(session, app, node.flow or "")
    except DomainError:
        return [f"{node.id}: flow {node.flow!r} does not exist in app {app}"]
    if other.published_version is None:
        return [f"{node.id}: flow {node.flow!r} is not published yet"]
    if node.flow == ctx.flow.key:
        return [f"{node.id}: a flow cannot run itself as a sub-flow"]
    form = ctx.form.key
    if node.record_field:
        relation = ctx.form.field(node.record_field)
        if relation is None or relation.type != "relation":
            return [f"{node.id}: record_field {node.record_field!r} is not a relation field"]
        form = relation.config["target"]
    if other.draft.get("form") != form:
        return [f"{node.id}: flow {node.flow!r} runs over {other.draft.get('form')}, not "
                f"{form}"]
    return []


def check_flow(session: Session, app: str, spec: FlowSpec) -> list[str]:
    """Every problem of ``spec`` (empty: it may be published)."""
    problems = _structure(spec)
    if problems:
        return problems
    try:
        pub = published(session, app, spec.form)
    except DomainError as exc:
        return [f"form: {exc.detail}"]
    ctx = FlowContext(spec, pub.spec, pub)
    problems = _keys(spec) + _graph(spec) + _parallel(spec) + _edges(ctx, session, app)
    return _unique(problems + _references(ctx, session, app) + _public(ctx, session, app))


def _public(ctx: FlowContext, session: Session, app: str) -> list[str]:
    """The progress page's settings name nodes of the flow and fields of the form."""
    page, form = ctx.flow.public, ctx.form
    if page is None:
        return []
    problems = [f"public.steps: {node} is not a node of the flow" for node in page.steps
                if ctx.flow.node(node) is None]
    problems += [f"public.steps.{node}: the text is empty" for node, text in
                 page.steps.items() if not text.strip()]
    if page.title_field and form.field(page.title_field) is None:
        problems.append(f"public.title_field: {page.title_field} is not a field of the form")
    if page.name_field:
        problems += _name_problems(session, app, form, page.name_field)
    docs = page.documents
    table = form.field(docs.field) if docs else None
    if docs and (table is None or table.type != "subtable"):
        problems.append(f"public.documents: {docs.field} is not a subtable of the form")
    elif docs and table is not None:
        columns = {c.get("key"): c.get("type") for c in table.config.get("fields", [])}
        if docs.item not in columns:
            problems.append(f"public.documents.item: {docs.item} is not a column of "
                            f"{docs.field}")
        if columns.get(docs.received) != "boolean":
            problems.append(f"public.documents.received: {docs.received} is not a yes/no "
                            f"column of {docs.field}")
    return problems


def _name_problems(session: Session, app: str, form: Any, path: str) -> list[str]:
    head, _, tail = path.partition(".")
    field = form.field(head)
    if field is None:
        return [f"public.name_field: {head} is not a field of the form"]
    if not tail:
        return []
    if field.type != "relation":
        return [f"public.name_field: {head} is not a relation"]
    try:
        target = published(session, app, field.config["target"]).spec
    except DomainError as exc:
        return [f"public.name_field: {exc.detail}"]
    if target.field(tail) is None:
        return [f"public.name_field: {tail} is not a field of {target.key}"]
    return []


def _unique(items: Iterable[str]) -> list[str]:
    return list(dict.fromkeys(items))
