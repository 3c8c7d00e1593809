"""What must hold once the killed processes are back and the background work has drained.

Read straight from the database (the test's own view, not the API's) and from what the
receiver got:

- **records**: every operation the driver was told succeeded left exactly one record
  (customer by mobile, follow-up by summary, loan case by note, import by its rows'
  mobiles); an unknown one at most one; a refused one none; no record nobody asked for;
- **events**: each created record has one ``record.created`` event; every domain event
  since the subscription reached the receiver — by the contract of docs/webhooks.md
  (at least once, the body's ``id`` names the event): every event id arrived, each
  through exactly one delivery (one ``X-Qiao-Delivery`` id), signed, and resends only
  where a worker was killed between sending and recording (≤ its batch per kill);
- **rule effects**: one run per (rule, event); every action run done, each key once; the
  test rules' effects once per cause (a created customer: one effect record, one
  in-app notice, one outside call key; a city change: one effect record);
- **flows**: one run per started loan case; every open task belongs to a running run's
  active step and every active waiting step of a running run has an open task;
- **the audit chain** verifies (``qiao audit verify``).
"""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import func, select

from engine_flows.models import FlowRun, FlowStep, Task
from engine_forms.models import ImportBatch
from engine_rules.models import ActionRun, Notification, Rule, RuleRun
from platform_core.db import Database
from platform_core.models import OutboxEvent, Record
from platform_core.webhooks.events import DOMAIN_EVENTS
from platform_core.webhooks.models import WebhookDelivery
from tests.chaos.receiver import Receiver
from tests.chaos.workload import Ledger

WAITING = {"user_task", "approval"}  # steps that wait for a person's task
PARKED = {"timer", "join", "subflow"}  # steps that wait for something else
DELIVERY_BATCH = 10  # webhooks.sender.deliver_due's batch: resent at most per killed worker
RULE_CALL_BATCH = 50  # engine_rules.sender.BATCH


def pending_work(db: Database) -> dict[str, int]:
    """What the background still has to do (all zero: recovered)."""
    with db.read() as s:
        def n(stmt: Any) -> int:
            return s.execute(stmt).scalar_one()
        return {
            "outbox": n(select(func.count()).select_from(OutboxEvent).where(
                OutboxEvent.processed_at.is_(None), OutboxEvent.attempts < 10)),
            "deliveries": n(select(func.count()).select_from(WebhookDelivery).where(
                WebhookDelivery.status == "pending")),
            "rule_calls": n(select(func.count()).select_from(ActionRun).where(
                ActionRun.status == "pending")),
            "imports": n(select(func.count()).select_from(ImportBatch).where(
                ImportBatch.status.in_(("queued", "running"))))}


@dataclass
class Report:
    problems: list[str] = field(default_factory=list)
    figures: dict[str, int] = field(default_factory=dict)
    lost: int = 0  # things that should be there once and are not
    doubled: int = 0  # things there more often than allowed

    def expect(self, holds: bool, problem: str) -> None:
        if not holds:
            self.problems.append(problem)


def once(report: Report, what: str, found: int, state: str) -> None:
    """``ok`` → exactly one; ``unknown`` → at most one; ``refused`` → none."""
    low, high = {"ok": (1, 1), "unknown": (0, 1), "refused": (0, 0)}[state]
    report.lost += found < low
    report.doubled += found > high
    report.expect(low <= found <= high, f"{what} ({state}): {found} found")


def check(db: Database, ledger: Ledger, receiver: Receiver, *, watermark: int,
          worker_kills: int) -> Report:
    report = Report()
    with db.read() as s:
        records = list(s.execute(select(Record).where(Record.app == "crm")).scalars())
        by_form: dict[str, list[Record]] = defaultdict(list)
        for r in records:
            by_form[r.form].append(r)
        _records(report, s, ledger, by_form)
        _events(report, s, receiver, watermark, records, worker_kills)
        _rules(report, s, ledger, receiver, by_form, worker_kills)
        _flows(report, s, ledger, by_form)
    report.figures["records_checked"] = len(records)
    return report


def _live(rows: list[Record], key: str) -> Counter[str]:
    return Counter(str(r.data.get(key)) for r in rows if r.deleted_at is None)


def _records(report: Report, s: Any, ledger: Ledger, by_form: dict[str, list[Record]]
             ) -> None:
    customers = _live(by_form["customer"], "mobile")
    asked = set()
    for e in ledger.of("customer"):
        once(report, f"customer {e.marker}", customers[e.marker], e.state)
        asked.add(e.marker)
    batches = {b.name: b for b in s.execute(select(ImportBatch)).scalars()}
    for e in ledger.of("import"):
        batch = batches.get(e.marker)
        asked.update(e.extra["mobiles"])
        if batch is None:
            once(report, f"import {e.marker}", 0, e.state)
            for m in e.extra["mobiles"]:
                report.expect(customers[m] == 0, f"customer {m} of import {e.marker} "
                                                 f"that never was: {customers[m]} found")
            continue
        once(report, f"import {e.marker}", 1, e.state)
        rows = len(e.extra["mobiles"])
        report.expect(batch.status == "done" and batch.created == rows,
                      f"import {e.marker}: {batch.status}, {batch.created} of {rows} "
                      f"created ({batch.error})")
        for m in e.extra["mobiles"]:
            report.expect(customers[m] == 1, f"customer {m} of import {e.marker}: "
                                             f"{customers[m]} found")
    strays = set(customers) - asked
    report.expect(not strays, f"customers nobody asked for: {sorted(strays)[:10]}")

    all_follow_ups = Counter(str(r.data.get("summary")) for r in by_form["follow_up"])
    live_follow_ups = _live(by_form["follow_up"], "summary")
    deleted = {e.marker: e for e in ledger.of("deleted")}
    for e in ledger.of("follow_up"):
        once(report, f"follow-up {e.marker}", all_follow_ups[e.marker], e.state)
        gone = deleted.get(e.marker)
        if gone is not None and gone.state != "unknown":
            expect = 0 if gone.state == "ok" else 1
            report.expect(live_follow_ups[e.marker] == expect,
                          f"follow-up {e.marker} deleted ({gone.state}): "
                          f"{live_follow_ups[e.marker]} live")
    cases = Counter(str(r.data.get("note")) for r in by_form["loan_case"])
    for e in ledger.of("loan_case"):
        once(report, f"loan case {e.marker}", cases[e.marker], e.state)
    report.figures["operations"] = len(ledger.entries)
    report.figures["operations_unknown"] = sum(e.state == "unknown" for e in ledger.entries)
    report.figures["operations_refused"] = sum(e.state == "refused" for e in ledger.entries)


def _events(report: Report, s: Any, receiver: Receiver, watermark: int,
            records: list[Record], worker_kills: int) -> None:
    events = list(s.execute(select(OutboxEvent).where(OutboxEvent.id > watermark))
                  .scalars())
    unprocessed = [e.id for e in events if e.processed_at is None]
    report.expect(not unprocessed, f"outbox events never handled: {unprocessed[:10]}")
    created = Counter(e.record_id for e in events if e.event_type == "record.created")
    first = dict(s.execute(select(OutboxEvent.record_id, func.min(OutboxEvent.id))
                           .group_by(OutboxEvent.record_id)).all())
    for r in records:  # made during the workload: its first event is after the watermark
        if first.get(r.id, watermark + 1) > watermark:
            once(report, f"{r.form} record {r.id}: record.created events", created[r.id],
                 "ok")
    expected = {f"evt_{e.id}" for e in events
                if e.app == "crm" and e.event_type in DOMAIN_EVENTS}
    hooks = receiver.of("/hook")
    arrived = Counter(a.event_id for a in hooks)
    missing, extra = expected - set(arrived), set(arrived) - expected
    report.lost += len(missing)
    report.expect(not missing, f"{len(missing)} events never delivered, e.g. "
                               f"{sorted(missing)[:10]}")
    report.expect(not extra, f"{len(extra)} deliveries of unknown events: {sorted(extra)[:10]}")
    ids_per_event: dict[str | None, set[str | None]] = defaultdict(set)
    for a in hooks:
        ids_per_event[a.event_id].add(a.delivery)
    doubled = [k for k, v in ids_per_event.items() if len(v) > 1]
    report.doubled += len(doubled)
    report.expect(not doubled, f"events fanned out twice (two delivery ids): {doubled[:10]}")
    unsigned = sum(1 for a in hooks if not a.signed)
    report.expect(unsigned == 0, f"{unsigned} deliveries with a bad signature")
    resent = sum(n - 1 for n in arrived.values())
    report.expect(resent <= DELIVERY_BATCH * worker_kills,
                  f"{resent} deliveries sent again, more than {worker_kills} worker kills "
                  "explain")
    not_delivered = s.execute(select(func.count()).select_from(WebhookDelivery).where(
        WebhookDelivery.status != "delivered")).scalar_one()
    report.expect(not_delivered == 0, f"{not_delivered} webhook deliveries not delivered")
    report.figures |= {"events_checked": len(expected), "deliveries_received": len(hooks),
                       "deliveries_resent": resent, "events_lost": len(missing),
                       "events_doubled": len(doubled)}


def _rules(report: Report, s: Any, ledger: Ledger, receiver: Receiver,
           by_form: dict[str, list[Record]], worker_kills: int) -> None:
    rules = {r.id: r.key for r in s.execute(select(Rule)).scalars()}
    runs = Counter((r.rule_id, r.trigger_key) for r in s.execute(
        select(RuleRun).where(RuleRun.test.is_(False))).scalars())
    twice = [(rules[k[0]], k[1]) for k, n in runs.items() if n > 1]
    report.doubled += len(twice)
    report.expect(not twice, f"rules run twice for one trigger: {twice[:10]}")
    unfinished = list(s.execute(select(ActionRun.key, ActionRun.status, ActionRun.last_error)
                                .where(ActionRun.status != "done")).all())
    report.expect(not unfinished, f"rule actions not done: {unfinished[:10]}")

    effects = defaultdict(Counter)
    for r in by_form["chaos_effect"]:
        effects[r.data.get("kind")][str(r.data.get("ref"))] += 1
    mobiles = [str(r.data.get("mobile")) for r in by_form["customer"]]
    notices = Counter(n.body for n in s.execute(
        select(Notification).where(Notification.title == "chaos")).scalars())
    calls = defaultdict(set)
    for a in receiver.of("/rule"):
        calls[str(a.body.get("mobile"))].add(a.action)
    for m in mobiles:
        once(report, f"customer {m}: created-rule effect records", effects["created"][m], "ok")
        once(report, f"customer {m}: in-app notices", notices[m], "ok")
        once(report, f"customer {m}: outside calls (by X-Qiao-Action)", len(calls[m]), "ok")
    phantom = set(effects["created"]) - set(mobiles)
    report.expect(not phantom, f"created-rule effects without a customer: {sorted(phantom)}")
    cities = {e.marker: e for e in ledger.of("city")}
    for marker, e in cities.items():
        once(report, f"city change {marker} → its rule effect", effects["moved"][marker],
             e.state)
    phantom = set(effects["moved"]) - set(cities)
    report.expect(not phantom, f"city-rule effects nobody caused: {sorted(phantom)[:10]}")
    resent = len(receiver.of("/rule")) - sum(len(v) for v in calls.values())
    report.expect(resent <= RULE_CALL_BATCH * worker_kills,
                  f"{resent} rule calls sent again, more than {worker_kills} kills explain")
    report.figures |= {"rule_runs": sum(runs.values()),
                       "rule_effects_checked": sum(sum(c.values()) for c in effects.values())
                       + sum(notices.values()) + len(calls),
                       "rule_calls_resent": resent}


def _flows(report: Report, s: Any, ledger: Ledger, by_form: dict[str, list[Record]]) -> None:
    runs = list(s.execute(select(FlowRun)).scalars())
    per_record = Counter(r.record_id for r in runs)
    notes = {r.id: str(r.data.get("note")) for r in by_form["loan_case"]}
    for e in ledger.of("flow"):
        once(report, f"flow of loan case {e.marker}", per_record[e.extra["record_id"]],
             e.state)
    twice = [notes.get(k, k) for k, n in per_record.items() if n > 1]
    report.doubled += len(twice)
    report.expect(not twice, f"loan cases with two flow runs: {twice[:10]}")
    tasks = {t.id: t for t in s.execute(select(Task)).scalars()}
    for e in ledger.of("task", "ok"):
        task = tasks.get(e.ref)
        report.expect(task is not None and task.status == "done"
                      and task.outcome == e.extra["outcome"],
                      f"task {e.marker} completed ({e.extra['outcome']}) but is "
                      f"{task and (task.status, task.outcome)}")
    for e in ledger.of("task", "refused"):
        task = tasks.get(e.ref)
        report.expect(task is not None and task.status == "open",
                      f"task {e.marker}: refused ({e.extra.get('answer')}) but "
                      f"{task and task.status}")
    by_id = {r.id: r for r in runs}
    steps = {st.id: st for st in s.execute(select(FlowStep)).scalars()}
    open_tasks = [t for t in tasks.values() if t.status == "open" and t.run_id is not None]
    for t in open_tasks:
        run, step = by_id.get(t.run_id), steps.get(t.step_id)
        report.expect(run is not None and run.status == "running" and step is not None
                      and step.status == "active",
                      f"orphaned task {t.id}: run {run and run.status}, "
                      f"step {step and step.status}")
    with_task = {t.step_id for t in open_tasks}
    for st in steps.values():
        run = by_id[st.run_id]
        if st.status != "active":
            continue
        report.expect(run.status == "running", f"active step {st.id} in a {run.status} run")
        if st.node_type in WAITING:
            report.expect(st.id in with_task, f"run {run.id} waits at {st.node_id} "
                                              "with no open task")
        elif st.node_type not in PARKED:
            report.problems.append(f"run {run.id} stuck at {st.node_type} {st.node_id}")
    active = {st.run_id for st in steps.values() if st.status == "active"}
    stuck = [r.id for r in runs if r.status == "running" and r.id not in active]
    report.expect(not stuck, f"running flow runs with no active step: {stuck[:10]}")
    report.figures |= {"flow_runs": len(runs), "open_tasks_checked": len(open_tasks),
                       "tasks_completed": len(ledger.of("task", "ok"))}

