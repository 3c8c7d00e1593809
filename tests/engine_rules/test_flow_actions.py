"""The actions that reach into the flow engine's inbox: ``create_task`` (a to-do about
the record, outside any flow, in the assignee's inbox with a due date) and
``advance_flow`` (complete the open tasks of a step of the record's running instance,
as the rule)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import select

from engine_flows.models import Task
from tests.engine_flows.flows_setup import API, ok
from tests.engine_rules.conftest import dispatch
from tests.engine_rules.rules_setup import SERVICE, add_rule, bodies, patch, runs


def test_create_task_puts_a_to_do_in_the_assignees_inbox(world, clock):
    alice = world.user("alice", "sales")
    add_rule(world, key="revisit", trigger={"type": "record.created", "form": "case"},
             condition="amount >= 1000",
             actions=[{"type": "create_task", "title": "回访 {{ record.title }}",
                       "assignee": {"field": "owner_user"}, "due_in_days": 7}])
    big = world.case(title="大额", amount="5000", owner_user=alice)
    world.case(title="小额", amount="5", owner_user=alice)
    before = datetime.now(UTC)
    dispatch(world)
    [todo] = world.open_tasks("alice")
    assert todo["record_id"] == big and todo["run_id"] is None
    with world.db.read() as s:
        task = s.execute(select(Task)).scalar_one()
        assert task.kind == "todo" and task.assignee_id == alice
        due = task.due_at if task.due_at.tzinfo else task.due_at.replace(tzinfo=UTC)
        assert before + timedelta(days=7) - timedelta(minutes=1) <= due
        assert due <= datetime.now(UTC) + timedelta(days=7)
    [run] = [r for r in runs(world, "revisit") if r["status"] == "done"]
    assert run["actions"][0]["result"] == {"task_id": todo["id"], "assignee_id": alice}
    assert todo["title"] == "回访 大额"
    ok(world.as_("alice").post(f"{API}/tasks/{todo['id']}/complete", json={}))
    assert world.open_tasks("alice") == []


def test_create_task_for_a_role_makes_candidates(world):
    world.user("bob", "risk")
    world.user("carol", "risk")
    add_rule(world, key="check", trigger={"type": "record.created", "form": "case"},
             actions=[{"type": "create_task", "title": "核对",
                       "assignee": {"strategy": "role", "role": "risk"}}])
    rec = world.case(title="甲")
    dispatch(world)
    with world.db.read() as s:
        task = s.execute(select(Task)).scalar_one()
        assert task.assignee_id is None and task.record_id == rec and task.due_at is None


def test_advance_flow_moves_the_step_on_as_the_rule(world, clock):
    world.user("alice", "sales")
    world.flow(SERVICE)
    add_rule(world, key="docs_ready", trigger={"type": "record.updated", "form": "case",
                                               "fields": ["note"]},
             condition='note = "资料齐全"',
             actions=[{"type": "advance_flow", "flow": "svc", "step": "docs",
                       "outcome": "submit"}])
    add_rule(world, key="at_review", trigger={"type": "flow.step_entered", "flow": "svc",
                                              "step": "review"},
             actions=[{"type": "notify", "channel": "in_app", "to": {"users": ["alice"]},
                       "template": "{{ record.title }} 待审核"}])
    rec = world.case(title="甲")
    run = world.start("svc", rec)["id"]
    assert world.current("svc", run) == ["docs"]
    patch(world, rec, note="还缺材料")
    dispatch(world, clock.now)
    assert world.current("svc", run) == ["docs"]
    patch(world, rec, note="资料齐全")
    dispatch(world, clock.now)
    assert world.current("svc", run) == ["review"]
    [done] = [r for r in runs(world, "docs_ready") if r["condition"]]
    assert done["status"] == "done" and len(done["actions"][0]["result"]["tasks"]) == 1
    assert world.history(run).count("task_completed") == 1
    assert bodies(world) == ["甲 待审核"]  # the step it entered triggers rules in turn


def test_advance_flow_without_a_running_instance_does_nothing(world):
    world.user("alice", "sales")
    world.flow(SERVICE)
    add_rule(world, key="docs_ready", trigger={"type": "record.created", "form": "case"},
             actions=[{"type": "advance_flow", "flow": "svc", "step": "docs"}])
    world.case(title="甲")
    dispatch(world)
    [run] = runs(world, "docs_ready")
    assert run["status"] == "done" and run["actions"][0]["result"] == {"tasks": []}


def test_advance_flow_refuses_an_unknown_outcome(world, clock):
    world.user("alice", "sales")
    world.flow(SERVICE)
    add_rule(world, key="bad", trigger={"type": "record.updated", "form": "case"},
             actions=[{"type": "advance_flow", "flow": "svc", "step": "docs",
                       "outcome": "explode"}])
    rec = world.case(title="甲")
    run = world.start("svc", rec)["id"]
    patch(world, rec, note="x")
    dispatch(world, clock.now)
    [failed] = runs(world, "bad")
    assert failed["status"] == "failed" and "explode" in failed["actions"][0]["error"]
    assert world.current("svc", run) == ["docs"]
