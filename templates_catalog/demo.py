"""A template's demo data (its ``demo/`` folder): departments, users, records, and how far
each record's flow has got — loaded through the engines as the demo users themselves.

``directory.json`` names departments (with their managers) and users (with their
roles); ``records.json`` lists per form the records, each with a ``ref``, its ``owner``
(a username), when it was ``created`` and its ``data``, where ``"@ref"`` stands for the
id of another demo record. A record may carry ``flow``: the flow to start when it was
created and its ``acts``, each the outcome of the open task on a ``day``, with the
``data`` the step writes. The acts are played in time order on the engines' own clock,
so tasks, deadlines and timers carry the dates they would have had; whatever is still
open at the end is where that case stands today (overdue ones included).

All dates are as of ``as_of`` and shift by the days since then, so the demo always shows
the last months. One transaction: the demo loads entirely or not at all.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import bindparam, select, update
from sqlalchemy.orm import Session

from engine_flows import runs, sla
from engine_flows import tasks as flow_tasks
from engine_flows.models import Task, TaskCandidate
from engine_flows.tasks import Who
from engine_forms import records as record_handler
from engine_forms.forms import published
from engine_forms.sealing import FieldCrypt
from platform_core.models import OutboxEvent, Record
from platform_core.security import audit
from platform_core.security.crypto import Keyring
from platform_core.security.directory import create_department
from platform_core.security.models import Department, User
from platform_core.security.passwords import hash_password
from platform_core.security.principal import Principal, load_principal
from platform_core.security.users import create_user
from platform_core.store import Actor
from templates_catalog.bundle import Bundle, BundleError
from templates_catalog.install import form_order

CHINA = ZoneInfo("Asia/Shanghai")
Progress = Callable[[str], None]


@dataclass
class DemoResult:
    password: str
    users: list[str]
    records: dict[str, int] = field(default_factory=dict)
    flows: int = 0
    open_tasks: int = 0


@dataclass
class _Load:
    session: Session
    app: str
    keyring: Keyring | None
    shift: timedelta
    now: datetime
    users: dict[str, User] = field(default_factory=dict)
    refs: dict[str, int] = field(default_factory=dict)
    # Read once per load: nobody changes a demo user's roles or a form's fields while the
    # demo plays, and each was a query per flow step (a tenth of the statements).
    principals: dict[str, Principal] = field(default_factory=dict)
    types: dict[str, dict[str, str]] = field(default_factory=dict)
    run_forms: dict[int, str] = field(default_factory=dict)

    def who(self, username: str, now: datetime) -> Who:
        if username not in self.principals:
            self.principals[username] = load_principal(self.session, self.users[username],
                                                       via="demo")
        return Who(self.principals[username], self.keyring, now)

    def moment(self, text: str) -> datetime:
        return self.past(datetime.fromisoformat(text).astimezone(UTC) + self.shift)

    def day(self, text: str, hour: int) -> datetime:
        local = datetime.combine(date.fromisoformat(text) + self.shift, time(hour), CHINA)
        return self.past(local.astimezone(UTC))

    def past(self, moment: datetime) -> datetime:
        """Nothing happens later than now (a demo loaded at 08:00 on its last day)."""
        return min(moment, self.now)

    def value(self, value: Any, kind: str | None) -> Any:
        """``"@ref"`` as the record's id; a date moved by the shift."""
        if isinstance(value, str) and value.startswith("@"):
            if value[1:] not in self.refs:
                raise BundleError([f"demo/records.json: no record {value[1:]!r} before this"])
            return self.refs[value[1:]]
        if kind == "date" and isinstance(value, str):
            return (date.fromisoformat(value) + self.shift).isoformat()
        return value

    def data(self, form: str, data: dict[str, Any]) -> dict[str, Any]:
        if form not in self.types:
            spec = published(self.session, self.app, form).spec
            self.types[form] = {f.key: f.type for f in spec.fields}
        types = self.types[form]
        return {k: self.value(v, types.get(k)) for k, v in data.items()}


def _department(session: Session, name: str, parent: int | None, actor: Actor) -> Department:
    """The department ``name`` under ``parent``, made if there is none."""
    under = Department.parent_id.is_(None) if parent is None else Department.parent_id == parent
    found = session.execute(select(Department).where(Department.name == name, under)
                            ).scalars().first()
    return found or create_department(session, name=name, parent_id=parent, actor=actor)


def _directory(load: _Load, doc: dict[str, Any], password: str, actor: Actor) -> list[str]:
    """The departments and users (one that exists already — a second demo app — is used
    as it is)."""
    departments: dict[str, Department] = {}
    for d in doc.get("departments", []):
        parent = departments[d["parent"]].id if d.get("parent") else None
        departments[d["key"]] = _department(load.session, d["name"], parent, actor)
    made, hashed = [], hash_password(password)  # one hash for all: argon2 is slow
    for u in doc.get("users", []):
        row = load.session.execute(select(User).where(User.username == u["username"])
                                   ).scalar_one_or_none()
        if row is None:
            dept = departments[u["department"]].id if u.get("department") else None
            row, _ = create_user(load.session, username=u["username"],
                                 display_name=u["display_name"], password=password,
                                 actor=actor, mobile=u.get("mobile"), email=u.get("email"),
                                 roles=tuple(u.get("roles", ())), department_id=dept,
                                 password_hash=hashed)
            made.append(row.username)
        load.users[row.username] = row
    for d in doc.get("departments", []):
        if d.get("manager"):
            departments[d["key"]].manager_id = load.users[d["manager"]].id
    load.session.flush()
    return made


def _records(load: _Load, doc: dict[str, Any], forms: dict[str, Any]
             ) -> tuple[dict[str, int], list[Any]]:
    """Create every record as its owner, dated as the demo says; the flows to play.

    A form's records are created in one bulk call (validation, numbers, links and their
    ``record.created`` events as one at a time would make them, in the file's order) by
    the first owner; each record is then given its own owner and date, and its event the
    owner as actor — a few statements per form instead of a dozen per record.
    """
    counts, flows = {}, []
    for form in (f for f in form_order(forms) if f in doc):
        items = doc[form]
        pub = published(load.session, load.app, form)
        first = load.users[items[0]["owner"]]
        ids = record_handler.create_many(
            load.session, pub, [load.data(form, item["data"]) for item in items],
            actor=Actor(user_id=first.id, department_id=first.department_id,
                        name=first.username),
            crypt=FieldCrypt(pub, load.keyring))
        rows = []
        for rid, item in zip(ids, items, strict=True):
            owner, when = load.users[item["owner"]], load.moment(item["created"])
            rows.append({"rid": rid, "owner": owner.id, "dept": owner.department_id,
                         "when": when})
            load.refs[item["ref"]] = rid
            if item.get("flow"):
                flows.append((when, item, rid, form))
        _as_owners(load.session, rows)
        counts[form] = len(items)
    return counts, flows


def _as_owners(session: Session, rows: list[dict[str, Any]]) -> None:
    """Each new record's owner and creation time, and its owner as its
    ``record.created`` event's actor (an executemany each)."""
    records = Record.__table__
    session.execute(update(records).where(records.c.id == bindparam("rid")).values(
        owner_id=bindparam("owner"), department_id=bindparam("dept"),
        created_by=bindparam("owner"), updated_by=bindparam("owner"),
        created_at=bindparam("when"), updated_at=bindparam("when")), rows)
    owners = {r["rid"]: r["owner"] for r in rows}
    events = session.execute(select(OutboxEvent.id, OutboxEvent.record_id, OutboxEvent.payload)
                             .where(OutboxEvent.event_type == "record.created",
                                    OutboxEvent.record_id.between(min(owners), max(owners))))
    outbox = OutboxEvent.__table__
    changed = [{"eid": eid, "payload": {**payload, "actor_id": owners[rid]}}
               for eid, rid, payload in events if rid in owners]
    session.execute(update(outbox).where(outbox.c.id == bindparam("eid"))
                    .values(payload=bindparam("payload")), changed)


def _acting_user(session: Session, run_id: int) -> tuple[int, str]:
    """An open task of the run and who works it (its assignee, else a candidate)."""
    task = session.execute(select(Task).where(Task.run_id == run_id, Task.status == "open")
                           .order_by(Task.id)).scalars().first()
    if task is None:
        raise BundleError([f"demo: flow run {run_id} has no open task to act on"])
    user_id = task.assignee_id or session.execute(select(TaskCandidate.user_id).where(
        TaskCandidate.task_id == task.id)).scalars().first()
    return task.id, session.get(User, user_id).username


def _play(load: _Load, flows: list[Any], progress: Progress) -> int:
    """Start each flow when its record was made, then play every act in time order."""
    timeline: list[tuple[datetime, int, Any]] = []
    started: dict[int, int] = {}
    for n, (when, item, record_id, _form) in enumerate(flows):
        timeline.append((when, n, ("start", item, record_id)))
        for i, act in enumerate(item["flow"].get("acts", [])):
            at = load.past(max(load.day(act["day"], 10 + i % 8), when + timedelta(minutes=i + 1)))
            timeline.append((at, n, ("act", act, record_id)))
    timeline.sort(key=lambda t: (t[0], t[1]))
    for done, (at, _n, (what, item, record_id)) in enumerate(timeline, start=1):
        if done % 200 == 0 or done == len(timeline):
            progress(f"flow steps {done}/{len(timeline)}")
        sla.wake_timers(load.session, at)
        if what == "start":
            who = load.who(item["owner"], at)
            run = runs.start(load.session, app=load.app, flow=item["flow"]["key"],
                             record_id=record_id, who=who)
            started[record_id] = run.id
            load.run_forms[run.id] = run.form
            continue
        task_id, username = _acting_user(load.session, started[record_id])
        outcome = item["outcome"]
        data = load.data(load.run_forms[started[record_id]], item.get("data", {}))
        flow_tasks.complete(load.session, task_id, load.who(username, at), outcome=outcome,
                            data=data, operation="approve" if outcome == "approve"
                            else "complete")
    return len(started)


def load_demo(session: Session, bundle: Bundle, *, app: str, keyring: Keyring | None,
              actor: Actor, today: date | None = None,
              progress: Progress = lambda _line: None) -> DemoResult:
    """Load ``bundle``'s demo into installed app ``app`` (``progress`` hears how far it
    has got)."""
    if bundle.demo is None:
        raise BundleError(["the bundle has no demo/ folder"])
    directory = json.loads((bundle.demo / "directory.json").read_text(encoding="utf-8"))
    records = json.loads((bundle.demo / "records.json").read_text(encoding="utf-8"))
    today = today or datetime.now(CHINA).date()
    shift = today - date.fromisoformat(directory.get("as_of", today.isoformat()))
    load = _Load(session, app, keyring, shift, datetime.now(UTC) - timedelta(minutes=5))
    password = f"Demo-{secrets.token_urlsafe(9)}"
    made = _directory(load, directory, password, actor)
    # (which version of each form is published is read once: see forms._stamps)
    counts, flows = _records(load, records, bundle.forms)
    progress("records " + ", ".join(f"{form} {n}" for form, n in counts.items()))
    played = _play(load, flows, progress)
    audit.append(session, actor=actor, action="app.demo", target=f"app:{app}",
                 detail={"records": counts, "flows": played, "users": made})
    now = datetime.now(UTC)
    sla.wake_timers(session, now)
    sla.scan_tasks(session, now)
    open_tasks = session.execute(select(Task.id).where(Task.app == app,
                                                       Task.status == "open")).all()
    return DemoResult(password=password, users=made, records=counts, flows=played,
                      open_tasks=len(open_tasks))
