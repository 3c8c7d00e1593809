"""Assignment strategies: who finds the step's task in their inbox."""

from __future__ import annotations

from tests.engine_flows.flows_setup import API, linear, ok


def _one_step(world, assignee, key="assign"):
    world.flow(linear(key, [{"id": "work", "type": "user_task", "assignee": assignee}]))


def _who(world, run, key="assign"):
    """(assignee names, candidate names) of the run's current step."""
    names = {v: k for k, v in world.users.items()}
    people = world.instance(key, run["id"])["current"][0]["assignees"]
    return (sorted(names[p["id"]] for p in people if not p.get("candidate")),
            sorted(names[p["id"]] for p in people if p.get("candidate")))


def test_users_in_the_order_given_and_only_active_ones(world):
    for name in ("u1", "u2"):
        world.user(name, "risk")
    _one_step(world, {"strategy": "users", "users": ["u2", "u1"]})
    assert _who(world, world.start("assign", world.case())) == ([], ["u1", "u2"])
    ok(world.admin.patch(f"{API}/users/{world.users['u1']}", json={"status": "disabled"}))
    assert _who(world, world.start("assign", world.case())) == (["u2"], [])


def test_role_members_are_candidates(world):
    for name in ("r1", "r2"):
        world.user(name, "risk")
    world.user("s1", "sales")
    _one_step(world, {"strategy": "role", "role": "risk"})
    run = world.start("assign", world.case())
    assert _who(world, run) == ([], ["r1", "r2"])
    world.act("r2", world.task_of("r2", run["id"])["id"], "claim")
    assert _who(world, run) == (["r2"], [])


def test_department_role_takes_the_role_in_the_records_department(world):
    world.department("north")
    world.department("south")
    world.user("n_sales", "sales", department="north")
    world.user("n_risk", "risk", department="north")
    world.user("s_risk", "risk", department="south")
    _one_step(world, {"strategy": "department_role", "role": "risk"})
    run = world.start("assign", world.case("n_sales"), who="n_sales")
    assert _who(world, run) == (["n_risk"], [])
    # a record without a department finds nobody: an unassigned task, and an event
    orphan = world.start("assign", world.case())
    assert _who(world, orphan) == ([], [])
    assert "task.unassigned" in world.event_types(orphan["id"])


def test_field_strategy_a_user_field_or_the_owner(world):
    world.user("alice", "sales")
    world.user("bob", "sales")
    _one_step(world, {"strategy": "field", "field": "owner_user"}, key="by_field")
    _one_step(world, {"strategy": "field", "field": "owner"}, key="by_owner")
    rec = world.case("alice", owner_user=world.users["bob"])
    assert _who(world, world.start("by_field", rec), "by_field") == (["bob"], [])
    assert _who(world, world.start("by_owner", rec), "by_owner") == (["alice"], [])


def test_initiator(world):
    world.user("alice", "sales")
    _one_step(world, {"strategy": "initiator"})
    assert _who(world, world.start("assign", world.case(), who="alice")) == (["alice"], [])


def test_initiator_manager_is_the_nearest_manager_above(world):
    world.user("boss", "sales")
    world.user("lead", "sales")
    world.department("branch", manager="boss")
    world.department("team", parent="branch")
    world.user("alice", "sales", department="team")
    ok(world.admin.patch(f"{API}/users/{world.users['lead']}",
                         json={"department_id": world.departments["team"]}))
    _one_step(world, {"strategy": "initiator_manager"})
    # the team has no manager: the branch's
    assert _who(world, world.start("assign", world.case(), who="alice")) == (["boss"], [])
    world.set_manager("team", "lead")
    assert _who(world, world.start("assign", world.case(), who="alice")) == (["lead"], [])
    # the team's manager themself goes to the manager above
    assert _who(world, world.start("assign", world.case(), who="lead")) == (["boss"], [])


def test_round_robin_rotates_through_the_role(world):
    for name in ("r1", "r2", "r3"):
        world.user(name, "risk")
    _one_step(world, {"strategy": "round_robin", "role": "risk"})
    got = [_who(world, world.start("assign", world.case()))[0] for _ in range(4)]
    assert got == [["r1"], ["r2"], ["r3"], ["r1"]]


def test_round_robin_by_field_rotates_within_the_team_named_by_the_value(world):
    world.department("华东")
    world.department("华南团队")
    for name, dept in (("e1", "华东"), ("e2", "华东"), ("s1", "华南团队"), ("s2", "华南团队")):
        world.user(name, "risk", department=dept)
    _one_step(world, {"strategy": "round_robin", "role": "risk", "by_field": "region",
                      "teams": {"south": "华南团队"}})
    east = [_who(world, world.start("assign", world.case(region="华东")))[0]
            for _ in range(3)]
    south = [_who(world, world.start("assign", world.case(region="south")))[0]
             for _ in range(3)]
    assert east == [["e1"], ["e2"], ["e1"]]
    assert south == [["s1"], ["s2"], ["s1"]]
    nowhere = world.start("assign", world.case(region="西北"))
    assert _who(world, nowhere) == ([], [])


def test_least_loaded_picks_who_has_the_fewest_open_tasks(world):
    for name in ("r1", "r2"):
        world.user(name, "risk")
    world.flow(linear("busy", [{"id": "work", "type": "user_task",
                                "assignee": {"strategy": "users", "users": ["r1"]}}]))
    for _ in range(2):
        world.start("busy", world.case())
    _one_step(world, {"strategy": "least_loaded", "role": "risk"})
    assert _who(world, world.start("assign", world.case())) == (["r2"], [])
    assert _who(world, world.start("assign", world.case())) == (["r2"], [])
    assert _who(world, world.start("assign", world.case())) == (["r1"], [])  # 2 vs 2: r1


def test_mapping_by_field_value_with_a_default(world):
    world.user("alice", "sales")
    for name in ("r1", "r2"):
        world.user(name, "risk")
    _one_step(world, {"strategy": "mapping", "field": "region", "map": {
        "north": {"strategy": "users", "users": ["alice"]},
        "south": {"strategy": "role", "role": "risk"}},
        "default": {"strategy": "initiator"}})
    assert _who(world, world.start("assign", world.case(region="north"))) == (["alice"], [])
    assert _who(world, world.start("assign", world.case(region="south"))) == (
        [], ["r1", "r2"])
    other = world.start("assign", world.case(region="west"), who="r2")
    assert _who(world, other) == (["r2"], [])


def test_nobody_found_leaves_an_unassigned_task_an_admin_reassigns(world):
    world.user("alice", "sales")
    _one_step(world, {"strategy": "field", "field": "owner_user"})
    run = world.start("assign", world.case())
    task = world.instance("assign", run["id"])["tasks"][0]
    assert task["assignee_id"] is None
    assert "task.unassigned" in world.event_types(run["id"])
    ok(world.admin.post(f"{API}/tasks/{task['id']}/reassign", json={"to": world.users["alice"]}))
    world.act("alice", task["id"])
    assert world.instance("assign", run["id"])["status"] == "completed"
