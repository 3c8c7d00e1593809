"""Before publishing, the designer asks what a publish would do (POST …/publish-preview):
the problems located on nodes and edges, the difference to the running version, and how
many running instances wait where; validate and publish locate their problems too."""

from __future__ import annotations

from tests.engine_flows.flows_setup import APP, linear, ok


def _step(node_id, who, name=None, **extra):
    return {"id": node_id, "type": "user_task", "name": name or node_id,
            "assignee": {"strategy": "users", "users": [who]}, **extra}


V1 = linear("loan", [_step("a", "alice", "受理"), _step("b", "bob", "审核")])


def _preview(world, client=None, status=200):
    return ok((client or world.admin).post(f"{APP}/flows/loan/publish-preview"), status)


def _draft(world, spec):
    ok(world.admin.put(f"{APP}/flows/loan", json=spec))


def test_a_first_draft_is_all_new_and_nothing_runs(world):
    world.user("alice", "sales")
    world.user("bob", "sales")
    ok(world.admin.post(f"{APP}/flows", json=V1), 201)
    body = _preview(world)
    assert body["valid"] is True and body["problems"] == []
    assert body["published_version"] is None
    assert body["diff"]["nodes"]["added"] == ["start", "a", "b", "end"]
    assert body["diff"]["nodes"]["removed"] == [] and body["diff"]["nodes"]["changed"] == []
    assert {"from": "a", "to": "b"} in body["diff"]["edges"]["added"]
    assert body["running"] == {"total": 0, "by_version": {}, "by_node": {}}


def test_the_diff_and_the_instances_a_publish_would_leave_behind(world):
    for name in ("alice", "bob", "carol"):
        world.user(name, "sales")
    world.flow(V1)
    at_a = world.start("loan", world.case(title="在a"))
    at_b = world.start("loan", world.case(title="在b"))
    world.act("alice", world.task_of("alice", at_b["id"])["id"])
    world.start("loan", world.case(title="也在a"))
    # v2 on the draft: a renamed to 受理登记, c added before b, a moved on the canvas
    v2 = linear("loan", [_step("a", "alice", "受理登记"), _step("c", "carol", "复核"),
                         _step("b", "bob", "审核")],
                layout={"a": {"x": 10, "y": 20}})
    _draft(world, v2)
    body = _preview(world)
    assert body["valid"] and body["published_version"] == 1
    nodes = body["diff"]["nodes"]
    assert nodes["added"] == ["c"] and nodes["removed"] == []
    assert nodes["changed"] == [{"id": "a", "changes": ['name: "受理" → "受理登记"']}]
    edges = body["diff"]["edges"]
    assert edges["removed"] == [{"from": "a", "to": "b"}]
    assert {"from": "a", "to": "c"} in edges["added"] and {"from": "c", "to": "b"} in \
        edges["added"]
    assert body["running"] == {"total": 3, "by_version": {"1": 3},
                               "by_node": {"a": 2, "b": 1}}
    assert body["unmapped"] == []
    # the drawing alone is no change
    _draft(world, V1 | {"layout": {"b": {"x": 300, "y": 0}}})
    same = _preview(world)["diff"]
    assert same["nodes"] == {"added": [], "removed": [], "changed": []}
    assert same["edges"] == {"added": [], "removed": [], "changed": []}
    # a draft without b: the instance waiting there must be mapped on migrating
    _draft(world, linear("loan", [_step("a", "alice", "受理")]))
    gone = _preview(world)
    assert gone["diff"]["nodes"]["removed"] == ["b"] and gone["unmapped"] == ["b"]
    # previewing writes nothing: still version 1, instances where they were
    assert ok(world.admin.get(f"{APP}/flows/loan"))["published_version"] == 1
    assert world.current("loan", at_a["id"]) == ["a"]


def test_problems_are_located_on_their_node_or_edge(world):
    world.user("alice", "sales")
    broken = {"key": "loan", "name": "贷款", "form": "case", "nodes": [
        {"id": "start", "type": "start"},
        {"id": "fill", "type": "user_task", "name": "填写",
         "fields": {"editable": ["note"], "required": ["nope"]}},
        {"id": "size", "type": "gateway"},
        {"id": "end", "type": "end"}],
        "edges": [{"from": "start", "to": "fill"}, {"from": "fill", "to": "size"},
                  {"from": "size", "to": "end", "condition": "amount >="},
                  {"from": "fill", "to": "end", "on": "maybe"}]}
    ok(world.admin.post(f"{APP}/flows", json=broken), 201)
    body = _preview(world)
    assert body["valid"] is False
    located = body["problems"]
    by_node = {p["node"] for p in located if p["node"]}
    # "填写: a user step needs an assignee" names the node by its label: still on fill
    assert any(p["node"] == "fill" and "assignee" in p["message"] for p in located), located
    assert any(p["node"] == "fill" and "'nope'" in p["message"] for p in located)
    assert "size" in by_node
    assert any(p["edge"] == {"from": "fill", "to": "end"} and "'maybe'" in p["message"]
               for p in located), located
    # validate and publish say the same, as problem+json with ``located``
    for path in ("validate", "publish"):
        problem = ok(world.admin.post(f"{APP}/flows/loan/{path}"), 422)
        assert problem["code"] == "invalid_flow"
        assert problem["problems"] == [p["message"] for p in problem["located"]]
        assert problem["located"] == located


def test_structural_problems_point_at_the_node_or_edge_by_position(world):
    spec = linear("loan", [_step("a", "alice")])
    spec["edges"].append({"from": "a", "to": "ghost"})
    problem = ok(world.admin.post(f"{APP}/flows/loan/validate", json=spec), 422)
    assert any(p["edge"] == {"from": "a", "to": "ghost"} and "'ghost'" in p["message"]
               for p in problem["located"]), problem
    bad_type = linear("loan", [_step("a", "alice") | {"mode": 7}])
    problem = ok(world.admin.post(f"{APP}/flows/loan/validate", json=bad_type), 422)
    assert [p["node"] for p in problem["located"]] == ["a"], problem
    no_start = linear("loan", [_step("a", "alice")])
    no_start["nodes"][0]["type"] = "end"
    problem = ok(world.admin.post(f"{APP}/flows/loan/validate", json=no_start), 422)
    assert any(p["node"] is None and p["edge"] is None and "start" in p["message"]
               for p in problem["located"]), problem


def test_only_app_managers_preview(world):
    world.user("alice", "sales")
    world.user("bob", "sales")
    world.flow(V1)
    _preview(world, world.as_("alice"), 403)
    ok(world.admin.post(f"{APP}/flows/nothing/publish-preview"), 404)
