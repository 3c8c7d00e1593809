"""Fields a step requires for one outcome and not another (``fields.required_on``): a
product must be chosen to submit a match, not to mark the customer lost."""

from __future__ import annotations

import pytest

from tests.engine_flows.flows_setup import APP, ok

ALICE = {"strategy": "users", "users": ["alice"]}


def _flow(fields, outcomes=("submit", "lost"), key="match"):
    return {"key": key, "name": "匹配", "form": "case", "nodes": [
        {"id": "start", "type": "start"},
        {"id": "matching", "type": "user_task", "name": "产品匹配", "assignee": ALICE,
         "outcomes": list(outcomes), "fields": fields},
        {"id": "done", "type": "end"}, {"id": "lost", "type": "end"}],
        "edges": [{"from": "start", "to": "matching"},
                  {"from": "matching", "to": "done", "on": outcomes[0]},
                  *([{"from": "matching", "to": "lost", "on": outcomes[1]}]
                    if len(outcomes) > 1 else [])]}


FIELDS = {"editable": ["amount", "region", "note"], "required": ["region"],
          "required_on": {"submit": ["amount"]}}


@pytest.fixture
def matching(world):
    world.user("alice", "sales")
    world.flow(_flow(FIELDS))
    return world


def test_an_outcome_needs_its_own_fields(matching):
    world = matching
    run = world.start("match", world.case())
    task = world.task_of("alice", run["id"])["id"]
    # submit without the amount: 422 naming it and the outcome
    body = world.act("alice", task, status=422, outcome="submit", data={"region": "北京"})
    assert body["code"] == "fields_required" and body["fields"] == ["amount"]
    assert body["outcome"] == "submit" and "金额" in body["detail"]
    assert world.current("match", run["id"]) == ["matching"]
    # the region typed with the refused submit was not kept (one transaction)
    assert world.record(run["record_id"]).get("region") in (None, "")
    # without region either: both named
    both = world.act("alice", task, status=422, outcome="submit")
    assert both["fields"] == ["region", "amount"]
    # with it, the submit goes through
    world.act("alice", task, outcome="submit", data={"region": "北京", "amount": "100000"})
    assert world.instance("match", run["id"])["status"] == "completed"


def test_another_outcome_does_not_need_them(matching):
    world = matching
    run = world.start("match", world.case())
    task = world.task_of("alice", run["id"])["id"]
    # "required" still holds for every outcome that moves on: region, not amount
    body = world.act("alice", task, status=422, outcome="lost")
    assert body["fields"] == ["region"] and "outcome" not in body
    world.act("alice", task, outcome="lost", data={"region": "上海"})
    assert world.instance("match", run["id"])["status"] == "completed"
    assert world.record(run["record_id"]).get("amount") in (None, "")


def test_an_approval_can_require_a_field_to_reject(world):
    world.user("alice", "sales")
    spec = {"key": "check", "name": "审批", "form": "case", "nodes": [
        {"id": "start", "type": "start"},
        {"id": "review", "type": "approval", "assignee": ALICE,
         "fields": {"editable": ["note"], "required_on": {"reject": ["note"]}}},
        {"id": "end", "type": "end"}, {"id": "refused", "type": "end"}],
        "edges": [{"from": "start", "to": "review"},
                  {"from": "review", "to": "end", "on": "approve"},
                  {"from": "review", "to": "refused", "on": "reject"}]}
    world.flow(spec)
    run = world.start("check", world.case())
    task = world.task_of("alice", run["id"])["id"]
    body = world.act("alice", task, "reject", status=422)
    assert body["fields"] == ["note"] and body["outcome"] == "reject"
    world.act("alice", task, "approve")  # approving needs no note
    assert world.instance("check", run["id"])["status"] == "completed"


def test_required_on_is_checked_on_publish(world):
    world.user("alice", "sales")
    bad = _flow({"editable": ["amount"], "required_on": {
        "maybe": ["amount"], "submit": ["note", "ghost"]}}, key="bad")
    ok(world.admin.post(f"{APP}/flows", json=bad), 201)
    problem = ok(world.admin.post(f"{APP}/flows/bad/validate"), 422)
    found = problem["problems"]
    assert any("'maybe' is not an outcome" in p for p in found), found
    assert any("required_on.submit: 'note' must also be editable" in p for p in found)
    assert any("required_on.submit: 'ghost' is not a field" in p for p in found)
    assert {p["node"] for p in problem["located"]} == {"matching"}
