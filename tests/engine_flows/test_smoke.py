from tests.engine_flows.flows_setup import linear


def test_linear_flow_runs_to_the_end(world):
    world.user("alice", "sales")
    world.user("bob", "risk")
    world.flow(linear("simple", [
        {"id": "work", "type": "user_task", "name": "处理", "assignee": {
            "strategy": "users", "users": ["alice"]}, "sla": {"hours": 4},
         "fields": {"editable": ["note"], "required": ["note"]}},
        {"id": "check", "type": "approval", "name": "审核", "mode": "single",
         "assignee": {"strategy": "role", "role": "risk"}},
    ]))
    rec = world.case(title="A")
    run = world.start("simple", rec)
    assert [s["node"] for s in run["current"]] == ["work"]
    task = world.task_of("alice", run["id"])
    world.act("alice", task["id"], status=422, data={})
    world.act("alice", task["id"], status=403, data={"title": "x"})
    world.act("alice", task["id"], data={"note": "done"}, comment="ok")
    assert world.current("simple", run["id"]) == ["check"]
    t2 = world.task_of("bob", run["id"])
    world.act("bob", t2["id"], "approve")
    inst = world.instance("simple", run["id"])
    assert inst["status"] == "completed", inst
