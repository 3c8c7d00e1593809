from sqlalchemy import select

from engine_rules.models import ActionRun, Notification, RuleRun
from tests.engine_flows.flows_setup import API, APP, ok
from tests.engine_rules.conftest import dispatch


def test_field_changed_rule_notifies_once_with_old_value(world):
    world.user("alice", "sales")
    ok(world.admin.post(f"{APP}/rules", json={
        "key": "accepted", "name": "受理通知",
        "trigger": {"type": "record.updated", "form": "case", "fields": ["approval_result"]},
        "condition": "approval_result = \"approved\" AND OLD.approval_result <> \"approved\"",
        "actions": [{"type": "notify", "channel": "in_app", "to": {"users": ["alice"]},
                     "title": "进度",
                     "template": "{{ record.title }} 已批准（原 {{ old.approval_result }}）"},
                    {"type": "create_record", "form": "case",
                     "values": {"title": "\"回访 \" & title"}}]}), 201)
    rec = world.case(title="甲", approval_result="rejected")
    dispatch(world)
    r = world.admin.get(f"{APP}/forms/case/records/{rec}")
    ok(world.admin.patch(f"{APP}/forms/case/records/{rec}", json={"note": "x"},
                         headers={"If-Match": r.headers["etag"]}))
    dispatch(world)
    r = world.admin.get(f"{APP}/forms/case/records/{rec}")
    ok(world.admin.patch(f"{APP}/forms/case/records/{rec}",
                         json={"approval_result": "approved"},
                         headers={"If-Match": r.headers["etag"]}))
    dispatch(world)
    dispatch(world)
    with world.db.read() as s:
        notes = list(s.execute(select(Notification)).scalars())
        assert [n.body for n in notes] == ["甲 已批准（原 rejected）"]
        assert s.execute(select(ActionRun)).scalars().all().__len__() == 2
        runs = list(s.execute(select(RuleRun)).scalars())
        assert [r.status for r in runs] == ["done"]
    inbox = ok(world.as_("alice").get(f"{API}/notifications"))
    assert inbox["unread"] == 1
    titles = [x["data"]["title"] for x in ok(world.admin.get(
        f"{APP}/forms/case/records"))["items"]]
    assert "回访 甲" in titles
    test = ok(world.admin.post(f"{APP}/rules/accepted/test", json={"record_id": rec}))
    assert test["condition"] is False  # OLD = now, nothing changes in a test
