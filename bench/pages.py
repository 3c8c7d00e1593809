"""Benchmark of the staff workspace's HTML pages against the same data through the JSON
API, on SQLite and PostgreSQL: server time per request, in process, in the same run.

``pages_list_<N>_<db>``: the list page of a 30-field form holding N records (default
1,000,000; ``--quick``: 100,000), filtered on an ``indexed`` field and sorted newest
first, its first 50 rows.

* ours: ``GET /apps/bench/forms/loan?filter=<JSON AST>&sort=-id`` signed in as an
  administrator through the page session (the cookie ``POST /login`` sets): the HTML page
  rendering the first 50 rows of ``{"field": "city", "op": "eq", "value": <city>}``.
* baseline: ``GET /api/v1/apps/bench/forms/loan/records?filter=…&sort=-id&limit=50`` as
  the same administrator with a personal bearer token: the same 50 records as JSON.

``pages_record_<N>_<db>``: one record of that form (two relation fields, a lookup through
one of them, a subtable of 5 rows, 30 fields in all).

* ours: ``GET /apps/bench/forms/loan/records/{id}`` (HTML, page session).
* baseline: ``GET /api/v1/apps/bench/forms/loan/records/{id}`` (JSON, bearer token).

``pages_list_p50_sqlite``: the list page's median server time on SQLite against an
absolute budget of 0.050 s (``baseline=0.050``, ``target=1.0``).

``pages_customer360_<N>_<db>``: the 360° view of a customer on the CRM template
(``bank_intermediary_crm``) holding N records (customers, loan cases, follow-ups), the
customer having 20 loan cases, 200 follow-ups and about 2,000 timeline entries. Timed as
the salesperson who owns them (role ``sales``: row scope ``own``, masked mobile and ID
number, hidden income — the realistic and slower path, not the administrator's).

* ours: the whole view — ``GET /apps/crm/forms/customer/records/{id}`` (HTML, page
  session) plus every fragment that page asks for by htmx once shown (``hx-trigger="load"``
  under the record's path, read from the page itself: the flow's stands, the progress
  links, the timeline, …), one after the other; the sum of their server times. Each
  request's own times are in the table too.
* baseline: the API calls that fetch the same data, with a bearer token of the same
  salesperson — ``GET /api/v1/apps/crm/forms/customer/records/{id}``, the customer's
  loan cases and follow-ups (``records?filter={"field":"customer","op":"eq","value":ID}
  &sort=-created_at&limit=5`` each) and ``…/customer/records/{id}/timeline`` (first page);
  the sum of their server times.

``pages_customer360_p50_<db>``: the view's median against the issue's absolute budget of
0.150 s (``baseline=0.150``, ``target=1.0``).

Set-up of the CRM (not timed): a fresh migrated database, ``create_app``, the CRM
template installed through ``templates_catalog.install``, 20 salespeople; ~N records
(40 % customers, 30 % loan cases, 30 % follow-ups) owned by the salespeople in turn,
written through ``platform_core.store.create_records`` (1,000 per call) from pools of
1,000 documents per form the validator made — each customer with its own name, unique
mobile and ID number sealed with the installation's keyring, each case and follow-up
pointing at a customer — plus their relation links as ``records.create_many`` writes
them. Then 5 target customers of salesperson ``sales00`` (cycled through when timing),
each created through ``records.create_many`` with 20 loan cases and 200 follow-ups (their
creation spread over two years), 1,200 history rows on the customer and 40 on each case
(inserted in bulk: status, grade, masked mobile, tags, stage, amount …), the loan service
flow started on 6 of the cases and its first steps completed on 4 of them through
``engine_flows``. Checked (untimed) before timing: the API answers hold the customer,
5 + 5 related rows and timeline entries; the page shows the customer's name, both related
lists with 5 rows and their totals (20 and 200), and the timeline fragment entries.

Server time is measured by a pure ASGI wrapper around the app: from the moment the app is
called until it returns, i.e. every middleware, the sign-in (session or token), the route,
the template and the response body — not the in-process client around it (its wall time
is shown too, for information). Both sides go through the same app and the same
``fastapi.testclient.TestClient``.

Set-up (not timed): a fresh migrated database, the app from ``create_app`` (with its page
plugin), an administrator ``boss`` (page session from ``POST /login`` with the login
form's CSRF token; a personal token from ``issue_token``), app ``bench`` with forms
``customer`` (3,000 records), ``product`` (2,000) and ``loan`` (N) published through
``engine_forms``. Customers and products go in through ``records.create_many``; the
loans through ``platform_core.store.create_records`` (1,000 per call, 50 calls per
transaction) of documents the validator made (a pool of 1,000 validated payloads, each
record a copy with its own number, city, customer and product), plus their relation links
as ``records.create_many`` writes them. Then ANALYZE (PostgreSQL: VACUUM ANALYZE).

The list page is first sent the filter as the API's JSON AST (``filter=``); when it does
not show the API's 50 rows that way, its own filter-builder parameters
(``c0.f=city&c0.o=eq&c0.v=<city>``) are used instead, and the output says which.

Checked (untimed) before timing: the API lists 50 rows of the city, newest first; the list
page links to those 50 records; the record page shows the record's number, its
customer's and product's names and its subtable rows; the SQL statements one request of
each side runs, and whether it left a pool connection checked out after answering (a
warning: a session used after its block closed keeps one until the garbage collector
runs). Then, after a warm-up, ``--requests`` requests per side, the sides alternating
request by request (ABBA), 10 cities and 50 records in turn (the same on both sides).
Reported: the median (p50) per side and the ratio; p90 in the table. For information the
list page's ``/count`` (which the page asks for once shown) is timed too.

If a page route does not exist yet (the pages are new), its side is skipped with a clear
line and no RESULT line is printed for it; the API side is still measured.

Usage::

    python bench/pages.py [--db sqlite|postgresql|both] [--records N] [--quick]
                          [--requests N] [--warmup N] [--pg-url URL] [--profile]
                          [--only list,record,customer360]

Prints ``RESULT metric=… ours=… baseline=… ratio=… target=1.5`` per page and database
(seconds per request — per view for the customer 360; ratio = ours / baseline), the
absolute lines (``target=1.0``) and a table. ``--only`` runs some metrics alone (the
list and record metrics share one database, the customer 360 has its own). No assertions
on time. ``--profile`` adds cProfile listings of the page and API requests, run inline in
the main thread.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import gc
import io
import json
import os
import pstats
import random
import re
import statistics
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote

import anyio.to_thread
import httpx
from fastapi import FastAPI
from fastapi.testclient import TestClient
from search import ServerTimer, id_no_of, mobile_of
from sqlalchemy import bindparam, event, func, insert, select, text, update
from targets import DEFAULT_PG_URL, Target, choose_targets, count_label

from engine_forms import forms, publishing, records
from engine_forms.fieldtypes.identity import id_check_char
from engine_forms.records import _bulk_links  # what create_many does after its insert
from engine_forms.validation import validate_record
from platform_core.app import create_app
from platform_core.db import Database
from platform_core.expressions.values import Env
from platform_core.models import Record, RecordLink
from platform_core.security.auth import SESSION_COOKIE, issue_token
from platform_core.security.directory import ensure_builtin_roles
from platform_core.security.users import create_user
from platform_core.settings import load_settings
from platform_core.store import Actor, create_records

SCRATCH_DB = "qiao_bench_pages"
TARGET = 1.5
LIST_BUDGET_S = 0.050  # the list page's p50 on SQLite
APP, CUSTOMER, PRODUCT, LOAN = "bench", "customer", "product", "loan"
CUSTOMERS, PRODUCTS = 3000, 2000
POOL = 1000  # validated payloads the loan documents are copied from
BATCH, TX_BATCHES = 1000, 50  # records per create_records call, calls per transaction
SUBTABLE_ROWS = 5
RECORD_SAMPLE = 50  # records the record metric cycles through
PASSWORD = "Bench-Passw0rd!"
SYSTEM = Actor(user_id=None, name="bench")
LIST_ROUTE = "/apps/{app}/forms/{form}"
RECORD_ROUTE = "/apps/{app}/forms/{form}/records/{record_id}"
SORT = "-id"
METRICS = ("list", "record", "customer360")

CITIES = ["北京", "上海", "广州", "深圳", "成都", "杭州", "武汉", "西安", "南京", "重庆"]

# --------------------------------------------------------------------------- forms


def _options(*pairs: str) -> list[dict[str, str]]:
    return [{"value": p.split(":")[0], "label": p.split(":")[1]} for p in pairs]


CUSTOMER_SPEC: dict[str, Any] = {
    "key": CUSTOMER, "name": "客户", "title_field": "name",
    "fields": [
        {"key": "name", "label": "姓名", "type": "text", "required": True},
        {"key": "mobile", "label": "手机", "type": "phone", "accept": "mobile"},
        {"key": "city", "label": "城市", "type": "text"},
        {"key": "level", "label": "等级", "type": "select",
         "options": _options("a:A 类", "b:B 类", "c:C 类")},
    ]}

PRODUCT_SPEC: dict[str, Any] = {
    "key": PRODUCT, "name": "产品", "title_field": "name",
    "fields": [
        {"key": "name", "label": "产品名称", "type": "text", "required": True},
        {"key": "code", "label": "产品代码", "type": "text"},
        {"key": "category", "label": "类别", "type": "select",
         "options": _options("consumer:消费贷", "mortgage:房贷", "car:车贷",
                             "business:经营贷")},
        {"key": "base_rate", "label": "基准利率", "type": "percent", "decimals": 2},
    ]}

STATUSES = _options("new:新建", "review:审核中", "approved:已批准", "signed:已签约",
                    "rejected:已拒绝")
CHANNELS = _options("web:官网", "app:APP", "referral:转介绍", "branch:网点")
REGIONS = _options("north:华北", "east:华东", "south:华南", "west:西部", "central:华中")
TAGS = _options("vip:VIP", "urgent:加急", "repeat:复贷", "risk:风险关注")

# 30 fields: two relations, a lookup through one of them, a subtable of 5 columns.
LOAN_SPEC: dict[str, Any] = {
    "key": LOAN, "name": "贷款申请", "title_field": "loan_no",
    "fields": [
        {"key": "loan_no", "label": "申请编号", "type": "text", "required": True},
        {"key": "customer", "label": "客户", "type": "relation", "target": CUSTOMER,
         "required": True},
        {"key": "product", "label": "产品", "type": "relation", "target": PRODUCT,
         "required": True},
        {"key": "customer_level", "label": "客户等级", "type": "lookup",
         "relation": "customer", "field": "level"},
        {"key": "city", "label": "城市", "type": "text", "indexed": True},
        {"key": "status", "label": "状态", "type": "select", "options": STATUSES},
        {"key": "amount", "label": "贷款金额", "type": "money", "required": True},
        {"key": "rate", "label": "年利率", "type": "percent", "decimals": 2},
        {"key": "term_months", "label": "期限(月)", "type": "number", "decimals": 0},
        {"key": "monthly_interest", "label": "月利息", "type": "formula",
         "expression": "ROUND(amount * rate / 1200, 2)"},
        {"key": "apply_date", "label": "申请日期", "type": "date", "required": True},
        {"key": "signed_at", "label": "签约时间", "type": "datetime"},
        {"key": "urgent", "label": "加急", "type": "boolean"},
        {"key": "channels", "label": "来源渠道", "type": "multiselect", "options": CHANNELS},
        {"key": "contact_name", "label": "联系人", "type": "text"},
        {"key": "contact_phone", "label": "联系电话", "type": "phone", "accept": "mobile"},
        {"key": "contact_email", "label": "邮箱", "type": "email"},
        {"key": "id_no", "label": "身份证号", "type": "id_card"},
        {"key": "home_address", "label": "家庭住址", "type": "address"},
        {"key": "employer", "label": "工作单位", "type": "text"},
        {"key": "annual_income", "label": "年收入", "type": "money"},
        {"key": "score", "label": "评分", "type": "number", "decimals": 1},
        {"key": "region", "label": "区域", "type": "select", "options": REGIONS},
        {"key": "due_date", "label": "到期日", "type": "date"},
        {"key": "approved", "label": "已审批", "type": "boolean"},
        {"key": "manager", "label": "客户经理", "type": "user"},
        {"key": "tags", "label": "标签", "type": "multiselect", "options": TAGS},
        {"key": "remarks", "label": "备注", "type": "textarea"},
        {"key": "risk_notes", "label": "风控意见", "type": "textarea"},
        {"key": "items", "label": "还款计划", "type": "subtable", "fields": [
            {"key": "period", "label": "期次", "type": "number", "decimals": 0},
            {"key": "due", "label": "应还日期", "type": "date"},
            {"key": "principal", "label": "本金", "type": "money"},
            {"key": "interest", "label": "利息", "type": "money"},
            {"key": "note", "label": "说明", "type": "text"},
        ]},
    ]}
assert len(LOAN_SPEC["fields"]) == 30

# --------------------------------------------------------------------------- data

SURNAMES = "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗"
GIVEN = "伟芳娜敏静丽强磊军洋勇艳杰娟涛明超秀霞平刚桂英华"
AREAS = ["110101", "310104", "440305", "510107", "330106", "420106", "610113", "320102"]
PROVINCES = [("北京市", "北京市", "朝阳区"), ("上海市", "上海市", "浦东新区"),
             ("广东省", "深圳市", "南山区"), ("四川省", "成都市", "武侯区"),
             ("浙江省", "杭州市", "西湖区")]
DAY0 = date(2023, 1, 1)


def person(rng: random.Random) -> str:
    return rng.choice(SURNAMES) + "".join(rng.choices(GIVEN, k=2))


def mobile(rng: random.Random) -> str:
    return f"1{rng.choice('3589')}{rng.randrange(10**9):09d}"


def id_card(rng: random.Random) -> str:
    born = date(1960, 1, 1) + timedelta(days=rng.randrange(365 * 40))
    first17 = f"{rng.choice(AREAS)}{born:%Y%m%d}{rng.randrange(1000):03d}"
    return first17 + id_check_char(first17)


def customer_payloads(n: int) -> list[dict[str, Any]]:
    rng = random.Random(7)
    return [{"name": f"客户{i:05d}{person(rng)}", "mobile": mobile(rng),
             "city": rng.choice(CITIES), "level": rng.choice("abc")} for i in range(n)]


def product_payloads(n: int) -> list[dict[str, Any]]:
    rng = random.Random(8)
    return [{"name": f"产品{i:05d}", "code": f"P{i:05d}",
             "category": rng.choice(["consumer", "mortgage", "car", "business"]),
             "base_rate": rng.choice([3.45, 3.95, 4.35, 4.9])} for i in range(n)]


def loan_payload(rng: random.Random, i: int, manager_id: int) -> dict[str, Any]:
    """One application as a person would fill it in (relations and city set later)."""
    cents = rng.randrange(1_000_00, 5_000_000_00)
    applied = DAY0 + timedelta(days=rng.randrange(700))
    term = rng.choice([12, 24, 36, 60])
    province, city, district = rng.choice(PROVINCES)
    principal = cents // term
    p: dict[str, Any] = {
        "loan_no": "LN00000000", "customer": 1, "product": 1, "city": CITIES[0],
        "status": rng.choice(STATUSES)["value"],
        "amount": f"{cents // 100}.{cents % 100:02d}",
        "rate": rng.choice([3.45, 3.95, 4.35, 4.9, 5.5, 7.2]),
        "term_months": term,
        "apply_date": applied.isoformat(),
        "signed_at": f"{applied.isoformat()}T{rng.randrange(8, 20):02d}:"
                     f"{rng.randrange(60):02d}:00+08:00",
        "urgent": rng.random() < 0.2,
        "channels": sorted({rng.choice(CHANNELS)["value"] for _ in range(2)}),
        "contact_name": person(rng),
        "contact_phone": mobile(rng),
        "contact_email": f"user{i}@example.com",
        "id_no": id_card(rng),
        "home_address": {"province": province, "city": city, "district": district,
                         "detail": f"幸福路 {rng.randrange(1, 999)} 号"},
        "employer": f"某某科技有限公司 {rng.randrange(500)} 分部",
        "annual_income": f"{rng.randrange(60_000, 2_000_000)}.00",
        "score": round(rng.uniform(300, 900), 1),
        "region": rng.choice(REGIONS)["value"],
        "due_date": (applied + timedelta(days=30 * term)).isoformat(),
        "approved": rng.random() < 0.5,
        "manager": manager_id,
        "tags": sorted({rng.choice(TAGS)["value"] for _ in range(rng.randrange(1, 3))}),
        "remarks": "客户资料齐全, 已电话核实。\n收入证明为近 6 个月流水。",
        "risk_notes": "负债率正常, 征信无逾期。",
        "items": [{"period": k + 1,
                   "due": (applied + timedelta(days=30 * (k + 1))).isoformat(),
                   "principal": f"{principal // 100}.{principal % 100:02d}",
                   "interest": f"{rng.randrange(100, 99_999)}.{rng.randrange(100):02d}",
                   "note": f"第 {k + 1} 期"} for k in range(SUBTABLE_ROWS)],
    }
    return p


def loan_pool(pub: forms.Published, manager_id: int) -> list[dict[str, Any]]:
    """``POOL`` documents as the validator stores them (formula computed)."""
    rng, env = random.Random(1), Env()
    return [validate_record(pub.compiled, loan_payload(rng, i, manager_id), env=env)
            for i in range(POOL)]


def loan_docs(pool: Sequence[dict[str, Any]], start: int, count: int,
              customer_ids: Sequence[int], product_ids: Sequence[int]) -> list[dict[str, Any]]:
    """Loans ``start .. start+count-1``: pool copies with their own number, city and
    relations (all deterministic)."""
    rng = random.Random(1000 + start)
    return [{**pool[i % POOL], "loan_no": f"LN{i + 1:08d}", "city": rng.choice(CITIES),
             "customer": rng.choice(customer_ids), "product": rng.choice(product_ids)}
            for i in range(start, start + count)]


# --------------------------------------------------------------------------- set-up


@dataclass
class World:
    db: Database
    app: FastAPI
    tmp: tempfile.TemporaryDirectory[str]
    admin_id: int
    token: str
    customer_ids: list[int]
    product_ids: list[int]
    loan_ids: list[int]  # a deterministic sample spread through the table
    seed_s: float = 0.0

    def close(self) -> None:
        self.db.dispose()
        self.tmp.cleanup()


def route_paths(routes: Sequence[Any], prefix: str = "") -> Iterator[tuple[str, set[str]]]:
    """(path, methods) of every route, through included routers (FastAPI keeps those as
    nested entries holding the original router and the include's prefix)."""
    for r in routes:
        inner = getattr(r, "original_router", None)
        if inner is not None:
            context = getattr(r, "include_context", None)
            yield from route_paths(inner.routes, prefix + (getattr(context, "prefix", "")
                                                           or ""))
        elif getattr(r, "path", None) is not None:
            yield prefix + r.path, set(getattr(r, "methods", None) or ())


def has_route(app: FastAPI, path: str) -> bool:
    return any(p == path and "GET" in methods for p, methods in route_paths(app.routes))


def build(target: Target, n: int) -> World:
    """Fresh database, app, admin, forms, customers, products and N loans (not timed)."""
    started = time.perf_counter()
    db = target.fresh()
    tmp = tempfile.TemporaryDirectory(prefix="qiao_bench_pages_")
    settings = load_settings(data_dir=Path(tmp.name), api_rate_per_minute=10**9,
                             login_rate_per_minute=10_000, background_jobs=False)
    app = create_app(settings, db=db)  # registers field types, plugs the pages in
    with db.write() as s:
        ensure_builtin_roles(s)
        user, _ = create_user(s, username="boss", display_name="Boss", password=PASSWORD,
                              actor=SYSTEM, roles=("admin",))
        admin_id = user.id
        token = issue_token(s, user_id=admin_id, name="bench", actor=SYSTEM)[1]
    admin = Actor(user_id=admin_id, department_id=None, name="boss")
    with db.write() as s:
        forms.create_app(s, key=APP, name="页面基准")
        for spec in (CUSTOMER_SPEC, PRODUCT_SPEC, LOAN_SPEC):
            forms.create_form(s, app=APP, raw=spec)
            publishing.publish(s, app=APP, key=spec["key"], actor=admin)
        customer_ids = records.create_many(s, forms.published(s, APP, CUSTOMER),
                                           customer_payloads(CUSTOMERS), actor=admin)
        product_ids = records.create_many(s, forms.published(s, APP, PRODUCT),
                                          product_payloads(PRODUCTS), actor=admin)
        pub = forms.published(s, APP, LOAN)
    pool = loan_pool(pub, admin_id)
    print(f"  [{target.name}] app, admin, forms, {CUSTOMERS} customers, {PRODUCTS} products, "
          f"{POOL} validated loan payloads: {time.perf_counter() - started:.1f} s", flush=True)
    t0 = time.perf_counter()
    done, step, first_id = 0, max(n // 5, 1), None
    while done < n:
        count = min(BATCH * TX_BATCHES, n - done)
        docs = loan_docs(pool, done, count, customer_ids, product_ids)
        with db.write() as s:
            for i in range(0, count, BATCH):
                part = docs[i:i + BATCH]
                ids = create_records(s, app=APP, form=LOAN, items=part, actor=admin,
                                     schema_version=pub.version)
                _bulk_links(s, pub, ids, part)
                first_id = ids[0] if first_id is None else first_id
        before, done = done, done + count
        if done // step != before // step or done == n:
            elapsed = time.perf_counter() - t0
            print(f"  [{target.name}] loans {done:>9,} / {n:,} ({done / elapsed:,.0f} rec/s "
                  f"with links, {elapsed:.0f} s)", flush=True)
    t0 = time.perf_counter()
    analyze(db)
    print(f"  [{target.name}] {'VACUUM ANALYZE' if db.dialect == 'postgresql' else 'ANALYZE'}"
          f" {time.perf_counter() - t0:.1f} s", flush=True)
    rng = random.Random(5)
    sample = sorted(rng.sample(range(first_id, first_id + n), min(RECORD_SAMPLE, n)))
    return World(db, app, tmp, admin_id, token, customer_ids, product_ids, sample,
                 time.perf_counter() - started)


def analyze(db: Database) -> None:
    with db.engine.connect() as conn:
        conn = conn.execution_options(isolation_level="AUTOCOMMIT")
        if db.dialect == "postgresql":
            conn.execute(text("VACUUM (ANALYZE) records, record_links"))
        else:
            conn.execute(text("ANALYZE"))


def session_cookie(client: TestClient, username: str = "boss") -> str:
    """Sign in through the login form (its CSRF cookie and field); the session cookie."""
    form = client.get("/login")
    assert form.status_code == 200, form.status_code
    match = re.search(r'name="csrf_token" value="([^"]+)"', form.text)
    assert match, "no csrf_token field on /login"
    r = client.post("/login", data={"username": username, "password": PASSWORD,
                                    "next": "/", "csrf_token": match.group(1)},
                    follow_redirects=False)
    assert r.status_code in (302, 303), f"sign-in answered {r.status_code}: {r.text[:300]}"
    cookie = client.cookies.get(SESSION_COOKIE)
    assert cookie, "no session cookie after sign-in"
    client.cookies.clear()  # sent explicitly with page requests only
    return cookie


# --------------------------------------------------------------------------- the sides


def city_filter(city: str) -> str:
    return quote(json.dumps({"field": "city", "op": "eq", "value": city},
                            ensure_ascii=False, separators=(",", ":")), safe="")


# How the list page is told the filter: the API's JSON AST (``filter=``), or, when the
# page does not read that, its filter builder's own parameters (``c0.f``/``c0.o``/``c0.v``).
PAGE_STYLES = ("filter", "builder")


def list_urls(i: int, style: str = "filter") -> tuple[str, str]:
    """(page, API) URL of list request ``i`` (cities in turn)."""
    city = CITIES[i % len(CITIES)]
    q = f"filter={city_filter(city)}&sort={SORT}"
    page_q = q if style == "filter" else f"c0.f=city&c0.o=eq&c0.v={quote(city)}&sort={SORT}"
    return (f"/apps/{APP}/forms/{LOAN}?{page_q}",
            f"/api/v1/apps/{APP}/forms/{LOAN}/records?{q}&limit=50")


def record_urls(world: World, i: int) -> tuple[str, str]:
    rid = world.loan_ids[i % len(world.loan_ids)]
    return (f"/apps/{APP}/forms/{LOAN}/records/{rid}",
            f"/api/v1/apps/{APP}/forms/{LOAN}/records/{rid}")


@dataclass
class Metric:
    name: str  # list | record
    db: str
    n: int
    page_note: str = ""  # why the page side did not run, or what its check found
    api_note: str = ""
    ours: list[float] = field(default_factory=list)  # page server seconds per request
    baseline: list[float] = field(default_factory=list)  # API server seconds per request
    ours_wall: list[float] = field(default_factory=list)
    base_wall: list[float] = field(default_factory=list)
    page_kb: float = 0.0
    api_kb: float = 0.0
    count: list[float] = field(default_factory=list)  # list: the page's /count (info)
    page_stmts: int = 0  # SQL statements of one request (checked request)
    api_stmts: int = 0
    page_held: int = 0  # connections still checked out of the pool after it returned
    api_held: int = 0
    # customer360: server seconds per request of the view / API round, and statements
    parts: dict[str, list[float]] = field(default_factory=dict)
    part_stmts: dict[str, int] = field(default_factory=dict)

    @property
    def metric(self) -> str:
        return f"pages_{self.name}_{count_label(self.n)}_{self.db}"

    def sql_note(self) -> str:
        page = (f"page {self.page_stmts}" if self.page_note.startswith("page:") else "page -")
        note = f"SQL statements per request: {page}, API {self.api_stmts}"
        for side, held in (("page", self.page_held), ("API", self.api_held)):
            if held:
                note += (f"  ** WARNING: the {side} request left {held} pool connection(s) "
                         "checked out after it answered (a session used after its block "
                         "closed?); they come back only when the garbage collector runs **")
        return note

    @property
    def measured(self) -> bool:
        return bool(self.ours) and bool(self.baseline)

    def p(self, xs: list[float], q: float) -> float:
        if not xs:
            return float("nan")
        return statistics.quantiles(xs, n=100, method="inclusive")[int(q * 100) - 1] \
            if q != 0.5 else statistics.median(xs)

    def result_lines(self) -> list[str]:
        if not self.measured:
            return []
        ours, base = self.p(self.ours, 0.5), self.p(self.baseline, 0.5)
        lines = [f"RESULT metric={self.metric} ours={ours:.4f} baseline={base:.4f} "
                 f"ratio={ours / base:.3f} target={TARGET}"]
        if self.name == "list" and self.db == "sqlite":
            lines.append(f"RESULT metric=pages_list_p50_sqlite ours={ours:.4f} "
                         f"baseline={LIST_BUDGET_S:.3f} ratio={ours / LIST_BUDGET_S:.3f} "
                         "target=1.0")
        if self.name == "customer360":
            lines.append(f"RESULT metric=pages_customer360_p50_{self.db} ours={ours:.4f} "
                         f"baseline={C360_BUDGET_S:.3f} ratio={ours / C360_BUDGET_S:.3f} "
                         "target=1.0")
        return lines


def get(client: TestClient, timer: ServerTimer, url: str, headers: dict[str, str]
        ) -> tuple[httpx.Response, float, float]:
    """The response, its server seconds and the client's wall seconds."""
    t0 = time.perf_counter()
    r = client.get(url, headers=headers)
    wall = time.perf_counter() - t0
    return r, timer.last, wall


class Statements:
    """Counts the SQL statements the app sends (on while the checks run, off for timing)."""

    def __init__(self, db: Database) -> None:
        self.engine = db.engine
        self.n = 0

    def _count(self, *_: Any) -> None:
        self.n += 1

    def __enter__(self) -> Statements:
        event.listen(self.engine, "before_cursor_execute", self._count)
        return self

    def __exit__(self, *_: Any) -> None:
        event.remove(self.engine, "before_cursor_execute", self._count)


def probe(client: TestClient, timer: ServerTimer, stmts: Statements, url: str,
          headers: dict[str, str]) -> tuple[httpx.Response, int, int]:
    """The response, the statements it took and the connections the app still held
    checked out of the pool once it had answered (0 unless something leaked one)."""
    gc.collect()  # what an earlier request left for the collector is returned first
    before = stmts.n
    r, _, _ = get(client, timer, url, headers)
    checked_out = getattr(stmts.engine.pool, "checkedout", lambda: 0)()
    return r, stmts.n - before, checked_out


def check_list(client: TestClient, timer: ServerTimer, stmts: Statements, m: Metric,
               cookie: dict[str, str], auth: dict[str, str], page_ok: bool) -> str | None:
    """The API's 50 rows are the city's newest; the page shows those ids. How the page
    takes the filter (a ``PAGE_STYLES`` entry), or None when the page side cannot run."""
    _, api_url = list_urls(0)
    r, m.api_stmts, m.api_held = probe(client, timer, stmts, api_url, auth)
    assert r.status_code == 200, f"API list: {r.status_code} {r.text[:300]}"
    items = r.json()["items"]
    ids = [d["id"] for d in items]
    assert len(ids) == 50 and ids == sorted(ids, reverse=True), "API: not 50 rows, -id"
    assert all(d["data"]["city"] == CITIES[0] for d in items), "API: another city"
    m.api_kb = len(r.content) / 1024
    m.api_note = f"API: 50 rows of city {CITIES[0]}, newest first"
    if not page_ok:
        return None
    tried = []
    for style in PAGE_STYLES:
        page_url, _ = list_urls(0, style)
        r, m.page_stmts, m.page_held = probe(client, timer, stmts, page_url, cookie)
        if r.status_code != 200:
            m.page_note = (f"page answered {r.status_code} ({r.text[:200]!r}): page side "
                           "skipped")
            return None
        shown = [rid for rid in ids if re.search(rf"/records/{rid}\b", r.text)]
        tried.append(f"{style}: {len(shown)}/50")
        if len(shown) == 50:
            break
    m.page_kb = len(r.content) / 1024
    how = ("filter=<JSON AST>" if style == "filter" else
           "its filter builder's c0.f/c0.o/c0.v (it did not apply filter=<JSON AST>: "
           f"{tried[0]} of the API's rows)")
    m.page_note = (f"page: {m.page_kb:.0f} KB HTML, links to {len(shown)}/50 of the API's "
                   f"rows, filter sent as {how}")
    if len(shown) != 50:
        m.page_note += f"  ** WARNING: the page does not show the API's 50 rows ({tried}) **"
    return style


def check_record(client: TestClient, timer: ServerTimer, stmts: Statements, world: World,
                 m: Metric, cookie: dict[str, str], auth: dict[str, str], page_ok: bool
                 ) -> bool:
    page_url, api_url = record_urls(world, 0)
    r, m.api_stmts, m.api_held = probe(client, timer, stmts, api_url, auth)
    assert r.status_code == 200, f"API record: {r.status_code} {r.text[:300]}"
    doc = r.json()
    assert doc["id"] == world.loan_ids[0] and len(doc["data"]["items"]) == SUBTABLE_ROWS
    assert "customer_level" in doc["data"], "lookup not filled in"
    m.api_kb = len(r.content) / 1024
    m.api_note = "API: the record with its lookup and 5 subtable rows"
    if not page_ok:
        return False
    r, m.page_stmts, m.page_held = probe(client, timer, stmts, page_url, cookie)
    if r.status_code != 200:
        m.page_note = (f"page answered {r.status_code} ({r.text[:200]!r}): page side "
                       "skipped")
        return False
    m.page_kb = len(r.content) / 1024
    with world.db.read() as s:
        names = dict(s.execute(select(Record.id, Record.data["name"].as_string()).where(
            Record.id.in_([doc["data"]["customer"], doc["data"]["product"]]))).all())
    html = r.text
    found = {
        "number": doc["data"]["loan_no"] in html,
        "customer name": names[doc["data"]["customer"]] in html,
        "product name": names[doc["data"]["product"]] in html,
        "subtable rows": all(row["note"] in html for row in doc["data"]["items"]),
    }
    missing = [k for k, v in found.items() if not v]
    m.page_note = (f"page: {m.page_kb:.0f} KB HTML, shows " + ", ".join(
        k for k, v in found.items() if v) + (f"  ** WARNING: missing {', '.join(missing)} **"
                                               if missing else ""))
    return True


def measure(client: TestClient, timer: ServerTimer, m: Metric,
            urls: Callable[[int], tuple[str, str]], cookie: dict[str, str],
            auth: dict[str, str], page_ok: bool, warmup: int, requests: int) -> None:
    """``warmup`` untimed then ``requests`` timed requests per side, alternating ABBA."""
    gc.collect()
    for i in range(warmup + requests):
        page_url, api_url = urls(i)
        order = ("page", "api") if i % 2 == 0 else ("api", "page")
        for side in order:
            if side == "page" and not page_ok:
                continue
            url, headers = (page_url, cookie) if side == "page" else (api_url, auth)
            r, server, wall = get(client, timer, url, headers)
            if r.status_code != 200:
                raise AssertionError(f"{side} {url}: {r.status_code} {r.text[:300]}")
            if i < warmup:
                continue
            if side == "page":
                m.ours.append(server)
                m.ours_wall.append(wall)
            else:
                m.baseline.append(server)
                m.base_wall.append(wall)


def measure_count(client: TestClient, timer: ServerTimer, m: Metric,
                  urls: Callable[[int], tuple[str, str]], cookie: dict[str, str],
                  args: argparse.Namespace) -> None:
    """For information: the list page's ``/count`` (the total it asks for once shown)."""
    for i in range(args.warmup + args.requests):
        page_url = urls(i)[0]
        path, _, query = page_url.partition("?")
        r, server, _ = get(client, timer, f"{path}/count?{query}", cookie)
        if r.status_code != 200:
            print(f"  [{m.db}] list /count answered {r.status_code}: not measured")
            return
        if i >= args.warmup:
            m.count.append(server)
    print(f"  [{m.db}] list: the page's /count p50 {ms(statistics.median(m.count))} ms "
          "(information; asked for after the page is shown)", flush=True)


# --------------------------------------------------------------------------- customer 360

CRM_APP = "crm"
C360_BUDGET_S = 0.150  # the whole view's p50 (page + its fragments), the issue's budget
C360_CUSTOMERS = 5  # target customers, cycled through
C360_CASES, C360_FOLLOW_UPS, C360_ENTRIES = 20, 200, 2000
C360_FLOWS, C360_STEPS = 6, 2  # per customer: cases running the flow, steps completed
SALES = 20  # salespeople owning the bulk records in turn; sales00 owns the targets
C360_SHARE = {"customer": 4, "loan_case": 3, "follow_up": 3}  # tenths of N
CRM_SURNAMES = "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗郑梁谢宋唐许韩冯邓曹"
# what the history rows say changed (no encrypted field: those are stored sealed)
CUSTOMER_DIFFS: list[dict[str, Any]] = [
    {"status": ["new", "following"]}, {"level": ["b", "a"]},
    {"mobile": ["13800001234", "13900005678"]}, {"city": ["上海", "北京"]},
    {"tags": [["vip"], ["vip", "repeat"]]}, {"note": ["资料待补", "资料已齐, 等待签约"]},
    {"source": ["web", "referral"], "wechat": ["wx_old", "wx_new"]}]
CASE_DIFFS: list[dict[str, Any]] = [
    {"stage": ["lead", "signed"]}, {"amount": ["100000.00", "120000.00"]},
    {"rate": [3.95, 3.45], "fee_rate": [1.5, 1.0]}, {"note": ["待补流水", "流水已补"]},
    {"apply_date": ["2026-01-05", "2026-01-08"]}]
LOAD_FRAGMENT = re.compile(r'hx-get="([^"]+)" hx-trigger="load"')


@dataclass
class CrmWorld:
    """The CRM template with N records and ``C360_CUSTOMERS`` fully built customers."""

    db: Database
    app: FastAPI
    tmp: tempfile.TemporaryDirectory[str]
    sales_user: str
    sales_token: str
    targets: list[int]  # customer ids
    names: dict[int, str]  # customer id → name
    counts: dict[str, int]  # records per form (bulk + targets)
    entries: dict[int, int]  # customer id → timeline entries (all kinds, all pages)
    seed_s: float = 0.0

    def close(self) -> None:
        self.db.dispose()
        self.tmp.cleanup()


def crm_pools(pubs: dict[str, forms.Published]) -> dict[str, list[dict[str, Any]]]:
    """``POOL`` validated documents per form (relations, numbers and names set later)."""
    rng, env = random.Random(11), Env()

    def customer(i: int) -> dict[str, Any]:
        return {"name": "x", "mobile": "13800000000", "id_no": id_no_of(0),
                "gender": rng.choice(["male", "female"]), "city": rng.choice(CITIES),
                "source": rng.choice(["web", "referral", "phone", "partner", "walk_in"]),
                "status": rng.choice(["new", "following", "won", "lost"]),
                "level": rng.choice("abcd"),
                "occupation": rng.choice(["employee", "self_employed", "owner"]),
                "monthly_income": f"{rng.randrange(5_000, 200_000)}.00",
                "has_house": rng.random() < 0.5, "has_car": rng.random() < 0.5,
                "wechat": f"wx{i:06d}", "tags": sorted({rng.choice(
                    ["high_value", "repeat", "urgent", "vip"])}),
                "note": "客户资料齐全, 已电话核实。"}

    def case(_i: int) -> dict[str, Any]:
        applied = DAY0 + timedelta(days=rng.randrange(700))
        return {"customer": 1, "loan_type": rng.choice(["mortgage", "credit", "business",
                                                         "car"]),
                "amount": f"{rng.randrange(50, 500) * 10_000}.00",
                "term_months": rng.choice([12, 24, 36, 60]),
                "stage": rng.choice(["lead", "signed", "review", "disbursed"]),
                "apply_date": applied.isoformat(), "rate": rng.choice([3.45, 3.95, 4.35]),
                "fee_rate": rng.choice([1.0, 1.5, 2.0]), "note": "首套房, 公积金贷款组合。"}

    def follow_up(_i: int) -> dict[str, Any]:
        day = DAY0 + timedelta(days=rng.randrange(700))
        return {"customer": 1, "method": rng.choice(["phone", "wechat", "visit", "sms"]),
                "summary": "电话沟通", "follow_date": day.isoformat(),
                "next_date": (day + timedelta(days=7)).isoformat(),
                "content": "客户询问利率与材料清单。"}

    makers = {"customer": customer, "loan_case": case, "follow_up": follow_up}
    return {form: [validate_record(pubs[form].compiled, make(i), env=env)
                   for i in range(POOL)] for form, make in makers.items()}


def crm_doc(form: str, pool: Sequence[dict[str, Any]], i: int, first_customer: int,
            customers: int, crypt: Any) -> dict[str, Any]:
    """Bulk record ``i`` of ``form``: a pool copy with its own name/number/customer."""
    doc = dict(pool[i % POOL])
    if form == "customer":
        rng = random.Random(i)
        doc |= {"name": CRM_SURNAMES[rng.randrange(len(CRM_SURNAMES))]
                + "".join(rng.choices(GIVEN, k=2)) + f"{i:06d}",
                "mobile": mobile_of(i), "id_no": id_no_of(i)}
        return crypt.seal(doc)
    doc["customer"] = first_customer + i * 7919 % customers
    if form == "loan_case":
        doc["case_no"] = f"LN-20261205-{i:07d}"
    else:
        doc["summary"] = f"电话沟通第 {i} 次"
    return doc


def build_crm(target: Target, n: int) -> CrmWorld:
    """Fresh database, the CRM template, 20 salespeople, ~N records and the targets."""
    from engine_forms.sealing import FieldCrypt
    from platform_core.security.passwords import hash_password
    from templates_catalog.bundle import template
    from templates_catalog.install import install

    started = time.perf_counter()
    db = target.fresh()
    tmp = tempfile.TemporaryDirectory(prefix="qiao_bench_pages_")
    settings = load_settings(data_dir=Path(tmp.name), api_rate_per_minute=10**9,
                             login_rate_per_minute=10_000, background_jobs=False)
    app = create_app(settings, db=db)
    keyring = app.state.qiao.keyring
    secret = hash_password(PASSWORD)
    with db.write() as s:
        ensure_builtin_roles(s)
        install(s, template("bank_intermediary_crm"), actor=SYSTEM,
                template="bank_intermediary_crm")
        sales = [create_user(s, username=f"sales{i:02d}", display_name=f"销售{i:02d}",
                             password=PASSWORD, password_hash=secret, actor=SYSTEM,
                             roles=("sales",))[0] for i in range(SALES)]
        token = issue_token(s, user_id=sales[0].id, name="bench", actor=SYSTEM)[1]
        pubs = {k: forms.published(s, CRM_APP, k) for k in C360_SHARE}
    crypt = FieldCrypt(pubs["customer"], keyring)
    pools = crm_pools(pubs)
    bulk = max(n - C360_CUSTOMERS * (1 + C360_CASES + C360_FOLLOW_UPS), 1000)
    counts = {form: bulk * tenths // 10 for form, tenths in C360_SHARE.items()}
    counts["customer"] += bulk - sum(counts.values())
    sales_ids = [u.id for u in sales]
    print(f"  [{target.name}] CRM template, {SALES} salespeople, {POOL} validated documents "
          f"per form: {time.perf_counter() - started:.1f} s", flush=True)
    first_customer = 0
    for form, total in counts.items():
        t0, done = time.perf_counter(), 0
        while done < total:
            with db.write() as s:
                for _ in range(TX_BATCHES):
                    if done >= total:
                        break
                    count = min(BATCH, total - done)
                    owner = sales_ids[(done // BATCH) % SALES]
                    docs = [crm_doc(form, pools[form], done + j, first_customer,
                                    counts["customer"], crypt) for j in range(count)]
                    ids = create_records(s, app=CRM_APP, form=form, items=docs,
                                         actor=Actor(user_id=owner, name="sales"),
                                         schema_version=pubs[form].version)
                    if form != "customer":
                        _bulk_links(s, pubs[form], ids, docs)
                    elif not first_customer:
                        first_customer = ids[0]
                    done += count
        print(f"  [{target.name}] {form}: {total:,} records in "
              f"{time.perf_counter() - t0:.0f} s", flush=True)
    t0 = time.perf_counter()
    targets, names, entries = crm_targets(db, keyring, pubs, sales[0])
    for form in C360_SHARE:
        counts[form] += C360_CUSTOMERS * {"customer": 1, "loan_case": C360_CASES,
                                          "follow_up": C360_FOLLOW_UPS}[form]
    print(f"  [{target.name}] {C360_CUSTOMERS} target customers with {C360_CASES} cases, "
          f"{C360_FOLLOW_UPS} follow-ups, ~{C360_ENTRIES:,} history rows and "
          f"{C360_FLOWS} flow runs each: {time.perf_counter() - t0:.1f} s", flush=True)
    t0 = time.perf_counter()
    analyze(db)
    print(f"  [{target.name}] {'VACUUM ANALYZE' if db.dialect == 'postgresql' else 'ANALYZE'}"
          f" {time.perf_counter() - t0:.1f} s", flush=True)
    return CrmWorld(db, app, tmp, "sales00", token, targets, names, counts, entries,
                    time.perf_counter() - started)


def crm_targets(db: Database, keyring: Any, pubs: dict[str, forms.Published], user: Any
                ) -> tuple[list[int], dict[int, str], dict[int, int]]:
    """The customers the view is timed on, owned by ``user`` (a salesperson): created
    through the records service, then their cases and follow-ups spread over the last two
    years, history rows in bulk, and flow runs with steps completed through the engine."""
    from engine_flows.instances import start_run
    from engine_flows.models import FlowHistory, FlowRun, Task
    from engine_flows.tasks import Who, complete
    from engine_forms.sealing import FieldCrypt
    from platform_core.models import RecordHistory, utcnow
    from platform_core.security.principal import load_principal

    actor = Actor(user_id=user.id, name=user.display_name)
    crypt = FieldCrypt(pubs["customer"], keyring)
    now = utcnow()
    targets, names, entries = [], {}, {}
    for k in range(C360_CUSTOMERS):
        name = f"目标客户{k}{CRM_SURNAMES[k]}{GIVEN[k]}"
        with db.write() as s:
            cid = records.create_many(s, pubs["customer"], [{
                "name": name, "mobile": mobile_of(10**8 + k), "id_no": id_no_of(900_000 + k),
                "city": "北京", "status": "following", "level": "a", "source": "referral",
                "tags": ["vip", "repeat"], "monthly_income": "58000"}],
                actor=actor, crypt=crypt)[0]
            cases = records.create_many(s, pubs["loan_case"], [
                {"customer": cid, "loan_type": ("mortgage", "credit", "business", "car")[j % 4],
                 "amount": f"{(j + 1) * 100_000}.00", "term_months": 36,
                 "stage": ("lead", "signed", "review", "disbursed")[j % 4],
                 "apply_date": (DAY0 + timedelta(days=30 * j)).isoformat(), "rate": 3.95,
                 "fee_rate": 1.5, "note": f"第 {j + 1} 笔业务"} for j in range(C360_CASES)],
                actor=actor)
            ups = records.create_many(s, pubs["follow_up"], [
                {"customer": cid, "loan_case": cases[j % C360_CASES],
                 "method": ("phone", "wechat", "visit", "sms")[j % 4],
                 "summary": f"第 {j + 1} 次跟进", "follow_date": "2026-11-01",
                 "next_date": "2026-12-20"} for j in range(C360_FOLLOW_UPS)], actor=actor)
            # their creation spread over two years, oldest first (ids ascend with time)
            related = cases + ups
            span = timedelta(days=730)
            when = {rid: now - span + span * (i + 1) / (len(related) + 1)
                    for i, rid in enumerate(sorted(related))}
            table = Record.__table__
            s.connection().execute(
                update(table).where(table.c.id == bindparam("rid"))
                .values(created_at=bindparam("at"), updated_at=bindparam("at")),
                [{"rid": rid, "at": at} for rid, at in when.items()])
            rows, on_customer = [], C360_ENTRIES * 6 // 10
            per_case = (C360_ENTRIES - on_customer) // C360_CASES
            for subject, count, diffs in ((cid, on_customer, CUSTOMER_DIFFS),
                                          *((c, per_case, CASE_DIFFS) for c in cases)):
                for v in range(count):
                    rows.append({"record_id": subject, "row_version": v + 2,
                                 "action": "update", "actor_id": user.id,
                                 "diff": diffs[v % len(diffs)],
                                 "at": now - span + span * (v + 1) / (count + 1)})
            s.connection().execute(insert(RecordHistory.__table__), rows)
        principal = None
        with db.write() as s:  # the product submitting 产品匹配 needs
            product = records.create_many(s, forms.published(s, CRM_APP, "bank_product"), [
                {"name": f"安居贷{k}", "bank": "icbc", "loan_type": "mortgage"}],
                actor=actor)[0]
        for j, case in enumerate(cases[-C360_FLOWS:]):
            with db.write() as s:
                start_run(s, app=CRM_APP, flow="loan_service", record_id=case, actor=actor,
                          now=utcnow(), keyring=keyring)
            for _step in range(C360_STEPS if j % 3 else 0):
                with db.write() as s:
                    if principal is None:
                        principal = load_principal(s, user, via="bench")
                    found = s.execute(select(Task.id, Task.node_id).where(
                        Task.record_id == case, Task.status == "open")).first()
                    if found is None:
                        break
                    task, node = found
                    complete(s, task, Who(principal, keyring, utcnow()), outcome="submit",
                             comment="资料已核对",
                             data={"product": product} if node == "matching" else None)
        with db.read() as s:
            flows = s.execute(select(func.count()).select_from(FlowHistory).join(
                FlowRun, FlowRun.id == FlowHistory.run_id).where(
                FlowRun.record_id.in_(cases))).scalar_one()
        targets.append(cid)
        names[cid] = name
        entries[cid] = len(rows) + len(related) + 1 + flows
    return targets, names, entries


def c360_api_urls(customer: int) -> list[tuple[str, str]]:
    """(name, URL) of the API calls that fetch what the view shows."""
    base = f"/api/v1/apps/{CRM_APP}/forms"

    def related(form: str) -> str:
        where = quote(json.dumps({"field": "customer", "op": "eq", "value": customer},
                                 separators=(",", ":")), safe="")
        return f"{base}/{form}/records?filter={where}&sort=-created_at&limit=5"

    return [("record", f"{base}/customer/records/{customer}"),
            ("loan_cases", related("loan_case")), ("follow_ups", related("follow_up")),
            ("timeline", f"{base}/customer/records/{customer}/timeline")]


def c360_page_urls(customer: int, fragments: Sequence[str]) -> list[tuple[str, str]]:
    """(name, URL) of the record page and the fragments it loads once shown."""
    page = f"/apps/{CRM_APP}/forms/customer/records/{customer}"
    return [("page", page)] + [(f, f"{page}/{f}") for f in fragments]


def related_section(html: str, key: str) -> tuple[int, int] | None:
    """(rows, total shown in the heading) of the related list ``key``, or None."""
    m = re.search(rf'<section[^>]*id="related-{key}".*?</section>', html, re.S)
    if m is None:
        return None
    total = re.search(r'<h2[^>]*>.*?<span class="muted small">(\d+)</span>', m.group(0),
                      re.S)
    body = re.search(r"<tbody>(.*?)</tbody>", m.group(0), re.S)
    rows = len(re.findall(r"<tr\b", body.group(1))) if body else 0
    return rows, int(total.group(1)) if total else -1


def check_c360(client: TestClient, timer: ServerTimer, stmts: Statements, world: CrmWorld,
               m: Metric, cookie: dict[str, str], auth: dict[str, str]) -> list[str]:
    """The API calls and the view answer as they should for the first target customer;
    the fragments the page loads once shown (their path after the record's)."""
    customer = world.targets[0]
    api = {}
    for name, url in c360_api_urls(customer):
        r, n, held = probe(client, timer, stmts, url, auth)
        assert r.status_code == 200, f"API {name}: {r.status_code} {r.text[:300]}"
        api[name] = r.json()
        m.part_stmts[f"api {name}"] = n
        m.api_stmts += n
        m.api_held += held
        m.api_kb += len(r.content) / 1024
    assert api["record"]["data"]["name"] == world.names[customer], "API: another customer"
    assert len(api["loan_cases"]["items"]) == 5 and len(api["follow_ups"]["items"]) == 5
    assert api["timeline"]["items"], "API: an empty timeline"
    m.api_note = (f"API: the customer, 5 of its loan cases, 5 of its follow-ups, "
                  f"{len(api['timeline']['items'])} timeline entries (first page)")
    page_url = c360_page_urls(customer, [])[0][1]
    r, n, held = probe(client, timer, stmts, page_url, cookie)
    assert r.status_code == 200, f"page: {r.status_code} {r.text[:300]}"
    html = r.text
    fragments = [u[len(page_url) + 1:] for u in LOAD_FRAGMENT.findall(html)
                 if u.startswith(page_url + "/")]
    m.part_stmts["page"], m.page_stmts, m.page_held = n, n, held
    m.page_kb = len(r.content) / 1024
    problems = []
    if world.names[customer] not in html:
        problems.append("the customer's name")
    for key, total in (("loan_case-customer", C360_CASES),
                       ("follow_up-customer", C360_FOLLOW_UPS)):
        found = related_section(html, key)
        if found != (5, total):
            problems.append(f"{key}: (rows, total) {found}, not (5, {total})")
    timeline_entries = 0
    for f in fragments:
        r, n, held = probe(client, timer, stmts, f"{page_url}/{f}", cookie)
        assert r.status_code == 200, f"fragment {f}: {r.status_code} {r.text[:300]}"
        m.part_stmts[f] = n
        m.page_stmts += n
        m.page_held += held
        m.page_kb += len(r.content) / 1024
        if f == "timeline":
            timeline_entries = len(re.findall(r'<li class="tl-entry', r.text))
    if "timeline" not in fragments:
        problems.append("no timeline fragment on the page")
    elif not timeline_entries:
        problems.append("an empty timeline")
    m.page_note = (f"page: {m.page_kb:.0f} KB HTML with its fragments "
                   f"({', '.join(fragments)}); shows the name, the related lists 5 + 5 rows "
                   f"of {C360_CASES} and {C360_FOLLOW_UPS}, {timeline_entries} timeline "
                   f"lines (of ~{world.entries[customer]:,} entries)")
    if problems:
        m.page_note += f"  ** WARNING: wrong or missing: {'; '.join(problems)} **"
    return fragments


def measure_c360(client: TestClient, timer: ServerTimer, m: Metric, world: CrmWorld,
                 fragments: Sequence[str], cookie: dict[str, str], auth: dict[str, str],
                 warmup: int, requests: int) -> None:
    """``warmup`` untimed then ``requests`` timed views and API rounds, alternating ABBA;
    each is the sum of its requests' server times (kept per request too)."""
    gc.collect()
    for i in range(warmup + requests):
        customer = world.targets[i % len(world.targets)]
        sides = {"page": (c360_page_urls(customer, fragments), cookie),
                 "api": (c360_api_urls(customer), auth)}
        for side in (("page", "api") if i % 2 == 0 else ("api", "page")):
            urls, headers = sides[side]
            total = wall = 0.0
            for name, url in urls:
                r, server, w = get(client, timer, url, headers)
                if r.status_code != 200:
                    raise AssertionError(f"{side} {url}: {r.status_code} {r.text[:300]}")
                total, wall = total + server, wall + w
                if i >= warmup:
                    m.parts.setdefault(name if side == "page" else f"api {name}",
                                       []).append(server)
            if i < warmup:
                continue
            if side == "page":
                m.ours.append(total)
                m.ours_wall.append(wall)
            else:
                m.baseline.append(total)
                m.base_wall.append(wall)


def run_c360(target: Target, args: argparse.Namespace) -> list[Metric]:
    n = args.records
    print(f"\n== {target.name}: customer 360 over {n:,} CRM records; {args.requests} timed "
          f"views and API rounds after {args.warmup} warm-up ==", flush=True)
    world = build_crm(target, n)
    m = Metric("customer360", target.name, n)
    try:
        print(f"  [{target.name}] set-up {world.seed_s:.1f} s; " + ", ".join(
            f"{k} {v:,}" for k, v in world.counts.items()), flush=True)
        timer = ServerTimer(world.app)
        auth = {"Authorization": f"Bearer {world.sales_token}"}
        with TestClient(timer) as client:
            cookie = {"Cookie": f"{SESSION_COOKIE}="
                                f"{session_cookie(client, world.sales_user)}"}
            with Statements(world.db) as stmts:
                fragments = check_c360(client, timer, stmts, world, m, cookie, auth)
            for note in (m.api_note, m.page_note, m.sql_note()):
                print(f"  [{target.name}] customer360: {note}")
            print(f"  [{target.name}] customer360: SQL statements per request: " + ", ".join(
                f"{k} {v}" for k, v in m.part_stmts.items()))
            measure_c360(client, timer, m, world, fragments, cookie, auth, args.warmup,
                         args.requests)
            print_metric(m)
            print(f"  [{target.name}] customer360 p50 per request (ms): " + ", ".join(
                f"{k} {statistics.median(v) * 1e3:.1f}" for k, v in m.parts.items()))
            if args.profile:
                k = 10
                urls = [u for i in range(k) for _, u in
                        c360_page_urls(world.targets[i % len(world.targets)], fragments)]
                profile_requests(world.app, f"{k} x customer 360 view (page + fragments) on "
                                 f"{target.name}", urls, cookie)
                urls = [u for i in range(k) for _, u in
                        c360_api_urls(world.targets[i % len(world.targets)])]
                profile_requests(world.app, f"{k} x customer 360 API calls on {target.name}",
                                 urls, auth)
    finally:
        world.close()
        target.drop()
    return [m]


# --------------------------------------------------------------------------- profiling


async def _inline(func: Callable[..., Any], *args: Any, **_: Any) -> Any:
    return func(*args)


def profile_requests(app: FastAPI, label: str, urls: list[str], headers: dict[str, str]
                     ) -> None:
    """cProfile of ``urls`` sent through ``httpx.ASGITransport`` on an event loop in this
    thread, with the thread-pool hops (``anyio.to_thread.run_sync``) run inline, so the
    route bodies, templates and queries show up in the listing. The profiler is on for
    the requests only; between them the garbage collector runs (unprofiled), which hands
    back any connection a request left checked out."""
    prof = cProfile.Profile()

    async def send(profiled: bool) -> None:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
            for url in urls:
                if profiled:
                    prof.enable()
                r = await c.get(url, headers=headers)
                if profiled:
                    prof.disable()
                assert r.status_code == 200, f"{url}: {r.status_code}"
                gc.collect()

    real = anyio.to_thread.run_sync
    anyio.to_thread.run_sync = _inline  # type: ignore[assignment]
    try:
        asyncio.run(send(False))  # warm
        asyncio.run(send(True))
    finally:
        anyio.to_thread.run_sync = real
    out = io.StringIO()
    stats = pstats.Stats(prof, stream=out)
    stats.sort_stats("tottime").print_stats(20)
    stats.sort_stats("cumulative").print_stats(45)
    print(f"\n---- cProfile: {label} ----")
    print(out.getvalue())


# --------------------------------------------------------------------------- running


def run_target(target: Target, args: argparse.Namespace) -> list[Metric]:
    n = args.records
    print(f"\n== {target.name}: {n:,} loan records; {args.requests} timed requests per side "
          f"after {args.warmup} warm-up ==", flush=True)
    world = build(target, n)
    lists = Metric("list", target.name, n)
    recs = Metric("record", target.name, n)
    try:
        with world.db.read() as s:
            links = s.execute(select(func.count()).select_from(RecordLink)).scalar_one()
        print(f"  [{target.name}] set-up {world.seed_s:.1f} s; {links:,} relation links")
        timer = ServerTimer(world.app)
        auth = {"Authorization": f"Bearer {world.token}"}
        with TestClient(timer) as client:
            cookie = {"Cookie": f"{SESSION_COOKIE}={session_cookie(client)}"}
            routes = {"list": has_route(world.app, LIST_ROUTE),
                      "record": has_route(world.app, RECORD_ROUTE)}
            for m, route in ((lists, LIST_ROUTE), (recs, RECORD_ROUTE)):
                if not routes[m.name]:
                    m.page_note = (f"page route not available yet: GET {route} is not in "
                                   "the app; page side skipped (API side still measured)")
            with Statements(world.db) as stmts:
                style = check_list(client, timer, stmts, lists, cookie, auth,
                                   routes["list"])
                page_ok_r = check_record(client, timer, stmts, world, recs, cookie, auth,
                                         routes["record"])
            page_ok = style is not None

            def list_pair(i: int) -> tuple[str, str]:
                return list_urls(i, style or "filter")

            chosen = [(m, urls, ok_) for m, urls, ok_ in
                      ((lists, list_pair, page_ok),
                       (recs, lambda i: record_urls(world, i), page_ok_r))
                      if m.name in args.only]
            for m, urls, ok_ in chosen:
                for note in (m.api_note, m.page_note, m.sql_note()):
                    print(f"  [{target.name}] {m.name}: {note}")
                measure(client, timer, m, urls, cookie, auth, ok_, args.warmup,
                        args.requests)
                print_metric(m)
                if m is lists and ok_ and has_route(world.app, LIST_ROUTE + "/count"):
                    measure_count(client, timer, lists, list_pair, cookie, args)
            if args.profile:
                k = 20
                for m, urls, ok_ in chosen:
                    if ok_:
                        profile_requests(world.app, f"{k} x {m.name} page on {target.name}",
                                         [urls(i)[0] for i in range(k)], cookie)
                    profile_requests(world.app, f"{k} x {m.name} API on {target.name}",
                                     [urls(i)[1] for i in range(k)], auth)
    finally:
        world.close()
        target.drop()
    return [m for m in (lists, recs) if m.name in args.only]


def ms(x: float) -> str:
    return f"{x * 1e3:8.2f}"


def print_metric(m: Metric) -> None:
    page = (f"page p50 {ms(m.p(m.ours, 0.5))} ms" if m.ours else "page -")
    print(f"  [{m.db}] {m.name}: {page}, API p50 {ms(m.p(m.baseline, 0.5))} ms "
          f"(server time, x{len(m.baseline)} each)", flush=True)


def print_report(results: list[Metric], args: argparse.Namespace) -> None:
    print()
    for m in results:
        for line in m.result_lines():
            print(line)
        if not m.measured:
            print(f"(no RESULT for {m.metric}: {m.page_note})")
    print()
    head = (f"{'metric':34s} {'page p50':>9s} {'p90':>8s} {'API p50':>9s} {'p90':>8s} "
            f"{'ratio':>6s} target  ok   {'wall p50 page/API ms':>20s} {'KB page/API':>12s}")
    print(head)
    print("-" * len(head))
    for m in results:
        base50, base90 = m.p(m.baseline, 0.5), m.p(m.baseline, 0.9)
        wall_b = statistics.median(m.base_wall) * 1e3 if m.base_wall else float("nan")
        if m.measured:
            ours50, ours90 = m.p(m.ours, 0.5), m.p(m.ours, 0.9)
            ratio = ours50 / base50
            ok = "yes" if ratio <= TARGET else "NO "
            wall_o = statistics.median(m.ours_wall) * 1e3
            print(f"{m.metric:34s} {ms(ours50)} ms{ms(ours90)} {ms(base50)} ms{ms(base90)} "
                  f"{ratio:6.2f} {TARGET:6.1f}  {ok}  {wall_o:9.2f} / {wall_b:8.2f} "
                  f"{m.page_kb:5.0f} / {m.api_kb:5.1f}")
        else:
            print(f"{m.metric:34s} {'-':>9s}   {'-':>8s} {ms(base50)} ms{ms(base90)} "
                  f"{'-':>6s} {TARGET:6.1f}  -    {'- / ':>11s}{wall_b:8.2f}")
    for m in results:
        if m.count:
            label = f"  └ list /count, {m.db} (info)"
            print(f"{label:34s} {ms(m.p(m.count, 0.5))} ms{ms(m.p(m.count, 0.9))}")
    for m in results:
        for part, xs in m.parts.items():  # customer360: each request of the view / API
            label = f"  └ {part}, {m.db}"
            shown = f"{ms(m.p(xs, 0.5))} ms{ms(m.p(xs, 0.9))}"
            columns = f"{' ' * 20} {shown}" if part.startswith("api ") else shown
            print(f"{label:34s} {columns}   ({m.part_stmts.get(part, '?')} SQL statements)")
    for m in results:
        if m.measured and m.name == "list" and m.db == "sqlite":
            p50 = m.p(m.ours, 0.5)
            print(f"{'pages_list_p50_sqlite':34s} {ms(p50)} ms  budget {LIST_BUDGET_S * 1e3:.0f}"
                  f" ms  ratio {p50 / LIST_BUDGET_S:.2f}  target 1.0  "
                  f"{'yes' if p50 <= LIST_BUDGET_S else 'NO'}")
        if m.measured and m.name == "customer360":
            p50 = m.p(m.ours, 0.5)
            label = f"pages_customer360_p50_{m.db}"
            print(f"{label:34s} {ms(p50)} ms  budget {C360_BUDGET_S * 1e3:.0f} ms  ratio "
                  f"{p50 / C360_BUDGET_S:.2f}  target 1.0  "
                  f"{'yes' if p50 <= C360_BUDGET_S else 'NO'}")
    print(f"(server time per request through the ASGI app, median and 90th percentile of "
          f"{args.requests} requests per side, alternating; over {args.records:,} records"
          f"{' (--quick)' if args.quick else ''}; wall = the in-process client's time, "
          "for information)")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--db", choices=("sqlite", "postgresql", "both"), default="both")
    parser.add_argument("--records", type=int, default=None, metavar="N",
                        help="loan records (default 1,000,000; --quick: 100,000)")
    parser.add_argument("--quick", action="store_true",
                        help="100,000 records: the whole run in under 3 minutes on 2 cores")
    parser.add_argument("--requests", type=int, default=50, metavar="N",
                        help="timed requests per side and metric (default 50)")
    parser.add_argument("--warmup", type=int, default=10, metavar="N",
                        help="untimed requests per side first (default 10)")
    parser.add_argument("--pg-url", default=os.environ.get("QIAO_BENCH_PG_URL", DEFAULT_PG_URL),
                        help="PostgreSQL server URL (env QIAO_BENCH_PG_URL); the benchmark "
                             f"creates and drops its own database {SCRATCH_DB!r} there")
    parser.add_argument("--profile", action="store_true",
                        help="also cProfile 20 page and 20 API requests of each metric")
    parser.add_argument("--only", default=",".join(METRICS), metavar="NAMES",
                        help="comma-separated metrics to run, of: " + ", ".join(METRICS)
                        + " (default: all)")
    args = parser.parse_args(argv)
    args.only = [x.strip() for x in args.only.split(",") if x.strip()]
    if not args.only or any(x not in METRICS for x in args.only):
        parser.error(f"--only: a comma-separated list of {', '.join(METRICS)}")
    if args.records is None:
        args.records = 100_000 if args.quick else 1_000_000
    if args.records < RECORD_SAMPLE * 20 or args.requests < 2 or args.warmup < 0:
        parser.error(f"--records must be at least {RECORD_SAMPLE * 20}, --requests at "
                     "least 2, --warmup at least 0")

    targets = choose_targets(args.db, args.pg_url, SCRATCH_DB)
    results: list[Metric] = []
    started = time.perf_counter()
    try:
        for target in targets:
            if {"list", "record"} & set(args.only):
                results += run_target(target, args)
            if "customer360" in args.only:
                results += run_c360(target, args)
    finally:
        for target in targets:
            target.close()
    print_report(results, args)
    print(f"(total {time.perf_counter() - started:.0f} s)")


if __name__ == "__main__":
    main()
