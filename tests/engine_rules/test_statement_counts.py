"""What dispatching one record change costs in SQL statements, counted with SQLAlchemy's
cursor events: a rule whose condition is false costs no statement of its own (the runs
that ran no action are one INSERT), and a rule sending an in-app notice adds a bounded
few — so ten rules on a form do not make every save ten times as dear to dispatch."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import event

from platform_core.models import utcnow
from platform_core.outbox import Dispatcher
from tests.engine_rules.rules_setup import RULES, add_rule, bodies, patch, runs

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
