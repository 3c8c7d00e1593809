"""Who may do what: a task is its assignee's, starting a flow needs the right to update the
record, and a record one cannot see is not there (404), flow or no flow."""

from __future__ import annotations

import pytest

from tests.engine_flows.flows_setup import API, APP, linear, ok


@pytest.fixture
def flow(world):
    world.user("alice", "sales")
    world.user("dave", "sales")
    world.flow(linear("simple", [{"id": "work", "type": "user_task",
                                  "assignee": {"strategy": "users", "users": ["alice"]},
                                  "fields": {"editable": ["note"]}}]))
    return "simple"


def test_only_the_assignee_completes_a_task(world, flow):
    run = world.start(flow, world.case())
    task = world.task_of("alice", run["id"])
    # someone not involved does not even see the task
    world.act("dave", task["id"], status=404, data={"note": "x"})
    ok(world.as_("dave").get(f"{API}/tasks/{task['id']}"), 404)
    # the administrator sees it, but it is not theirs to complete
    ok(world.admin.get(f"{API}/tasks/{task['id']}"))
    ok(world.admin.post(f"{API}/tasks/{task['id']}/complete", json={}), 403)
    assert world.current(flow, run["id"]) == ["work"]
    assert world.record(run["record_id"]).get("note") is None
    world.act("alice", task["id"], data={"note": "done"})
    # completed: neither a second completion nor another operation
    world.act("alice", task["id"], status=409)
    world.act("alice", task["id"], "transfer", status=409, to=world.users["dave"])


def test_starting_needs_the_update_right_on_the_record(world, flow):
    world.role("reader", ("read",))
    world.user("rita", "reader")
    rec = world.case()
    body = ok(world.as_("rita").post(f"{APP}/flows/{flow}/instances",
                                     json={"record_id": rec}), 403)
    assert body["status"] == 403
    assert ok(world.admin.get(f"{APP}/flows/{flow}/instances"))["items"] == []


def test_a_record_outside_the_callers_row_scope_is_not_found(world, flow):
    world.user("sam", "staff")  # own records only
    theirs = world.case()
    mine = world.case("sam")
    ok(world.as_("sam").post(f"{APP}/flows/{flow}/instances", json={"record_id": theirs}), 404)
    run = world.start(flow, theirs)
    ok(world.as_("sam").get(f"{APP}/flows/{flow}/instances/{run['id']}"), 404)
    ok(world.as_("sam").get(f"{APP}/forms/case/records/{theirs}/progress"), 404)
    ok(world.as_("sam").post(f"{APP}/flows/{flow}/instances/{run['id']}/cancel", json={}), 404)
    own = world.start(flow, mine, who="sam")
    assert own["record_id"] == mine and own["initiator_id"] == world.users["sam"]


def test_a_missing_record_or_an_unpublished_flow_is_not_found(world, flow):
    ok(world.admin.post(f"{APP}/flows/{flow}/instances", json={"record_id": 99999}), 404)
    ok(world.admin.post(f"{APP}/flows",
                        json=linear("draft_only", [{"id": "w", "type": "user_task", "assignee": {
                            "strategy": "initiator"}}])), 201)
    ok(world.admin.post(f"{APP}/flows/draft_only/instances",
                        json={"record_id": world.case()}), 404)


def test_one_running_instance_per_record_and_flow(world, flow):
    rec = world.case()
    first = world.start(flow, rec)
    body = ok(world.admin.post(f"{APP}/flows/{flow}/instances", json={"record_id": rec}), 409)
    assert body["run_id"] == first["id"]


def test_the_inbox_of_everyone_is_for_administrators(world, flow):
    world.start(flow, world.case())
    ok(world.as_("dave").get(f"{API}/tasks", params={"assignee": "all"}), 403)
    everyone = ok(world.admin.get(f"{API}/tasks", params={"assignee": "all"}))["items"]
    assert [t["assignee_id"] for t in everyone] == [world.users["alice"]]
