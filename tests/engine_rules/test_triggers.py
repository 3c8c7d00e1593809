"""Each trigger type fires when it should and only then: record created / updated (only
on real changes of the watched fields, ``OLD.field`` in the condition) / deleted, the
flow events (step entered, task completed with an outcome, task overdue at due and N days
late, flow completed), cron schedules and date-relative triggers driven by a test clock."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from engine_flows.sla import scan as sla_scan
from engine_rules.scans import LOCAL, scan, scan_schedules
from tests.engine_flows.flows_setup import linear, ok
from tests.engine_rules.conftest import dispatch
from tests.engine_rules.rules_setup import (
    ALICE,
    RULES,
    SERVICE,
    add_rule,
    bodies,
    notes,
    patch,
    remove,
    runs,
)


def _note(template: str, **extra):
    return [{"type": "notify", "channel": "in_app", "to": {"users": ["admin"]},
             "template": template, **extra}]


# -- record triggers ---------------------------------------------------------------------------


def test_record_created_fires_once_per_new_record_of_its_form(world):
    add_rule(world, key="new_case", trigger={"type": "record.created", "form": "case"},
             condition="amount > 100", actions=_note("新案件 {{ record.title }}"))
    world.case(title="大", amount="500")
    world.case(title="小", amount="50")
    dispatch(world)
    dispatch(world)
    assert bodies(world) == ["新案件 大"]
    log = runs(world, "new_case")
    assert [(r["status"], r["condition"]) for r in log] == [("done", True), ("skipped", False)]
    assert all(r["event_type"] == "record.created" for r in log)


def test_record_updated_fires_only_on_real_changes_of_its_fields(world):
    add_rule(world, key="approved",
             trigger={"type": "record.updated", "form": "case",
                      "fields": ["approval_result"]},
             condition='approval_result = "approved" AND OLD.approval_result <> "approved"',
             actions=_note("{{ record.title }}: {{ old.approval_result }} → "
                           "{{ record.approval_result }}"))
    rec = world.case(title="甲", approval_result="rejected")
    dispatch(world)
    patch(world, rec, note="另一个字段")  # another field changes: not watched
    patch(world, rec, approval_result="rejected", note="再改")  # same value
    patch(world, rec, approval_result="rejected")  # nothing changes at all
    dispatch(world)
    assert bodies(world) == [] and runs(world, "approved") == []
    patch(world, rec, approval_result="approved")
    dispatch(world)
    assert bodies(world) == ["甲: rejected → approved"]
    patch(world, rec, note="批准后再改备注")
    dispatch(world)
    assert len(bodies(world)) == 1
    [run] = runs(world, "approved")
    assert run["condition"] is True and run["record_id"] == rec


def test_old_value_in_the_condition_decides(world):
    """``OLD.amount``: fires when the amount goes up by more than half, not when it
    goes down or up a little."""
    add_rule(world, key="jump", trigger={"type": "record.updated", "form": "case",
                                         "fields": ["amount"]},
             condition="amount > OLD.amount * 1.5",
             actions=_note("{{ old.amount }} → {{ record.amount }}"))
    rec = world.case(amount="100")
    for amount in ("120", "60", "200"):
        patch(world, rec, amount=amount)
    dispatch(world)
    assert bodies(world) == ["60.00 → 200.00"]
    assert [r["condition"] for r in runs(world, "jump")] == [False, False, True]


def test_record_updated_without_fields_fires_on_any_change(world):
    add_rule(world, key="any", trigger={"type": "record.updated", "form": "case"},
             actions=_note("改了 {{ record.title }}"))
    rec = world.case(title="乙")
    patch(world, rec, note="x")
    patch(world, rec, note="x")  # no change, no event
    dispatch(world)
    assert bodies(world) == ["改了 乙"]


def test_record_deleted_fires_with_the_record_as_it_was(world):
    add_rule(world, key="gone", trigger={"type": "record.deleted", "form": "case"},
             actions=_note("删除了 {{ record.title }}"))
    rec = world.case(title="丙")
    dispatch(world)
    assert bodies(world) == []
    remove(world, rec)
    dispatch(world)
    assert bodies(world) == ["删除了 丙"]


# -- flow triggers -----------------------------------------------------------------------------

def _service(world):
    world.user("alice", "sales")
    world.flow(SERVICE)


def _act(world, run_id, op="complete"):
    world.act("alice", world.task_of("alice", run_id)["id"], op)


def test_step_entered_fires_for_its_flow_and_step(world, clock):
    _service(world)
    world.flow(linear("other", [{"id": "review", "type": "user_task", "name": "别的审核",
                                 "assignee": ALICE}]))
    add_rule(world, key="at_review",
             trigger={"type": "flow.step_entered", "flow": "svc", "step": "review"},
             actions=_note("{{ record.title }} 进入「{{ step.name }}」({{ step.id }})"))
    add_rule(world, key="any_step", trigger={"type": "flow.step_entered", "flow": "svc"},
             actions=_note("步骤 {{ step.id }}"))
    run = world.start("svc", world.case(title="丁"))["id"]
    world.start("other", world.case(title="戊"))  # same step key, another flow
    dispatch(world, clock.now)
    assert bodies(world) == ["步骤 start", "步骤 docs"]
    _act(world, run)
    dispatch(world, clock.now)
    assert bodies(world)[2:] == ["丁 进入「审核」(review)", "步骤 review"]
    assert [r["event_type"] for r in runs(world, "at_review")] == ["flow.step_entered"]


def test_task_completed_fires_on_its_outcome_only(world, clock):
    _service(world)
    add_rule(world, key="approved",
             trigger={"type": "task.completed", "flow": "svc", "step": "review",
                      "outcome": "approve"},
             actions=_note("{{ record.title }}: {{ task.title }} {{ task.outcome }}"))
    add_rule(world, key="done", trigger={"type": "flow.completed", "flow": "svc"},
             actions=_note("{{ record.title }} 办结"))
    yes, no = world.case(title="批"), world.case(title="拒")
    for rec, op in ((yes, "approve"), (no, "reject")):
        run = world.start("svc", rec)["id"]
        _act(world, run)  # docs: outcome "submit", not watched
        _act(world, run, op)
    dispatch(world, clock.now)
    assert bodies(world) == ["批: 审核 approve", "批 办结", "拒 办结"]
    assert [r["record_id"] for r in runs(world, "approved")] == [yes]


def test_task_overdue_at_due_and_n_days_late_each_once(world, clock):
    _service(world)
    add_rule(world, key="late", trigger={"type": "task.overdue", "flow": "svc"},
             actions=_note("{{ task.title }} 逾期 (到期 {{ task.due_at }})",
                           to={"assignee": True}))
    add_rule(world, key="late3", trigger={"type": "task.overdue", "flow": "svc",
                                          "step": "review", "overdue_days": 3},
             actions=_note("{{ record.title }}: {{ task.title }} 逾期 "
                           "{{ task.overdue_days }} 天"))
    run = world.start("svc", world.case(title="己"))["id"]
    _act(world, run)
    start = clock.now
    due = start + timedelta(hours=4)
    assert sla_scan(world.db, due - timedelta(minutes=1)) == 0
    dispatch(world, due)
    assert bodies(world) == []
    sla_scan(world.db, due + timedelta(minutes=5))
    dispatch(world, due + timedelta(minutes=5))
    [(user, _title, body)] = notes(world)
    assert user == world.users["alice"] and body.startswith("审核 逾期")
    # N days: the rules scan, once, and not before (whatever zone its clock is in)
    assert scan(world.db, (due + timedelta(days=2, hours=23)).astimezone(LOCAL)) == 0
    assert scan(world.db, due + timedelta(days=3, minutes=1)) == 1
    assert scan(world.db, due + timedelta(days=3, minutes=2)) == 0
    assert scan(world.db, due + timedelta(days=9)) == 0
    dispatch(world, due + timedelta(days=9))
    assert bodies(world)[1:] == ["己: 审核 逾期 3 天"]
    assert [r["event_type"] for r in runs(world, "late3")] == ["task.overdue"]
    assert len(runs(world, "late")) == 1  # the at-due rule is not run by the scan


# -- schedule (cron) ---------------------------------------------------------------------------


def _at(clock, monkeypatch, when):
    """Rules saved from now on are enabled at ``when``."""
    clock.now = when
    monkeypatch.setattr("engine_rules.service.utcnow", clock)


def _local(*args):
    return datetime(*args, tzinfo=LOCAL)


def test_cron_rule_fires_once_per_tick_and_catches_up_once(world, clock, monkeypatch):
    _at(clock, monkeypatch, _local(2031, 3, 3, 10, 0))  # a Monday, after 09:00
    add_rule(world, key="weekly", trigger={"type": "schedule", "cron": "0 9 * * MON"},
             actions=_note("周报 {{ event.tick }}"))
    assert scan_schedules_now(world, _local(2031, 3, 3, 10, 30)) == 0  # before enabling
    assert scan_schedules_now(world, _local(2031, 3, 10, 8, 59)) == 0
    assert scan_schedules_now(world, _local(2031, 3, 10, 9, 0)) == 1
    assert scan_schedules_now(world, _local(2031, 3, 10, 9, 1)) == 0
    assert scan(world.db, _local(2031, 3, 12, 9, 0)) == 0  # not a Monday
    # down for three Mondays: one catch-up run, not three
    assert scan_schedules_now(world, _local(2031, 4, 2, 15, 0)) == 1
    assert scan_schedules_now(world, _local(2031, 4, 2, 15, 5)) == 0
    log = runs(world, "weekly")
    assert [r["trigger"].split(":", 2)[2] for r in log] == [
        "2031-03-10T09:00:00+08:00", "2031-03-31T09:00:00+08:00"]
    assert bodies(world) == ["周报 2031-03-10T09:00:00+08:00",
                             "周报 2031-03-31T09:00:00+08:00"]
    # switched off over two Mondays: nothing for them when it is switched on again
    clock.now = _local(2031, 4, 3, 12, 0)
    ok(world.admin.post(f"{RULES}/weekly/disable"))
    assert scan(world.db, _local(2031, 4, 7, 9, 0)) == 0
    clock.now = _local(2031, 4, 16, 12, 0)
    ok(world.admin.post(f"{RULES}/weekly/enable"))
    assert scan(world.db, _local(2031, 4, 16, 12, 1)) == 0
    assert scan(world.db, _local(2031, 4, 21, 9, 0)) == 1
    assert len(bodies(world)) == 3


def scan_schedules_now(world, now):
    with world.db.write() as s:
        return scan_schedules(s, now)


def test_cron_rule_over_a_form_runs_once_per_matching_record(world, clock, monkeypatch):
    monkeypatch.setattr("engine_rules.scans.BATCH", 2)  # more records than one page
    _at(clock, monkeypatch, _local(2031, 3, 3, 10, 0))
    east = [world.case(title=f"东{i}", region="华东") for i in range(5)]
    world.case(title="西", region="华西")
    add_rule(world, key="daily", trigger={"type": "schedule", "cron": "0 9 * * *",
                                          "form": "case",
                                          "filter": {"field": "region", "op": "eq",
                                                     "value": "华东"}},
             actions=_note("每日 {{ record.title }}"))
    assert scan(world.db, _local(2031, 3, 4, 9, 0)) == 5
    assert scan(world.db, _local(2031, 3, 4, 9, 30)) == 0
    assert sorted(r["record_id"] for r in runs(world, "daily")) == east
    assert sorted(bodies(world)) == [f"每日 东{i}" for i in range(5)]
    assert scan(world.db, _local(2031, 3, 5, 9, 0)) == 5


# -- date relative -----------------------------------------------------------------------------


def test_date_relative_fires_on_its_day_after_its_time_once(world, clock, monkeypatch):
    _at(clock, monkeypatch, _local(2031, 3, 3, 8, 0))  # enabled Monday 08:00
    old = world.case(title="已过", maturity_date="2031-04-01")  # target 03-02: before
    today = world.case(title="今天", maturity_date="2031-04-02")  # target 03-03
    wed = world.case(title="周三", maturity_date="2031-04-04")  # target 03-05
    thu = world.case(title="周四", maturity_date="2031-04-05")  # target 03-06
    far = world.case(title="远", maturity_date="2031-06-01")
    add_rule(world, key="maturity", trigger={"type": "date_relative", "form": "case",
                                             "field": "maturity_date", "offset_days": -30,
                                             "at": "09:00"},
             actions=_note("{{ record.title }} 将于 {{ record.maturity_date }} 到期"))
    # 09:00 in Shanghai is 01:00 UTC
    assert scan(world.db, datetime(2031, 3, 3, 0, 59, tzinfo=UTC)) == 0
    assert scan(world.db, datetime(2031, 3, 3, 1, 0, tzinfo=UTC)) == 1
    assert scan(world.db, _local(2031, 3, 3, 18, 0)) == 0
    assert scan(world.db, _local(2031, 3, 4, 9, 0)) == 0
    # down from Tuesday to Friday noon: Wednesday's and Thursday's catch up
    assert scan(world.db, _local(2031, 3, 7, 12, 0)) == 2
    assert scan(world.db, _local(2031, 3, 7, 12, 1)) == 0
    fired = [r["record_id"] for r in runs(world, "maturity")]
    assert fired == [today, wed, thu] and old not in fired and far not in fired
    assert bodies(world)[0] == "今天 将于 2031-04-02 到期"
    # a new date is a new target: once more, on its day
    patch(world, today, maturity_date="2031-04-08")  # target 03-09
    assert scan(world.db, _local(2031, 3, 8, 9, 0)) == 0
    assert scan(world.db, _local(2031, 3, 9, 9, 0)) == 1
    assert scan(world.db, _local(2031, 3, 10, 9, 0)) == 0
    assert [r["record_id"] for r in runs(world, "maturity")][-1] == today


def test_date_relative_keeps_firing_when_many_have_fired(world, clock, monkeypatch):
    """More fired records in the window than one batch do not hide the new ones."""
    monkeypatch.setattr("engine_rules.scans.BATCH", 2)
    _at(clock, monkeypatch, _local(2031, 3, 3, 8, 0))
    add_rule(world, key="maturity", trigger={"type": "date_relative", "form": "case",
                                             "field": "maturity_date", "offset_days": -30},
             actions=_note("{{ record.title }}"))
    for i in range(3):
        world.case(title=f"一{i}", maturity_date="2031-04-02")  # target 03-03
    # a batch per call; the scan is called again while it reports work
    assert scan(world.db, _local(2031, 3, 3, 9, 0)) == 2
    assert scan(world.db, _local(2031, 3, 3, 9, 0)) == 1
    assert scan(world.db, _local(2031, 3, 3, 9, 1)) == 0
    world.case(title="二", maturity_date="2031-04-03")  # target 03-04
    world.case(title="今天晚些", maturity_date="2031-04-02")  # target today, entered late
    assert scan(world.db, _local(2031, 3, 3, 20, 0)) == 1
    assert scan(world.db, _local(2031, 3, 4, 9, 0)) == 1
    world.case(title="补录", maturity_date="2031-04-02")  # target yesterday: closed
    assert scan(world.db, _local(2031, 3, 4, 9, 5)) == 0
    assert sorted(bodies(world)) == sorted(["一0", "一1", "一2", "今天晚些", "二"])


def test_tasks_left_overdue_never_hide_newly_overdue_ones(world, clock, monkeypatch):
    monkeypatch.setattr("engine_rules.scans.BATCH", 1)
    _service(world)
    add_rule(world, key="late1", trigger={"type": "task.overdue", "overdue_days": 1},
             actions=_note("{{ record.title }} 逾期 1 天"))
    first = world.start("svc", world.case(title="早"))["id"]
    _act(world, first)
    assert scan(world.db, clock.now + timedelta(days=2)) == 1
    clock.advance(days=2)
    second = world.start("svc", world.case(title="晚"))["id"]
    _act(world, second)
    assert scan(world.db, clock.now + timedelta(days=1, hours=5)) == 1
    assert scan(world.db, clock.now + timedelta(days=3)) == 0
    dispatch(world, clock.now)
    assert bodies(world) == ["早 逾期 1 天", "晚 逾期 1 天"]


def test_time_triggers_open_encrypted_fields(world, clock, monkeypatch):
    """The registered scan (as the background loop runs it) reads sealed values with the
    installation's keyring, like the dispatcher does."""
    from platform_core.scans import run_scans

    ok(world.admin.post("/api/v1/apps/bank/forms", json={
        "key": "vault", "name": "保管", "fields": [
            {"key": "title", "label": "标题", "type": "text"},
            {"key": "due", "label": "到期", "type": "date"},
            {"key": "secret", "label": "密", "type": "text",
             "sensitive": {"encrypt": True}}]}), 201)
    ok(world.admin.post("/api/v1/apps/bank/forms/vault/publish"))
    _at(clock, monkeypatch, _local(2031, 3, 3, 8, 0))
    add_rule(world, key="due", trigger={"type": "date_relative", "form": "vault",
                                        "field": "due", "offset_days": -1},
             actions=_note("{{ record.title }}: {{ record.secret }}"))
    ok(world.admin.post("/api/v1/apps/bank/forms/vault/records",
                        json={"title": "箱", "due": "2031-03-04", "secret": "口令123"}), 201)
    assert run_scans(world.db, _local(2031, 3, 3, 9, 0)) >= 1
    assert bodies(world) == ["箱: 口令123"]
