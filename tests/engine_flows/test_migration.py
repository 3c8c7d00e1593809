"""Versions and migration: running instances keep the version they started with until a
flow manager moves them, with a node mapping, to a newer one."""

from __future__ import annotations

import pytest

from tests.engine_flows.flows_setup import APP, linear, ok


def _step(node_id, who, name=None):
    return {"id": node_id, "type": "user_task", "name": name or node_id,
            "assignee": {"strategy": "users", "users": [who]}}


V1 = linear("loan", [_step("a", "alice", "受理"), _step("b", "bob", "审核")])
# v2 renames a to a2 and adds c between it and b
V2 = linear("loan", [_step("a2", "alice", "受理"), _step("c", "carol", "复核"),
                     _step("b", "bob", "审核")])


@pytest.fixture
def two_versions(world):
    """Two v1 instances (one at a, one at b), then v2 published."""
    for name in ("alice", "bob", "carol"):
        world.user(name, "sales")
    world.flow(V1)
    at_a = world.start("loan", world.case(title="在a"))
    at_b = world.start("loan", world.case(title="在b"))
    world.act("alice", world.task_of("alice", at_b["id"])["id"])
    assert world.flow(V2)["version"] == 2
    return at_a, at_b


def _migrate(world, status=200, client=None, **body):
    return ok((client or world.admin).post(f"{APP}/flows/loan/migrations", json=body), status)


def test_running_instances_stay_on_their_version(world, two_versions):
    at_a, _at_b = two_versions
    fresh = world.start("loan", world.case())
    assert fresh["version"] == 2 and world.current("loan", fresh["id"]) == ["a2"]
    assert world.instance("loan", at_a["id"])["version"] == 1
    world.act("alice", world.task_of("alice", at_a["id"])["id"])
    assert world.current("loan", at_a["id"]) == ["b"]  # v1's way: no c


def test_a_dry_run_reports_and_changes_nothing(world, two_versions):
    at_a, at_b = two_versions
    report = _migrate(world, dry_run=True)
    assert report["dry_run"] is True and report["to_version"] == 2
    assert (report["movable"], report["blocked"]) == (1, 1)
    plans = {p["run_id"]: p for p in report["instances"]}
    assert plans[at_b["id"]]["ok"] and plans[at_b["id"]]["moves"] == {"b": "b"}
    assert not plans[at_a["id"]]["ok"]
    assert "'a'" in plans[at_a["id"]]["problems"][0] and "map it" in \
        plans[at_a["id"]]["problems"][0]
    assert "migrated" not in report
    assert world.instance("loan", at_b["id"])["version"] == 1


def test_an_unmapped_missing_node_blocks_every_move(world, two_versions):
    _at_a, at_b = two_versions
    body = _migrate(world, 422, dry_run=False)
    assert body["report"]["blocked"] == 1
    assert world.instance("loan", at_b["id"])["version"] == 1  # all or nothing


def test_a_mapping_moves_instances_to_the_new_version(world, two_versions):
    at_a, at_b = two_versions
    report = _migrate(world, dry_run=False, mapping={"a": "a2"})
    assert report["migrated"] == 2 and report["blocked"] == 0
    moved = world.instance("loan", at_a["id"])
    assert moved["version"] == 2 and [s["node"] for s in moved["current"]] == ["a2"]
    assert moved["current"][0]["assignees"][0]["name"] == "alice"
    assert "flow.migrated" in world.event_types(at_a["id"])
    assert "migrated" in world.history(at_a["id"])
    # the moved instance now runs v2: after a2 comes c
    world.act("alice", world.task_of("alice", at_a["id"])["id"])
    assert world.current("loan", at_a["id"]) == ["c"]
    world.act("bob", world.task_of("bob", at_b["id"])["id"])
    assert world.instance("loan", at_b["id"])["status"] == "completed"
    assert _migrate(world, dry_run=False)["instances"] == []  # nothing left on v1


def test_a_mapping_must_name_nodes_of_the_same_kind(world, two_versions):
    at_a, _ = two_versions
    body = _migrate(world, 422, dry_run=True, mapping={"a": "nowhere"})
    assert body["field"] == "mapping"
    report = _migrate(world, dry_run=True, mapping={"a": "end"}, run_ids=[at_a["id"]])
    [plan] = report["instances"]
    assert "user_task step cannot become a end" in plan["problems"][0]


def test_only_flow_managers_migrate(world, two_versions):  # noqa: ARG001
    _migrate(world, 403, client=world.as_("alice"), dry_run=True)
