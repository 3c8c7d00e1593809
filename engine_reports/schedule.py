"""Scheduled reports: a report with a ``schedule`` is e-mailed as a table to every active
user of its roles who has an e-mail address — each sees their own view of it (their row
scope and field rights) — at its weekly (or daily) time, China time.

Once per period: the first worker to insert the ``report_deliveries`` row for (report,
slot) sends it; the unique key stops every other worker and restart. A failed sending
is tried again on later ticks (at most ``MAX_ATTEMPTS`` times, ``RETRY`` apart). Only the
latest slot is sent: after downtime nobody gets a backlog of old weeks, and a slot
before the report was saved is never sent.
"""

from __future__ import annotations

import html
import logging
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError

from engine_reports.models import Report, ReportDelivery
from engine_reports.spec import WEEKDAYS, ReportSpec

log = logging.getLogger(__name__)
CHINA = ZoneInfo("Asia/Shanghai")
MAX_ATTEMPTS = 5
RETRY = timedelta(minutes=5)
EVERY = timedelta(seconds=30)  # how often a worker looks for due reports
_LAST: dict[str, datetime] = {}


def slot(schedule: Any, now: datetime) -> datetime:
    """The latest scheduled moment at or before ``now``."""
    local = now.astimezone(CHINA)
    hour, minute = (int(x) for x in schedule.at.split(":"))
    moment = datetime.combine(local.date(), time(hour, minute), CHINA)
    if schedule.every == "day":
        return moment if moment <= local else moment - timedelta(days=1)
    back = (local.weekday() - WEEKDAYS.index(schedule.every)) % 7
    moment -= timedelta(days=back)
    return moment if moment <= local else moment - timedelta(days=7)


def period_range(kind: str, day: date) -> tuple[date, date] | None:
    """The date range a scheduled report covers, seen from its slot's day."""
    if kind == "last_week":
        monday = day - timedelta(days=day.weekday())
        return monday - timedelta(days=7), monday - timedelta(days=1)
    if kind == "last_7_days":
        return day - timedelta(days=7), day - timedelta(days=1)
    if kind == "last_month":
        first = day.replace(day=1)
        end = first - timedelta(days=1)
        return end.replace(day=1), end
    if kind == "this_month":
        return day.replace(day=1), day
    if kind == "this_year":
        return day.replace(month=1, day=1), day
    return None


def scheduled_params(spec: ReportSpec, day: date) -> dict[str, Any]:
    assert spec.schedule is not None
    found = period_range(spec.schedule.period, day)
    for p in spec.parameters:
        if p.type == "date_range" and found is not None:
            return {p.key: [found[0].isoformat(), found[1].isoformat()]}
    return {}


def render(spec: ReportSpec, result: Any, params: dict[str, Any]) -> tuple[str, str, str]:
    """(subject, plain text, HTML) of one recipient's report."""
    from engine_reports.charts import format_value

    subject = f"【报表】{spec.name}"
    span = next(iter(params.values()), None)
    heading = spec.name + (f"（{span[0]} ~ {span[1]}）" if span else "")
    formats = [c.get("format") for c in result.columns]
    cells = [[v if f is None else format_value(v, f) for v, f in zip(row, formats,
                                                                     strict=True)]
             for row in result.rows]
    labels = [c["label"] for c in result.columns]
    text = "\n".join([heading, "", "\t".join(labels)]
                     + ["\t".join("" if v is None else str(v) for v in row) for row in cells])
    head = "".join(f"<th style='text-align:left;padding:4px 8px;border-bottom:1px solid "
                   f"#ccc'>{html.escape(label)}</th>" for label in labels)
    body = "".join("<tr>" + "".join(
        f"<td style='padding:4px 8px'>{html.escape('' if v is None else str(v))}</td>"
        for v in row) + "</tr>" for row in cells)
    page = (f"<html><body><h3>{html.escape(heading)}</h3><table style='border-collapse:"
            f"collapse;font-family:sans-serif'><thead><tr>{head}</tr></thead><tbody>{body}"
            "</tbody></table></body></html>")
    return subject, text, page


def _aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)  # SQLite: naive UTC


def recipients(session: Any, roles: list[str]) -> list[Any]:
    from platform_core.security.models import Role, User, UserRole

    return list(session.execute(
        select(User).join(UserRole, UserRole.user_id == User.id)
        .join(Role, Role.id == UserRole.role_id)
        .where(Role.key.in_(roles), User.status == "active", User.email.is_not(None))
        .distinct().order_by(User.id)).scalars())


def _claim(db: Any, app: str, key: str, period: str, now: datetime) -> int | None:
    """The delivery row this worker may send now (a new one, or a failed one due again)."""
    with db.write() as s:
        try:
            with s.begin_nested():
                row = ReportDelivery(app=app, report=key, period=period, status="sending",
                                     attempts=1, created_at=now)
                s.add(row)
                s.flush()
                return row.id
        except IntegrityError:
            pass
        found = s.execute(select(ReportDelivery).where(
            ReportDelivery.app == app, ReportDelivery.report == key,
            ReportDelivery.period == period)).scalar_one()
        if found.status != "failed" or found.attempts >= MAX_ATTEMPTS:
            return None
        if found.sent_at is not None and _aware(found.sent_at) > now - RETRY:
            return None
        claimed = s.execute(update(ReportDelivery).where(
            ReportDelivery.id == found.id, ReportDelivery.attempts == found.attempts,
            ReportDelivery.status == "failed").values(status="sending",
                                                      attempts=found.attempts + 1))
        return found.id if claimed.rowcount == 1 else None


def deliver(ctx: Any, app: str, key: str, now: datetime) -> str | None:
    """Send report ``key`` for its current slot if nobody has; the period sent, if any."""
    from engine_reports import running
    from platform_core.channels.store import effective_settings
    from platform_core.mail import send_mail
    from platform_core.security.principal import load_principal

    with ctx.db.read() as s:
        row = s.execute(select(Report).where(Report.app == app, Report.key == key)
                        ).scalar_one()
        spec = ReportSpec.model_validate(row.spec)
        if spec.schedule is None:
            return None
        moment = slot(spec.schedule, now)
        saved = _aware(row.updated_at)
        if moment < saved:
            return None
    period = moment.date().isoformat()
    delivery = _claim(ctx.db, app, key, period, now)
    if delivery is None:
        return None
    params = scheduled_params(spec, moment.date())
    sent, error = 0, None
    try:
        with ctx.db.read() as s:
            messages = []
            for user in recipients(s, spec.schedule.roles):
                principal = load_principal(s, user, via="session")
                viewer = running.Viewer(principal, getattr(ctx, "keyring", None))
                try:
                    result = running.run(s, app, spec, viewer, params)
                except Exception as exc:  # noqa: BLE001 - one reader's failure is reported
                    log.warning("scheduled report %s/%s for %s: %s", app, key,
                                user.username, exc)
                    continue
                messages.append((user.email, *render(spec, result, params)))
        # the SMTP server an administrator saved over the environment's (one read)
        mail = effective_settings(ctx.db, ctx.settings, getattr(ctx, "keyring", None)) \
            if messages else ctx.settings
        for address, subject, text, page in messages:
            send_mail(mail, to=[address], subject=subject, text=text, html=page)
            sent += 1
    except Exception as exc:  # noqa: BLE001 - recorded and retried
        error = f"{type(exc).__name__}: {exc}"[:2000]
    with ctx.db.write() as s:
        s.execute(update(ReportDelivery).where(ReportDelivery.id == delivery).values(
            status="failed" if error else "sent", error=error, recipients=sent,
            sent_at=now))
    return None if error else period


def segment_due(ctx: Any, app: str, key: str, now: datetime) -> str | None:
    """Recompute a segmentation for its current slot if nobody has; the slot, if any."""
    from engine_reports.segments import recompute

    with ctx.db.read() as s:
        row = s.execute(select(Report).where(Report.app == app, Report.key == key)
                        ).scalar_one()
        spec = ReportSpec.model_validate(row.spec)
        saved = _aware(row.updated_at)
    if spec.segment is None:
        return None
    moment = slot(spec.segment, now)
    if moment < saved:
        return None
    period = "segments:" + moment.date().isoformat()
    delivery = _claim(ctx.db, app, key, period, now)
    if delivery is None:
        return None
    error, done = None, {"records": 0}
    try:
        with ctx.db.write() as s:
            done = recompute(s, app, spec, keyring=getattr(ctx, "keyring", None))
    except Exception as exc:  # noqa: BLE001 - recorded and retried
        error = f"{type(exc).__name__}: {exc}"[:2000]
    with ctx.db.write() as s:
        s.execute(update(ReportDelivery).where(ReportDelivery.id == delivery).values(
            status="failed" if error else "sent", error=error, recipients=done["records"],
            sent_at=now))
    return None if error else period


def send_due(ctx: Any, client: Any, now: datetime, worker_id: str) -> int:  # noqa: ARG001
    """The worker-tick entry (``SENDERS``): every scheduled report due now, once."""
    last = _LAST.get(worker_id)
    if last is not None and timedelta(0) <= now - last < EVERY:
        return 0
    _LAST[worker_id] = now
    with ctx.db.read() as s:
        rows = s.execute(select(Report.app, Report.key, Report.spec)).all()
    done = 0
    for app, key, spec in rows:
        if spec.get("schedule") and deliver(ctx, app, key, now):
            done += 1
        if spec.get("segment") and segment_due(ctx, app, key, now):
            done += 1
    return done
