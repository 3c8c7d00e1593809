"""The live overlay of a flow (GET …/overlay): per step, how many running instances wait
there, how many of them are past due, how many visits were finished and their median
time; and the instance list filtered to those waiting at a step or past due."""

from __future__ import annotations

from sqlalchemy import text

from tests.engine_flows.flows_setup import APP, linear, ok


def _step(node_id, who, name, **extra):
    return {"id": node_id, "type": "user_task", "name": name,
            "assignee": {"strategy": "users", "users": [who]}, **extra}


FLOW = linear("loan", [_step("a", "alice", "受理", sla={"hours": 5}),
                       _step("b", "bob", "审核")])


def _by_node(world, **params):
    body = ok(world.admin.get(f"{APP}/flows/loan/overlay", params=params))
    return body, {n["node"]: n for n in body["nodes"]}


def _listed(world, **params):
    body = ok(world.admin.get(f"{APP}/flows/loan/instances", params=params))
    return sorted(i["id"] for i in body["items"])


def test_waiting_overdue_and_median_time_per_step(world, clock):
    world.user("alice", "sales")
    world.user("bob", "sales")
    world.flow(FLOW)
    runs = [world.start("loan", world.case(title=f"案件{i}"))["id"] for i in range(4)]
    clock.advance(hours=2)
    world.act("alice", world.task_of("alice", runs[0])["id"])  # 2 h at 受理
    clock.advance(hours=2)
    world.act("alice", world.task_of("alice", runs[1])["id"])  # 4 h
    clock.advance(hours=3)
    world.act("alice", world.task_of("alice", runs[2])["id"])  # 7 h: done, but late
    world.act("bob", world.task_of("bob", runs[0])["id"])  # run 0 completes
    # now 7 h after the start: run 3 is still at 受理, past its 5 h
    body, nodes = _by_node(world)
    assert body["flow"] == "loan" and body["version"] == 1
    assert [n["node"] for n in body["nodes"]] == ["start", "a", "b", "end"]
    a, b = nodes["a"], nodes["b"]
    assert (a["name"], a["waiting"], a["overdue"], a["completed"], a["reached"]) == \
        ("受理", 1, 1, 3, 4)
    assert a["median_seconds"] == 4 * 3600
    assert (b["waiting"], b["overdue"], b["completed"], b["reached"]) == (2, 0, 1, 3)
    assert b["median_seconds"] == 5 * 3600  # run 0 waited at 审核 from 2 h to 7 h
    assert nodes["end"]["reached"] == 1 and nodes["end"]["waiting"] == 0
    # the instance list, filtered the same way
    assert _listed(world, node="a") == [runs[3]]
    assert _listed(world, node="b") == sorted(runs[1:3])
    assert _listed(world, overdue="true") == [runs[3]]
    assert _listed(world, node="b", overdue="true") == []
    assert _listed(world) == sorted(runs)
    # a case moved to the recycle bin waits nowhere: as the at-step page lists it
    record = world.instance("loan", runs[3])["record_id"]
    ok(world.admin.delete(f"{APP}/forms/case/records/{record}"), 204)
    _body, nodes = _by_node(world)
    assert (nodes["a"]["waiting"], nodes["a"]["overdue"]) == (0, 0)


def test_an_even_count_takes_the_mean_of_the_middle_two(world, clock):
    world.user("alice", "sales")
    world.user("bob", "sales")
    world.flow(FLOW)
    runs = [world.start("loan", world.case())["id"] for _ in range(2)]
    clock.advance(hours=1)
    world.act("alice", world.task_of("alice", runs[0])["id"])
    clock.advance(hours=2)
    world.act("alice", world.task_of("alice", runs[1])["id"])
    _body, nodes = _by_node(world)
    assert nodes["a"]["median_seconds"] == 2 * 3600 and nodes["a"]["completed"] == 2
    assert nodes["b"]["median_seconds"] is None and nodes["b"]["waiting"] == 2


def test_per_version_and_cancelled_visits(world, clock):
    world.user("alice", "sales")
    world.user("bob", "sales")
    world.flow(FLOW)
    old = world.start("loan", world.case())["id"]
    cancelled = world.start("loan", world.case())["id"]
    ok(world.admin.post(f"{APP}/flows/loan/instances/{cancelled}/cancel", json={}))
    world.flow(linear("loan", [_step("a", "alice", "受理登记"), _step("b", "bob", "审核")]))
    new = world.start("loan", world.case())["id"]
    body, nodes = _by_node(world)
    assert body["version"] == 2 and nodes["a"]["name"] == "受理登记"
    # a cancelled visit neither counts as reached nor as waiting (as in the funnel)
    assert (nodes["a"]["waiting"], nodes["a"]["reached"]) == (2, 2)
    _body, v1 = _by_node(world, version=1)
    assert (v1["a"]["waiting"], v1["a"]["name"]) == (1, "受理")
    assert _listed(world, node="a") == sorted([old, new])
    ok(world.admin.get(f"{APP}/flows/loan/overlay", params={"version": 9}), 404)


def test_only_app_managers_see_the_overlay(world):
    world.user("alice", "sales")
    world.user("bob", "sales")
    world.flow(FLOW)
    ok(world.as_("alice").get(f"{APP}/flows/loan/overlay"), 403)


def test_overlay_reached_and_median_agree_with_the_funnel_statement(world, clock):
    """The service funnel report (engine_reports.funnel) counts the same visits."""
    from engine_reports.funnel import statement

    world.user("alice", "sales")
    world.user("bob", "sales")
    world.flow(FLOW)
    runs = [world.start("loan", world.case())["id"] for _ in range(3)]
    for hours, run in zip((1, 2, 4), runs, strict=True):
        clock.advance(hours=hours)
        world.act("alice", world.task_of("alice", run)["id"])
    _body, nodes = _by_node(world)
    with world.db.read() as s:
        dialect = s.get_bind().dialect.name
        funnel = {node: (n, median) for node, n, median in
                  s.execute(statement("bank", "loan", dialect, text("1 = 1")))}
    for node in ("a", "b"):
        reached, median = funnel.get(node, (0, None))
        assert nodes[node]["reached"] == reached
        seconds = nodes[node]["median_seconds"]
        assert (None if seconds is None else round(seconds / 3600, 2)) == \
            (None if median is None else round(float(median), 2))
