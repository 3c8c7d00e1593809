"""The home page's day at a glance: my open and overdue tasks, my unread notifications,
the records I opened lately, and the KPI figures shared with my roles — each read as
me (task inbox rules, record scopes and titles, report sharing and row scopes)."""

from __future__ import annotations

from decimal import Decimal, InvalidOperation
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from engine_flows import inbox
from engine_flows.tasks import Who
from engine_forms import service
from engine_forms.forms import list_apps, published
from engine_forms.service import Caller
from engine_reports import service as reports
from engine_reports.running import Viewer
from engine_rules.models import Notification
from frontend.workspace import views
from frontend.workspace.values import label_of, record_url, wan
from platform_core.errors import DomainError
from platform_core.models import utcnow
from platform_core.security.principal import Principal

TASKS_SHOWN = 5


def my_day(session: Session, principal: Principal, keyring: Any) -> dict[str, Any]:
    who = Who(principal, keyring, utcnow())
    open_tasks, _ = inbox.list_tasks(session, who, assignee="me", status="open", app=None,
                                     flow=None, cursor=None, limit=200)
    overdue = [t for t in open_tasks if t["overdue"]]
    shown = (overdue + [t for t in open_tasks if not t["overdue"]])[:TASKS_SHOWN]
    name_records(session, principal, keyring, shown)
    return {"open_count": len(open_tasks), "overdue_count": len(overdue),
            "tasks": shown,
            "unread": _unread(session, principal.user_id),
            "recent": _recent(session, principal, keyring),
            "kpis": _kpis(session, principal, keyring)}


def name_records(s: Session, principal: Principal, keyring: Any,
                 items: list[dict[str, Any]]) -> None:
    """Each task's record title and link (as the viewer may see it) and flow name."""
    from sqlalchemy import select

    from engine_flows.models import Flow
    from platform_core.models import Record

    forms = dict(s.execute(select(Record.id, Record.form).where(
        Record.id.in_({t["record_id"] for t in items}))).all()) if items else {}
    wanted: dict[tuple[str, str], set[int]] = {}
    for t in items:
        if t["record_id"] in forms:
            wanted.setdefault((t["app"], forms[t["record_id"]]), set()).add(t["record_id"])
    titles: dict[int, str] = {}
    for (app, form), ids in wanted.items():
        caller = Caller(principal, principal.access(app, form), keyring)
        titles |= service.titles(s, caller, published(s, app, form), ids)
    flows = {(f.app, f.key): f.draft.get("name") or f.key for f in s.execute(select(Flow))
             .scalars()} if items else {}
    for t in items:
        form = forms.get(t["record_id"])
        t["record_title"] = titles.get(t["record_id"], f"#{t['record_id']}")
        t["record_url"] = (f"/apps/{t['app']}/forms/{form}/records/{t['record_id']}"
                           if form and t["record_id"] in titles else None)
        t["flow_name"] = flows.get((t["app"], t["flow"]), t["flow"])


def _unread(session: Session, user_id: int) -> dict[str, Any]:
    count = session.execute(select(func.count()).select_from(Notification).where(
        Notification.user_id == user_id, Notification.read_at.is_(None))).scalar_one()
    latest = session.execute(select(Notification).where(
        Notification.user_id == user_id, Notification.read_at.is_(None)).order_by(
        Notification.id.desc()).limit(3)).scalars().all()
    return {"count": count, "latest": [{"title": n.title, "at": n.created_at}
                                       for n in latest]}


def _recent(session: Session, principal: Principal, keyring: Any) -> list[dict[str, Any]]:
    """Recently opened records the user may still read, by their titles."""
    out = []
    for item in views.recent(session, principal.user_id):
        access = principal.access(item["app"], item["form"])
        if not access.allows("read"):
            continue
        pub = published(session, item["app"], item["form"])
        titles = service.titles(session, Caller(principal, access, keyring), pub,
                                {item["id"]})
        if item["id"] in titles:
            out.append({"title": titles[item["id"]], "form": label_of(pub.spec),
                        "url": record_url(item["app"], item["form"], item["id"])})
    return out


def _kpis(session: Session, principal: Principal, keyring: Any) -> list[dict[str, Any]]:
    """The KPI reports shared with the user's roles, each as one figure."""
    viewer = Viewer(principal, keyring)
    out = []
    for app in list_apps(session):
        if not principal.app_allows(app.key, "read"):
            continue
        for row in reports.visible_reports(session, app.key, viewer):
            spec = reports.spec_of(row)
            if spec.chart is None or spec.chart.type != "kpi":
                continue
            try:
                _spec, res = reports.result(session, app.key, spec.key, viewer)
            except DomainError:
                continue
            value = res.rows[0][-1] if res.rows and res.rows[0] else None
            fmt = spec.measures[0].format if spec.measures else None
            out.append({"title": spec.chart.title or spec.name, "value": _figure(value, fmt),
                        "url": f"/apps/{app.key}/reports/{spec.key}"})
    return out


def _figure(value: Any, fmt: str | None) -> str:
    if value is None:
        return "—"
    try:
        number = Decimal(str(value))
    except (InvalidOperation, ValueError):
        return str(value)
    if fmt == "wan":
        return wan(number) or f"¥{number:,.2f}"
    if fmt in ("money", "yuan"):
        return f"¥{number:,.2f}"
    if fmt == "percent":
        return f"{number:.1f}%"
    return f"{number:,.0f}" if number == number.to_integral_value() else f"{number:,.2f}"
