"""Each row-writing action does what it says, in the dispatcher's transaction, as the
rule: create_record, update_record (the record, the record a relation points at, the
records linking here), set_tags, start_flow, and in-app notifications with the
notification centre API. Templates see ``record``/``old``/``step``; one reaching for
Python's internals is refused by the sandbox and fails the action cleanly."""

from __future__ import annotations

from sqlalchemy import select

from engine_flows.models import FlowRun
from platform_core.models import OutboxEvent, RecordHistory
from tests.engine_flows.flows_setup import API, ok
from tests.engine_rules.conftest import dispatch
from tests.engine_rules.rules_setup import (
    SERVICE,
    add_rule,
    all_runs,
    bodies,
    count_records,
    notes,
    patch,
    records,
    runs,
    visit,
    visit_form,
)

NOTIFICATIONS = f"{API}/notifications"


def _created(world, key, form="case"):
    return {"key": key, "trigger": {"type": "record.created", "form": form}}


def test_create_record_writes_a_record_of_another_form(world):
    visit_form(world)
    add_rule(world, **_created(world, "follow_up"), condition="amount >= 1000",
             actions=[{"type": "create_record", "form": "visit",
                       "values": {"subject": '"回访：" & title', "status": '"待办"'}}])
    big = world.case(title="大额", amount="5000")
    world.case(title="小额", amount="10")
    dispatch(world)
    [made] = records(world, "visit")
    assert made["subject"] == "回访：大额" and made["status"] == "待办"
    [run] = [r for r in runs(world, "follow_up") if r["status"] == "done"]
    assert run["record_id"] == big
    assert run["actions"] == [{"index": 0, "type": "create_record", "status": "done",
                               "result": {"record_id": made["id"], "form": "visit"}}]
    with world.db.read() as s:  # written by the rule, one level down the cascade
        event = s.execute(select(OutboxEvent).where(
            OutboxEvent.record_id == made["id"])).scalar_one()
        assert event.event_type == "record.created" and event.depth == 1
        assert event.payload["actor_id"] is None


def test_create_record_with_values_that_do_not_validate_fails_the_action(world):
    add_rule(world, **_created(world, "bad"),
             actions=[{"type": "create_record", "form": "case",
                       "values": {"title": '""', "note": "title"}}])
    world.case(title="甲")
    dispatch(world)
    [run] = runs(world, "bad")
    assert run["status"] == "failed" and run["actions"][0]["status"] == "failed"
    assert count_records(world, "case") == 1
    dead = ok(world.admin.get(f"{API}/apps/bank/rules-dead-letters"))["items"]
    assert [d["type"] for d in dead] == ["create_record"]


def test_update_record_changes_the_triggering_record(world):
    add_rule(world, **_created(world, "stamp"),
             actions=[{"type": "update_record",
                       "values": {"note": '"区域：" & region', "amount": "amount * 2"}}])
    rec = world.case(title="甲", region="华东", amount="100")
    dispatch(world)
    data = world.record(rec)
    assert data["note"] == "区域：华东" and data["amount"] == "200.00"
    with world.db.read() as s:
        [change] = s.execute(select(RecordHistory).where(
            RecordHistory.record_id == rec)).scalars().all()
        assert change.actor_id is None and change.diff["note"] == [None, "区域：华东"]


def test_update_record_via_a_relation_changes_the_linked_record(world):
    visit_form(world)
    add_rule(world, **_created(world, "visited", form="visit"),
             actions=[{"type": "update_record", "via": "case",
                       "values": {"note": '"已回访：" & subject'}}])
    rec, other = world.case(title="甲"), world.case(title="乙")
    visit(world, subject="电话", case=rec)
    visit(world, subject="无关联")  # no link: nothing to update, not an error
    dispatch(world)
    assert world.record(rec)["note"] == "已回访：电话"
    assert "note" not in world.record(other)
    assert [r["status"] for r in runs(world, "visited")] == ["done", "done"]
    assert runs(world, "visited")[1]["actions"][0]["result"]["records"] == []


def test_update_record_via_a_relation_follows_the_link_as_it_is_when_the_rule_runs(world):
    """The visit was moved to another case after it was created, before the rules ran:
    the case it links to now is updated, with the visit's values as they are now."""
    visit_form(world)
    add_rule(world, **_created(world, "visited", form="visit"),
             actions=[{"type": "update_record", "via": "case",
                       "values": {"note": '"已回访：" & subject'}}])
    first, second = world.case(title="甲"), world.case(title="乙")
    dispatch(world)
    moved = visit(world, subject="电话", case=first)
    patch(world, moved, form="visit", case=second, subject="上门")
    dispatch(world)
    assert "note" not in world.record(first)
    assert world.record(second)["note"] == "已回访：上门"
    assert runs(world, "visited")[0]["actions"][0]["result"]["records"] == [second]


def test_update_record_related_changes_every_record_linking_here(world):
    visit_form(world)
    add_rule(world, key="decided",
             trigger={"type": "record.updated", "form": "case",
                      "fields": ["approval_result"]},
             actions=[{"type": "update_record", "related": {"form": "visit", "via": "case"},
                       "values": {"status": '"案件" & approval_result'}}])
    rec, other = world.case(title="甲"), world.case(title="乙")
    mine = [visit(world, subject=f"回访{i}", case=rec) for i in range(2)]
    theirs = visit(world, subject="别的", case=other)
    dispatch(world)
    patch(world, rec, approval_result="approved")
    dispatch(world)
    status = {v["id"]: v.get("status") for v in records(world, "visit")}
    assert status == {mine[0]: "案件approved", mine[1]: "案件approved", theirs: None}
    [run] = runs(world, "decided")
    assert run["actions"][0]["result"]["records"] == mine


def test_set_tags_adds_and_removes_on_a_multiselect(world):
    visit_form(world)
    add_rule(world, key="vip", trigger={"type": "record.updated", "form": "visit",
                                        "fields": ["status"]},
             condition='status = "vip"',
             actions=[{"type": "set_tags", "field": "tags", "add": ["vip"],
                       "remove": ["dormant"]}])
    rec = visit(world, subject="客户", tags=["dormant", "new"])
    patch(world, rec, form="visit", status="vip")
    dispatch(world)
    [tagged] = records(world, "visit")
    assert tagged["tags"] == ["vip", "new"]  # in the options' order
    patch(world, rec, form="visit", status="normal")
    patch(world, rec, form="visit", status="vip")  # the tags are already right
    dispatch(world)
    last = runs(world, "vip")[-1]
    assert last["actions"][0]["result"]["changed"] is False


def test_set_tags_refuses_a_tag_the_field_does_not_offer(world):
    visit_form(world)
    add_rule(world, **_created(world, "tag", form="visit"),
             actions=[{"type": "set_tags", "field": "tags", "add": ["unknown"]}])
    visit(world, subject="客户")
    dispatch(world)
    [run] = runs(world, "tag")
    assert run["status"] == "failed" and "tags" in run["actions"][0]["error"]


def test_start_flow_starts_the_flow_over_the_record(world, clock):
    world.user("alice", "sales")
    world.flow(SERVICE)
    add_rule(world, **_created(world, "auto_start"), condition="amount >= 1000",
             actions=[{"type": "start_flow", "flow": "svc"}])
    big, small = world.case(title="大", amount="2000"), world.case(title="小", amount="1")
    dispatch(world)
    with world.db.read() as s:
        [run] = s.execute(select(FlowRun)).scalars().all()
        assert run.record_id == big and run.flow == "svc" and run.status == "running"
        assert run.initiator_id is None
    assert [t["record_id"] for t in world.open_tasks("alice")] == [big]
    assert small != big
    # a second start while it runs is refused: the action fails, nothing else breaks
    add_rule(world, key="again", trigger={"type": "record.updated", "form": "case"},
             actions=[{"type": "start_flow", "flow": "svc"}])
    patch(world, big, note="y")
    dispatch(world)
    [again] = runs(world, "again")
    assert again["status"] == "failed" and "already runs" in again["actions"][0]["error"]


# -- in-app notifications and the notification centre ---------------------------------------


def test_in_app_notify_reaches_users_roles_owner_and_user_fields(world):
    alice, bob = world.user("alice", "sales"), world.user("bob", "risk")
    carol = world.user("carol", "risk")
    dave = world.user("dave", "clerk")
    add_rule(world, **_created(world, "tell"),
             actions=[{"type": "notify", "channel": "in_app", "title": "新案件 {{ record.title }}",
                       "to": {"users": ["alice"], "role": "risk", "owner": True,
                              "field": "owner_user"},
                       "template": "{{ record.title }}：{{ record.amount }} 元"}])
    rec = world.case("dave", title="甲", amount="12", owner_user=alice)
    dispatch(world)
    got = notes(world)
    assert sorted(u for u, _t, _b in got) == sorted([alice, bob, carol, dave])
    assert {(t, b) for _u, t, b in got} == {("新案件 甲", "甲：12.00 元")}
    inbox = ok(world.as_("bob").get(NOTIFICATIONS))
    assert inbox["unread"] == 1 and inbox["items"][0]["record_id"] == rec
    assert inbox["items"][0]["read"] is False and inbox["items"][0]["app"] == "bank"


def test_notification_centre_counts_reads_and_reads_all(world):
    world.user("alice", "sales")
    world.user("bob", "sales")
    add_rule(world, **_created(world, "tell"),
             actions=[{"type": "notify", "channel": "in_app", "to": {"users": ["alice"]},
                       "template": "{{ record.title }}"}])
    for title in ("一", "二", "三"):
        world.case(title=title)
    dispatch(world)
    alice = world.as_("alice")
    inbox = ok(alice.get(NOTIFICATIONS))
    assert inbox["unread"] == 3 and [n["body"] for n in inbox["items"]] == ["三", "二", "一"]
    first = inbox["items"][-1]["id"]
    assert ok(world.as_("bob").get(NOTIFICATIONS)) == {"items": [], "unread": 0}
    ok(world.as_("bob").post(f"{NOTIFICATIONS}/{first}/read"), 404)  # not bob's
    assert ok(alice.post(f"{NOTIFICATIONS}/{first}/read")) == {"id": first, "read": True,
                                                                "unread": 2}
    assert ok(alice.post(f"{NOTIFICATIONS}/{first}/read"))["unread"] == 2  # idempotent
    unread = ok(alice.get(NOTIFICATIONS, params={"unread": "true"}))
    assert [n["body"] for n in unread["items"]] == ["三", "二"]
    page = ok(alice.get(NOTIFICATIONS, params={"limit": 1, "before": unread["items"][0]["id"]}))
    assert [n["body"] for n in page["items"]] == ["二"]
    assert ok(alice.post(f"{NOTIFICATIONS}/read-all")) == {"unread": 0}
    assert ok(alice.get(NOTIFICATIONS))["unread"] == 0
    assert all(n["read"] for n in ok(alice.get(NOTIFICATIONS))["items"])


# -- templates -------------------------------------------------------------------------------


def test_templates_render_record_old_and_step(world, clock):
    world.user("alice", "sales")
    world.flow({**SERVICE, "key": "svc2"})
    add_rule(world, key="changed",
             trigger={"type": "record.updated", "form": "case", "fields": ["region"]},
             actions=[{"type": "notify", "channel": "in_app", "to": {"users": ["alice"]},
                       "template": "{% if old.region %}{{ old.region }}{% else %}空{% endif %}"
                                   " → {{ record.region | default('空') }}"
                                   "{% for k in record | sort %}|{{ k }}{% endfor %}"}])
    add_rule(world, key="entered", trigger={"type": "flow.step_entered", "flow": "svc2",
                                            "step": "docs"},
             actions=[{"type": "notify", "channel": "in_app", "to": {"users": ["alice"]},
                       "template": "「{{ record.title }}」到了 {{ step.name }}（{{ step.id }}，"
                                   "{{ flow.key }}）"}])
    rec = world.case(title="甲")
    patch(world, rec, region="华东")
    patch(world, rec, region="华西")
    world.start("svc2", rec)
    dispatch(world, clock.now)
    assert bodies(world) == ["空 → 华东|region|title", "华东 → 华西|region|title",
                             "「甲」到了 收集资料（docs，svc2）"]


def test_a_template_reaching_python_internals_is_refused_cleanly(world):
    world.user("alice", "sales")
    add_rule(world, **_created(world, "evil"),
             actions=[{"type": "notify", "channel": "in_app", "to": {"users": ["alice"]},
                       "template": "{{ ''.__class__.__mro__ }}"},
                      {"type": "create_record", "form": "case",
                       "values": {"title": '"不应创建"'}}])
    add_rule(world, **_created(world, "evil2"),
             actions=[{"type": "notify", "channel": "in_app", "to": {"users": ["alice"]},
                       "template": "{{ record.__init__.__globals__ }}"}])
    add_rule(world, **_created(world, "fine"),
             actions=[{"type": "notify", "channel": "in_app", "to": {"users": ["alice"]},
                       "template": "好的 {{ record.title }}"}])
    world.case(title="甲")
    dispatch(world)
    assert bodies(world) == ["好的 甲"]  # the other rules of the event still ran
    assert count_records(world, "case") == 1  # the rest of the failed rule did not run
    for key in ("evil", "evil2"):
        [run] = runs(world, key)
        assert run["status"] == "failed"
        [action] = run["actions"]
        assert "unsafe" in action["error"] and "sandbox" in action["error"]
        assert "<class" not in action["error"] and "object" in action["error"]
    with world.db.read() as s:  # the event itself was handled, not retried
        [event] = s.execute(select(OutboxEvent).where(
            OutboxEvent.event_type == "record.created")).scalars().all()
        assert event.processed_at is not None and event.attempts == 0
    assert [r.status for r in all_runs(world)] == ["failed", "failed", "done"]


def test_actions_carry_the_run_as_user(world):
    alice = world.user("alice", "sales")
    add_rule(world, **_created(world, "as_alice"), run_as={"user": "alice"},
             condition='title <> "副本"',
             actions=[{"type": "create_record", "form": "case",
                       "values": {"title": '"副本"'}}])
    world.case(title="原件")
    dispatch(world)
    [copy] = [r for r in records(world, "case") if r["title"] == "副本"]
    with world.db.read() as s:
        event = s.execute(select(OutboxEvent).where(
            OutboxEvent.record_id == copy["id"])).scalar_one()
        assert event.payload["actor_id"] == alice


def test_writes_start_from_the_record_as_it_is_now(world):
    """The condition and messages see the record of the event; writes never undo a
    change made after it (the dispatcher may come to the event late)."""
    visit_form(world)
    add_rule(world, key="append", trigger={"type": "record.updated", "form": "case",
                                           "fields": ["region"]},
             condition='region = "华东"',
             actions=[{"type": "update_record", "values": {"note": 'note & "+东"'}},
                      {"type": "notify", "channel": "in_app", "to": {"users": ["admin"]},
                       "template": "{{ record.region }} {{ record.note }}"}])
    add_rule(world, key="tag", trigger={"type": "record.updated", "form": "visit",
                                        "fields": ["status"]},
             actions=[{"type": "set_tags", "field": "tags", "add": ["vip"]}])
    rec = world.case(title="甲", note="")
    patch(world, rec, region="华东")
    patch(world, rec, region="华西", note="人工")  # before the dispatcher gets there
    other = visit(world, subject="客户")
    patch(world, other, form="visit", status="vip")
    patch(world, other, form="visit", tags=["new"])
    dispatch(world)
    assert world.record(rec)["note"] == "人工+东"
    assert bodies(world) == ["华西 人工+东"]  # after its write: the record now
    # each event's own region decides: 华东 (runs), then 华西 (skipped)
    assert [r["condition"] for r in runs(world, "append")] == [True, False]
    assert records(world, "visit")[0]["tags"] == ["vip", "new"]
