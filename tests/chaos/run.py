"""One crash-test run: set up, drive the workload while killing processes, recover, check.

Order of events:

1. a scratch PostgreSQL database; ``qiao init``, the CRM template (no demo data), a
   write token; the two web servers and the worker started;
2. setup through the API: a form ``chaos_effect`` and two rules writing into it (a new
   customer → one effect record, one in-app notice and one outside call to the receiver;
   a customer's city changed → one effect record), and a webhook for every event type
   to the receiver; the outbox's last id is the watermark;
3. ``clients`` driver threads run the workload; meanwhile ``kills`` times, after a random
   pause, a random process (web1, web2 or the worker) is SIGKILLed and started again,
   and the next kill waits until it is back;
4. the driver stops; the run waits until the background work has drained (at most
   ``recovery_timeout`` s: leases of killed processes run out first);
5. ``qiao audit verify`` and the checks of ``tests.chaos.checks``.

``python -m tests.chaos.run --kills 20`` (PostgreSQL from ``QIAO_TEST_DATABASE_URL`` or
``--database-url``) prints the figures and exits 1 when a check failed.
"""

from __future__ import annotations

import argparse
import os
import random
import re
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy import func, select

from platform_core.db import Database
from platform_core.models import OutboxEvent
from tests.chaos.checks import Report, check, pending_work
from tests.chaos.cluster import WEB, WORKER, Cluster
from tests.chaos.receiver import Receiver
from tests.chaos.workload import APP, Api, Driver, Ledger

EFFECT_FORM = {"key": "chaos_effect", "name": "chaos effect", "fields": [
    {"key": "ref", "label": "ref", "type": "text"},
    {"key": "kind", "label": "kind", "type": "text"}]}


def rules(call_url: str) -> list[dict]:
    created = {"key": "chaos_created", "name": "chaos: new customer", "enabled": True,
               "trigger": {"type": "record.created", "form": "customer"},
               "actions": [
                   {"type": "create_record", "form": "chaos_effect",
                    "values": {"ref": "mobile", "kind": '"created"'}},
                   {"type": "notify", "channel": "in_app", "to": {"users": ["admin"]},
                    "title": "chaos", "template": "{{ record.mobile }}"},
                   {"type": "call_webhook", "method": "POST", "url": call_url,
                    "body": '{"mobile": "{{ record.mobile }}"}'}]}
    moved = {"key": "chaos_moved", "name": "chaos: city changed", "enabled": True,
             "trigger": {"type": "record.updated", "form": "customer", "fields": ["city"]},
             "actions": [{"type": "create_record", "form": "chaos_effect",
                          "values": {"ref": 'mobile & "/" & city', "kind": '"moved"'}}]}
    return [created, moved]


@dataclass
class Figures:
    kills: Counter[str] = field(default_factory=Counter)
    restart_seconds: list[float] = field(default_factory=list)
    values: dict[str, float] = field(default_factory=dict)


def setup(api: Api, receiver: Receiver) -> None:
    def ok(out, what: str):  # noqa: ANN001, ANN202
        assert out.ok, f"setup: {what}: {out.status} {out.response and out.response.text}"
        return out.json()

    ok(api.call("POST", f"{APP}/forms", json=EFFECT_FORM), "the effect form")
    ok(api.call("POST", f"{APP}/forms/chaos_effect/publish"), "publishing it")
    for rule in rules(receiver.url("/rule")):
        ok(api.call("POST", f"{APP}/rules", json=rule), rule["key"])
    hook = ok(api.call("POST", f"{APP}/webhooks", json={
        "name": "chaos", "url": receiver.url("/hook"), "event_types": ["*"]}), "webhook")
    receiver.secret = hook["secret"]


def chaos(cluster: Cluster, kills: int, rnd: random.Random, figures: Figures,
          say: Callable[[str], None]) -> None:
    """``kills`` times: a pause, SIGKILL a random process, start it again, wait for it."""
    for n in range(1, kills + 1):
        time.sleep(rnd.uniform(0.5, 4.0))
        name = rnd.choice([*WEB, WORKER])
        cluster.kill(name)
        figures.kills[name] += 1
        time.sleep(rnd.uniform(0.0, 2.0))
        cluster.start(name)
        took = cluster.wait_ready(name)
        figures.restart_seconds.append(took)
        say(f"kill {n}/{kills}: {name}, back after {took:.1f} s")


def recover(db: Database, timeout: float, say: Callable[[str], None]) -> float:
    """Wait until no background work is left (twice in a row); the seconds it took."""
    began, quiet, last = time.monotonic(), 0, None
    while time.monotonic() - began < timeout:
        left = pending_work(db)
        quiet = quiet + 1 if not any(left.values()) else 0
        if quiet >= 2:
            return time.monotonic() - began
        if left != last:
            say(f"recovering: {left}")
            last = left
        time.sleep(1.0)
    raise AssertionError(f"background work left after {timeout} s: {pending_work(db)}")


def run(database_url: str, root: Path, *, kills: int, seed: int, clients: int = 3,
        recovery_timeout: float = 300.0, say: Callable[[str], None] = print,
        before_check: Callable[[Database, Receiver], None] | None = None
        ) -> tuple[Report, Figures]:
    """The whole run (module docstring); ``before_check`` may spoil the outcome on purpose
    (to see the checks catch it)."""
    began, rnd, figures = time.monotonic(), random.Random(seed), Figures()
    cluster, receiver = Cluster(root, database_url), Receiver().start()
    db = Database.from_url(database_url)
    api = None
    try:
        token = cluster.prepare()
        cluster.start_all()
        api = Api([cluster.ports[n] for n in WEB], token)
        setup(api, receiver)
        with db.read() as s:
            watermark = s.execute(select(func.coalesce(func.max(OutboxEvent.id), 0))
                                  ).scalar_one()
        say(f"set up in {time.monotonic() - began:.0f} s; {clients} clients, {kills} kills")
        ledger, stop = Ledger(), threading.Event()
        driver = Driver(api, ledger, seed)
        threads = [threading.Thread(target=driver.run, args=(i, stop), daemon=True)
                   for i in range(clients)]
        for t in threads:
            t.start()
        workload_began = time.monotonic()
        chaos(cluster, kills, rnd, figures, say)
        time.sleep(2.0)  # a little more work with everything up
        stop.set()
        for t in threads:
            t.join(300)
        figures.values["workload_seconds"] = time.monotonic() - workload_began
        figures.values["recovery_seconds"] = recover(db, recovery_timeout, say)
        if before_check is not None:
            before_check(db, receiver)
        audit = cluster.qiao("audit", "verify", check=False)
        report = check(db, ledger, receiver, watermark=watermark,
                       worker_kills=figures.kills[WORKER])
        found = re.search(r"intact \((\d+) entries\)", audit)
        report.expect(found is not None, f"audit chain: {audit.strip()}")
        report.figures["audit_entries_verified"] = int(found.group(1)) if found else 0
        report.figures |= dict(api.stats)
        report.expect(not api.errors, f"5xx answers: {api.errors[:5]}")
        figures.values["total_seconds"] = time.monotonic() - began
        say("ledger: " + ", ".join(f"{k} {v}" for k, v in sorted(ledger.summary().items())))
        return report, figures
    finally:
        if api is not None:
            api.close()
        cluster.stop()
        receiver.close()
        db.dispose()


def describe(report: Report, figures: Figures) -> list[str]:
    """The closing lines: what survived, what was checked, what went wrong."""
    f, v = report.figures, figures.values
    per = ", ".join(f"{n} {c}" for n, c in sorted(figures.kills.items()))
    restarts = figures.restart_seconds or [0.0]
    return [
        f"kills survived: {sum(figures.kills.values())} ({per}); restart "
        f"{min(restarts):.0f}–{max(restarts):.0f} s",
        f"operations: {f.get('operations', 0)} ({f.get('operations_unknown', 0)} unknown "
        f"outcome, {f.get('operations_refused', 0)} refused); retried requests "
        f"{f.get('transport_errors', 0)}, replayed answers {f.get('replayed', 0)}, stuck "
        f"idempotency keys {f.get('stuck_idempotency_keys', 0)}, 5xx {f.get('5xx', 0)}",
        f"records checked: {f.get('records_checked', 0)}; events checked: "
        f"{f.get('events_checked', 0)}; deliveries: {f.get('deliveries_received', 0)} "
        f"(resent {f.get('deliveries_resent', 0)}); rule runs {f.get('rule_runs', 0)}, "
        f"rule effects checked {f.get('rule_effects_checked', 0)} (calls resent "
        f"{f.get('rule_calls_resent', 0)}); flow runs {f.get('flow_runs', 0)}, tasks "
        f"completed {f.get('tasks_completed', 0)}, open tasks checked "
        f"{f.get('open_tasks_checked', 0)}; audit entries verified "
        f"{f.get('audit_entries_verified', 0)}",
        f"duplicates={report.doubled} losses={report.lost} problems={len(report.problems)}; "
        f"workload {v.get('workload_seconds', 0):.0f} s, recovery "
        f"{v.get('recovery_seconds', 0):.0f} s, total {v.get('total_seconds', 0):.0f} s",
        *(f"PROBLEM: {p}" for p in report.problems[:50])]


def main(argv: list[str] | None = None) -> int:
    from tests.conftest import scratch_database

    parser = argparse.ArgumentParser(prog="python -m tests.chaos.run", description=__doc__
                                     .split("\n\n")[0])
    parser.add_argument("--kills", type=int, default=20)
    parser.add_argument("--seed", type=int, default=int(time.time()))
    parser.add_argument("--clients", type=int, default=3)
    parser.add_argument("--database-url", default=os.environ.get("QIAO_TEST_DATABASE_URL"))
    args = parser.parse_args(argv)
    if not (args.database_url or "").startswith("postgresql"):
        parser.error("needs PostgreSQL: --database-url or QIAO_TEST_DATABASE_URL")

    def say(line: str) -> None:
        print(f"chaos: {line}", flush=True)  # noqa: T201 - the command's output

    say(f"seed {args.seed}")
    with tempfile.TemporaryDirectory(prefix="qiao-chaos-") as tmp, \
            scratch_database(args.database_url, f"chaos_{os.getpid()}") as url:
        report, figures = run(url, Path(tmp), kills=args.kills, seed=args.seed,
                              clients=args.clients, say=say)
    for line in describe(report, figures):
        say(line)
    return 1 if report.problems else 0


if __name__ == "__main__":
    sys.exit(main())
