"""The dispatcher hands the rules engine only the events some enabled rule could match:
events nobody wants are still marked processed (none lost, none left pending), and a rule
enabled while the dispatcher runs fires on the events written after it — the running
dispatcher does not keep an old idea of what the rules want."""

from __future__ import annotations

from sqlalchemy import func, select

from platform_core.models import OutboxEvent, utcnow
from platform_core.outbox import Dispatcher
from tests.engine_rules.rules_setup import RULES, add_rule, bodies, patch, runs


def _pending(world) -> int:
    with world.db.read() as s:
        return s.scalar(select(func.count()).select_from(OutboxEvent)
                        .where(OutboxEvent.processed_at.is_(None)))


def _drain(dispatcher: Dispatcher) -> None:
    while dispatcher.run_once(now=utcnow()):
        pass


def test_events_no_rule_wants_are_marked_processed_and_a_rule_enabled_later_fires(world):
    ctx = world.app.state.qiao
    dispatcher = Dispatcher.from_registry(ctx.db, context=ctx, worker_id="tests")
    add_rule(world, key="watch", enabled=False,
             trigger={"type": "record.updated", "form": "case"},
             actions=[{"type": "notify", "channel": "in_app", "to": {"users": ["admin"]},
                       "template": "改了 {{ record.title }}"}])
    rec = world.case(title="甲")
    patch(world, rec, note="无人订阅")
    _drain(dispatcher)
    assert _pending(world) == 0
    assert bodies(world) == [] and runs(world, "watch") == []

    world.admin.post(f"{RULES}/watch/enable").raise_for_status()
    patch(world, rec, note="规则已启用")
    _drain(dispatcher)  # the same dispatcher: what the rules want is read again
    assert _pending(world) == 0
    assert bodies(world) == ["改了 甲"]
    assert [r["status"] for r in runs(world, "watch")] == ["done"]
