"""What the flow designer asks before and after publishing: the preview of a publish
(problems located on nodes and edges, the difference to the running version, how many
running instances wait where) and the live overlay (per step: waiting, overdue, median
time spent). A few grouped queries each, whatever the number of instances."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from sqlalchemy import Float, cast, extract, func, or_, select
from sqlalchemy.orm import Session

from engine_flows.definitions import get_flow, validate, version_row
from engine_flows.models import FlowRun, FlowStep, Task
from engine_flows.spec import FlowSpecError, parse_flow
from platform_core.models import Record

# node keys the engine does not run on: a change to them alone changes nothing for runs
_NODE_KEYS = ("type", "name", "assignee", "sla", "fields", "allowed_actions", "outcomes",
              "mode", "wait", "flow", "record_field", "actions")
_EDGE_KEYS = ("condition", "default", "name")


def _nodes(spec: Any) -> dict[str, dict[str, Any]]:
    items = spec.get("nodes") if isinstance(spec, dict) else None
    return {n["id"]: n for n in items or [] if isinstance(n, dict)
            and isinstance(n.get("id"), str)}


def _edge_key(edge: dict[str, Any]) -> tuple[str, str, str | None]:
    return str(edge.get("from")), str(edge.get("to")), edge.get("on")


def _edges(spec: Any) -> dict[tuple[str, str, str | None], dict[str, Any]]:
    items = spec.get("edges") if isinstance(spec, dict) else None
    return {_edge_key(e): e for e in items or [] if isinstance(e, dict)}


def _short(value: Any) -> str:
    text = json.dumps(value, ensure_ascii=False, sort_keys=True) if value is not None \
        else "—"
    return text if len(text) <= 80 else text[:77] + "…"


def _changes(old: dict[str, Any], new: dict[str, Any], keys: tuple[str, ...]) -> list[str]:
    return [f"{k}: {_short(old.get(k))} → {_short(new.get(k))}" for k in keys
            if old.get(k) != new.get(k)]


def _edge_doc(edge: dict[str, Any]) -> dict[str, Any]:
    doc = {"from": edge.get("from"), "to": edge.get("to")}
    for key in ("on", "condition", "default"):
        if edge.get(key) not in (None, False):
            doc[key] = edge[key]
    return doc


def diff(old: Any, new: Any) -> dict[str, Any]:
    """What ``new`` changes against ``old`` (definitions as JSON; ``old`` may be
    ``None``: everything is added). The drawing (``layout``) is not a change."""
    old_nodes, new_nodes = _nodes(old), _nodes(new)
    changed = []
    for node_id in new_nodes.keys() & old_nodes.keys():
        found = _changes(old_nodes[node_id], new_nodes[node_id], _NODE_KEYS)
        if found:
            changed.append({"id": node_id, "changes": found})
    old_edges, new_edges = _edges(old), _edges(new)
    edges_changed = []
    for key in new_edges.keys() & old_edges.keys():
        found = _changes(old_edges[key], new_edges[key], _EDGE_KEYS)
        if found:
            edges_changed.append(_edge_doc(new_edges[key]) | {"changes": found})
    order = {k: i for i, k in enumerate(new_nodes)} | {
        k: len(new_nodes) + i for i, k in enumerate(old_nodes)}
    return {
        "nodes": {"added": [k for k in new_nodes if k not in old_nodes],
                  "removed": [k for k in old_nodes if k not in new_nodes],
                  "changed": sorted(changed, key=lambda c: order[c["id"]])},
        "edges": {"added": [_edge_doc(e) for k, e in new_edges.items()
                            if k not in old_edges],
                  "removed": [_edge_doc(e) for k, e in old_edges.items()
                              if k not in new_edges],
                  "changed": sorted(edges_changed, key=lambda e: (
                      str(e["from"]), str(e["to"]), str(e.get("on"))))}}


def running(session: Session, app: str, flow: str) -> dict[str, Any]:
    """Running instances of the flow (every one is on a version older than the next
    publish): in all, per version, and per node they wait at (an instance waiting at two
    parallel steps counts at both)."""
    live = (FlowRun.app == app, FlowRun.flow == flow, FlowRun.status == "running")
    by_version = {str(v): n for v, n in session.execute(
        select(FlowRun.version, func.count()).where(*live).group_by(FlowRun.version)
        .order_by(FlowRun.version)).all()}
    by_node = dict(session.execute(
        select(FlowStep.node_id, func.count(func.distinct(FlowStep.run_id)))
        .join(FlowRun, FlowRun.id == FlowStep.run_id)
        .where(*live, FlowStep.status == "active").group_by(FlowStep.node_id)
        .order_by(FlowStep.node_id)).all())
    return {"total": sum(by_version.values()), "by_version": by_version,
            "by_node": by_node}


def preview(session: Session, app: str, flow: str) -> dict[str, Any]:
    """What publishing the stored draft would do (nothing is written)."""
    row = get_flow(session, app, flow)
    draft = row.draft
    try:
        validate(session, app, draft)
        problems: list[dict[str, Any]] = []
    except FlowSpecError as exc:
        problems = exc.located
    old = version_row(session, app, flow, row.published_version).spec \
        if row.published_version is not None else None
    counts = running(session, app, flow)
    nodes = _nodes(draft)
    return {"valid": not problems, "problems": problems,
            "published_version": row.published_version, "diff": diff(old, draft),
            "running": counts,
            # nodes instances wait at that the draft no longer has: map them on migrating
            "unmapped": sorted(n for n in counts["by_node"] if n not in nodes)}


# -- the live overlay --------------------------------------------------------------------


def _seconds(dialect: str) -> Any:
    if dialect == "postgresql":
        return extract("epoch", FlowStep.left_at - FlowStep.entered_at)
    return (func.julianday(FlowStep.left_at) - func.julianday(FlowStep.entered_at)) * 86400.0


def _visits(session: Session, app: str, flow: str, version: int | None) -> Any:
    """(node, run, seconds spent or NULL) per visit that was not cancelled, of the
    flow's top-level instances over records not in the recycle bin — what the service
    funnel of ``engine_reports.funnel`` counts."""
    dialect = session.get_bind().dialect.name
    stmt = (select(FlowStep.node_id.label("node"), FlowStep.run_id.label("run"),
                   cast(_seconds(dialect), Float()).label("seconds"))
            .join(FlowRun, FlowRun.id == FlowStep.run_id)
            .join(Record, Record.id == FlowRun.record_id)
            .where(FlowRun.app == app, FlowRun.flow == flow,
                   FlowRun.parent_step_id.is_(None), Record.deleted_at.is_(None),
                   FlowStep.status != "cancelled"))
    if version is not None:
        stmt = stmt.where(FlowRun.version == version)
    return stmt.cte("visits")


def _per_node(session: Session, app: str, flow: str, version: int | None
              ) -> dict[str, tuple[int, int, float | None]]:
    """node → (instances that reached it, finished visits, their median seconds): one
    statement, the median by window functions (the mean of the two middle values for an
    even count), the same on SQLite and PostgreSQL."""
    visits = _visits(session, app, flow, version)
    timed = select(visits.c.node, visits.c.seconds,
                   func.row_number().over(partition_by=visits.c.node,
                                          order_by=visits.c.seconds).label("rn"),
                   func.count().over(partition_by=visits.c.node).label("n")
                   ).where(visits.c.seconds.is_not(None)).cte("timed")
    middle = or_(timed.c.rn == (timed.c.n + 1) // 2, timed.c.rn == (timed.c.n + 2) // 2)
    medians = (select(timed.c.node, func.avg(timed.c.seconds).label("median"),
                      func.max(timed.c.n).label("finished"))
               .where(middle).group_by(timed.c.node).cte("medians"))
    reached = (select(visits.c.node, func.count(visits.c.run.distinct()).label("reached"))
               .group_by(visits.c.node).cte("reached"))
    rows = session.execute(select(reached.c.node, reached.c.reached, medians.c.finished,
                                  medians.c.median)
                           .select_from(reached.outerjoin(medians,
                                                          medians.c.node == reached.c.node)))
    return {node: (int(n), int(finished or 0), None if median is None else float(median))
            for node, n, finished, median in rows}


def overlay(session: Session, app: str, flow: str, now: datetime,
            version: int | None = None) -> dict[str, Any]:
    """Per node of the flow's version (``version``, else the latest published; the
    counts then cover every version): running instances waiting there now
    (``waiting``), of them with a task past due (``overdue``), and as the service
    funnel counts, instances that ever reached it (``reached``), finished visits
    (``completed``) and their median duration (``median_seconds``)."""
    row = get_flow(session, app, flow)
    number = version if version is not None else row.published_version
    spec = parse_flow(version_row(session, app, flow, number).spec if number
                      else row.draft)
    live = [FlowRun.app == app, FlowRun.flow == flow, FlowRun.status == "running",
            FlowStep.status == "active"]
    if version is not None:
        live.append(FlowRun.version == version)
    # a record in the recycle bin is not waiting anywhere (nor listed at the step)
    live.append(FlowRun.record_id.in_(select(Record.id).where(
        Record.app == app, Record.deleted_at.is_(None))))
    waiting = dict(session.execute(
        select(FlowStep.node_id, func.count(func.distinct(FlowStep.run_id)))
        .join(FlowRun, FlowRun.id == FlowStep.run_id).where(*live)
        .group_by(FlowStep.node_id)).all())
    overdue = dict(session.execute(
        select(FlowStep.node_id, func.count(func.distinct(FlowStep.run_id)))
        .join(FlowRun, FlowRun.id == FlowStep.run_id)
        .join(Task, Task.step_id == FlowStep.id)
        .where(*live, Task.status == "open", Task.due_at < now)
        .group_by(FlowStep.node_id)).all())
    counted = _per_node(session, app, flow, version)
    nodes = []
    for node in spec.nodes:
        reached, finished, median = counted.get(node.id, (0, 0, None))
        nodes.append({"node": node.id, "name": node.label, "type": node.type,
                      "waiting": waiting.get(node.id, 0), "overdue": overdue.get(node.id, 0),
                      "reached": reached, "completed": finished,
                      "median_seconds": None if median is None else round(median, 3)})
    return {"flow": flow, "version": number, "nodes": nodes}
