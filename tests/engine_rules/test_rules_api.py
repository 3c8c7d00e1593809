"""Rules as admins manage them through the API: validation (422 ``invalid_rule`` naming
each problem), versions, enable/disable, delete; the run log (trigger, condition, each
action's outcome, duration); test mode (what would happen, nothing written); and
cascades stopped at depth 5 with a ``stopped`` run."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from engine_rules.models import ActionRun, Notification, RuleRun
from platform_core.models import OutboxEvent, Record
from tests.engine_flows.flows_setup import API, ok
from tests.engine_rules.conftest import dispatch
from tests.engine_rules.rules_setup import (
    RULES,
    add_rule,
    all_runs,
    bodies,
    count_records,
    patch,
    put_rule,
    runs,
)

NOTE = {"type": "notify", "channel": "in_app", "to": {"users": ["admin"]},
        "template": "{{ record.title }}"}
CREATED = {"type": "record.created", "form": "case"}


def _refused(world, spec, *fragments):
    body = ok(world.admin.post(RULES, json={"key": "r", "name": "r", **spec}), 422)
    assert body["code"] == "invalid_rule", body
    text = " | ".join(body["problems"])
    for fragment in fragments:
        assert fragment in text, (fragment, body["problems"])
    return body["problems"]


# -- validation --------------------------------------------------------------------------------


@pytest.mark.parametrize(("spec", "fragments"), [
    ({"trigger": CREATED, "actions": [{"type": "send_fax", "to": "x"}]},
     ["actions[0]", "unknown action type 'send_fax'"]),
    ({"trigger": CREATED, "condition": "amount >", "actions": [NOTE]}, ["condition:"]),
    ({"trigger": CREATED, "condition": "amount + 1", "actions": [NOTE]},
     ["condition: must be TRUE/FALSE"]),
    ({"trigger": CREATED, "condition": "nope = 1", "actions": [NOTE]},
     ["condition:", "nope"]),
    ({"trigger": {"type": "record.updated", "form": "case", "fields": ["nope"]},
      "actions": [NOTE]}, ["'nope' is not a field of form case"]),
    ({"trigger": {"type": "date_relative", "form": "case", "field": "nope"},
      "actions": [NOTE]}, ["'nope' is not a field of form case"]),
    ({"trigger": {"type": "schedule", "cron": "61 9 * * MON"}, "actions": [NOTE]},
     ["trigger.cron"]),
    ({"trigger": {"type": "schedule", "cron": "every monday"}, "actions": [NOTE]},
     ["trigger.cron"]),
    ({"trigger": {"type": "schedule"}, "actions": [NOTE]}, ["schedule needs 'cron'"]),
    ({"trigger": {"type": "record.created"}, "actions": [NOTE]},
     ["record.created needs 'form'"]),
    ({"trigger": {"type": "record.created", "form": "ghost"}, "actions": [NOTE]},
     ["ghost"]),
    ({"trigger": {"type": "record.exploded", "form": "case"}, "actions": [NOTE]},
     ["trigger.type"]),
    ({"trigger": CREATED, "actions": []}, ["actions"]),
    ({"trigger": CREATED, "actions": [NOTE], "colour": "red"}, ["colour"]),
    ({"trigger": CREATED, "actions": [{**NOTE, "template": "{{ record.title "}]},
     ["actions[0]", "template line 1"]),
    ({"trigger": CREATED, "actions": [{**NOTE, "channel": "pigeon"}]},
     ["actions[0]", "channel must be one of"]),
    ({"trigger": CREATED, "actions": [{"type": "create_record", "form": "case"}]},
     ["actions[0]", "create_record needs 'values'"]),
    ({"trigger": CREATED, "actions": [{"type": "create_record", "form": "case",
                                       "values": {"title": "nope & 1"}}]},
     ["actions[0]", "nope"]),
    ({"trigger": CREATED, "actions": [{"type": "create_record", "form": "case",
                                       "values": {"colour": '"red"'}}]},
     ["actions[0]", "colour"]),
    ({"trigger": CREATED, "actions": [{"type": "create_record", "form": "ghost",
                                       "values": {"title": '"x"'}}]},
     ["actions[0]", "ghost"]),
    ({"trigger": CREATED, "actions": [{"type": "update_record", "values": {"nope": "1"}}]},
     ["actions[0]", "nope"]),
    ({"trigger": CREATED, "actions": [{"type": "set_tags", "field": "region",
                                       "add": ["a"]}]},
     ["actions[0]", "multiselect"]),
    ({"trigger": CREATED, "actions": [{"type": "start_flow", "flow": "ghost"}]},
     ["actions[0]", "ghost"]),
    ({"trigger": CREATED, "actions": [{"type": "call_webhook", "url": "ftp://x"}]},
     ["actions[0]", "http(s)"]),
    ({"trigger": CREATED, "actions": [{**NOTE, "to": {"field": "nope"}}]},
     ["actions[0]", "nope"]),
    ({"trigger": CREATED, "actions": [{"type": "create_task", "title": "x",
                                       "assignee": {"strategy": "nope"}}]},
     ["actions[0]", "create_task assignee"]),
    ({"trigger": CREATED, "actions": [{"type": "create_task", "title": "{{ x",
                                       "assignee": {"field": "owner_user"}}]},
     ["actions[0]", "create_task title"]),
    ({"trigger": CREATED, "actions": [{"type": "advance_flow", "flow": "ghost",
                                       "step": "docs"}]},
     ["actions[0]", "ghost"]),
    ({"trigger": {"type": "flow.completed", "flow": "ghost"}, "actions": [NOTE]},
     ["flow 'ghost' does not exist"]),
    ({"trigger": CREATED, "actions": [{"type": "update_record", "via": "title",
                                       "values": {"note": '"x"'}}]},
     ["actions[0]", "not a relation field"]),
])
def test_a_bad_rule_is_refused_naming_the_problem(world, spec, fragments):
    _refused(world, spec, *fragments)
    assert ok(world.admin.get(RULES))["items"] == []


def test_every_problem_is_named_at_once(world):
    problems = _refused(world, {"trigger": {"type": "record.updated", "form": "case",
                                            "fields": ["nope"]},
                                "actions": [{"type": "send_fax"}, {**NOTE, "channel": "x"}]})
    assert len(problems) == 3


def test_meta_schema_is_served(world):
    schema = ok(world.admin.get(f"{API}/rules/meta-schema"))
    assert schema["title"] == "Qiao rule"
    assert "date_relative" in str(schema) and "record.updated" in str(schema)


# -- versions, enable/disable, delete -----------------------------------------------------------


def test_put_saves_a_new_version_and_runs_name_their_version(world):
    first = add_rule(world, key="v", trigger=CREATED, actions=[NOTE])
    assert first["version"] == 1 and first["enabled"] is True
    world.case(title="一")
    dispatch(world)
    second = put_rule(world, "v", trigger=CREATED,
                      actions=[{**NOTE, "template": "v2 {{ record.title }}"}])
    assert second["version"] == 2
    assert ok(world.admin.get(f"{RULES}/v"))["spec"]["actions"][0]["template"].startswith("v2")
    world.case(title="二")
    dispatch(world)
    assert bodies(world) == ["一", "v2 二"]
    assert [r["version"] for r in runs(world, "v")] == [1, 2]
    body = ok(world.admin.put(f"{RULES}/v", json={"key": "other", "name": "x",
                                                   "trigger": CREATED, "actions": [NOTE]}), 422)
    assert "key" in body["detail"]
    ok(world.admin.put(f"{RULES}/v", json={"key": "v", "name": "x", "trigger": CREATED,
                                           "actions": [{"type": "nope"}]}), 422)
    assert ok(world.admin.get(f"{RULES}/v"))["version"] == 2  # a refused PUT saves nothing
    ok(world.admin.post(RULES, json={"key": "v", "name": "v", "trigger": CREATED,
                                     "actions": [NOTE]}), 409)


def test_disable_and_enable(world):
    add_rule(world, key="t", trigger=CREATED, actions=[NOTE])
    off = ok(world.admin.post(f"{RULES}/t/disable"))
    assert off["enabled"] is False and off["version"] == 2
    world.case(title="关")
    dispatch(world)
    assert bodies(world) == []
    assert ok(world.admin.post(f"{RULES}/t/disable"))["version"] == 2  # already off
    on = ok(world.admin.post(f"{RULES}/t/enable"))
    assert on["enabled"] is True and on["version"] == 3
    world.case(title="开")
    dispatch(world)
    assert bodies(world) == ["开"]
    saved_off = put_rule(world, "t", trigger=CREATED, actions=[NOTE], enabled=False)
    assert saved_off["enabled"] is False


def test_delete_a_rule(world):
    add_rule(world, key="t", trigger=CREATED, actions=[NOTE])
    world.case(title="一")
    dispatch(world)
    ok(world.admin.delete(f"{RULES}/t"), 204)
    ok(world.admin.get(f"{RULES}/t"), 404)
    ok(world.admin.get(f"{RULES}/t/runs"), 404)
    with world.db.read() as s:
        assert s.execute(select(func.count()).select_from(RuleRun)).scalar_one() == 0


def test_rules_need_app_manage(world):
    world.user("alice", "sales")
    add_rule(world, key="t", trigger=CREATED, actions=[NOTE])
    alice = world.as_("alice")
    for method, url in (("get", RULES), ("get", f"{RULES}/t"), ("get", f"{RULES}/t/runs"),
                        ("post", f"{RULES}/t/disable"), ("post", f"{RULES}/t/test"),
                        ("get", f"{API}/apps/bank/rules-dead-letters")):
        assert getattr(alice, method)(url).status_code == 403, url
    assert alice.post(RULES, json={"key": "x", "name": "x", "trigger": CREATED,
                                   "actions": [NOTE]}).status_code == 403


# -- the run log ---------------------------------------------------------------------------------


def test_the_run_log_records_trigger_condition_actions_and_duration(world):
    add_rule(world, key="big", trigger={"type": "record.updated", "form": "case",
                                        "fields": ["amount"]},
             condition="amount > 100",
             actions=[NOTE, {"type": "update_record", "values": {"note": '"大额"'}},
                      {"type": "create_record", "form": "case", "values": {"title": '""'}},
                      {**NOTE, "template": "never"}])
    rec = world.case(title="甲", amount="1")
    patch(world, rec, amount="50")
    patch(world, rec, amount="500")
    dispatch(world)
    small, big = runs(world, "big")
    with world.db.read() as s:
        events = dict(s.execute(select(OutboxEvent.id, OutboxEvent.payload)).all())
    assert small["status"] == "skipped" and small["condition"] is False
    assert small["actions"] == []
    assert big["event_type"] == "record.updated" and big["record_id"] == rec
    assert big["trigger"].startswith("evt:")
    assert events[int(big["trigger"][4:])]["changes"]["amount"] == ["50.00", "500.00"]
    assert big["condition"] is True and big["status"] == "failed" and big["depth"] == 0
    assert isinstance(big["duration_ms"], int) and big["duration_ms"] >= 0
    assert [(a["type"], a["status"]) for a in big["actions"]] == [
        ("notify", "done"), ("update_record", "done"), ("create_record", "failed")]
    assert big["actions"][0]["result"] == {"channel": "in_app",
                                           "users": [world.admin.user_id]}
    assert big["actions"][1]["result"] == {"records": [rec], "fields": ["note"]}
    assert "title" in big["actions"][2]["error"]
    assert bodies(world) == ["甲"]  # the fourth action did not run
    page = ok(world.admin.get(f"{RULES}/big/runs", params={"limit": 1}))["items"]
    assert [r["id"] for r in page] == [big["id"]]
    older = ok(world.admin.get(f"{RULES}/big/runs", params={"before": big["id"]}))["items"]
    assert [r["id"] for r in older] == [small["id"]]


def test_an_event_handled_twice_runs_each_action_once(world):
    """The outbox hands an event at least once: a second hand-over finds every action's
    idempotency key and runs nothing again."""
    add_rule(world, key="t", trigger=CREATED,
             actions=[NOTE, {"type": "create_record", "form": "case",
                             "values": {"title": '"副本"'}}],
             condition='title <> "副本"')
    world.case(title="甲")
    dispatch(world)
    with world.db.write() as s:  # as if the dispatcher crashed after its commit
        s.execute(OutboxEvent.__table__.update().where(OutboxEvent.id == 1)
                  .values(processed_at=None))
    dispatch(world)
    assert bodies(world) == ["甲"] and count_records(world, "case") == 2
    first, again = [r for r in runs(world, "t") if r["record_id"] == 1]
    assert [a["status"] for a in again["actions"]] == ["already_done", "already_done"]


# -- test mode -----------------------------------------------------------------------------------


def test_test_mode_shows_what_would_happen_and_writes_nothing(world, receiver):
    world.user("alice", "sales")
    add_rule(world, key="t", trigger={"type": "record.updated", "form": "case"},
             condition="amount >= 1000",
             actions=[{"type": "notify", "channel": "in_app", "to": {"users": ["alice"]},
                       "title": "大额 {{ record.title }}", "template": "{{ record.amount }}"},
                      {"type": "notify", "channel": "sms", "to": {"field": "mobile"},
                       "template": "您好 {{ record.title }}"},
                      {"type": "create_record", "form": "case",
                       "values": {"title": '"跟进 " & title'}},
                      {"type": "update_record", "values": {"note": '"看过"'}},
                      {"type": "call_webhook", "url": receiver.url,
                       "body": "{{ record_id }}"}])
    big = world.case(title="甲", amount="5000", mobile="13800001234")
    small = world.case(title="乙", amount="5")
    dispatch(world)

    def counts():
        with world.db.read() as s:
            return [s.execute(select(func.count()).select_from(t)).scalar_one()
                    for t in (Notification, Record, ActionRun, RuleRun, OutboxEvent)]

    before = counts()
    result = ok(world.admin.post(f"{RULES}/t/test", json={"record_id": big}))
    assert result["condition"] is True and result["record_id"] == big
    notify, sms, create, update, hook = result["actions"]
    assert notify == {"would": "notify", "channel": "in_app", "title": "大额 甲",
                      "body": "5000.00", "users": [world.users["alice"]]}
    assert sms["channel"] == "sms" and sms["to"] == ["13800001234"]
    assert sms["body"] == "您好 甲"
    assert create == {"would": "create_record", "values": {"title": "跟进 甲"}}
    assert update == {"would": "update_record", "values": {"note": "看过"}}
    assert hook["would"] == "call_webhook" and hook["body"] == str(big)
    no = ok(world.admin.post(f"{RULES}/t/test", json={"record_id": small}))
    assert no["condition"] is False and no["actions"] == []
    assert counts() == before
    assert receiver.requests == [] and world.record(big).get("note") is None
    ok(world.admin.post(f"{RULES}/t/test", json={"record_id": 999999}), 404)
    ok(world.admin.post(f"{RULES}/ghost/test", json={"record_id": big}), 404)


def test_test_mode_only_reads_records_of_the_rules_form(world):
    ok(world.admin.post(f"{API}/apps", json={"key": "crm", "name": "客户"}), 201)
    ok(world.admin.post(f"{API}/apps/crm/forms", json={
        "key": "case", "name": "机密", "fields": [
            {"key": "title", "label": "标题", "type": "text"}]}), 201)
    ok(world.admin.post(f"{API}/apps/crm/forms/case/publish"))
    secret = ok(world.admin.post(f"{API}/apps/crm/forms/case/records",
                                 json={"title": "别的应用的机密"}), 201)["id"]
    add_rule(world, key="t", trigger=CREATED, actions=[NOTE])
    body = ok(world.admin.post(f"{RULES}/t/test", json={"record_id": secret}), 404)
    assert "机密" not in str(body)


# -- cascades ------------------------------------------------------------------------------------


def test_a_cascade_of_rules_stops_at_depth_five(world):
    add_rule(world, key="a", trigger={"type": "record.updated", "form": "case",
                                      "fields": ["region"]},
             actions=[{"type": "update_record", "values": {"note": 'note & "A"'}}])
    add_rule(world, key="b", trigger={"type": "record.updated", "form": "case",
                                      "fields": ["note"]},
             actions=[{"type": "update_record", "values": {"region": 'region & "B"'}}])
    rec = world.case(title="循环", region="", note="")
    patch(world, rec, region="R")
    for _ in range(20):
        if not dispatch(world):
            break
    else:
        pytest.fail("the cascade did not stop")
    log = [(r.rule_id, r.depth, r.status) for r in all_runs(world)]
    assert [(d, s) for _r, d, s in log] == [
        (0, "done"), (1, "done"), (2, "done"), (3, "done"), (4, "done"), (5, "stopped")]
    [stopped] = [r for r in runs(world, "b") if r["status"] == "stopped"]
    assert "cascade depth 5" in stopped["error"] and stopped["actions"] == []
    data = world.record(rec)
    assert data["note"] == "AAA" and data["region"] == "RBB"


def test_a_cascade_through_flows_stops_too(world, clock):
    world.flow({"key": "instant", "name": "即办", "form": "case",
                "nodes": [{"id": "start", "type": "start"}, {"id": "end", "type": "end"}],
                "edges": [{"from": "start", "to": "end"}]})
    add_rule(world, key="again", trigger={"type": "flow.completed", "flow": "instant"},
             actions=[{"type": "start_flow", "flow": "instant"}])
    world.start("instant", world.case(title="循环"))
    for _ in range(20):
        if not dispatch(world, clock.now):
            break
    else:
        pytest.fail("the cascade did not stop")
    log = [(r["depth"], r["status"]) for r in runs(world, "again")]
    assert log == [(0, "done"), (1, "done"), (2, "done"), (3, "done"), (4, "done"),
                   (5, "stopped")]
