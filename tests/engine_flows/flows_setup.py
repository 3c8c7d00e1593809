"""Shared set-up for the flow-engine tests: app ``bank`` with a ``case`` form, users in
roles and departments, and helpers to publish flows and act as each user.

Every user acts through the real API with a personal bearer token (``World.as_``), so
the guard, the services and the transactions are the ones a person meets.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy import select

from engine_flows.models import FlowHistory
from platform_core.db import Database
from platform_core.models import OutboxEvent
from platform_core.security.directory import save_role
from tests.security_setup import SYSTEM, add_department, add_user, token_for

API = "/api/v1"
APP = f"{API}/apps/bank"

CASE_FORM: dict[str, Any] = {
    "key": "case", "name": "贷款案件", "title_field": "title",
    "fields": [
        {"key": "title", "label": "标题", "type": "text", "required": True},
        {"key": "region", "label": "区域", "type": "text"},
        {"key": "amount", "label": "金额", "type": "money"},
        {"key": "owner_user", "label": "负责人", "type": "user"},
        {"key": "approval_result", "label": "审批结果", "type": "select",
         "options": [
             {"value": "approved", "label": "已批准"}, {"value": "rejected", "label": "已拒绝"}]},
        {"key": "maturity_date", "label": "到期日", "type": "date"},
        {"key": "note", "label": "备注", "type": "text"},
        {"key": "secret_note", "label": "内部备注", "type": "text"},
        {"key": "mobile", "label": "客户手机", "type": "phone", "sensitive": {"mask": True}},
    ]}

# custom roles of the tests: each may read and update every case (scope all)
ROLE_KEYS = ("sales", "risk", "clerk", "bank_liaison", "finance")
ROLE_PERMS = {"forms": {"bank.*": {"actions": ["create", "read", "update"], "scope": "all"}}}


def ok(response: Any, status: int = 200) -> Any:
    assert response.status_code == status, response.text
    return response.json() if response.content else None


@dataclass
class World:
    """The app, its database and one signed-in client per user."""

    app: Any
    db: Database
    admin: TestClient
    users: dict[str, int] = field(default_factory=dict)
    clients: dict[str, TestClient] = field(default_factory=dict)
    departments: dict[str, int] = field(default_factory=dict)

    def user(self, name: str, *roles: str, department: str | None = None) -> int:
        dept = self.departments.get(department) if department else None
        user_id = add_user(self.db, name, roles=roles or ("staff",), department_id=dept)
        client = TestClient(self.app, raise_server_exceptions=False)
        client.headers["Authorization"] = f"Bearer {token_for(self.db, user_id)}"
        self.users[name], self.clients[name] = user_id, client
        return user_id

    def as_(self, name: str) -> TestClient:
        return self.clients[name]

    def role(self, key: str, actions: tuple[str, ...], scope: str = "all",
             fields: dict[str, str] | None = None) -> None:
        """A custom role with ``actions`` on every form of ``bank`` (rows of ``scope``,
        field permissions ``fields``)."""
        perms = {"forms": {"bank.*": {"actions": list(actions), "scope": scope,
                                      "fields": fields or {}}}}
        with self.db.write() as s:
            save_role(s, key=key, name=key, description=None, permissions=perms,
                      actor=SYSTEM, principal=None, create=True)

    def department(self, name: str, parent: str | None = None,
                   manager: str | None = None) -> int:
        dept = add_department(self.db, name, self.departments.get(parent) if parent else None)
        self.departments[name] = dept
        if manager:
            self.set_manager(name, manager)
        return dept

    def set_manager(self, department: str, manager: str) -> None:
        ok(self.admin.patch(f"{API}/departments/{self.departments[department]}",
                            json={"manager_id": self.users[manager]}))

    def flow(self, spec: dict[str, Any]) -> dict[str, Any]:
        """Create (or replace the draft of) and publish ``spec``; its version."""
        existing = self.admin.get(f"{APP}/flows/{spec['key']}")
        if existing.status_code == 200:
            ok(self.admin.put(f"{APP}/flows/{spec['key']}", json=spec))
        else:
            ok(self.admin.post(f"{APP}/flows", json=spec), 201)
        return ok(self.admin.post(f"{APP}/flows/{spec['key']}/publish"), 201)

    def case(self, who: str | None = None, **data: Any) -> int:
        """A new case record, created by ``who`` (its owner and department) or the admin."""
        data.setdefault("title", "案件")
        client = self.as_(who) if who else self.admin
        return ok(client.post(f"{APP}/forms/case/records", json=data), 201)["id"]

    def record(self, record_id: int) -> dict[str, Any]:
        return ok(self.admin.get(f"{APP}/forms/case/records/{record_id}"))["data"]

    def start(self, flow: str, record_id: int, who: str | None = None) -> dict[str, Any]:
        client = self.as_(who) if who else self.admin
        return ok(client.post(f"{APP}/flows/{flow}/instances",
                              json={"record_id": record_id}), 201)

    def instance(self, flow: str, run_id: int) -> dict[str, Any]:
        return ok(self.admin.get(f"{APP}/flows/{flow}/instances/{run_id}"))

    def open_tasks(self, who: str) -> list[dict[str, Any]]:
        return ok(self.as_(who).get(f"{API}/tasks", params={"assignee": "me",
                                                             "status": "open"}))["items"]

    def task_of(self, who: str, run_id: int) -> dict[str, Any]:
        mine = [t for t in self.open_tasks(who) if t["run_id"] == run_id]
        assert len(mine) == 1, (who, mine)
        return mine[0]

    def act(self, who: str, task_id: int, operation: str = "complete",
            status: int = 200, **body: Any) -> Any:
        return ok(self.as_(who).post(f"{API}/tasks/{task_id}/{operation}", json=body),
                  status)

    def current(self, flow: str, run_id: int) -> list[str]:
        return sorted(s["node"] for s in self.instance(flow, run_id)["current"])

    def events(self, run_id: int | None = None) -> list[tuple[str, dict[str, Any]]]:
        """Outbox events in order (of one run: those whose payload names it)."""
        with self.db.read() as s:
            rows = s.execute(select(OutboxEvent.event_type, OutboxEvent.payload)
                             .order_by(OutboxEvent.id)).all()
        return [(t, p) for t, p in rows if run_id is None or p.get("run_id") == run_id]

    def event_types(self, run_id: int | None = None) -> list[str]:
        return [t for t, _p in self.events(run_id)]

    def history(self, run_id: int) -> list[str]:
        """The run's history actions, in order."""
        with self.db.read() as s:
            return list(s.execute(select(FlowHistory.action).where(
                FlowHistory.run_id == run_id).order_by(FlowHistory.id)).scalars())


class Clock:
    """The flow API's clock (``engine_flows.api.utcnow``), moved by hand in a test."""

    def __init__(self, now: datetime):
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> datetime:
        self.now += timedelta(**delta)
        return self.now


# a Monday, 10:00 in Asia/Shanghai
MONDAY = datetime(2031, 3, 3, 2, 0, tzinfo=UTC)


def build_world(app: Any, db: Database, admin: TestClient) -> World:
    """App ``bank`` with form ``case`` published and the test roles created."""
    ok(admin.post(f"{API}/apps", json={"key": "bank", "name": "银行业务"}), 201)
    ok(admin.post(f"{APP}/forms", json=CASE_FORM), 201)
    ok(admin.post(f"{APP}/forms/case/publish"))
    with db.write() as s:
        for key in ROLE_KEYS:
            save_role(s, key=key, name=key, description=None, permissions=ROLE_PERMS,
                      actor=SYSTEM, principal=None, create=True)
    return World(app=app, db=db, admin=admin)


def linear(key: str, steps: list[dict[str, Any]], **extra: Any) -> dict[str, Any]:
    """start → steps… → end, each step a node dict."""
    nodes = [{"id": "start", "type": "start"}, *steps, {"id": "end", "type": "end"}]
    ids = [n["id"] for n in nodes]
    return {"key": key, "name": key, "form": "case", "nodes": nodes,
            "edges": [{"from": a, "to": b} for a, b in zip(ids, ids[1:], strict=False)],
            **extra}


def stamp_flow(user: str = "li") -> dict[str, Any]:
    """``stamp``: ``user`` works the case, then a service step sets its note to 已受理."""
    return linear("stamp", [
        {"id": "work", "type": "user_task", "assignee": {"strategy": "users", "users": [user]}},
        {"id": "mark", "type": "service",
         "actions": [{"type": "set_fields", "values": {"note": '"已受理"'}}]}])
