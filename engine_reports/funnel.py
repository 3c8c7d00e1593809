"""The flow funnel: for the instances of a flow started in a period, how many reached each
step, the conversion from the step before and from the start, and the median time spent
in the step — one SQL statement over ``flow_steps`` (entered_at/left_at), with the row
scope of the records the instances are about.

Steps are the flow's nodes in their published order, less the routing nodes (gateways,
parallel splits and joins) and service steps, which nobody waits in and which would
only repeat the count of the step before. The end farthest from the start (fewest
edges to reach it; the first in order on a tie) is where the work succeeds (完成): it is
the funnel's last stage. Any other end (未成交, 已撤销: a branch that leaves early) is
an *exit*, not a stage after it: exits follow the stages as rows with no conversion
from the step before (only from the start), and the dimension column's ``exits`` says
how many there are, so the chart shows them beside the funnel rather than in it.
The median is the middle of the finished visits (the mean of the two middle ones for an
even count), in hours, computed with window functions so it is the same statement on
SQLite and PostgreSQL.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from sqlalchemy import Float, and_, cast, extract, func, or_, select, true
from sqlalchemy.orm import Session

from platform_core.models import Record
from platform_core.store.query import compile_filter

ROUTING = {"gateway", "parallel", "join", "service"}
COLUMNS = [
    {"key": "d0", "label": "步骤", "role": "dimension", "type": "text", "field": "node"},
    {"key": "reached", "label": "到达数", "role": "measure", "format": "integer"},
    {"key": "step_rate", "label": "环节转化率", "role": "measure", "format": "percent"},
    {"key": "overall_rate", "label": "总转化率", "role": "measure", "format": "percent"},
    {"key": "median_hours", "label": "中位停留（小时）", "role": "measure",
     "format": "number"},
]


def _hours(dialect: str) -> Any:
    from engine_flows.models import FlowStep

    if dialect == "postgresql":
        return extract("epoch", FlowStep.left_at - FlowStep.entered_at) / 3600.0
    return (func.julianday(FlowStep.left_at) - func.julianday(FlowStep.entered_at)) * 24.0


def statement(app: str, flow: str, dialect: str, condition: Any) -> Any:
    """(node, instances that reached it, median hours spent) for one flow."""
    from engine_flows.models import FlowRun, FlowStep

    visits = (select(FlowStep.node_id.label("node"), FlowStep.run_id.label("run"),
                     cast(_hours(dialect), Float()).label("hours"))
              .select_from(FlowStep.__table__.join(FlowRun.__table__,
                                                   FlowStep.run_id == FlowRun.id)
                           .join(Record.__table__, FlowRun.record_id == Record.id))
              .where(FlowRun.app == app, FlowRun.flow == flow,
                     FlowRun.parent_step_id.is_(None), Record.deleted_at.is_(None),
                     FlowStep.status != "cancelled", condition)
              .cte("visits"))
    timed = select(visits.c.node, visits.c.hours,
                   func.row_number().over(partition_by=visits.c.node,
                                          order_by=visits.c.hours).label("rn"),
                   func.count().over(partition_by=visits.c.node).label("n")
                   ).where(visits.c.hours.is_not(None)).cte("timed")
    middle = or_(timed.c.rn == (timed.c.n + 1) // 2, timed.c.rn == (timed.c.n + 2) // 2)
    medians = (select(timed.c.node, func.avg(timed.c.hours).label("median"))
               .where(middle).group_by(timed.c.node).cte("medians"))
    reached = (select(visits.c.node, func.count(visits.c.run.distinct()).label("reached"))
               .group_by(visits.c.node).cte("reached"))
    return (select(reached.c.node, reached.c.reached, medians.c.median)
            .select_from(reached.outerjoin(medians, medians.c.node == reached.c.node)))


def _rate(part: int, whole: int) -> float | None:
    return None if not whole else float(Decimal(part) / Decimal(whole))


def funnel(session: Session, app: str, spec: Any, source: Any, where: Any) -> Any:
    from engine_reports.running import Result, roomy

    dialect = session.get_bind().dialect.name
    flow = spec.source.flow
    condition = true() if where is None else compile_filter(where, source.frame.fields,
                                                            dialect)
    roomy(session)
    found = {row[0]: (row[1], row[2]) for row in
             session.execute(statement(app, flow, dialect, and_(true(), condition)))}
    stages, exits = _stages(source.flow)
    rows, keys = [], []
    first = prev = None
    for node in stages + exits:
        reached, median = found.get(node.id, (0, None))
        if first is None:
            first = reached
        stage = node in stages
        rows.append([node.label, reached,
                     None if prev is None or not stage else _rate(reached, prev),
                     _rate(reached, first),
                     None if median is None else round(float(median), 2)])
        keys.append([node.id])
        prev = reached
    columns = [dict(c) for c in COLUMNS]
    columns[0]["exits"] = len(exits)
    return Result(columns, rows, keys, False, "table")


def _distances(flow: Any) -> dict[str, int]:
    """Each node's fewest edges from the start (breadth first)."""
    start = next((n.id for n in flow.nodes if n.type == "start"), None)
    seen, frontier = ({start: 0}, [start]) if start else ({}, [])
    while frontier:
        nxt = []
        for node_id in frontier:
            for edge in flow.edges:
                if edge.source == node_id and edge.to not in seen:
                    seen[edge.to] = seen[node_id] + 1
                    nxt.append(edge.to)
        frontier = nxt
    return seen


def _stages(flow: Any) -> tuple[list[Any], list[Any]]:
    """The funnel's stages in flow order, the success end last; the other ends (exits)."""
    stages, ends = [], []
    for node in flow.nodes:
        if node.type in ROUTING:
            continue
        (ends if node.type == "end" else stages).append(node)
    if not ends:
        return stages, []
    far = _distances(flow)
    main = max(ends, key=lambda n: (far.get(n.id, -1), -ends.index(n)))
    return [*stages, main], [n for n in ends if n is not main]
