"""Flow definitions through the API: drafts, immutable versions, who may change them."""

from __future__ import annotations

from tests.engine_flows.flows_setup import APP, linear, ok

STEP = {"id": "work", "type": "user_task", "assignee": {"strategy": "initiator"}}


def test_draft_publish_versions_round_trip(world):
    spec = linear("life", [STEP], description="说明")
    created = ok(world.admin.post(f"{APP}/flows", json=spec), 201)
    assert created["published_version"] is None and created["form"] == "case"
    assert created["draft"]["nodes"] == spec["nodes"]
    assert created["draft"]["edges"] == spec["edges"]
    ok(world.admin.post(f"{APP}/flows", json=spec), 409)
    v1 = ok(world.admin.post(f"{APP}/flows/life/publish"), 201)
    assert v1["version"] == 1 and v1["spec"]["format_version"] == 1
    renamed = linear("life", [{**STEP, "name": "办理"}], name="新名字")
    assert ok(world.admin.put(f"{APP}/flows/life", json=renamed))["name"] == "新名字"
    # the published version does not change with the draft
    assert ok(world.admin.get(f"{APP}/flows/life/versions/1"))["spec"]["name"] == "life"
    ok(world.admin.post(f"{APP}/flows/life/publish"), 201)
    versions = ok(world.admin.get(f"{APP}/flows/life/versions"))["items"]
    assert [(v["version"], v["spec"]["name"]) for v in versions] == [(1, "life"), (2, "新名字")]
    assert ok(world.admin.get(f"{APP}/flows/life"))["published_version"] == 2
    listed = ok(world.admin.get(f"{APP}/flows"))["items"]
    assert [(f["key"], f["published_version"]) for f in listed] == [("life", 2)]
    ok(world.admin.get(f"{APP}/flows/life/versions/3"), 404)


def test_a_flow_keeps_its_key_and_once_published_its_form(world):
    ok(world.admin.post(f"{APP}/flows", json=linear("keep", [STEP])), 201)
    ok(world.admin.put(f"{APP}/flows/keep", json=linear("other", [STEP])), 422)
    ok(world.admin.post(f"{APP}/flows/keep/publish"), 201)
    ok(world.admin.post("/api/v1/apps/bank/forms", json={
        "key": "customer", "name": "客户", "fields": [
            {"key": "name", "label": "姓名", "type": "text"}]}), 201)
    moved = linear("keep", [STEP]) | {"form": "customer"}
    body = ok(world.admin.put(f"{APP}/flows/keep", json=moved), 422)
    assert body["field"] == "form"


def test_only_app_managers_change_definitions(world):
    world.user("alice", "sales")
    alice = world.as_("alice")
    ok(alice.post(f"{APP}/flows", json=linear("mine", [STEP])), 403)
    world.flow(linear("theirs", [STEP]))
    ok(alice.put(f"{APP}/flows/theirs", json=linear("theirs", [STEP])), 403)
    ok(alice.post(f"{APP}/flows/theirs/publish"), 403)
    # reading them is fine
    assert ok(alice.get(f"{APP}/flows/theirs"))["published_version"] == 1


def test_unknown_flows_and_apps_are_not_found(world):
    ok(world.admin.get(f"{APP}/flows/nothing"), 404)
    ok(world.admin.post(f"{APP}/flows/nothing/publish"), 404)
    ok(world.admin.get("/api/v1/apps/nowhere/flows"), 404)
