"""The working-day calendar and due times.

A working day is Monday–Friday unless ``calendar_days`` says otherwise: a holiday
(``workday`` false, e.g. 国庆节) or a weekend day worked in exchange (调休, ``workday``
true). Days are local to Asia/Shanghai. "2 working days" from a moment is the same local
time on the second working day after it; a moment on a non-working day counts from the
start of the next working day.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from engine_flows.models import CalendarDay
from engine_flows.spec import Sla
from platform_core.errors import InvalidInput

LOCAL = ZoneInfo("Asia/Shanghai")
MAX_DAYS = 3 * 366  # a calendar that never yields a working day must not loop for ever


class Calendar:
    """Working days: weekdays, less holidays, plus make-up workdays (from ``exceptions``)."""

    def __init__(self, exceptions: dict[date, bool] | None = None):
        self.exceptions = exceptions or {}

    @classmethod
    def load(cls, session: Session, start: date, days: int = 400) -> Calendar:
        rows = session.execute(select(CalendarDay.day, CalendarDay.workday).where(
            CalendarDay.day >= start, CalendarDay.day <= start + timedelta(days=days)))
        return cls(dict(rows.all()))

    def is_workday(self, day: date) -> bool:
        return self.exceptions.get(day, day.weekday() < 5)

    def add_working_days(self, moment: datetime, days: int) -> datetime:
        local = moment.astimezone(LOCAL)
        day, clock = local.date(), local.timetz()
        if not self.is_workday(day):
            # counted from the next working morning: that day is the start, not the first
            # of the days given (else work handed out on Saturday with one day to do it
            # would be due on Monday at nine, before any working time)
            day, clock = self._next_workday(day), time(9, 0, tzinfo=LOCAL)
        for _ in range(days):
            day = self._next_workday(day)
        return datetime.combine(day, clock.replace(tzinfo=None), LOCAL).astimezone(UTC)

    def _next_workday(self, day: date) -> date:
        for _ in range(MAX_DAYS):
            day += timedelta(days=1)
            if self.is_workday(day):
                return day
        raise InvalidInput("the working-day calendar has no working day in three years; "
                           "check the holidays")


def due_times(session: Session, sla: Sla | None, start: datetime
              ) -> tuple[datetime | None, datetime | None, datetime | None]:
    """(due, remind, escalate) for a task created at ``start`` under ``sla``."""
    if sla is None or (sla.hours is None and sla.working_days is None):
        return None, None, None
    if sla.working_days is not None:
        due = Calendar.load(session, start.astimezone(LOCAL).date()).add_working_days(
            start, sla.working_days)
    else:
        due = start + timedelta(hours=sla.hours or 0)
    remind = due - timedelta(hours=sla.remind_before_hours) if sla.remind_before_hours \
        else None
    escalate = due + timedelta(hours=sla.escalate_after_hours) \
        if sla.escalate_after_hours is not None else None
    return due, remind, escalate


def list_days(session: Session, year: int | None = None) -> list[CalendarDay]:
    stmt = select(CalendarDay).order_by(CalendarDay.day)
    if year is not None:
        stmt = stmt.where(CalendarDay.day >= date(year, 1, 1),
                          CalendarDay.day <= date(year, 12, 31))
    return list(session.execute(stmt).scalars())


def set_days(session: Session, days: Iterable[tuple[date, bool, str | None]], *,
             year: int | None = None) -> int:
    """Replace the exceptions (of ``year``, or all) with ``days``; how many are stored."""
    rows = list(days)
    stmt = delete(CalendarDay)
    if year is not None:
        outside = [d for d, _w, _n in rows if d.year != year]
        if outside:
            raise InvalidInput(f"{outside[0]} is not in {year}", day=outside[0].isoformat())
        stmt = stmt.where(CalendarDay.day >= date(year, 1, 1),
                          CalendarDay.day <= date(year, 12, 31))
    session.execute(stmt)
    seen: set[date] = set()
    for day, workday, name in rows:
        if day in seen:
            raise InvalidInput(f"{day} is listed twice", day=day.isoformat())
        seen.add(day)
        session.add(CalendarDay(day=day, workday=workday, name=name))
    session.flush()
    return len(rows)
