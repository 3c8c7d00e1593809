"""Checks before a flow may be published: the designer gets every problem at once, each
naming its node (POST …/validate → 422 ``invalid_flow`` with ``problems``)."""

from __future__ import annotations

import copy

import pytest

from tests.engine_flows.flows_setup import API, APP, linear, ok

ALICE = {"strategy": "users", "users": ["alice"]}


@pytest.fixture
def people(world):
    world.user("alice", "sales")
    return world


def _validate(world, spec):
    return world.admin.post(f"{APP}/flows/{spec['key']}/validate", json=spec)


def problems(world, spec) -> list[str]:
    body = ok(_validate(world, spec), 422)
    assert body["code"] == "invalid_flow" and body["status"] == 422
    assert body["problems"], body
    return body["problems"]


def _one(found: list[str], node: str, words: str) -> None:
    """Exactly what the designer needs: a problem naming ``node`` and saying ``words``."""
    assert any(p.startswith(node) and words in p for p in found), (node, words, found)


def _good():
    return {"key": "good", "name": "好流程", "form": "case", "nodes": [
        {"id": "start", "type": "start"},
        {"id": "fill", "type": "user_task", "assignee": ALICE,
         "fields": {"editable": ["note"], "required": ["note"]}},
        {"id": "size", "type": "gateway"},
        {"id": "split", "type": "parallel"},
        {"id": "a", "type": "approval", "mode": "all",
         "assignee": {"strategy": "role", "role": "risk"}},
        {"id": "b", "type": "user_task", "assignee": {"strategy": "initiator"}},
        {"id": "join", "type": "join"},
        {"id": "end", "type": "end"}, {"id": "refused", "type": "end"}],
        "edges": [{"from": "start", "to": "fill"}, {"from": "fill", "to": "size"},
                  {"from": "size", "to": "split", "condition": "amount >= 1000"},
                  {"from": "size", "to": "end", "default": True},
                  {"from": "split", "to": "a"}, {"from": "split", "to": "b"},
                  {"from": "a", "to": "join", "on": "approve"},
                  {"from": "a", "to": "refused", "on": "reject"},
                  {"from": "b", "to": "join"}, {"from": "join", "to": "end"}]}


def _node(spec, node_id):
    return next(n for n in spec["nodes"] if n["id"] == node_id)


def test_a_sound_flow_validates_and_publishes(people):
    assert ok(_validate(people, _good())) == {"ok": True, "problems": []}
    assert people.flow(_good())["version"] == 1


def test_exactly_one_start(people):
    spec = _good()
    spec["nodes"].append({"id": "start2", "type": "start"})
    spec["edges"].append({"from": "start2", "to": "fill"})
    assert any("exactly one start" in p and "2" in p for p in problems(people, spec))
    spec = _good()
    spec["nodes"] = [n for n in spec["nodes"] if n["type"] != "start"]
    spec["edges"] = [e for e in spec["edges"] if e["from"] != "start"]
    assert any("exactly one start" in p for p in problems(people, spec))


def test_every_node_reachable_and_every_path_ends(people):
    spec = _good()
    spec["nodes"] += [{"id": "island", "type": "user_task", "assignee": ALICE},
                      {"id": "dead", "type": "user_task", "assignee": ALICE},
                      {"id": "loop", "type": "user_task", "assignee": ALICE}]
    spec["edges"] += [{"from": "island", "to": "end"},
                      {"from": "b", "to": "dead", "on": "submit"},
                      {"from": "b", "to": "loop", "on": "submit"},
                      {"from": "loop", "to": "loop"}]
    found = problems(people, spec)
    _one(found, "island", "not reachable from the start")
    _one(found, "dead", "the path stops here without an end")
    _one(found, "loop", "no path from here reaches an end")


def test_an_edge_to_a_missing_node(people):
    spec = _good()
    spec["edges"].append({"from": "fill", "to": "ghost"})
    assert any("'ghost' does not exist" in p for p in problems(people, spec))


def test_gateway_conditions_must_parse_and_be_true_or_false(people):
    spec = _good()
    spec["edges"][2]["condition"] = "amount >= "
    _one(problems(people, spec), "size", "condition 'amount >= '")
    spec["edges"][2]["condition"] = "amount + 1"
    _one(problems(people, spec), "size", "not TRUE/FALSE")
    spec["edges"][2]["condition"] = "no_such_field > 1"
    _one(problems(people, spec), "size", "no_such_field")


def test_a_gateway_needs_exactly_one_default_edge(people):
    spec = _good()
    spec["edges"][3] = {"from": "size", "to": "end", "condition": "amount < 1000"}
    _one(problems(people, spec), "size", "exactly one default edge")
    spec = _good()
    spec["edges"][2] = {"from": "size", "to": "split", "default": True}
    _one(problems(people, spec), "size", "exactly one default edge")
    spec = _good()
    spec["edges"][2] = {"from": "size", "to": "split"}
    _one(problems(people, spec), "size", "needs a condition")


def test_parallel_splits_must_be_joined(people):
    spec = _good()
    spec["edges"] = [e for e in spec["edges"] if e["from"] != "b"] + [
        {"from": "b", "to": "end"}]
    found = problems(people, spec)
    _one(found, "split", "not joined by one join node")
    _one(found, "join", "needs two or more incoming edges")
    spec = _good()  # a split into three, joined by two
    spec["nodes"].append({"id": "c", "type": "user_task", "assignee": ALICE})
    spec["edges"] += [{"from": "split", "to": "c"}, {"from": "c", "to": "end"}]
    _one(problems(people, spec), "split", "not joined")


def test_every_outcome_of_a_step_has_a_way_on(people):
    spec = _good()
    spec["edges"] = [e for e in spec["edges"] if e.get("on") != "reject"]
    spec["nodes"] = [n for n in spec["nodes"] if n["id"] != "refused"]
    _one(problems(people, spec), "a", "no edge for outcome 'reject'")
    spec = _good()
    spec["edges"][6]["on"] = "maybe"
    _one(problems(people, spec), "a", "'maybe' is not an outcome")


def test_assignees_must_resolve(people):
    spec = _good()
    _node(spec, "fill")["assignee"] = {"strategy": "role", "role": "astronaut"}
    _node(spec, "b")["assignee"] = {"strategy": "users", "users": ["alice", "nobody"]}
    _node(spec, "a")["assignee"] = {"strategy": "field", "field": "no_field"}
    found = problems(people, spec)
    _one(found, "fill", "role 'astronaut' does not exist")
    _one(found, "b", "user 'nobody' does not exist")
    _one(found, "a", "'no_field' is not a field")
    spec = _good()
    _node(spec, "b")["assignee"] = {"strategy": "field", "field": "region"}
    _one(problems(people, spec), "b", "not a user field")
    spec = _good()
    _node(spec, "b")["assignee"] = {"strategy": "mapping", "field": "region", "map": {
        "north": {"strategy": "role", "role": "ghost"}}}
    _one(problems(people, spec), "b", "map[north]: role 'ghost'")
    spec = _good()
    _node(spec, "b")["assignee"] = {"strategy": "round_robin"}
    _one(problems(people, spec), "b", "needs 'role'")
    spec = _good()
    del _node(spec, "b")["assignee"]
    _one(problems(people, spec), "b", "needs an assignee")


def test_step_fields_must_be_fields_of_the_form(people):
    spec = _good()
    _node(spec, "fill")["fields"] = {"editable": ["note", "colour"], "hidden": ["mood"],
                                     "required": ["title"]}
    found = problems(people, spec)
    _one(found, "fill", "fields.editable: 'colour' is not a field")
    _one(found, "fill", "fields.hidden: 'mood' is not a field")
    _one(found, "fill", "'title' must also be editable")


def test_node_keys_belong_to_their_type_and_timers_and_slas_are_whole(people):
    spec = _good()
    _node(spec, "fill")["wait"] = {"hours": 1}
    _node(spec, "b")["sla"] = {"remind_before_hours": 1}
    spec["nodes"].append({"id": "nap", "type": "timer", "wait": {"hours": 1,
                                                                 "until_field": "maturity_date"}})
    spec["nodes"].append({"id": "odd", "type": "teleport"})
    spec["edges"] += [{"from": "start", "to": "nap"}, {"from": "nap", "to": "odd"}]
    found = problems(people, spec)
    assert any(p.startswith("odd") and "unknown node type" in p for p in found), found
    spec["nodes"].pop()
    spec["edges"].pop()
    spec["edges"].append({"from": "nap", "to": "end"})
    found = problems(people, spec)
    _one(found, "fill", "has no 'wait'")
    _one(found, "b", "sla needs hours or working_days")
    _one(found, "nap", "either a duration or until_field")


def test_service_steps_and_subflows_are_checked(people):
    spec = linear("svc", [
        {"id": "calc", "type": "service", "actions": [
            {"type": "set_fields", "values": {"nothing": "1"}}, {"type": "launch_rocket"}]},
        {"id": "sub", "type": "subflow", "flow": "missing"}])
    found = problems(people, spec)
    _one(found, "calc", "'nothing' is not a field")
    _one(found, "calc", "unknown action type 'launch_rocket'")
    _one(found, "sub", "'missing' does not exist")


def test_publishing_an_invalid_draft_is_refused_and_keeps_no_version(people):
    spec = _good()
    spec["edges"].pop()  # join → end
    ok(people.admin.post(f"{APP}/flows", json=spec), 201)  # a half-built draft is saved
    body = ok(people.admin.post(f"{APP}/flows/good/publish"), 422)
    assert body["code"] == "invalid_flow"
    _one(body["problems"], "join", "without an end")
    assert ok(people.admin.get(f"{APP}/flows/good/versions"))["items"] == []
    # the stored draft validates the same way without a body
    _one(ok(people.admin.post(f"{APP}/flows/good/validate"), 422)["problems"], "join", "end")


def test_the_meta_schema_rejects_unknown_keys(people):
    schema = ok(people.admin.get(f"{API}/flows/meta-schema"))
    assert schema["additionalProperties"] is False
    assert all(d.get("additionalProperties") is False for d in schema["$defs"].values()
               if d.get("type") == "object" and "properties" in d)
    for where in ("flow", "node", "edge", "assignee"):
        spec = copy.deepcopy(_good())
        target = {"flow": spec, "node": spec["nodes"][1], "edge": spec["edges"][0],
                  "assignee": spec["nodes"][1]["assignee"]}[where]
        target["colour"] = "red"
        body = ok(_validate(people, spec), 422)
        assert body["code"] == "invalid_flow", where
        assert any("colour" in p for p in body["problems"]), (where, body["problems"])
        ok(people.admin.post(f"{APP}/flows", json=spec), 422)
    bad_strategy = copy.deepcopy(_good())
    bad_strategy["nodes"][1]["assignee"] = {"strategy": "astrology"}
    assert any("astrology" in p for p in problems(people, bad_strategy))
