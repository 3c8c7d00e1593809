"""Benchmark of the outbox after a bulk load nobody subscribes to, on SQLite and PostgreSQL.

``outbox_drain_<N>_<db>``: N records (default 200,000; ``--quick``: 20,000) created in
batches of 1,000 through ``platform_core.store.create_records`` (one ``record.created``
event each), with the handlers ``qiao serve`` registers (rules, webhooks) but no enabled
rule and no subscription. Then the dispatcher as the background loop runs it
(``Dispatcher.from_registry`` … ``run_once`` until it handles nothing).

* ours: the time from the end of the load until the outbox is empty;
* baseline: the load itself (creating the N records and their events), for scale (no
  target on that ratio).

Target: the outbox drained within 30 s of a 200,000-row load (issue 23), printed as
``outbox_drain_seconds_<N>_<db>`` against an absolute budget of 30 s, besides the ratio to
the load time.

``outbox_crm_events_per_s_<M>_<db>``: the same, with the CRM template's rules enabled
(``bench/pages.py``'s ``build_crm``: customers, loan cases, follow-ups and a few fully
built customers, M records in all; default 20,000, ``--crm-records``): the events the
dispatcher handles per second while draining what the load left. Target ≥ 5,000 events/s
(issue 23), ``judge=min``. ``--crm-records 0`` skips it.

Usage::

    python bench/outbox.py [--db sqlite|postgresql|both] [--records N] [--quick]
                           [--pg-url URL]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from sqlalchemy import func, select  # noqa: E402
from targets import DEFAULT_PG_URL, Target, choose_targets, count_label  # noqa: E402

from platform_core.app import create_app  # noqa: E402
from platform_core.models import OutboxEvent  # noqa: E402
from platform_core.outbox import Dispatcher  # noqa: E402
from platform_core.settings import load_settings  # noqa: E402
from platform_core.store import SYSTEM, create_records  # noqa: E402

BUDGET_S = 30.0


def load(target: Target, n: int) -> tuple[object, float]:
    db = target.fresh()
    started = time.perf_counter()
    for start in range(0, n, 1000):
        with db.write() as s:
            create_records(s, app="crm", form="customer", actor=SYSTEM, items=[
                {"name": f"客户{i}", "mobile": f"138{i:08d}", "city": "北京"}
                for i in range(start, min(n, start + 1000))])
    return db, time.perf_counter() - started


def run_target(target: Target, n: int) -> list[str]:
    db, load_s = load(target, n)
    try:
        with tempfile.TemporaryDirectory(prefix="qiao_bench_outbox_") as tmp:
            # the app registers the handlers qiao serve runs (rules, webhooks)
            app = create_app(load_settings(data_dir=Path(tmp), background_jobs=False), db=db)
        _handled, drain_s, batches = drain(db, app.state.qiao)
        with db.read() as s:
            left = s.execute(select(func.count()).select_from(OutboxEvent).where(
                OutboxEvent.processed_at.is_(None))).scalar_one()
    finally:
        db.dispose()
        target.drop()
    label = f"{count_label(n)}_{target.name}"
    print(f"[{target.name}] load {n:,} records: {load_s:.1f} s; outbox drained in "  # noqa: T201
          f"{drain_s:.2f} s ({batches} batches, {left} left, {n / drain_s:,.0f} events/s)")
    return [f"RESULT metric=outbox_drain_{label} ours={drain_s:.3f} baseline={load_s:.3f} "
            f"ratio={drain_s / load_s:.3f} target=-",
            f"RESULT metric=outbox_drain_seconds_{label} ours={drain_s:.3f} "
            f"baseline={BUDGET_S:.3f} ratio={drain_s / BUDGET_S:.3f} target=1.0"]


def drain(db: object, context: object) -> tuple[int, float, int]:
    """Run the dispatcher as the background loop does until it handles nothing: (events
    handled, seconds, batches)."""
    dispatcher = Dispatcher.from_registry(db, context=context, worker_id="bench")
    started, batches, handled = time.perf_counter(), 0, 0
    while n := dispatcher.run_once():
        handled += n
        batches += 1
    return handled, time.perf_counter() - started, batches


def run_crm(target: Target, n: int) -> list[str]:
    """The CRM template's rules over the events of a load of ``n`` CRM records."""
    from pages import build_crm

    world = build_crm(target, n)
    try:
        with world.db.read() as s:
            pending = s.execute(select(func.count()).select_from(OutboxEvent).where(
                OutboxEvent.processed_at.is_(None))).scalar_one()
        handled, took, batches = drain(world.db, world.app.state.qiao)
    finally:
        world.close()
        target.drop()
    rate = handled / took if took else 0.0
    print(f"[{target.name}] CRM, {n:,} records: {pending:,} events pending, {handled:,} "  # noqa: T201
          f"handled with the CRM's rules in {took:.2f} s ({batches} batches, "
          f"{rate:,.0f} events/s)")
    return [f"RESULT metric=outbox_crm_events_per_s_{count_label(n)}_{target.name} "
            f"ours={rate:.0f} target=5000 judge=min"]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--db", choices=["sqlite", "postgresql", "both"], default="both")
    parser.add_argument("--records", type=int, default=None)
    parser.add_argument("--quick", action="store_true", help="20,000 records")
    parser.add_argument("--crm-records", type=int, default=20_000)
    parser.add_argument("--pg-url", default=os.environ.get("QIAO_BENCH_PG_URL",
                                                           DEFAULT_PG_URL))
    args = parser.parse_args(argv)
    n = args.records or (20_000 if args.quick else 200_000)
    lines: list[str] = []
    for target in choose_targets(args.db, args.pg_url, "qiao_bench_outbox"):
        lines += run_target(target, n)
        if args.crm_records:
            lines += run_crm(target, args.crm_records)
        target.close()
    for line in lines:
        print(line)  # noqa: T201


if __name__ == "__main__":
    main()
