"""Where a run stands, for people: the flow's main path drawn as a strip of steps, each
marked from the run's steps, and the SLA state of an open task.

Pure functions over a ``FlowSpec`` and the run's ``FlowStep`` rows (no queries of their
own beyond ``strip_of``'s one read), so a record page, a customer's progress page or a
report can draw the same picture.

The main path: from the start node, follow one outgoing edge per node — the edge on the
node's first outcome (``submit``, ``approve``), else the first unlabelled one that is not
a gateway's ``default`` (a gateway's first condition is its hoped-for branch), else the
default, else the first — until an end node or a node already on the path. People see
its user steps (``user_task``, ``approval``) and, small, its waits (``timer``,
``subflow``); start, end, gateways, parallel splits/joins and service steps are not
drawn.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from engine_flows.calendar import LOCAL, Calendar
from engine_flows.models import FlowRun, FlowStep
from engine_flows.nodes import NODE_TYPES
from engine_flows.spec import Edge, FlowSpec, Node

SMALL = frozenset({"timer", "subflow"})  # drawn, small: the run may stand there
BACK = frozenset({"reject", "return"})  # outcomes that sent the work back
SOON_HOURS = 8.0  # "due soon" without a reminder window: within 8 working hours
WORK_START, WORK_END = time(9, 0), time(18, 0)


def _preferred(spec: FlowSpec, node: Node) -> Edge | None:
    out = spec.outgoing(node.id)
    if not out:
        return None
    outcomes = NODE_TYPES.get(node.type).outcomes(node) if node.type in NODE_TYPES \
        else []
    first = outcomes[0] if outcomes else None
    for pick in ([e for e in out if first is not None and e.on == first],
                 [e for e in out if e.on is None and not e.default],
                 [e for e in out if e.default]):
        if pick:
            return pick[0]
    return out[0]


def main_path(spec: FlowSpec) -> list[Node]:
    """The nodes of the flow's main path, in order (every node, drawn or not)."""
    path, seen = [], set()
    node: Node | None = spec.start
    while node is not None and node.id not in seen:
        path.append(node)
        seen.add(node.id)
        if node.type == "end":
            break
        edge = _preferred(spec, node)
        node = spec.node(edge.to) if edge is not None else None
    return path


def drawn(node: Node) -> str | None:
    """How a node is drawn: ``step``, ``small`` or not at all (None)."""
    if node.type in SMALL:
        return "small"
    kind = NODE_TYPES.get(node.type) if node.type in NODE_TYPES else None
    return "step" if kind is not None and kind.user else None


@dataclass(frozen=True)
class StripStep:
    """One drawn step: its node, how it is drawn, its mark (``done``, ``current``,
    ``back`` — the work was rejected or returned from here —, ``todo``), when it was
    done (or entered, when current) and how many times the run has been there."""

    node: str
    name: str
    size: str
    mark: str
    at: datetime | None
    visits: int


def _mark(steps: list[FlowStep], after_current: bool) -> tuple[str, datetime | None]:
    if not steps:
        return "todo", None
    last = steps[-1]
    if any(s.status == "active" for s in steps):
        return "current", max(s.entered_at for s in steps if s.status == "active")
    if last.outcome in BACK or last.status == "cancelled":
        return "back", last.left_at
    if after_current:  # done once, but the work went back before it: to be done again
        return "todo", None
    return "done", last.left_at


def strip(spec: FlowSpec, steps: Iterable[FlowStep]) -> list[StripStep]:
    """The main path's drawn steps marked from the run's ``steps`` (in id order). A
    current step off the main path (a branch) is drawn after the main path's ones."""
    by_node: dict[str, list[FlowStep]] = {}
    for step in sorted(steps, key=lambda s: s.id):
        by_node.setdefault(step.node_id, []).append(step)
    nodes = [n for n in main_path(spec) if drawn(n)]
    on_path = {n.id for n in nodes}
    nodes += [n for node_id, rows in by_node.items() if node_id not in on_path
              and any(s.status == "active" for s in rows)
              and (n := spec.node(node_id)) is not None and drawn(n)]
    out: list[StripStep] = []
    seen_current = False
    for node in nodes:
        rows = by_node.get(node.id, [])
        mark, at = _mark(rows, seen_current)
        seen_current = seen_current or mark == "current"
        out.append(StripStep(node.id, node.label, drawn(node) or "step", mark, at,
                             len(rows)))
    return out


def strip_of(session: Session, spec: FlowSpec, run: FlowRun) -> list[StripStep]:
    steps = session.execute(select(FlowStep).where(FlowStep.run_id == run.id)
                            .order_by(FlowStep.id)).scalars()
    return strip(spec, steps)


def end_reached(session: Session, spec: FlowSpec, run: FlowRun) -> Node | None:
    """The end node a finished run reached (its final outcome), if any."""
    ends = [n.id for n in spec.nodes if n.type == "end"]
    node_id = session.execute(select(FlowStep.node_id).where(
        FlowStep.run_id == run.id, FlowStep.node_id.in_(ends))
        .order_by(FlowStep.id.desc()).limit(1)).scalar()
    return spec.node(node_id) if node_id else None


# -- SLA state ------------------------------------------------------------------------------


def _aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def working_hours(start: datetime, end: datetime, calendar: Calendar,
                  limit: float = SOON_HOURS) -> float:
    """Working hours (09:00–18:00 Asia/Shanghai on working days) from ``start`` to
    ``end``, counted up to just past ``limit`` (callers only ask "within N hours?")."""
    start, end = _aware(start).astimezone(LOCAL), _aware(end).astimezone(LOCAL)
    total, day = 0.0, start.date()
    while day <= end.date() and total <= limit:
        if calendar.is_workday(day):
            lo = max(start, datetime.combine(day, WORK_START, LOCAL))
            hi = min(end, datetime.combine(day, WORK_END, LOCAL))
            if hi > lo:
                total += (hi - lo).total_seconds() / 3600
        day += timedelta(days=1)
    return total


def sla_state(*, due_at: datetime | None, remind_at: datetime | None, now: datetime,
              calendar: Calendar | None = None) -> str | None:
    """``overdue`` past due; ``due_soon`` inside the node's reminder window (or, without
    one, within 8 working hours of due); ``on_time`` otherwise; None without a due time."""
    if due_at is None:
        return None
    due, now = _aware(due_at), _aware(now)
    if due <= now:
        return "overdue"
    if remind_at is not None:
        return "due_soon" if _aware(remind_at) <= now else "on_time"
    hours = working_hours(now, due, calendar or Calendar())
    return "due_soon" if hours <= SOON_HOURS else "on_time"


def sla_states(session: Session, tasks: Iterable[Any], now: datetime) -> dict[int, str]:
    """Task id → SLA state for tasks with a due time (one calendar read)."""
    rows = [t for t in tasks if t.due_at is not None]
    if not rows:
        return {}
    calendar = Calendar.load(session, _aware(now).astimezone(LOCAL).date(), days=60)
    return {t.id: s for t in rows if (s := sla_state(due_at=t.due_at, remind_at=t.remind_at,
                                                      now=now, calendar=calendar))}
