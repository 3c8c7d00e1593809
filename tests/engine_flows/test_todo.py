"""To-dos: tasks about a record outside any flow (what a rule's create_task makes) share
the inbox, the SLA scan and the completion route; operations that move a flow are
refused (transfer and delegation: tests/engine_flows/test_todo_handover.py)."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select

from engine_flows.sla import scan
from engine_flows.todo import create_todo
from platform_core.models import OutboxEvent, Record, utcnow
from platform_core.store import SYSTEM
from tests.engine_flows.flows_setup import API, ok


def _todo(world, record_id, *, due_in_days=1, **assignee):
    with world.db.write() as s:
        rec = s.get(Record, record_id)
        return create_todo(s, app="bank", record=rec, data=rec.data, title="到期回访",
                           assignee=assignee, due_at=utcnow() + timedelta(days=due_in_days),
                           actor=SYSTEM, now=utcnow()).id


def test_a_todo_is_in_the_inbox_completed_once_and_scanned_for_overdue(world):
    alice = world.user("alice", "sales")
    rec = world.case(title="到期客户", owner_user=alice)
    task_id = _todo(world, rec, strategy="field", field="owner_user")
    [mine] = world.open_tasks("alice")
    assert (mine["id"], mine["title"], mine["kind"], mine["record_id"]) == (
        task_id, "到期回访", "todo", rec)
    detail = ok(world.as_("alice").get(f"{API}/tasks/{task_id}"))
    assert detail["record"]["data"]["title"] == "到期客户" and detail["step"]["outcomes"]
    ok(world.as_("alice").post(f"{API}/tasks/{task_id}/reject", json={}), 403)  # no flow
    assert scan(world.db, utcnow() + timedelta(days=2)) >= 1  # overdue before done
    world.act("alice", task_id, comment="已回访")
    world.act("alice", task_id, status=409)
    assert world.open_tasks("alice") == []
    with world.db.read() as s:
        types = list(s.execute(select(OutboxEvent.event_type).where(
            OutboxEvent.event_type.like("task.%"))).scalars())
    assert types == ["task.created", "task.overdue", "task.completed"]


def test_a_todo_for_a_role_is_offered_to_its_members(world):
    world.user("rita", "risk")
    world.user("rick", "risk")
    task_id = _todo(world, world.case(), strategy="role", role="risk")
    assert [t["id"] for t in world.open_tasks("rick")] == [task_id]
    world.act("rita", task_id)
    assert world.open_tasks("rick") == []
