"""Benchmark of what security costs per API request, on SQLite and PostgreSQL.

Both sides go through the same FastAPI app, the same middleware and the same in-process
ASGI client (``fastapi.testclient.TestClient``), so transport costs the same; only what
security adds differs.

``api_list_page_authorised_<db>``: ``GET /api/v1/apps/crm/forms/customer/records?limit=50``
as a ``staff`` user (bearer token; the built-in ``staff`` role reads its own rows, so the
row scope ``owner_id = me`` is part of the query) on a form holding ``--records`` records
of which the staff user owns a fifth, spread through the table (in runs of 50).

* ours: the real route: the guard resolves the token (one write transaction: token, user,
  roles), checks ``form:read``, then ``service.list_page`` with the caller's row scope,
  field permissions and masking (``mobile`` is masked for staff).
* baseline: ``GET /bench/list?limit=50``, a bench-only route declared ``public`` on the
  same app, running the same ``service.list_page`` with an in-memory admin-like ``Caller``
  (no token lookup, no principal load, scope ``all``, nothing masked).

``api_create_audited_<db>``: ``POST /api/v1/apps/crm/forms/customer/records`` as staff.

* ours: the real route: token + principal, ``form:create``, the payload's field checks,
  ``records.create``, the audit-log append (hash chain) in the same transaction, the
  shaped response.
* baseline: ``POST /bench/create``, a bench-only public route: ``records.create`` inside
  ``ctx.db.write()`` (no auth, no field checks, no audit), answering the presented record
  (``reading.present``) as a 201 JSON response.

Set-up (not timed): a fresh migrated database, the app, users ``boss`` (admin), ``alice``
(staff, measured), ``bob`` (staff), app ``crm`` with ``customer`` and ``loan_case``
published through the API (as ``tests/engine_forms/forms_setup.py`` does), then the
records through ``records.create_many`` in runs of 50 whose owners rotate alice, boss,
bob, boss, bob. After a check of what each side answers and a warm-up, the two sides
alternate every ``--block`` requests (ABBA) within every round, so a change of load on the
machine hits both alike. Every request is timed on its own; reported: the median over the
rounds (``--rounds`` for lists, ``--create-rounds`` for creates) of the round's mean time
per request.

Usage::

    python bench/security.py [--db sqlite|postgresql|both] [--quick] [--records N] [--lists N]
                             [--creates N] [--rounds R] [--create-rounds R] [--block N]
                             [--pg-url URL] [--profile]

Prints one ``RESULT metric=… ours=… baseline=… ratio=… target=1.5`` line per metric and
database (seconds per request; ratio = ours / baseline) and a table. No assertions on time.
"""

from __future__ import annotations

import argparse
import gc
import os
import statistics
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any

from fastapi import Body, FastAPI, Request
from fastapi.responses import JSONResponse
from fastapi.testclient import TestClient
from sqlalchemy import func, select
from targets import DEFAULT_PG_URL, Medians, Target, choose_targets, count_label, profile_call

from engine_forms import forms, records, service
from engine_forms.reading import present
from engine_forms.service import Caller
from platform_core.app import ContextDep, create_app
from platform_core.db import Database
from platform_core.models import Record
from platform_core.security.auth import issue_token, resolve_token
from platform_core.security.directory import ensure_builtin_roles
from platform_core.security.guard import rule
from platform_core.security.models import AuditEntry, Role, User, UserRole
from platform_core.security.passwords import hash_password
from platform_core.security.permissions import ALL_ACTIONS
from platform_core.security.principal import Principal
from platform_core.settings import load_settings
from platform_core.store import Actor

SCRATCH_DB = "qiao_bench_security"
TARGET = 1.5
APP, FORM = "crm", "customer"
LIST_URL = f"/api/v1/apps/{APP}/forms/{FORM}/records?limit=50"
CREATE_URL = f"/api/v1/apps/{APP}/forms/{FORM}/records"
RUN = 50  # records per create_many call of the set-up (one owner per run)
SYSTEM = Actor(user_id=None, name="bench")

# --------------------------------------------------------------------------- forms
# As tests/engine_forms/forms_setup.py (CUSTOMER, and loan_case for its rollups),
# loan_case trimmed to what the rollups read.

CUSTOMER_SPEC: dict[str, Any] = {
    "key": "customer", "name": "客户", "title_field": "name",
    "fields": [
        {"key": "name", "label": "姓名", "type": "text", "required": True},
        {"key": "mobile", "label": "手机", "type": "phone", "unique": True,
         "sensitive": {"mask": True}},
        {"key": "city", "label": "城市", "type": "text", "indexed": True},
        {"key": "loans", "label": "贷款笔数", "type": "rollup", "source": "loan_case",
         "via": "customer", "aggregate": "count"},
        {"key": "total", "label": "贷款总额", "type": "rollup", "source": "loan_case",
         "via": "customer", "aggregate": "sum", "field": "amount"},
        {"key": "docs", "label": "资料", "type": "attachment", "max_size_mb": 0.01,
         "accept": [".pdf", "image/*"]},
    ]}

LOAN_CASE_SPEC: dict[str, Any] = {
    "key": "loan_case", "name": "贷款业务", "title_field": "case_no",
    "fields": [
        {"key": "case_no", "label": "业务编号", "type": "auto_number",
         "pattern": "LN-{YYYYMMDD}-{0000}"},
        {"key": "customer", "label": "客户", "type": "relation", "target": "customer",
         "required": True},
        {"key": "amount", "label": "贷款金额", "type": "money", "indexed": True},
    ]}

CITIES = ["北京", "上海", "广州", "深圳", "成都", "杭州", "武汉", "西安", "南京", "重庆"]


def customer(n: int) -> dict[str, Any]:
    """Customer number ``n`` (its mobile is unique, as the form requires)."""
    return {"name": f"客户{n:06d}", "mobile": f"139{n:08d}", "city": CITIES[n % len(CITIES)]}


def ok(response: Any, status: int = 200) -> Any:
    assert response.status_code == status, f"{response.status_code}: {response.text}"
    return response.json() if response.content else None


# --------------------------------------------------------------------------- users
# As tests/security_setup.py: users with built-in roles, personal tokens.


def add_user(db: Database, username: str, roles: tuple[str, ...], password_hash: str) -> int:
    with db.write() as s:
        ensure_builtin_roles(s)
        user = User(username=username, display_name=username, password_hash=password_hash)
        s.add(user)
        s.flush()
        for key in roles:
            role = s.execute(select(Role).where(Role.key == key)).scalar_one()
            s.add(UserRole(user_id=user.id, role_id=role.id))
        return user.id


def token_for(db: Database, user_id: int) -> str:
    with db.write() as s:
        return issue_token(s, user_id=user_id, name="bench", actor=SYSTEM)[1]


def admin_like(user_id: int) -> Principal:
    """An in-memory principal with every right (what the baseline routes act as)."""
    return Principal(user_id=user_id, username="bench", display_name="bench",
                     department_id=None, roles=("admin",),
                     role_perms=({"admin": True, "forms": {"*": {"actions": ALL_ACTIONS,
                                                                  "scope": "all"}}},),
                     via="token")


# --------------------------------------------------------------------------- the app


def add_bench_routes(app: FastAPI, caller: Caller, actor: Actor) -> None:
    """The baselines: the same work as the API routes, declared ``public`` (the guard
    returns at once), with a caller built once in memory."""

    @app.get("/bench/list", openapi_extra=rule("public"))
    def bench_list(ctx: ContextDep, request: Request, limit: int = 50) -> dict[str, Any]:
        with ctx.db.read() as s:
            pub = forms.published(s, APP, FORM)
            items, next_cursor = service.list_page(
                s, caller, pub, filter=None, sort=None, cursor=None, limit=limit,
                fields=None, deleted="exclude")
        nxt = (str(request.url.include_query_params(cursor=next_cursor))
               if next_cursor else None)
        return {"items": items, "next_cursor": next_cursor, "next": nxt}

    @app.post("/bench/create", status_code=201, openapi_extra=rule("public"))
    def bench_create(ctx: ContextDep, body: Annotated[dict[str, Any], Body()]
                     ) -> JSONResponse:
        with ctx.db.write() as s:
            pub = forms.published(s, APP, FORM)
            rec = records.create(s, pub, body, actor=actor)
            doc = present(s, pub, [rec])[0]
        return JSONResponse(doc, status_code=201)


@dataclass
class Setup:
    db: Database
    app: FastAPI
    staff_id: int
    staff_token: str
    caller: Caller  # the baseline routes' in-memory admin-like caller
    next_customer: int  # the next unused customer number (mobiles are unique)
    tmp: tempfile.TemporaryDirectory[str]

    def take(self, n: int) -> int:
        """Reserve ``n`` new customer numbers; the first."""
        first, self.next_customer = self.next_customer, self.next_customer + n
        return first

    def close(self) -> None:
        self.db.dispose()
        self.tmp.cleanup()


def build(target: Target, n_records: int) -> Setup:
    """Fresh database, app, users, forms and ``n_records`` customers (not timed)."""
    db = target.fresh()
    tmp = tempfile.TemporaryDirectory(prefix="qiao_bench_security_")
    # no per-token rate limit (the bench sends thousands a minute); no background loop
    settings = load_settings(data_dir=Path(tmp.name), api_rate_per_minute=10**9,
                             background_jobs=False)
    app = create_app(settings, db=db)  # registers field types
    pw = hash_password("Bench-Passw0rd!")
    boss = add_user(db, "boss", ("admin",), pw)
    alice = add_user(db, "alice", ("staff",), pw)
    bob = add_user(db, "bob", ("staff",), pw)
    with TestClient(app) as admin:
        admin.headers["Authorization"] = f"Bearer {token_for(db, boss)}"
        ok(admin.post("/api/v1/apps", json={"key": APP, "name": "贷款中介 CRM"}), 201)
        ok(admin.post(f"/api/v1/apps/{APP}/forms", json=CUSTOMER_SPEC), 201)
        ok(admin.post(f"/api/v1/apps/{APP}/forms/customer/publish"))
        ok(admin.post(f"/api/v1/apps/{APP}/forms", json=LOAN_CASE_SPEC), 201)
        ok(admin.post(f"/api/v1/apps/{APP}/forms/loan_case/publish"))
        ok(admin.post(f"/api/v1/apps/{APP}/forms/customer/publish"))
    owners = [Actor(alice, None, "alice"), Actor(boss, None, "boss"), Actor(bob, None, "bob"),
              Actor(boss, None, "boss"), Actor(bob, None, "bob")]
    per_tx = RUN * 20
    for start in range(0, n_records, per_tx):
        with db.write() as s:
            pub = forms.published(s, APP, FORM)
            for run_start in range(start, min(start + per_tx, n_records), RUN):
                payloads = [customer(n) for n in range(run_start,
                                                       min(run_start + RUN, n_records))]
                records.create_many(s, pub, payloads, actor=owners[(run_start // RUN) % 5])
    principal = admin_like(boss)
    caller = Caller(principal, principal.access(APP, FORM), keyring=None)
    add_bench_routes(app, caller, Actor(alice, None, "alice"))
    return Setup(db, app, alice, token_for(db, alice), caller, n_records, tmp)


def count(db: Database, stmt: Any) -> int:
    with db.read() as s:
        return s.execute(stmt).scalar_one()


# --------------------------------------------------------------------------- the sides


@dataclass
class Side:
    """One side of a metric: how to send its request number ``i``."""

    name: str
    send: Callable[[int], Any]  # i -> response
    status: int
    times: list[float] = field(default_factory=list)  # every timed request, seconds

    def run(self, start: int, k: int) -> float:
        """Send requests ``start .. start+k-1``; their total time (each timed alone)."""
        total = 0.0
        for i in range(start, start + k):
            t0 = time.perf_counter()
            r = self.send(i)
            elapsed = time.perf_counter() - t0
            if r.status_code != self.status:
                raise AssertionError(f"{self.name}: {r.status_code} {r.text}")
            self.times.append(elapsed)
            total += elapsed
        return total


def list_sides(client: TestClient, auth: dict[str, str]) -> tuple[Side, Side]:
    return (Side("ours", lambda _i: client.get(LIST_URL, headers=auth), 200),
            Side("baseline", lambda _i: client.get("/bench/list?limit=50"), 200))


def create_sides(client: TestClient, auth: dict[str, str], first: int) -> tuple[Side, Side]:
    """Request i creates customer ``first + 2i`` (ours) or ``first + 2i + 1`` (baseline),
    so every mobile is new."""
    return (Side("ours", lambda i: client.post(CREATE_URL, json=customer(first + 2 * i),
                                               headers=auth), 201),
            Side("baseline", lambda i: client.post("/bench/create",
                                                   json=customer(first + 2 * i + 1)), 201))


def check_lists(client: TestClient, setup: Setup, auth: dict[str, str]) -> str:
    """Both sides answer a page of 50: ours the staff user's newest rows with the mobile
    masked, the baseline the newest rows of any owner in clear; same fields."""
    ours = ok(client.get(LIST_URL, headers=auth))
    base = ok(client.get("/bench/list?limit=50"))
    with setup.db.read() as s:
        newest = select(Record.id).where(Record.app == APP, Record.form == FORM).order_by(
            Record.id.desc()).limit(50)
        want_base = list(s.execute(newest).scalars())
        want_ours = list(s.execute(newest.where(Record.owner_id == setup.staff_id)).scalars())
    assert [d["id"] for d in base["items"]] == want_base, "baseline: not the newest 50"
    assert [d["id"] for d in ours["items"]] == want_ours, "ours: not the staff's newest 50"
    assert ours["next_cursor"] and base["next_cursor"], "both pages have a next page"
    n = int(ours["items"][0]["data"]["name"][2:])
    assert ours["items"][0]["data"]["mobile"] != customer(n)["mobile"], "mobile not masked"
    m = int(base["items"][0]["data"]["name"][2:])
    assert base["items"][0]["data"]["mobile"] == customer(m)["mobile"], "baseline masked"
    assert set(ours["items"][0]["data"]) == set(base["items"][0]["data"]), "fields differ"
    return (f"ours: the staff user's newest 50 rows, mobile masked "
            f"({ours['items'][0]['data']['mobile']}); baseline: the newest 50 rows of "
            "any owner, mobile in clear")


def check_creates(client: TestClient, setup: Setup, auth: dict[str, str]) -> str:
    """Ours appends one audit entry per create, the baseline none; both store a record
    owned by the staff user."""
    def audits() -> int:
        return count(setup.db, select(func.count()).select_from(AuditEntry)
                     .where(AuditEntry.action == "record.create"))

    def customers() -> int:
        return count(setup.db, select(func.count()).select_from(Record)
                     .where(Record.form == FORM))

    a0, c0 = audits(), customers()
    ours, base = create_sides(client, auth, setup.take(2))
    doc = ok(ours.send(0), 201)
    assert doc["owner_id"] == setup.staff_id, "owner"
    assert audits() == a0 + 1 and customers() == c0 + 1, "ours: one record, one audit entry"
    doc = ok(base.send(0), 201)
    assert doc["owner_id"] == setup.staff_id, "baseline owner"
    assert audits() == a0 + 1 and customers() == c0 + 2, "baseline: one record, no audit"
    return "ours stores the record and one audit entry, the baseline the record only"


# --------------------------------------------------------------------------- running


@dataclass
class Metric(Medians):
    name: str
    db: str
    per_round: int
    ours: list[float] = field(default_factory=list)  # mean seconds per request, per round
    baseline: list[float] = field(default_factory=list)
    single_ours: float = 0.0  # median of every single timed request (information)
    single_base: float = 0.0

    @property
    def metric(self) -> str:
        return f"{self.name}_{self.db}"

    def result_line(self) -> str:
        return self.result(self.metric, TARGET, 6)


def warm_up(ours: Side, base: Side, k: int) -> None:
    ours.run(0, k)
    base.run(0, k)
    ours.times.clear()
    base.times.clear()


def alternate(metric: Metric, ours: Side, base: Side, *, rounds: int, block: int,
              first: int, label: str) -> None:
    """``rounds`` rounds of ``metric.per_round`` requests per side, the sides alternating
    every ``block`` requests (ABBA), so a load change on the machine hits both alike."""
    n = metric.per_round
    i = first
    for r in range(rounds):
        gc.collect()
        totals = {"ours": 0.0, "baseline": 0.0}
        for b, start in enumerate(range(0, n, block)):
            k = min(block, n - start)
            pair = (ours, base) if (b + r) % 2 == 0 else (base, ours)
            for side in pair:
                totals[side.name] += side.run(i, k)
            i += k
        metric.ours.append(totals["ours"] / n)
        metric.baseline.append(totals["baseline"] / n)
        print(f"  [{label}] round {r + 1}/{rounds}: ours {totals['ours'] / n * 1e3:7.3f} ms, "
              f"baseline {totals['baseline'] / n * 1e3:7.3f} ms per request "
              f"(x{n} each, alternating every {block})")
    metric.single_ours = statistics.median(ours.times)
    metric.single_base = statistics.median(base.times)


def token_cost(setup: Setup, n: int) -> float:
    """Median seconds of ``resolve_token`` alone (information: the sign-in part)."""
    times = []
    for _ in range(n):
        t0 = time.perf_counter()
        resolve_token(setup.db, setup.staff_token, client="testclient")
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def run_target(target: Target, args: argparse.Namespace) -> tuple[list[Metric], float]:
    print(f"\n== {target.name}: {args.records} customers; per side {args.rounds} rounds of "
          f"{args.lists} lists, {args.create_rounds} rounds of {args.creates} creates ==")
    t0 = time.perf_counter()
    setup = build(target, args.records)
    owned = count(setup.db, select(func.count()).select_from(Record).where(
        Record.form == FORM, Record.owner_id == setup.staff_id))
    print(f"  [{target.name}] set-up {time.perf_counter() - t0:.1f} s; staff user "
          f"#{setup.staff_id} owns {owned} of {args.records} customers")
    auth = {"Authorization": f"Bearer {setup.staff_token}"}
    lists = Metric("api_list_page_authorised", target.name, args.lists)
    creates = Metric("api_create_audited", target.name, args.creates)
    try:
        with TestClient(setup.app) as client:
            print(f"  [{target.name}] checked: {check_lists(client, setup, auth)}")
            ours, base = list_sides(client, auth)
            warm_up(ours, base, max(10, args.lists // 5))
            alternate(lists, ours, base, rounds=args.rounds, block=args.block, first=0,
                      label=f"{target.name} list")
            print(f"  [{target.name}] checked: {check_creates(client, setup, auth)}")
            n_creates = max(10, args.creates // 10) + args.creates * args.create_rounds
            ours, base = create_sides(client, auth, setup.take(2 * n_creates))
            warm_up(ours, base, max(10, args.creates // 10))
            alternate(creates, ours, base, rounds=args.create_rounds, block=args.block,
                      first=max(10, args.creates // 10), label=f"{target.name} create")
        token = token_cost(setup, 200)
        if args.profile:
            profile_target(setup, target.name, args)
    finally:
        setup.close()
        target.drop()
    return [lists, creates], token


# --------------------------------------------------------------------------- profiling


def profile_target(setup: Setup, name: str, args: argparse.Namespace) -> None:
    """cProfile of what each route does, called directly in this thread (the TestClient
    runs the app in other threads, which cProfile does not see): ours = the guard's token
    resolution and access check + the route body, baseline = the bench route's body."""
    db = setup.db
    staff = resolve_token(db, setup.staff_token, client="testclient")
    access = staff.access(APP, FORM)
    first = setup.take(4 * args.creates)

    def ours_list() -> None:
        p = resolve_token(db, setup.staff_token, client="testclient")
        a = p.access(APP, FORM)
        a.require("read")
        with db.read() as s:
            pub = forms.published(s, APP, FORM)
            service.list_page(s, Caller(p, a, None, "testclient"), pub, filter=None,
                              sort=None, cursor=None, limit=50, fields=None,
                              deleted="exclude")

    def base_list() -> None:
        with db.read() as s:
            pub = forms.published(s, APP, FORM)
            service.list_page(s, setup.caller, pub, filter=None, sort=None, cursor=None,
                              limit=50, fields=None, deleted="exclude")

    def ours_create(i: int) -> None:
        p = resolve_token(db, setup.staff_token, client="testclient")
        a = p.access(APP, FORM)
        a.require("create")
        with db.write() as s:
            pub = forms.published(s, APP, FORM)
            service.create(s, Caller(p, a, None, "testclient"), pub, customer(i))

    def base_create(i: int) -> None:
        with db.write() as s:
            pub = forms.published(s, APP, FORM)
            rec = records.create(s, pub, customer(i), actor=staff.actor)
            present(s, pub, [rec])

    assert access.allows("read")
    k = args.lists
    profile_call(f"{k} x list as staff (token + access + list_page) on {name}",
                 lambda: [ours_list() for _ in range(k)])
    profile_call(f"{k} x list as in-memory admin (list_page) on {name}",
                 lambda: [base_list() for _ in range(k)])
    k = args.creates
    profile_call(f"{k} x create as staff (token + access + service.create) on {name}",
                 lambda: [ours_create(first + i) for i in range(k)])
    profile_call(f"{k} x create without auth (records.create + present) on {name}",
                 lambda: [base_create(first + k + i) for i in range(k)])


# --------------------------------------------------------------------------- report


def print_report(results: list[Metric], tokens: dict[str, float], n_records: int) -> None:
    print()
    for m in results:
        print(m.result_line())
    print()
    head = (f"{'metric':38s} {'ours ms':>8s} {'req/s':>6s} {'base ms':>8s} {'req/s':>6s} "
            f"{'extra ms':>8s} {'ratio':>6s} target  ok   {'1-req p50 ours/base ms':>22s}")
    print(head)
    print("-" * len(head))
    for m in results:
        ok_ = "yes" if m.ratio <= TARGET else "NO "
        single = f"{m.single_ours * 1e3:.3f} / {m.single_base * 1e3:.3f}"
        print(f"{m.metric:38s} {m.ours_med * 1e3:8.3f} {1 / m.ours_med:6.0f} "
              f"{m.base_med * 1e3:8.3f} {1 / m.base_med:6.0f} "
              f"{(m.ours_med - m.base_med) * 1e3:8.3f} {m.ratio:6.2f} {TARGET:6.1f}  {ok_}  "
              f"{single:>22s}")
    for db, seconds in tokens.items():
        label = f"  └ resolve_token alone, {db} (info)"
        print(f"{label:38s} {seconds * 1e3:8.3f}")
    print(f"(ms per request: median over the rounds of the round's mean; list over "
          f"{count_label(n_records)} customers; extra = ours - baseline; 1-req p50 = median "
          "of all single timed requests, for information)")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--db", choices=("sqlite", "postgresql", "both"), default="both")
    parser.add_argument("--records", type=int, default=10_000, metavar="N",
                        help="customers in the form (default 10,000; staff owns a fifth)")
    parser.add_argument("--lists", type=int, default=100, metavar="N",
                        help="list requests per side per round (default 100)")
    parser.add_argument("--creates", type=int, default=300, metavar="N",
                        help="create requests per side per round (default 300)")
    parser.add_argument("--rounds", type=int, default=5,
                        help="timed rounds of the list metric (median reported; default 5)")
    parser.add_argument("--create-rounds", type=int, default=3, metavar="R",
                        help="timed rounds of the create metric (median reported; "
                             "default 3)")
    parser.add_argument("--block", type=int, default=10, metavar="N",
                        help="requests of one side before switching to the other "
                             "(default 10)")
    parser.add_argument("--pg-url", default=os.environ.get("QIAO_BENCH_PG_URL", DEFAULT_PG_URL),
                        help="PostgreSQL server URL (env QIAO_BENCH_PG_URL); the benchmark "
                             f"creates and drops its own database {SCRATCH_DB!r} there")
    parser.add_argument("--profile", action="store_true",
                        help="also cProfile each side's work (called directly) per database")
    parser.add_argument("--quick", action="store_true",
                        help="run_all's size: 3,000 customers, 3 rounds of each metric")
    args = parser.parse_args(argv)
    if args.quick:
        args.records, args.rounds, args.create_rounds = 3_000, 3, 3
    counts = (args.lists, args.creates, args.rounds, args.create_rounds, args.block)
    if args.records < RUN * 5 or min(counts) < 1:
        parser.error(f"--records must be at least {RUN * 5}; --lists, --creates, --rounds, "
                     "--create-rounds and --block at least 1")

    targets = choose_targets(args.db, args.pg_url, SCRATCH_DB)
    results: list[Metric] = []
    tokens: dict[str, float] = {}
    started = time.perf_counter()
    try:
        for target in targets:
            metrics, tokens[target.name] = run_target(target, args)
            results += metrics
    finally:
        for target in targets:
            target.close()
    print_report(results, tokens, args.records)
    print(f"(total {time.perf_counter() - started:.0f} s)")


if __name__ == "__main__":
    main()
