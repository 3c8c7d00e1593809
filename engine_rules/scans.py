"""Time-based triggers, as scans the scheduler runs (``platform_core.scans``): rules on a
``schedule`` (cron), ``date_relative`` rules (a date field ± days, at a time of day) and
``task.overdue`` rules N days after due.

Each firing is marked once in ``trigger_marks`` — (rule, subject, moment): a cron tick,
a record and its target date, a task — in the same transaction as the rule's run, so a
scan that runs twice, or on two workers, fires nothing twice; and a scan after downtime
catches up on what came due meanwhile (since the rule was enabled, never before).
Date-relative scans are range queries on the date field (its expression index when the
field is ``indexed``), not a loop over the form's records: from the day after the last
one scanned to the end (a ``scanned`` mark per rule; today stays open for records
entered late) up to today, paged, skipping what was fired. Overdue scans skip tasks
already fired for the rule, so tasks left open never hide the newly overdue ones.
Scans read their clock in any time zone (compared in UTC).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from apscheduler.triggers.cron import CronTrigger
from sqlalchemy import String, cast, func, literal, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from engine_flows.models import FlowRun, Task
from engine_forms.forms import published
from engine_rules.context import Fired
from engine_rules.models import Rule, TriggerMark
from engine_rules.runner import run_rule
from engine_rules.spec import RuleSpec
from platform_core.db import Database
from platform_core.store import Query, RecordRow, query_records

log = logging.getLogger("qiao.rules")
LOCAL = ZoneInfo("Asia/Shanghai")
BATCH = 500


def cron_trigger(line: str) -> CronTrigger:
    """A crontab line (``0 9 * * MON``) in Asia/Shanghai; ValueError when malformed."""
    return CronTrigger.from_crontab(line, timezone=LOCAL)


def _mark(session: Session, rule: Rule, subject: str, moment: str, now: datetime) -> bool:
    """Claim (rule, subject, moment); False when it was fired already."""
    try:
        with session.begin_nested():
            session.add(TriggerMark(rule_id=rule.id, subject=subject, moment=moment, at=now))
            session.flush()
    except IntegrityError:
        return False
    return True


def _rules(session: Session, trigger: str) -> list[tuple[Rule, RuleSpec]]:
    rows = session.execute(select(Rule).where(Rule.trigger == trigger,
                                              Rule.enabled.is_(True)).order_by(Rule.id))
    return [(r, RuleSpec.model_validate(r.spec)) for r in rows.scalars()]


def _aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _utc(now: datetime) -> datetime:
    """``now`` in UTC: SQLite keeps timestamps as UTC text without a zone and compares
    text, so a clock given in Asia/Shanghai would fire eight hours early."""
    return _aware(now).astimezone(UTC)


# -- schedule (cron) -------------------------------------------------------------------------


def scan_schedules(session: Session, now: datetime, keyring: Any = None) -> int:
    """Each cron rule's latest due tick since it was enabled, once (missed ticks during
    downtime fold into one run: a Monday report is sent once, not four times)."""
    now = _utc(now)
    fired = 0
    for rule, spec in _rules(session, "schedule"):
        since = _aware(rule.enabled_at)
        last = _last_fired(session, rule)
        if last is not None and last >= since:
            since = last + timedelta(seconds=1)  # ticks up to the last one fired are done
        tick = _last_tick(cron_trigger(spec.trigger.cron or ""), since, now)
        if tick is None or not _mark(session, rule, "cron", tick.isoformat(), now):
            continue
        fired += _fire_schedule(session, rule, spec, tick, now, keyring)
    return fired


def _last_fired(session: Session, rule: Rule) -> datetime | None:
    """The latest tick the rule fired for (its marks' moments are ISO times in LOCAL)."""
    moment = session.execute(select(func.max(TriggerMark.moment)).where(
        TriggerMark.rule_id == rule.id, TriggerMark.subject == "cron")).scalar()
    return datetime.fromisoformat(moment) if moment else None


def _last_tick(trigger: CronTrigger, since: datetime, now: datetime) -> datetime | None:
    last, nxt = None, trigger.get_next_fire_time(None, since)
    while nxt is not None and nxt <= now:
        last, nxt = nxt, trigger.get_next_fire_time(nxt, nxt + timedelta(seconds=1))
    return last


def _pages(session: Session, query: Query) -> Iterator[list[RecordRow]]:
    """Every page of ``query`` (keyset cursor), first to last."""
    while True:
        page = query_records(session, query)
        yield page.records
        if page.next_cursor is None:
            return
        query = replace(query, cursor=page.next_cursor)


def _fire_schedule(session: Session, rule: Rule, spec: RuleSpec, tick: datetime,
                   now: datetime, keyring: Any) -> int:
    """The tick's run, or one run per record of the form matching the filter (every
    page of them, in the transaction that marked the tick)."""
    key, payload = f"cron:{rule.id}:{tick.isoformat()}", {"tick": tick.isoformat()}
    form = spec.trigger.form
    if not form:
        run_rule(session, rule, Fired(key, "schedule", rule.app, payload=payload), now=now,
                 keyring=keyring)
        return 1
    pub = published(session, rule.app, form)
    fired = 0
    for rows in _pages(session, Query(pub.fields, filter=spec.trigger.filter, limit=BATCH)):
        for row in rows:
            run_rule(session, rule, Fired(f"{key}:{row.id}", "schedule", rule.app, form,
                                          row.id, payload), now=now, keyring=keyring)
        fired += len(rows)
    return fired


# -- date relative -----------------------------------------------------------------------------

SCANNED = "scanned"  # the mark whose moment is the last target day scanned to the end


def scan_dates(session: Session, now: datetime, keyring: Any = None) -> int:
    """Records whose date field + offset is today or earlier (not before the rule was
    enabled, nor before the last day already scanned to the end) and whose time of day
    ``at`` has come, each once per target date; at most ``BATCH`` firings per rule and
    call (the scan is called again while it reports work)."""
    now = _utc(now)
    fired = 0
    local = now.astimezone(LOCAL)
    for rule, spec in _rules(session, "date_relative"):
        trig = spec.trigger
        due_today = local.time() >= time.fromisoformat(trig.at)
        last_day = local.date() if due_today else local.date() - timedelta(days=1)
        first_day = _aware(rule.enabled_at).astimezone(LOCAL).date()
        scanned = _scanned(session, rule)
        if scanned is not None:
            first_day = max(first_day, scanned + timedelta(days=1))
        if last_day < first_day:
            continue
        count, complete = _fire_dates(session, rule, spec, first_day, last_day, now, keyring)
        fired += count
        if complete:  # days before today are closed; today's late entries still fire
            _set_scanned(session, rule, min(last_day, local.date() - timedelta(days=1)), now)
    return fired


def _fire_dates(session: Session, rule: Rule, spec: RuleSpec, first_day: date,
                last_day: date, now: datetime, keyring: Any) -> tuple[int, bool]:
    """Fire the records whose target day is in [first_day, last_day] and not fired yet:
    (how many, whether the window was scanned to its end)."""
    trig = spec.trigger
    # target day = field + offset  ⇔  field = target day − offset
    low, high = (first_day - timedelta(days=trig.offset_days),
                 last_day - timedelta(days=trig.offset_days))
    pub = published(session, rule.app, trig.form or "")
    window = {"and": [{"field": trig.field, "op": "gte", "value": low.isoformat()},
                      {"field": trig.field, "op": "lte", "value": high.isoformat()}]}
    fired = 0
    for rows in _pages(session, Query(pub.fields, filter=window, limit=BATCH,
                                      sort=trig.field)):
        targets = {row.id: (date.fromisoformat(str(row.data[trig.field])[:10])
                            + timedelta(days=trig.offset_days)).isoformat() for row in rows}
        done = {(subject, moment) for subject, moment in session.execute(
            select(TriggerMark.subject, TriggerMark.moment).where(
                TriggerMark.rule_id == rule.id,
                TriggerMark.subject.in_([f"record:{i}" for i in targets])))}
        for record_id, target in targets.items():
            if (f"record:{record_id}", target) in done:
                continue
            if fired >= BATCH:
                return fired, False
            if _mark(session, rule, f"record:{record_id}", target, now):
                run_rule(session, rule, Fired(f"date:{rule.id}:{record_id}:{target}",
                                              "date_relative", rule.app, trig.form, record_id,
                                              {"target_date": target}),
                         now=now, keyring=keyring)
                fired += 1
    return fired, True


def _scanned(session: Session, rule: Rule) -> date | None:
    moment = session.execute(select(TriggerMark.moment).where(
        TriggerMark.rule_id == rule.id, TriggerMark.subject == SCANNED)).scalar()
    return date.fromisoformat(moment) if moment else None


def _set_scanned(session: Session, rule: Rule, day: date, now: datetime) -> None:
    """Move the rule's scanned day forward to ``day`` (never back)."""
    moved = session.execute(update(TriggerMark).where(
        TriggerMark.rule_id == rule.id, TriggerMark.subject == SCANNED,
        TriggerMark.moment < day.isoformat()).values(moment=day.isoformat(), at=now)
        .execution_options(synchronize_session=False))
    if not moved.rowcount:  # type: ignore[attr-defined]
        _mark(session, rule, SCANNED, day.isoformat(), now)  # absent: insert (or raced)


# -- tasks N days overdue --------------------------------------------------------------------


def scan_overdue(session: Session, now: datetime, keyring: Any = None) -> int:
    """Open tasks at least ``overdue_days`` past due, once per (rule, task): those not
    fired yet, so tasks left open for long never hide the newly overdue ones."""
    now = _utc(now)
    fired = 0
    for rule, spec in _rules(session, "task.overdue"):
        trig = spec.trigger
        if not trig.overdue_days:
            continue
        moment = f"+{trig.overdue_days}d"
        marked = select(TriggerMark.rule_id).where(
            TriggerMark.rule_id == rule.id, TriggerMark.moment == moment,
            TriggerMark.subject == literal("task:", String) + cast(Task.id, String))
        stmt = (select(Task, FlowRun.form).outerjoin(FlowRun, FlowRun.id == Task.run_id)
                .where(Task.app == rule.app, Task.status == "open", Task.due_at.is_not(None),
                       Task.due_at <= now - timedelta(days=trig.overdue_days),
                       ~marked.exists())
                .order_by(Task.due_at, Task.id).limit(BATCH))
        if trig.flow:
            stmt = stmt.where(Task.flow == trig.flow)
        if trig.step:
            stmt = stmt.where(Task.node_id == trig.step)
        for task, form in session.execute(stmt).all():
            if not _mark(session, rule, f"task:{task.id}", moment, now):
                continue
            run_rule(session, rule, Fired(
                f"overdue:{rule.id}:{task.id}", "task.overdue", rule.app, form,
                task.record_id, _overdue(task, now)), now=now, keyring=keyring)
            fired += 1
    return fired


def _overdue(task: Task, now: datetime) -> dict[str, Any]:
    due = _aware(task.due_at) if task.due_at else now
    return {"task_id": task.id, "run_id": task.run_id, "flow": task.flow,
            "node": task.node_id, "step": task.title, "assignee_id": task.assignee_id,
            "due_at": due.isoformat(), "overdue_days": (now - due).days}


def overdue_payload(session: Session, task_id: int) -> dict[str, Any]:
    """The payload of an N-days-overdue trigger of task ``task_id`` (a replay's)."""
    task = session.get(Task, task_id)
    if task is None:
        return {}
    at = session.execute(select(func.max(TriggerMark.at)).where(
        TriggerMark.subject == f"task:{task_id}")).scalar()
    return _overdue(task, _aware(at) if at else _utc(datetime.now(UTC)))


# The installation's keyring for the registered ``scan`` (a scan is ``scan(db, now)``):
# bound when the plugin is registered with the app context, so rules fired by a scan
# open and seal encrypted fields like those fired by the dispatcher.
_KEYRING: list[Any] = [None]


def bind_keyring(keyring: Any) -> None:
    _KEYRING[0] = keyring


def scan(db: Database, now: datetime, keyring: Any = None) -> int:
    """Every time-based trigger, one transaction each kind."""
    done = 0
    keyring = keyring if keyring is not None else _KEYRING[0]
    for kind in (scan_schedules, scan_dates, scan_overdue):
        with db.write() as session:
            done += kind(session, now, keyring)
    return done
