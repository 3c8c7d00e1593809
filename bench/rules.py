"""Benchmark of the rules engine: record updates with 10 active rules against the same
updates with the rules off, on SQLite and PostgreSQL.

``rules_updates_<N>_x10_<db>``: N record updates (default 50,000; ``--quick``: 500) of a
published form, each one ``Database.write()`` transaction through
``engine_forms.records.update`` (validation, history, a ``record.updated`` outbox event),
while the outbox dispatcher runs beside them on a thread of its own, as in ``qiao serve``
(claim a batch, evaluate the rules, run their actions, mark the events handled — one
transaction per batch). A side's time runs from its first update to the moment the
outbox is empty again: everything the updates caused has happened.

* ours: 10 enabled ``record.updated`` rules on the form — 4 notify a user in the app when
  the stage moved to their stage (``OLD.stage <> stage AND stage = "sK"``), 3 set a field
  when the score crossed a threshold (``OLD.score < T AND score >= T``: an update of the
  record, which fires the rules again one level down), 3 notify when the amount grew by
  half (``amount >= OLD.amount * 1.5``) or the region changed (``OLD.region <> region``),
  each update making about half of the conditions true somewhere.
* baseline: the same updates of other records of the same form with those 10 rules
  disabled (the dispatcher still claims and marks every event: it is running anyway).

The updates of both sides are the same sequence of changes (stage cycling s1…s5, score
stepping over the thresholds, amount and region changing now and then). Set-up (not
timed): a fresh, migrated database; app ``bench``, form ``case``, user ``clerk`` (the
in-app recipient), the rules saved through ``engine_rules.service``; 2 N records with
``records.create_many`` and their ``record.created`` events drained.

Prints, per database: one ``RESULT metric=… ours=… baseline=… ratio=… target=3.0`` line
(seconds; ratio = ours / baseline), and ``RESULT metric=rules_dispatch_events_per_s_…``
(events the dispatcher handled per second of its busy time with the rules on; target
``-``) and a table with each side's update time, the outbox lag when the last update
committed (events still pending and the age of the oldest) and the time to drain it,
and the rule effects counted (notifications, field updates) — checked against what the
sequence of changes must produce. No assertions on time.

Usage::

    python bench/rules.py [--db sqlite|postgresql|both] [--updates N] [--quick]
                          [--pg-url URL]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from sqlalchemy import func, select  # noqa: E402
from targets import DEFAULT_PG_URL, Target, choose_targets, chunks, count_label  # noqa: E402

from engine_forms import forms, publishing, records  # noqa: E402
from engine_forms.sealing import FieldCrypt  # noqa: E402
from engine_rules import service as rules  # noqa: E402
from engine_rules.models import Notification  # noqa: E402
from platform_core.app import create_app  # noqa: E402
from platform_core.db import Database  # noqa: E402
from platform_core.models import OutboxEvent, Record, RecordHistory, utcnow  # noqa: E402
from platform_core.outbox import Dispatcher  # noqa: E402
from platform_core.security.models import User  # noqa: E402
from platform_core.security.passwords import hash_password  # noqa: E402
from platform_core.settings import load_settings  # noqa: E402
from platform_core.store import Actor  # noqa: E402

SCRATCH_DB = "qiao_bench_rules"
TARGET = 3.0
UPDATES, QUICK_UPDATES = 50_000, 500
APP, FORM = "bench", "case"
SYSTEM = Actor(user_id=None, name="bench")
STAGES = ["s1", "s2", "s3", "s4", "s5"]
THRESHOLDS = (30, 60, 90)
REGIONS = ["北京", "上海", "广州", "深圳"]

CASE_SPEC: dict[str, Any] = {
    "key": FORM, "name": "贷款案件", "title_field": "title",
    "fields": [
        {"key": "title", "label": "标题", "type": "text", "required": True},
        {"key": "region", "label": "区域", "type": "text"},
        {"key": "amount", "label": "金额", "type": "money"},
        {"key": "score", "label": "评分", "type": "number"},
        {"key": "stage", "label": "阶段", "type": "select",
         "options": [{"value": s, "label": s} for s in STAGES]},
        {"key": "tier", "label": "档次", "type": "text"},
        {"key": "note", "label": "备注", "type": "text"},
    ]}


def rule_specs() -> list[dict[str, Any]]:
    """The 10 rules: conditions over ``OLD.`` values, in-app notices, field updates."""
    notice = {"type": "notify", "channel": "in_app", "to": {"users": ["clerk"]},
              "title": "{{ record.title }}", "template": "{{ record.title }}: {{ record.stage }}"}
    out = [{"key": f"stage_{s}", "name": f"进入{s}", "condition":
            f'OLD.stage <> stage AND stage = "{s}"', "actions": [notice]} for s in STAGES[1:]]
    out += [{"key": f"score_{t}", "name": f"评分过{t}", "condition":
             f"OLD.score < {t} AND score >= {t}",
             "actions": [{"type": "update_record", "values": {"tier": f'"过{t}"'}}]}
            for t in THRESHOLDS]
    out += [{"key": "amount_jump", "name": "金额大涨",
             "condition": "amount >= OLD.amount * 1.5", "actions": [notice]},
            {"key": "region_moved", "name": "换区域",
             "condition": "OLD.region <> region", "actions": [notice]},
            {"key": "big_and_late", "name": "大额后期",
             "condition": 'OLD.stage <> stage AND stage = "s5" AND amount >= 150000',
             "actions": [notice]}]
    return [r | {"enabled": True, "trigger": {"type": "record.updated", "form": FORM}}
            for r in out]


def change(i: int, k: int) -> dict[str, Any]:
    """Update ``k`` of a record (``i``: the record's place), the same on both sides."""
    return {"stage": STAGES[(k + i) % len(STAGES)], "score": (k * 17 + i) % 100,
            "amount": f"{100000 + (k % 3) * 50000 + i % 7}.00",
            "region": REGIONS[(k // 4 + i) % len(REGIONS)],
            "note": f"第{k}次更新 #{i}"}


@dataclass
class World:
    db: Database
    ctx: Any
    tmp: tempfile.TemporaryDirectory[str]

    def close(self) -> None:
        self.db.dispose()
        self.tmp.cleanup()


def build(target: Target) -> World:
    db = target.fresh()
    tmp = tempfile.TemporaryDirectory(prefix="qiao_bench_rules_")
    app = create_app(load_settings(data_dir=Path(tmp.name), background_jobs=False), db=db)
    with db.write() as s:
        forms.create_app(s, key=APP, name="规则基准")
        forms.create_form(s, app=APP, raw=CASE_SPEC)
        publishing.publish(s, app=APP, key=FORM, actor=SYSTEM)
        s.add(User(username="clerk", display_name="clerk",
                   password_hash=hash_password("Bench-Passw0rd!")))
        for raw in rule_specs():
            rules.save(s, app=APP, raw=raw, actor=SYSTEM)
    return World(db, app.state.qiao, tmp)


def make_records(world: World, n: int) -> list[int]:
    ids: list[int] = []
    for batch in chunks(range(n), 1000):
        with world.db.write() as s:
            pub = forms.published(s, APP, FORM)
            ids += records.create_many(s, pub, [
                {"title": f"案件{i:06d}", "region": REGIONS[i % 4], "score": 0,
                 "stage": "s1", "amount": "100000.00"} for i in batch], actor=SYSTEM)
    return ids


def pending(db: Database) -> tuple[int, float]:
    """Events not handled yet, and the age in seconds of the oldest."""
    with db.read() as s:
        count, oldest = s.execute(select(func.count(), func.min(OutboxEvent.created_at))
                                  .where(OutboxEvent.processed_at.is_(None))).one()
    if not count:
        return 0, 0.0
    oldest = oldest if oldest.tzinfo else oldest.replace(tzinfo=utcnow().tzinfo)
    return count, (utcnow() - oldest).total_seconds()


@dataclass
class Background:
    """The dispatcher on its own thread, as ``qiao serve`` runs it."""

    world: World
    handled: int = 0
    busy: float = 0.0
    stop: threading.Event = field(default_factory=threading.Event)

    def run(self) -> None:
        dispatcher = Dispatcher.from_registry(self.world.db, context=self.world.ctx,
                                              worker_id="bench")
        while not self.stop.is_set():
            started = time.perf_counter()
            done = dispatcher.run_once()
            if done:
                self.handled += done
                self.busy += time.perf_counter() - started
            else:
                self.stop.wait(0.05)
            if self.world.db.dialect == "sqlite":
                # as BackgroundJobs._work: a gap after each batch lets a waiting write in
                self.stop.wait(0.02)


@dataclass
class Side:
    name: str
    updates_s: float = 0.0
    total_s: float = 0.0
    lag_events: int = 0
    lag_age_s: float = 0.0
    drain_s: float = 0.0
    events: int = 0
    events_per_s: float = 0.0


def run_side(world: World, name: str, ids: list[int], n: int) -> Side:
    side, bg = Side(name), Background(world)
    thread = threading.Thread(target=bg.run, name=f"dispatch-{name}", daemon=True)
    started = time.perf_counter()
    thread.start()
    for k in range(n):
        i = k % len(ids)
        with world.db.write() as s:
            pub = forms.published(s, APP, FORM)
            # the version as it is now, held (PostgreSQL: FOR UPDATE) until this update
            # commits: a rule's update of the record committing in between would make
            # this one a version conflict, as it would for a person (a 409, reload)
            version = s.execute(select(Record.row_version).where(Record.id == ids[i])
                                .with_for_update()).scalar_one()
            records.update(s, pub, ids[i], change(i, k // len(ids) + 1),
                           expected_version=version, actor=SYSTEM,
                           crypt=FieldCrypt(pub, world.ctx.keyring))
    side.updates_s = time.perf_counter() - started
    side.lag_events, side.lag_age_s = pending(world.db)
    deadline = time.perf_counter() + max(120.0, 5 * side.updates_s)
    while pending(world.db)[0]:  # an event that keeps failing would never leave: bounded
        if time.perf_counter() > deadline:
            print(f"{name}: outbox not drained: {pending(world.db)}")  # noqa: T201
            break
        time.sleep(0.05)
    side.total_s = time.perf_counter() - started
    side.drain_s = side.total_s - side.updates_s
    bg.stop.set()
    thread.join(timeout=60)
    side.events, side.events_per_s = bg.handled, bg.handled / bg.busy if bg.busy else 0.0
    return side


def set_rules(world: World, enabled: bool) -> None:
    with world.db.write() as s:
        for raw in rule_specs():
            rules.set_enabled(s, APP, raw["key"], enabled, SYSTEM)


def effects(world: World) -> tuple[int, int]:
    """In-app notifications and rule-made record changes written so far."""
    with world.db.read() as s:
        notes = s.execute(select(func.count()).select_from(Notification)).scalar_one()
        changes = s.execute(select(func.count()).select_from(RecordHistory).where(
            RecordHistory.actor_id.is_(None), RecordHistory.action == "update")).scalar_one()
    return notes, changes


def run_target(target: Target, n: int) -> list[str]:
    world = build(target)
    try:
        per_side = max(1, min(n, 5000))  # records per side; updates cycle over them
        base_ids, our_ids = make_records(world, per_side), make_records(world, per_side)
        drain = Dispatcher.from_registry(world.db, context=world.ctx, worker_id="setup")
        set_rules(world, False)
        while drain.run_once():
            pass
        before = effects(world)
        baseline = run_side(world, "baseline", base_ids, n)
        after_base = effects(world)
        set_rules(world, True)
        while drain.run_once():
            pass
        ours = run_side(world, "ours", our_ids, n)
        after = effects(world)
    finally:
        world.close()
        target.close()
    label = f"{count_label(n)}_x10_{target.name}"
    lines = [f"RESULT metric=rules_updates_{label} ours={ours.total_s:.3f} "
             f"baseline={baseline.total_s:.3f} ratio={ours.total_s / baseline.total_s:.2f} "
             f"target={TARGET}",
             f"RESULT metric=rules_dispatch_events_per_s_{label} ours={ours.events_per_s:.0f} "
             f"baseline={baseline.events_per_s:.0f} ratio="
             f"{ours.events_per_s / baseline.events_per_s if baseline.events_per_s else 0:.2f}"
             " target=-"]
    for line in lines:
        print(line)  # noqa: T201
    print(f"{'side':<9} {'updates s':>10} {'total s':>9} {'lag events':>11} "  # noqa: T201
          f"{'lag age s':>10} {'drain s':>8} {'events':>8} {'events/s':>9}")
    for side in (baseline, ours):
        print(f"{side.name:<9} {side.updates_s:>10.2f} {side.total_s:>9.2f} "  # noqa: T201
              f"{side.lag_events:>11} {side.lag_age_s:>10.2f} {side.drain_s:>8.2f} "
              f"{side.events:>8} {side.events_per_s:>9.0f}")
    print(f"rule effects: baseline {after_base[0] - before[0]} notifications, "  # noqa: T201
          f"{after_base[1] - before[1] - n} field updates; ours "
          f"{after[0] - after_base[0]} notifications, {after[1] - after_base[1] - n} "
          "field updates")
    return lines


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--db", choices=["sqlite", "postgresql", "both"], default="both")
    parser.add_argument("--updates", type=int, default=None)
    parser.add_argument("--quick", action="store_true",
                        help=f"{QUICK_UPDATES:,} updates per side (under 3 minutes)")
    parser.add_argument("--pg-url", default=os.environ.get("QIAO_BENCH_PG_URL",
                                                           DEFAULT_PG_URL))
    args = parser.parse_args(argv)
    n = args.updates or (QUICK_UPDATES if args.quick else UPDATES)
    for target in choose_targets(args.db, args.pg_url, SCRATCH_DB):
        run_target(target, n)


if __name__ == "__main__":
    main()
