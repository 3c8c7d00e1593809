"""Time at a step: reminders, overdue marking and escalation by the SLA scan (driven by a
test clock), and due dates in working days that skip weekends and holidays."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from engine_flows.calendar import LOCAL, Calendar
from engine_flows.sla import scan
from tests.engine_flows.flows_setup import API, linear, ok

ALICE = {"strategy": "users", "users": ["alice"]}


def _timed(world, sla, key="timed"):
    world.user("alice", "sales")
    world.flow(linear(key, [{"id": "work", "type": "user_task", "name": "处理",
                             "assignee": ALICE, "sla": sla}]))


def _task_events(world, kind):
    return [p for t, p in world.events() if t == kind]


def test_reminder_overdue_and_escalation_each_fire_once(world, clock):
    _timed(world, {"hours": 4, "remind_before_hours": 1, "escalate_after_hours": 2})
    run = world.start("timed", world.case())
    start = clock.now
    assert scan(world.db, start + timedelta(hours=2, minutes=59)) == 0
    assert scan(world.db, start + timedelta(hours=3)) == 1
    assert [e["task_id"] for e in _task_events(world, "task.reminder")] == [
        world.task_of("alice", run["id"])["id"]]
    assert _task_events(world, "task.overdue") == []
    scan(world.db, start + timedelta(hours=4, minutes=30))
    [overdue] = _task_events(world, "task.overdue")
    assert overdue["run_id"] == run["id"] and overdue["step"] == "处理"
    assert overdue["assignee_id"] == world.users["alice"] and overdue["overdue_hours"] == 0.5
    assert scan(world.db, start + timedelta(hours=5)) == 0  # nothing twice
    scan(world.db, start + timedelta(hours=6))
    assert len(_task_events(world, "task.escalated")) == 1
    assert len(_task_events(world, "task.reminder")) == 1
    assert len(_task_events(world, "task.overdue")) == 1


def test_an_overdue_task_shows_in_the_inbox_and_the_progress(world, clock):
    _timed(world, {"hours": 1})
    run = world.start("timed", world.case())
    clock.advance(hours=2)
    scan(world.db, clock.now)
    overdue = ok(world.as_("alice").get(f"{API}/tasks", params={"status": "overdue"}))
    assert [t["run_id"] for t in overdue["items"]] == [run["id"]]
    assert world.instance("timed", run["id"])["current"][0]["overdue"] is True


def test_a_task_done_in_time_is_never_overdue(world, clock):
    _timed(world, {"hours": 1, "remind_before_hours": 0.5})
    run = world.start("timed", world.case())
    clock.advance(minutes=10)
    world.act("alice", world.task_of("alice", run["id"])["id"])
    assert scan(world.db, clock.now + timedelta(days=3)) == 0
    assert _task_events(world, "task.overdue") == _task_events(world, "task.reminder") == []


def test_the_scan_reads_its_clock_in_any_time_zone(world, clock):
    _timed(world, {"hours": 4})
    world.start("timed", world.case())
    # 11:59 in Shanghai is 03:59 UTC: one minute before due, whatever zone it is told in
    assert scan(world.db, (clock.now + timedelta(hours=3, minutes=59)).astimezone(LOCAL)) == 0
    assert scan(world.db, (clock.now + timedelta(hours=4)).astimezone(LOCAL)) == 1


def _put_days(world, days, status=200, who=None):
    client = world.as_(who) if who else world.admin
    return ok(client.put(f"{API}/calendar/days", json={"days": days}), status)


THURSDAY_10H = datetime(2031, 3, 6, 2, 0, tzinfo=UTC)  # 10:00 in Shanghai


def _due_of_new_task(world, clock, when):
    clock.now = when
    run = world.start("timed", world.case())
    return world.task_of("alice", run["id"])["due_at"]


def test_working_day_sla_skips_weekends_and_honours_holidays(world, clock):
    _timed(world, {"working_days": 2})
    # Thursday + 2 working days: Friday, Monday
    assert _due_of_new_task(world, clock, THURSDAY_10H) == "2031-03-10T02:00:00Z"
    _put_days(world, [{"day": "2031-03-07", "workday": False, "name": "公司假日"}])
    assert _due_of_new_task(world, clock, THURSDAY_10H) == "2031-03-11T02:00:00Z"
    # a Saturday worked in exchange (调休) counts
    _put_days(world, [{"day": "2031-03-07", "workday": False},
                      {"day": "2031-03-08", "workday": True, "name": "调休"}])
    assert _due_of_new_task(world, clock, THURSDAY_10H) == "2031-03-10T02:00:00Z"
    days = ok(world.admin.get(f"{API}/calendar/days", params={"year": 2031}))["items"]
    assert [(d["day"], d["workday"]) for d in days] == [("2031-03-07", False),
                                                        ("2031-03-08", True)]


def test_a_task_given_on_a_day_off_gets_full_working_days(world, clock):
    _timed(world, {"working_days": 1})
    saturday_15h = datetime(2031, 3, 8, 7, 0, tzinfo=UTC)
    # counted from Monday 09:00: one working day later is Tuesday 09:00 (01:00 UTC)
    assert _due_of_new_task(world, clock, saturday_15h) == "2031-03-11T01:00:00Z"


def test_overdue_after_working_days_is_found_by_the_scan(world, clock):
    _timed(world, {"working_days": 1})
    _put_days(world, [{"day": "2031-03-07", "workday": False, "name": "公司假日"}])
    run = world.start("timed", world.case())
    clock.now = THURSDAY_10H
    late = world.start("timed", world.case())
    scan(world.db, datetime(2031, 3, 10, 1, 59, tzinfo=UTC))  # Monday 09:59: not yet
    assert [e["run_id"] for e in _task_events(world, "task.overdue")] == [run["id"]]
    scan(world.db, datetime(2031, 3, 10, 2, 0, tzinfo=UTC))
    assert [e["run_id"] for e in _task_events(world, "task.overdue")] == [run["id"],
                                                                           late["id"]]


def test_only_an_administrator_sets_the_calendar(world):
    world.user("alice", "sales")
    _put_days(world, [{"day": "2031-10-01", "workday": False}], 403, who="alice")
    body = _put_days(world, [{"day": "2031-10-01"}, {"day": "2031-10-01"}], 422)
    assert "twice" in body["detail"]
    ok(world.admin.put(f"{API}/calendar/days", params={"year": 2030},
                       json={"days": [{"day": "2031-10-01"}]}), 422)
    assert _put_days(world, [{"day": "2031-10-01", "name": "国庆节"}])["stored"] == 1
    assert ok(world.as_("alice").get(f"{API}/calendar/days"))["items"][0]["name"] == "国庆节"


# -- the calendar itself ------------------------------------------------------------------

MOMENTS = st.datetimes(min_value=datetime(2030, 1, 1), max_value=datetime(2031, 12, 31),
                       timezones=st.just(UTC))
HOLIDAYS = st.sets(st.dates(min_value=date(2030, 1, 1), max_value=date(2032, 3, 31)),
                   max_size=40)


@settings(max_examples=150, deadline=None)
@given(start=MOMENTS, days=st.integers(1, 15), holidays=HOLIDAYS)
def test_a_working_day_due_lands_on_a_working_day_after_exactly_that_many(start, days,
                                                                          holidays):
    cal = Calendar(dict.fromkeys(holidays, False))
    due = cal.add_working_days(start, days).astimezone(LOCAL)
    first = start.astimezone(LOCAL).date()
    assert cal.is_workday(due.date())
    counted = sum(cal.is_workday(first + timedelta(days=i))
                  for i in range(1, (due.date() - first).days + 1))
    # a start on a day off counts from the next working morning, which is not yet a day
    assert counted == days + (0 if cal.is_workday(first) else 1)
    # holidays only ever push a due time later
    assert due >= Calendar().add_working_days(start, days).astimezone(LOCAL)
