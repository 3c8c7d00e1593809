"""What the rule editor asks of the engine, through the API: a reason kept in the audit log
when a rule is turned off, a working copy checked or test-run without being saved, the
app's run log filtered by rule, outcome and record, each rule's counts and whether it is
failing, and every action type's settings schema."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import func, select

from engine_rules.actions import ACTIONS
from engine_rules.models import ActionRun, Notification, Rule, RuleRun
from engine_rules.overview import stats, switches
from platform_core.models import utcnow
from platform_core.security.models import AuditEntry
from tests.engine_flows.flows_setup import API, ok
from tests.engine_rules.conftest import dispatch
from tests.engine_rules.rules_setup import RULES, add_rule

NOTE = {"type": "notify", "channel": "in_app", "to": {"users": ["admin"]},
        "title": "大额 {{ record.title }}", "template": "{{ record.title }}：{{ record.amount }}"}
CREATED = {"type": "record.created", "form": "case"}


def _count(world, model) -> int:
    with world.db.read() as s:
        return s.execute(select(func.count()).select_from(model)).scalar_one()


def test_turning_a_rule_off_keeps_the_reason_in_the_audit_log(world):
    add_rule(world, key="t", trigger=CREATED, actions=[NOTE])
    ok(world.admin.post(f"{RULES}/t/disable", json={"reason": "客户投诉"}))
    ok(world.admin.post(f"{RULES}/t/disable", json={"reason": "again"}))  # already off
    with world.db.read() as s:
        entries = list(s.execute(select(AuditEntry).where(
            AuditEntry.action == "rule.disabled")).scalars())
        assert [(e.target, e.detail["reason"]) for e in entries] == [
            ("rule:bank.t", "客户投诉")]
        assert switches(s, "bank")["t"]["reason"] == "客户投诉"
    ok(world.admin.post(f"{RULES}/t/enable"))  # no body: as before
    with world.db.read() as s:
        assert switches(s, "bank")["t"]["enabled"] is True
    ok(world.admin.post(f"{RULES}/t/disable", json={"reason": "x" * 501}), 422)


def test_a_working_copy_is_checked_and_test_run_without_being_saved(world):
    spec = {"key": "draft", "name": "草稿", "trigger": {"type": "record.updated",
                                                       "form": "case", "fields": ["amount"]},
            "condition": "amount >= 1000000 AND OLD.amount < 1000000", "actions": [NOTE]}
    assert ok(world.admin.post(f"{RULES}-check", json={"spec": spec})) == {"valid": True}
    bad = ok(world.admin.post(f"{RULES}-check", json={"spec": {
        **spec, "condition": "amout > 1", "actions": [{"type": "set_tags"}]}}), 422)
    assert any(p.startswith("condition:") for p in bad["problems"])
    assert any(p.startswith("actions[0]:") for p in bad["problems"])
    case = world.case(title="甲", amount=2000000)
    dispatch(world)
    notes, actions = _count(world, Notification), _count(world, ActionRun)
    tried = ok(world.admin.post(f"{RULES}-test", json={
        "spec": {**spec, "condition": "amount >= 1000000"}, "record_id": case}))
    assert tried["condition"] is True and tried["version"] is None
    [preview] = tried["actions"]
    assert preview["title"] == "大额 甲" and preview["body"].startswith("甲：2000000")
    assert (_count(world, Notification), _count(world, ActionRun)) == (notes, actions)
    ok(world.admin.get(f"{RULES}/draft"), 404)  # nothing saved
    ok(world.admin.post(f"{RULES}-test", json={"spec": {**spec, "name": ""}}), 422)


def test_the_run_log_is_filtered_and_counts_say_failing(world):
    add_rule(world, key="big", trigger=CREATED, condition="amount >= 100", actions=[NOTE])
    add_rule(world, key="broken", trigger=CREATED, actions=[
        {"type": "notify", "channel": "sms", "to": {"users": ["nobody"]},
         "template": "短信"}])  # nobody to send to: fails
    small, big = world.case(title="小", amount=1), world.case(title="大", amount=500)
    dispatch(world)
    runs = ok(world.admin.get(f"{RULES}-runs"))["items"]
    assert {(r["rule"], r["record_id"], r["status"]) for r in runs} == {
        ("big", small, "skipped"), ("big", big, "done"),
        ("broken", small, "failed"), ("broken", big, "failed")}
    assert [r["record_id"] for r in ok(world.admin.get(
        f"{RULES}-runs", params={"rule": "big", "status": "done"}))["items"]] == [big]
    assert {r["rule"] for r in ok(world.admin.get(
        f"{RULES}-runs", params={"record_id": small}))["items"]} == {"big", "broken"}
    page = ok(world.admin.get(f"{RULES}-runs", params={"limit": 1}))["items"]
    older = ok(world.admin.get(f"{RULES}-runs", params={"limit": 5,
                                                        "before": page[0]["id"]}))["items"]
    assert len(older) == 3 and all(r["id"] < page[0]["id"] for r in older)
    with world.db.read() as s:
        ids = dict(s.execute(select(Rule.key, Rule.id)).all())
        counts = stats(s, "bank", since=utcnow() - timedelta(days=7))
        assert (counts[ids["big"]].runs, counts[ids["big"]].fired) == (2, 1)
        assert not counts[ids["big"]].failing
        assert counts[ids["broken"]].failed == 2 and counts[ids["broken"]].failing
        later = stats(s, "bank", since=utcnow() + timedelta(days=1))
        assert later[ids["broken"]].runs == 0
        assert later[ids["broken"]].failing  # its failed actions wait in the dead letters
        assert s.execute(select(func.count()).select_from(RuleRun)).scalar_one() == 4
    ok(world.admin.get(f"{API}/apps/nope/rules-runs"), 404)


def test_every_action_type_has_a_settings_schema(world):
    items = {i["type"]: i for i in ok(world.admin.get(f"{API}/rules/actions"))["items"]}
    assert set(items) == set(ACTIONS)
    for kind, item in items.items():
        assert item["schema"]["type"] == "object", kind
        assert item["schema"]["properties"], kind
    notify = items["notify"]["schema"]["properties"]
    assert notify["channel"]["enum"] == ["in_app", "email", "sms", "wecom"]
    assert notify["to"]["widget"] == "recipients"


def test_new_is_not_a_rule_key(world):
    """``/apps/{app}/rules/new`` opens the editor of a new rule, so no rule is called new."""
    body = {"key": "new", "name": "新", "trigger": CREATED, "actions": [NOTE]}
    problem = ok(world.admin.post(RULES, json=body), 422)
    assert "reserved" in problem["detail"]
