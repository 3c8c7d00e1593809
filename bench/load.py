"""Load test of a staff day: many staff at once against Qiao run as in production.

``python bench/load.py [--db sqlite|postgresql|both] [--quick] [--records N]
[--users N] [--sqlite-users N] [--duration S] [--warmup S] [--steps N,N] [--think S]
[--web-workers N] [--workers N]``

The topology is started here, on loopback, from the installed ``qiao`` command:

* PostgreSQL: ``qiao serve --workers 4`` (web processes, background jobs off) and two
  ``qiao worker`` processes (outbox dispatcher, rules, webhooks), one database.
* SQLite: one ``qiao serve`` process doing its own background work (a small office).

Set-up (not timed): the CRM template (``bank_intermediary_crm``) with ~N records — 40 %
customers, 30 % loan cases, 30 % follow-ups, owned by 20 salespeople in turn — built as
``bench/pages.py`` builds it (default 1,000,000; ``--quick`` 20,000), its outbox events
marked handled (``settle_outbox``: history, not a backlog), then, through the API,
a stock of loan cases per salesperson whose loan-service flow waits at 需求分析 (the tasks
the staff complete).

Then ``--users`` simulated staff (PostgreSQL 50, SQLite 10), each one of the salespeople
signed in (a page session and a personal API token), run for ``--warmup`` seconds (default
10: every web process's first lists, record pages and dashboards — imports, compiled SQL,
templates — are a deploy's cost, not a staff day's; printed, not judged) and then
``--duration`` seconds a mix
of what a salesperson's day is made of, one request after the other with a think time
(exponential, mean ``--think`` seconds) in between:

| kind | share | request |
| --- | --- | --- |
| ``list`` | 25 % | the customer list page filtered by city, newest first (HTML) |
| ``customer360`` | 20 % | one of their customers' record page: the 360° view (HTML) |
| ``follow_up`` | 15 % | create a follow-up on one of their customers (API) |
| ``task`` | 10 % | their open tasks, then complete the first 需求分析 one (API, 2 calls) |
| ``dashboard`` | 10 % | the sales dashboard's data, every widget (API) |
| ``search`` | 20 % | global search by a customer's name prefix (API) |

Latency is measured by the client (loopback), per request kind. At the end: requests/s
and p50/p95/p99 per kind, errors (any status >= 400 that is not expected, or a transport
error: must be 0), the outbox lag when the staff stop (oldest unhandled event's age and
count) and how long the workers then take to drain it, and duplicate rule runs (a rule that
ran twice for one trigger — a duplicate notification; must be 0).

Output: ``RESULT metric=load_<kind>_p95_<db> ours=<p95 s> baseline=0.300 ratio=… target=1.0``
per kind (the issue's budget: p95 < 300 ms; PostgreSQL at 50 users, SQLite at 10), and
``load_errors_<db>`` / ``load_duplicates_<db>`` with ``baseline=1`` and ``target=0``.

``--steps 100,150`` then runs the same mix again on the same (warm) topology with 100,
then 150 staff, each for ``--duration``, and prints each step's table and
``RESULT metric=load_step_<n>_worst_p95_<db>`` / ``…_requests_per_s_<db>`` (informative:
the staff count where the worst p95 passes 300 ms is the node's ceiling,
``docs/scaling.md``).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
from pages import CITIES, CRM_APP, PASSWORD, SALES, CrmWorld, build_crm
from sqlalchemy import create_engine, text
from targets import DEFAULT_PG_URL, Target, choose_targets, count_label

from platform_core.security.auth import SESSION_COOKIE, issue_token
from platform_core.security.models import User
from platform_core.store import Actor

BUDGET_S = 0.300
KEEPALIVE_S = 4.0  # < uvicorn's --timeout-keep-alive (5 s)
MIX = {"list": 25, "customer360": 20, "follow_up": 15, "task": 10, "dashboard": 10,
       "search": 20}
SYSTEM = Actor(user_id=None, name="bench")
LOGS = Path(tempfile.gettempdir()) / "qiao_bench_load"  # the processes' output, kept


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# ----------------------------------------------------------------------------- processes


@dataclass
class Topology:
    """The ``qiao`` processes serving one database, started and stopped here."""

    url: str
    data_dir: Path
    web_workers: int
    workers: int
    port: int = field(default_factory=free_port)
    procs: list[subprocess.Popen[bytes]] = field(default_factory=list)

    def env(self, *, background: bool) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("QIAO_")}
        return env | {
            "QIAO_DATA_DIR": str(self.data_dir), "QIAO_DATABASE_URL": self.url,
            "QIAO_LOG_LEVEL": "warning", "QIAO_BACKGROUND_JOBS": str(background).lower(),
            "QIAO_API_RATE_PER_MINUTE": "1000000", "QIAO_LOGIN_RATE_PER_MINUTE": "100000",
            "PYTHONUNBUFFERED": "1"}

    def _spawn(self, name: str, args: list[str], *, background: bool) -> None:
        LOGS.mkdir(exist_ok=True)
        log = open(LOGS / f"{name}.log", "wb")  # noqa: SIM115
        self.procs.append(subprocess.Popen(
            [sys.executable, "-m", "platform_core", *args], cwd=self.data_dir,
            env=self.env(background=background), stdout=log, stderr=subprocess.STDOUT,
            start_new_session=True))

    def start(self) -> None:
        separate = self.workers > 0
        self._spawn("web", ["serve", "--host", "127.0.0.1", "--port", str(self.port),
                            "--workers", str(self.web_workers)], background=not separate)
        for i in range(self.workers):
            self._spawn(f"worker{i}", ["worker"], background=True)
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            for p in self.procs:
                if p.poll() is not None:
                    raise SystemExit(f"a qiao process exited with {p.returncode}: see "
                                     f"{LOGS}/*.log")
            try:
                if httpx.get(f"{self.base}/healthz", timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.5)
        raise SystemExit("qiao serve did not answer /healthz within 180 s")

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def stop(self) -> None:
        for p in self.procs:
            if p.poll() is None:
                os.killpg(p.pid, signal.SIGTERM)
        for p in self.procs:
            try:
                p.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(p.pid, signal.SIGKILL)
                p.wait()


# ------------------------------------------------------------------------------- the staff


@dataclass
class Staff:
    """One salesperson as the driver knows them."""

    username: str
    token: str
    customers: list[int]  # ids of customers they own
    names: list[str]  # name prefixes to search for
    cookie: str = ""


def prepare_staff(world: CrmWorld) -> list[Staff]:
    """A personal token and a sample of owned customers for each salesperson."""
    staff = []
    with world.db.write() as s:
        for i in range(SALES):
            username = f"sales{i:02d}"
            user = s.query(User).filter_by(username=username).one()
            token = issue_token(s, user_id=user.id, name="load", actor=SYSTEM)[1]
            # The bulk records went to the salespeople in blocks of 1,000, so at small
            # sizes some own none: give each 200 customers of their own (every 20th).
            rows = s.execute(text(
                "SELECT id, data FROM records WHERE app = :app AND form = 'customer' "
                "AND deleted_at IS NULL AND id % :n = :i ORDER BY id LIMIT 200"),
                {"app": CRM_APP, "n": SALES, "i": i}).all()
            ids = [r[0] for r in rows]
            s.execute(text("UPDATE records SET owner_id = :owner WHERE id IN ("
                           + ",".join(str(x) for x in ids) + ")"), {"owner": user.id})
            names = []
            for _, data in rows[:50]:
                doc = data if isinstance(data, dict) else json.loads(data)
                if isinstance(doc.get("name"), str):
                    names.append(doc["name"][:2])
            staff.append(Staff(username, token, ids, names or ["王"]))
    return staff


def sign_in(base: str, username: str) -> str:
    with httpx.Client(base_url=base, timeout=30) as client:
        form = client.get("/login")
        match = re.search(r'name="csrf_token" value="([^"]+)"', form.text)
        assert match, "no csrf_token on /login"
        r = client.post("/login", data={"username": username, "password": PASSWORD,
                                        "next": "/", "csrf_token": match.group(1)})
        cookie = client.cookies.get(SESSION_COOKIE)
        assert cookie, f"sign-in of {username} failed: {r.status_code}"
        return cookie


def loan_case(customer: int, rng: random.Random) -> dict[str, Any]:
    return {"customer": customer, "loan_type": rng.choice(["mortgage", "credit", "car"]),
            "amount": f"{rng.randrange(50, 500) * 10_000}.00", "term_months": 36,
            "apply_date": date.today().isoformat()}


async def stock_tasks(base: str, staff: list[Staff], per_person: int) -> int:
    """Loan cases per salesperson (all of them at once), each with its flow waiting at
    需求分析: how many."""
    async def stock(v: Visit) -> int:
        for _ in range(per_person):
            body = loan_case(v.rng.choice(v.person.customers), v.rng)
            r = await v.client.post(f"/api/v1/apps/{CRM_APP}/forms/loan_case/records",
                                  json=body, headers=v.auth)
            assert r.status_code == 201, r.text[:300]
            rid = r.json()["id"]
            progress = (await v.client.get(f"/api/v1/apps/{CRM_APP}/forms/loan_case/records/"
                                         f"{rid}/progress", headers=v.auth)).json()
            if not progress.get("flows"):
                r = await v.client.post(f"/api/v1/apps/{CRM_APP}/flows/loan_service/instances",
                                      json={"record_id": rid}, headers=v.auth)
                assert r.status_code == 201, r.text[:300]
        return per_person

    async with httpx.AsyncClient(base_url=base, timeout=120) as client:
        made = await asyncio.gather(*(stock(Visit(
            client, p, random.Random(i), {"Authorization": f"Bearer {p.token}"}, {}))
            for i, p in enumerate(staff)))
    return sum(made)


@dataclass
class Tally:
    times: dict[str, list[float]] = field(default_factory=lambda: {k: [] for k in MIX})
    errors: dict[str, list[str]] = field(default_factory=lambda: {k: [] for k in MIX})
    completed: int = 0  # tasks completed (the ``task`` kind, when the stock held one)
    warmup: list[float] = field(default_factory=list)  # every kind, before the clock
    warmup_errors: list[str] = field(default_factory=list)


async def one_user(client: httpx.AsyncClient, person: Staff, rng: random.Random,
                   clock: float, until: float, think: float, tally: Tally) -> None:
    """Requests until ``until``; those started before ``clock`` count as the warm-up."""
    kinds, weights = list(MIX), list(MIX.values())
    auth = {"Authorization": f"Bearer {person.token}"}
    page = {"Cookie": f"{SESSION_COOKIE}={person.cookie}"}
    await asyncio.sleep(rng.random() * think)
    while time.monotonic() < until:
        kind = rng.choices(kinds, weights)[0]
        warming = time.monotonic() < clock
        started = time.perf_counter()
        try:
            problem = await ACTIONS[kind](Visit(client, person, rng, auth, page))
        except httpx.HTTPError as exc:
            problem = f"{type(exc).__name__}: {exc}"
        if time.monotonic() > until:
            break  # a request cut by the end of the run is not counted
        took = time.perf_counter() - started
        if warming:
            tally.warmup.append(took)
            if problem:
                tally.warmup_errors.append(f"[{kind}] {problem}")
        else:
            tally.times[kind].append(took)
            if problem:
                tally.errors[kind].append(problem)
        await asyncio.sleep(rng.expovariate(1 / think) if think > 0 else 0)


@dataclass
class Visit:
    """What one request of one person needs."""

    client: httpx.AsyncClient
    person: Staff
    rng: random.Random
    auth: dict[str, str]  # the API token
    page: dict[str, str]  # the page session


def _bad(r: httpx.Response, *ok: int) -> str | None:
    return None if r.status_code in (ok or (200,)) else f"{r.request.url.path} " \
        f"{r.status_code} {r.text[:200]}"


async def do_list(v: Visit) -> str | None:
    f = quote(json.dumps({"field": "city", "op": "eq", "value": v.rng.choice(CITIES)},
                         ensure_ascii=False, separators=(",", ":")), safe="")
    return _bad(await v.client.get(f"/apps/{CRM_APP}/forms/customer?filter={f}&sort=-id",
                                 headers=v.page))


async def do_360(v: Visit) -> str | None:
    rid = v.rng.choice(v.person.customers)
    return _bad(await v.client.get(f"/apps/{CRM_APP}/forms/customer/records/{rid}",
                                 headers=v.page))


async def do_follow_up(v: Visit) -> str | None:
    day = date.today()
    body = {"customer": v.rng.choice(v.person.customers), "method": "phone",
            "summary": "电话回访", "follow_date": day.isoformat(),
            "next_date": (day + timedelta(days=7)).isoformat(),
            "content": "客户确认材料, 约定下周面签。"}
    return _bad(await v.client.post(f"/api/v1/apps/{CRM_APP}/forms/follow_up/records",
                                  json=body, headers=v.auth), 201)


async def do_task(v: Visit) -> str | None:
    r = await v.client.get(f"/api/v1/tasks?app={CRM_APP}&flow=loan_service&limit=50",
                         headers=v.auth)
    if r.status_code != 200:
        return _bad(r)
    open_tasks = [t for t in r.json()["items"] if t.get("node") == "analysis"]
    if not open_tasks:
        return None  # the stock ran out: listing the tasks was the work
    task = v.rng.choice(open_tasks)
    r = await v.client.post(f"/api/v1/tasks/{task['id']}/complete",
                          json={"outcome": "submit"}, headers=v.auth)
    if r.status_code == 409:  # the same person's other session took it first
        return None
    if r.status_code == 200:
        TALLY.completed += 1
    return _bad(r)


async def do_dashboard(v: Visit) -> str | None:
    return _bad(await v.client.get(
        f"/api/v1/apps/{CRM_APP}/dashboards/sales_overview/data", headers=v.auth))


async def do_search(v: Visit) -> str | None:
    q = quote(v.rng.choice(v.person.names))
    return _bad(await v.client.get(f"/api/v1/search?q={q}", headers=v.auth))


ACTIONS = {"list": do_list, "customer360": do_360, "follow_up": do_follow_up,
           "task": do_task, "dashboard": do_dashboard, "search": do_search}


TALLY = Tally()  # the run's (one run at a time per process)


async def drive(base: str, staff: list[Staff], users: int, seconds: float,
                think: float, warmup: float = 0.0) -> Tally:
    global TALLY
    tally = TALLY = Tally()
    # an idle connection is dropped before the server's keep-alive timeout (uvicorn: 5 s),
    # as browsers do; reusing one just as the server closes it is a transport error of
    # the client's making (one ReadError in a run), not of the server's
    limits = httpx.Limits(max_connections=users, max_keepalive_connections=users,
                          keepalive_expiry=KEEPALIVE_S)
    async with httpx.AsyncClient(base_url=base, timeout=60, limits=limits) as client:
        clock = time.monotonic() + warmup
        until = clock + seconds
        await asyncio.gather(*(one_user(client, staff[i % len(staff)], random.Random(i),
                                        clock, until, think, tally) for i in range(users)))
    return tally


# ------------------------------------------------------------------------------ the checks


def outbox_state(url: str) -> tuple[int, float]:
    """Unhandled events now, and the oldest one's age in seconds."""
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            count = conn.execute(text(
                "SELECT count(*) FROM outbox WHERE processed_at IS NULL")).scalar_one()
            oldest = conn.execute(text(
                "SELECT min(created_at) FROM outbox WHERE processed_at IS NULL")).scalar()
    finally:
        engine.dispose()
    if oldest is None:
        return count, 0.0
    if isinstance(oldest, str):
        from datetime import datetime
        oldest = datetime.fromisoformat(oldest)
    from datetime import UTC, datetime
    if oldest.tzinfo is None:
        oldest = oldest.replace(tzinfo=UTC)
    return count, (datetime.now(UTC) - oldest).total_seconds()


def duplicate_runs(url: str) -> int:
    """Rules that ran (and acted) twice for one trigger."""
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            return conn.execute(text(
                "SELECT count(*) FROM (SELECT rule_id, trigger_key FROM rule_runs "
                "WHERE status = 'done' GROUP BY rule_id, trigger_key "
                "HAVING count(*) > 1) AS d")).scalar_one()
    finally:
        engine.dispose()


def settle_outbox(db: Any) -> int:
    """Mark the set-up's outbox events handled, as of when they were written.

    The generated records stand for years of an office's history, whose events were
    handled when they happened; left pending, the workers spent the whole run on a
    million ``record.created`` events (916,186 still waiting after 2 minutes), and the
    staff's requests shared the cores with that backlog. How fast the outbox drains is
    measured by ``bench/outbox.py`` and ``bench/rules.py``."""
    with db.write() as s:
        return s.execute(text("UPDATE outbox SET processed_at = created_at "
                              "WHERE processed_at IS NULL")).rowcount


def pct(values: list[float], p: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(p / 100 * (len(ordered) - 1))))]


# ------------------------------------------------------------------------------------ run


def run_target(target: Target, args: argparse.Namespace) -> list[str]:
    users = args.users if target.name == "postgresql" else args.sqlite_users
    print(f"\n== {target.name}: CRM with ~{count_label(args.records)} records, {users} "
          f"staff for {args.duration:.0f} s ==", flush=True)
    world = build_crm(target, args.records)
    staff = prepare_staff(world)
    url = world.db.engine.url.render_as_string(hide_password=False)
    settled = settle_outbox(world.db)
    print(f"  [{target.name}] {settled:,} set-up events marked handled", flush=True)
    world.db.dispose()
    pg = target.name == "postgresql"
    topo = Topology(url, Path(world.tmp.name), args.web_workers if pg else 1,
                    args.workers if pg else 0)
    lines: list[str] = []
    try:
        t0 = time.perf_counter()
        topo.start()
        print(f"  started {topo.web_workers} web process(es) and {topo.workers} worker(s) "
              f"in {time.perf_counter() - t0:.1f} s", flush=True)
        for person in staff:
            person.cookie = sign_in(topo.base, person.username)
        t0 = time.perf_counter()
        made = asyncio.run(stock_tasks(topo.base, staff, args.stock))
        print(f"  {made} loan cases waiting at 需求分析: {time.perf_counter() - t0:.1f} s",
              flush=True)
        time.sleep(2)
        tally = asyncio.run(drive(topo.base, staff, users, args.duration, args.think,
                                  args.warmup))
        count, lag = outbox_state(url)
        t0 = time.perf_counter()
        while count and time.perf_counter() - t0 < args.drain:
            time.sleep(1)
            count, _ = outbox_state(url)
        drained = time.perf_counter() - t0
        dupes = duplicate_runs(url)
        lines = report(target.name, tally, args.duration, users,
                       (lag, drained, count), dupes)
        for more in args.steps:  # the same world, warm, more staff: where p95 breaks
            step = asyncio.run(drive(topo.base, staff, more, args.duration, args.think))
            lines += step_report(target.name, step, args.duration, more)
    finally:
        topo.stop()
        world.tmp.cleanup()
        target.close()
    return lines


def step_report(db: str, tally: Tally, seconds: float, users: int) -> list[str]:
    """One more load step: its table and its worst p95 (informative, not judged)."""
    print(f"\n  step: {users} staff for {seconds:.0f} s (after the run above)")
    worst, total = 0.0, 0
    for kind in MIX:
        t = tally.times[kind]
        total += len(t)
        worst = max(worst, pct(t, 95))
        print(f"  {kind:<12} {len(t):>6} {len(t) / seconds:>7.1f} "
              f"{pct(t, 50) * 1000:>8.1f} {pct(t, 95) * 1000:>8.1f} "
              f"{pct(t, 99) * 1000:>8.1f} {len(tally.errors[kind]):>6}")
    errors = sum(len(e) for e in tally.errors.values())
    print(f"  all          {total:>6} {total / seconds:>7.1f}   worst p95 {worst * 1000:.0f} ms,"
          f" {errors} errors")
    return [f"RESULT metric=load_step_{users}_worst_p95_{db} ours={worst:.4f} "
            f"baseline={BUDGET_S:.3f} ratio={worst / BUDGET_S:.3f} target=-",
            f"RESULT metric=load_step_{users}_requests_per_s_{db} ours={total / seconds:.1f} "
            f"target=-"]


def report(db: str, tally: Tally, seconds: float, users: int,
           outbox: tuple[float, float, int], dupes: int) -> list[str]:
    lag, drained, left = outbox
    print(f"\n  {'kind':<12} {'req':>6} {'req/s':>7} {'p50 ms':>8} {'p95 ms':>8} "
          f"{'p99 ms':>8} {'errors':>6}")
    lines, errors = [], 0
    for kind in MIX:
        t = tally.times[kind]
        errors += len(tally.errors[kind])
        print(f"  {kind:<12} {len(t):>6} {len(t) / seconds:>7.1f} "
              f"{pct(t, 50) * 1000:>8.1f} {pct(t, 95) * 1000:>8.1f} "
              f"{pct(t, 99) * 1000:>8.1f} {len(tally.errors[kind]):>6}")
        p95 = pct(t, 95)
        lines.append(f"RESULT metric=load_{kind}_p95_{db} ours={p95:.4f} "
                     f"baseline={BUDGET_S:.3f} ratio={p95 / BUDGET_S:.3f} target=1.0")
    total = sum(len(t) for t in tally.times.values())
    print(f"  all          {total:>6} {total / seconds:>7.1f}   ({users} staff; "
          f"{tally.completed} tasks completed)")
    if tally.warmup:  # shown, not judged: a fresh process's first requests
        w = tally.warmup
        print(f"  warm-up      {len(w):>6} requests before the clock: p50 "
              f"{pct(w, 50) * 1000:.1f} ms, p95 {pct(w, 95) * 1000:.1f} ms, max "
              f"{max(w) * 1000:.1f} ms, {len(tally.warmup_errors)} errors")
        for problem in tally.warmup_errors[:3]:
            print(f"  warm-up error {problem}")
    errors += len(tally.warmup_errors)
    for kind, problems in tally.errors.items():
        for problem in problems[:3]:
            print(f"  error [{kind}]: {problem}")
    print(f"  outbox when the staff stopped: oldest unhandled event {lag:.1f} s old; "
          f"drained {drained:.1f} s later ({left} left)")
    print(f"  duplicate rule runs (duplicate notifications): {dupes}")
    lines.append(f"RESULT metric=load_errors_{db} ours={errors} baseline=1 ratio={errors} "
                 f"target=0")
    lines.append(f"RESULT metric=load_duplicates_{db} ours={dupes} baseline=1 "
                 f"ratio={dupes} target=0")
    lines.append(f"RESULT metric=load_outbox_lag_{db} ours={lag:.2f} baseline=30.000 "
                 f"ratio={lag / 30:.3f} target=1.0")
    return lines


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--db", choices=["sqlite", "postgresql", "both"], default="both")
    parser.add_argument("--quick", action="store_true",
                        help="20,000 records and 30 s per database (under 3 minutes)")
    parser.add_argument("--records", type=int, default=None)
    parser.add_argument("--users", type=int, default=50, help="PostgreSQL staff")
    parser.add_argument("--sqlite-users", type=int, default=10)
    parser.add_argument("--duration", type=float, default=None, help="seconds of load")
    parser.add_argument("--steps", default="",
                        help="more staff counts run after the main run on the same world, "
                             "e.g. 100,150 (informative: where the p95 passes 300 ms)")
    parser.add_argument("--warmup", type=float, default=10.0,
                        help="seconds of the same load before the clock starts (not judged; "
                             "its errors count)")
    parser.add_argument("--think", type=float, default=1.0,
                        help="mean think time between a person's requests (s)")
    parser.add_argument("--web-workers", type=int, default=4)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--stock", type=int, default=None,
                        help="loan cases per salesperson waiting at 需求分析 (default 30, "
                        "--quick 10)")
    parser.add_argument("--drain", type=float, default=120,
                        help="seconds to wait for the outbox to drain after the run")
    parser.add_argument("--pg-url", default=os.environ.get("QIAO_BENCH_PG_URL",
                                                           DEFAULT_PG_URL))
    args = parser.parse_args(argv)
    args.records = args.records or (20_000 if args.quick else 1_000_000)
    args.duration = args.duration or (30.0 if args.quick else 120.0)
    args.steps = [int(n) for n in args.steps.split(",") if n.strip()]
    args.stock = args.stock or (10 if args.quick else 30)
    lines: list[str] = []
    for target in choose_targets(args.db, args.pg_url, "qiao_bench_load"):
        lines += run_target(target, args)
    print()
    for line in lines:
        print(line)


if __name__ == "__main__":
    main()
