"""What dispatching one record change costs in SQL statements, counted with SQLAlchemy's
cursor events: a rule whose condition is false costs no statement of its own (the runs
that ran no action are one INSERT), and a rule sending an in-app notice adds a bounded
few — so ten rules on a form do not make every save ten times as dear to dispatch."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import event, func, select

from engine_rules.models import ActionRun, Rule, RuleRun
from platform_core.models import utcnow
from platform_core.outbox import Dispatcher
from tests.engine_rules.rules_setup import RULES, add_rule, bodies, patch, runs, visit, visit_form

UPDATED = {"type": "record.updated", "form": "case"}


@contextmanager
def counted(world) -> Iterator[list[str]]:
    seen: list[str] = []

    def count(_conn, _cursor, statement, *_args) -> None:
        seen.append(statement)

    engine = world.db.engine
    event.listen(engine, "before_cursor_execute", count)
    try:
        yield seen
    finally:
        event.remove(engine, "before_cursor_execute", count)


def _dispatch_one(world) -> int:
    """Statements of the dispatcher run that handles the one pending event."""
    ctx = world.app.state.qiao
    dispatcher = Dispatcher.from_registry(ctx.db, context=ctx, worker_id="tests")
    with counted(world) as seen:
        assert dispatcher.run_once(now=utcnow()) == 1
    return len(seen)


def _quiet_rules(world, n: int) -> None:
    for i in range(n):
        add_rule(world, key=f"quiet{i}", trigger=UPDATED,
                 condition=f'OLD.region <> region AND region = "无{i}"',
                 actions=[{"type": "notify", "channel": "in_app", "to": {"users": ["admin"]},
                           "template": "不会发出"}])


def test_rules_whose_condition_is_false_cost_no_statement_each(world):
    _quiet_rules(world, 10)
    rec = world.case(title="甲")
    _dispatch_one(world)  # the record.created event (no rule wants it)
    patch(world, rec, note="一")
    ten = _dispatch_one(world)
    for i in range(2, 10):
        world.admin.post(f"{RULES}/quiet{i}/disable").raise_for_status()
    patch(world, rec, note="二")
    two = _dispatch_one(world)
    assert ten == two
    assert [r["status"] for r in runs(world, "quiet0")] == ["skipped", "skipped"]
    assert [r["status"] for r in runs(world, "quiet9")] == ["skipped"]
    assert bodies(world) == []


def test_an_in_app_notice_adds_at_most_four_statements(world):
    _quiet_rules(world, 3)
    rec = world.case(title="甲")
    _dispatch_one(world)
    patch(world, rec, note="一")
    quiet = _dispatch_one(world)
    add_rule(world, key="tell", trigger=UPDATED, condition="OLD.note <> note",
             actions=[{"type": "notify", "channel": "in_app", "to": {"users": ["admin"]},
                       "template": "{{ record.title }}：{{ record.note }}"}])
    patch(world, rec, note="二")
    told = _dispatch_one(world)
    # the named users (1), the notices (1), the run (1) and its action run (1): no
    # savepoint, no second write of the run, and no look-up of actions already done
    # for an event no dispatcher had claimed before
    assert told - quiet <= 4, told - quiet
    assert bodies(world) == ["甲：二"]
    [run] = runs(world, "tell")
    assert run["status"] == "done" and run["actions"][0]["status"] == "done"


def _changed_cases(world, n: int) -> list[int]:
    """``n`` cases, each changed once after its creation was dispatched: ``n`` pending
    ``record.updated`` events."""
    ids = [world.case(title=f"案{i}") for i in range(n)]
    dispatcher = Dispatcher.from_registry(world.db, context=world.app.state.qiao,
                                          worker_id="tests")
    while dispatcher.run_once(now=utcnow()):
        pass
    for i, rec in enumerate(ids):
        patch(world, rec, note=f"改{i}")
    return ids


def test_a_batch_s_rule_runs_are_one_insert_and_their_action_runs_point_at_them(world):
    _quiet_rules(world, 2)
    add_rule(world, key="tell", trigger=UPDATED, condition="NOT ISBLANK(note)",
             actions=[{"type": "notify", "channel": "in_app", "to": {"users": ["admin"]},
                       "template": "{{ record.title }}：{{ record.note }}"}])
    _changed_cases(world, 6)
    ctx = world.app.state.qiao
    dispatcher = Dispatcher.from_registry(ctx.db, context=ctx, worker_id="tests")
    with counted(world) as seen:
        assert dispatcher.run_once(now=utcnow()) == 6
    inserts = [s.split("(")[0].strip() for s in seen if s.startswith("INSERT INTO")]
    # 18 runs (3 rules x 6 events) in one statement, their 6 action runs in one more
    assert inserts.count("INSERT INTO rule_runs") == 1
    assert inserts.count("INSERT INTO action_runs") == 1
    assert sorted(bodies(world)) == sorted(f"案{i}：改{i}" for i in range(6))
    with world.db.read() as s:
        pairs = s.execute(select(ActionRun.key, RuleRun.trigger_key, RuleRun.rule_id,
                                 RuleRun.status)
                          .join(RuleRun, RuleRun.id == ActionRun.rule_run_id)).all()
        tell = s.execute(select(Rule.id).where(Rule.key == "tell")).scalar_one()
        order = s.execute(select(RuleRun.trigger_key, RuleRun.rule_id)
                          .where(RuleRun.event_type == "record.updated")
                          .order_by(RuleRun.id)).all()
    assert len(pairs) == 6
    for key, trigger_key, rule_id, status in pairs:  # evt:<event>:<rule>:<action index>
        assert key == f"{trigger_key}:{rule_id}:0" and rule_id == tell and status == "done"
    # the runs' ids follow the order they were judged in: event by event, rule by rule
    assert order == sorted(order, key=lambda r: (int(r[0].split(":")[1]), r[1]))


class _FailsOn:
    """A second handler that raises for one record's event (after the rules ran on it)."""

    def __init__(self, record_id: int):
        self.record_id = record_id

    def handle(self, _session, event) -> None:
        if event.record_id == self.record_id:
            raise RuntimeError("this event fails")


def test_a_failed_batch_leaves_each_event_s_rule_runs_once_and_none_of_the_failed_one(world):
    add_rule(world, key="tell", trigger=UPDATED, condition="NOT ISBLANK(note)",
             actions=[{"type": "notify", "channel": "in_app", "to": {"users": ["admin"]},
                       "template": "{{ record.title }}：{{ record.note }}"}])
    first, failing, last = _changed_cases(world, 3)
    ctx = world.app.state.qiao
    rules = Dispatcher.from_registry(ctx.db, context=ctx).handlers
    dispatcher = Dispatcher(ctx.db, [*rules, _FailsOn(failing)], worker_id="tests")
    # the batch fails at the second event and is redone event by event: the runs the
    # rules kept back for the whole batch must not be written with the redo's
    assert dispatcher.run_once(now=utcnow()) == 3
    with world.db.read() as s:
        counts = dict(s.execute(select(RuleRun.record_id, func.count())
                                .where(RuleRun.event_type == "record.updated")
                                .group_by(RuleRun.record_id)).all())
        action_runs = s.execute(select(func.count()).select_from(ActionRun)).scalar_one()
    assert counts == {first: 1, last: 1}
    assert action_runs == 2
    assert sorted(bodies(world)) == ["案0：改0", "案2：改2"]


def test_an_update_through_a_relation_reads_no_whole_record_the_session_holds(world):
    """Re-reading the triggering record "as it is now" (once for an update through a
    relation: to find the record it links to) reads its row version, and the whole row
    only when that moved — in the statement that locks the linked record: one round
    trip for both."""
    visit_form(world)
    add_rule(world, key="visited", name="visited", trigger={"type": "record.created",
                                                            "form": "visit"},
             actions=[{"type": "update_record", "via": "case",
                       "values": {"note": '"已回访：" & subject'}}])
    rec = world.case(title="甲")
    _dispatch_one(world)
    visit(world, subject="电话", case=rec)
    with counted(world) as seen:
        dispatcher = Dispatcher.from_registry(world.db, context=world.app.state.qiao,
                                              worker_id="tests")
        assert dispatcher.run_once(now=utcnow()) == 1
    whole = [s for s in seen if s.startswith("SELECT records.id, records.app")
             and "records.id = " in s and "records.id = ANY" not in s]  # not the batch's
    assert whole == []
    alone = [s for s in seen if s.startswith(("SELECT records.row_version",
                                              "SELECT records_1.row_version"))]
    assert alone == []  # no version read on its own
    [lock] = [s for s in seen if s.startswith("SELECT records.id, records.row_version")]
    assert "(SELECT records_1.row_version" in lock  # the trigger's, beside the lock
    assert world.record(rec)["note"] == "已回访：电话"
