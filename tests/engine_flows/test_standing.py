"""Where a run stands, computed from the spec and the run's steps: the main path drawn as a
strip (user steps, waits small, the rest left out), each step's mark (done with its time,
current, sent back, to come) and the SLA state of a task."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

from engine_flows.calendar import Calendar
from engine_flows.models import FlowStep
from engine_flows.spec import parse_flow
from engine_flows.standing import main_path, sla_state, strip

CRM = Path(__file__).parents[2] / "templates_catalog/bank_intermediary_crm/flows"
SPEC = parse_flow(json.loads((CRM / "loan_service.json").read_text()))
T0 = datetime(2026, 12, 1, 2, 0, tzinfo=UTC)  # Tuesday 10:00 in Shanghai


def _steps(*rows: tuple[str, str, str | None]) -> list[FlowStep]:
    """Steps in order: (node, status, outcome), an hour apart."""
    out = []
    for i, (node, state, outcome) in enumerate(rows, start=1):
        at = T0 + timedelta(hours=i)
        out.append(FlowStep(id=i, run_id=1, node_id=node, node_type=SPEC.node(node).type,
                            status=state, outcome=outcome, entered_at=at,
                            left_at=None if state == "active" else at + timedelta(minutes=30)))
    return out


def test_the_main_path_follows_the_first_outcome_and_the_hoped_for_branch():
    ids = [n.id for n in main_path(SPEC)]
    assert ids == ["start", "analysis", "matching", "signing", "mark_signed", "materials",
                   "risk", "mark_review", "bank", "decision", "disburse", "mark_disbursed",
                   "cooling", "care", "end"]  # not the "lost" branch, not the default
    drawn = [(s.node, s.size) for s in strip(SPEC, [])]
    assert drawn == [("analysis", "step"), ("matching", "step"), ("signing", "step"),
                     ("materials", "step"), ("risk", "step"), ("bank", "step"),
                     ("disburse", "step"), ("cooling", "small"), ("care", "step")]
    assert {s.mark for s in strip(SPEC, [])} == {"todo"}


def test_steps_are_marked_done_with_their_time_and_current():
    marks = {s.node: s for s in strip(SPEC, _steps(
        ("start", "done", "done"), ("analysis", "done", "submit"),
        ("matching", "active", None)))}
    assert marks["analysis"].mark == "done"
    assert marks["analysis"].at == T0 + timedelta(hours=2, minutes=30)
    assert marks["matching"].mark == "current"
    assert marks["signing"].mark == "todo" and marks["signing"].at is None


def test_a_rejection_marks_the_step_sent_back_and_the_loop():
    rows = _steps(("analysis", "done", "submit"), ("matching", "done", "submit"),
                  ("signing", "done", "submit"), ("materials", "done", "done"),
                  ("risk", "done", "reject"), ("materials", "active", None))
    marks = {s.node: s for s in strip(SPEC, rows)}
    assert marks["risk"].mark == "back"
    assert marks["materials"].mark == "current" and marks["materials"].visits == 2
    assert marks["signing"].mark == "done"
    assert marks["bank"].mark == "todo"


def test_going_back_further_leaves_the_later_steps_to_do_again():
    rows = _steps(("analysis", "done", "submit"), ("matching", "done", "submit"),
                  ("signing", "done", "submit"), ("materials", "done", "done"),
                  ("risk", "cancelled", None), ("analysis", "active", None))
    marks = {s.node: s.mark for s in strip(SPEC, rows)}
    assert marks["analysis"] == "current"
    assert marks["matching"] == "todo" and marks["signing"] == "todo"
    assert marks["risk"] == "back"


def test_a_current_step_off_the_main_path_is_drawn_after_it():
    spec = parse_flow({"key": "f", "name": "F", "form": "case", "nodes": [
        {"id": "start", "type": "start"},
        {"id": "a", "type": "user_task", "name": "甲",
         "assignee": {"strategy": "initiator"}, "outcomes": ["ok", "odd"]},
        {"id": "b", "type": "user_task", "name": "乙",
         "assignee": {"strategy": "initiator"}},
        {"id": "end", "type": "end"}],
        "edges": [{"from": "start", "to": "a"}, {"from": "a", "on": "ok", "to": "end"},
                  {"from": "a", "on": "odd", "to": "b"}, {"from": "b", "to": "end"}]})
    rows = [FlowStep(id=1, run_id=1, node_id="a", node_type="user_task", status="done",
                     outcome="odd", entered_at=T0, left_at=T0),
            FlowStep(id=2, run_id=1, node_id="b", node_type="user_task", status="active",
                     entered_at=T0)]
    assert [(s.node, s.mark) for s in strip(spec, rows)] == [("a", "done"),
                                                             ("b", "current")]


def test_sla_state_on_time_due_soon_and_overdue():
    now = T0  # Tuesday 10:00 local
    assert sla_state(due_at=None, remind_at=None, now=now) is None
    assert sla_state(due_at=now - timedelta(minutes=1), remind_at=None, now=now) == "overdue"
    # the node's reminder window decides when it has one
    due = now + timedelta(days=3)
    assert sla_state(due_at=due, remind_at=due - timedelta(hours=8), now=now) == "on_time"
    assert sla_state(due_at=due, remind_at=now - timedelta(hours=1), now=now) == "due_soon"
    # else: within 8 working hours (09:00–18:00 on working days) of due
    assert sla_state(due_at=now + timedelta(hours=7), remind_at=None, now=now) == "due_soon"
    assert sla_state(due_at=now + timedelta(days=2), remind_at=None, now=now) == "on_time"
    # Friday 17:00 → Monday 12:00 is 1 + 3 working hours: due soon over the weekend
    friday = datetime(2026, 12, 4, 9, 0, tzinfo=UTC)
    monday = datetime(2026, 12, 7, 4, 0, tzinfo=UTC)
    assert sla_state(due_at=monday, remind_at=None, now=friday) == "due_soon"
    # … unless Monday is a holiday and Tuesday noon is the due time
    holiday = Calendar({date(2026, 12, 7): False})
    tuesday = monday + timedelta(days=1)
    assert sla_state(due_at=tuesday, remind_at=None, now=friday,
                     calendar=holiday) == "due_soon"  # 1 + 3 hours still
    assert sla_state(due_at=tuesday, remind_at=None, now=friday) == "on_time"  # 1 + 9 + 3
