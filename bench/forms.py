"""Benchmark of the form engine's bulk create against bare store inserts, on SQLite and
PostgreSQL.

``forms_validate_create_<N>_<db>``: validate + create N records of a 25-field loan form
(text, textarea, number, money, percent, date, datetime, boolean, select, multiselect,
phone, email, id_card, address, a relation to a published ``customer`` form, a formula,
a lookup through the relation, an auto number, required fields, ``visible_if`` /
``required_if`` and ``validate`` rules) through the engine, vs. the store's bare bulk
insert of the documents the engine would store.

* ours: ``engine_forms.records.create_many`` of the payloads as an integrator sends them
  (money as strings, dates as ISO strings, select by value), in batches of ``--batch``;
  each batch is one ``Database.write()`` transaction that loads the published form
  (``forms.published``, as the API does per request) and calls ``create_many``: validate
  every item, check the relation targets, take the auto numbers, insert records + outbox
  events, insert the relation links. Timed from the list of payload dicts to the last
  commit.
* baseline: ``platform_core.store.create_records`` of the already-final documents (the
  validator's output with the auto numbers filled in, computed before timing) in the
  same batches and transactions: records + one outbox event each, nothing else.

Every run gets a fresh, migrated database set up the same way (app, both forms
published, 1,000 customers; not timed); the two sides alternate; medians are reported.
Correctness is checked once per database (not timed): counts, auto numbers 1..N without
a gap, every stored document equal to the baseline's, formula values recomputed by hand,
relation links and the lookup for a sample.

Usage::

    python bench/forms.py [--db sqlite|postgresql|both] [--quick] [--records N] [--batch N]
                          [--repeat R] [--singles N] [--pg-url URL] [--profile]

Prints one ``RESULT metric=… ours=… baseline=… ratio=… target=2.0`` line per database
(seconds; ratio = ours / baseline) and a table of absolute times and records/s. No
assertions on time.
"""

from __future__ import annotations

import argparse
import gc
import os
import random
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, timedelta
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from sqlalchemy import func, select
from targets import (
    DEFAULT_PG_URL,
    Medians,
    Target,
    choose_targets,
    chunks,
    count_label,
    profile_call,
)

from engine_forms import fieldtypes, forms, publishing, records
from engine_forms.fieldtypes.computed import render_number
from engine_forms.fieldtypes.identity import id_check_char
from engine_forms.forms import Published
from engine_forms.reading import present
from engine_forms.validation import validate_record
from platform_core import expressions
from platform_core.db import Database
from platform_core.expressions.values import Env
from platform_core.models import OutboxEvent, Record, RecordLink
from platform_core.store import Actor, create_record, create_records, kinds, links_from
from platform_core.store.records import MAX_BULK

SCRATCH_DB = "qiao_bench_forms"
TARGET = 2.0  # issue 23: validate + create within 2x the bare insert
APP, CUSTOMER, LOAN = "bench", "customer", "loan"
ACTOR = Actor(user_id=1, department_id=1, name="importer")
CUSTOMERS = 1000
LOAN_PATTERN = "LN-{YYYYMMDD}-{000000}"

# --------------------------------------------------------------------------- forms

CUSTOMER_SPEC: dict[str, Any] = {
    "key": CUSTOMER, "name": "客户", "title_field": "name",
    "fields": [
        {"key": "name", "label": "姓名", "type": "text", "required": True},
        {"key": "mobile", "label": "手机", "type": "phone", "accept": "mobile"},
        {"key": "city", "label": "城市", "type": "text", "indexed": True},
    ]}

PRODUCTS = [("consumer", "消费贷"), ("mortgage", "房贷"), ("car", "车贷"),
            ("business", "经营贷")]
PURPOSES = [("home", "装修"), ("car", "购车"), ("study", "教育"), ("travel", "旅游"),
            ("stock", "进货"), ("other", "其他")]
COLLATERALS = [("house", "房产"), ("car", "车辆"), ("deposit", "存单")]
CHANNELS = [("web", "官网"), ("app", "APP"), ("referral", "转介绍"), ("branch", "网点")]


def _options(pairs: list[tuple[str, str]]) -> list[dict[str, str]]:
    return [{"value": v, "label": label} for v, label in pairs]


# 25 fields; the formula uses two fields, the lookup goes through the relation.
LOAN_SPEC: dict[str, Any] = {
    "key": LOAN, "name": "贷款申请", "title_field": "loan_no",
    "fields": [
        {"key": "loan_no", "label": "申请编号", "type": "auto_number",
         "pattern": LOAN_PATTERN},
        {"key": "customer", "label": "客户", "type": "relation", "target": CUSTOMER,
         "required": True},
        {"key": "customer_city", "label": "客户城市", "type": "lookup",
         "relation": "customer", "field": "city"},
        {"key": "borrower_name", "label": "借款人姓名", "type": "text", "required": True,
         "max_length": 50},
        {"key": "id_no", "label": "身份证号", "type": "id_card", "required": True,
         "sensitive": {"mask": True}},
        {"key": "mobile", "label": "手机号", "type": "phone", "accept": "mobile",
         "required": True},
        {"key": "email", "label": "邮箱", "type": "email"},
        {"key": "home_address", "label": "家庭住址", "type": "address"},
        {"key": "product", "label": "产品", "type": "select", "options": _options(PRODUCTS),
         "required": True},
        {"key": "purposes", "label": "用途", "type": "multiselect",
         "options": _options(PURPOSES)},
        {"key": "amount", "label": "贷款金额", "type": "money", "required": True,
         "min": 1000, "max": 50000000, "indexed": True,
         "validate": [{"expression": "amount <= annual_income * 20",
                       "message": "贷款金额不能超过年收入的 20 倍"}]},
        {"key": "rate", "label": "年利率", "type": "percent", "required": True, "min": 0,
         "max": 24, "decimals": 2},
        {"key": "term_months", "label": "期限(月)", "type": "number", "required": True,
         "min": 1, "max": 360, "decimals": 0},
        {"key": "monthly_interest", "label": "月利息", "type": "formula",
         "expression": "ROUND(amount * rate / 1200, 2)"},
        {"key": "apply_date", "label": "申请日期", "type": "date", "required": True},
        {"key": "first_payment_date", "label": "首次还款日", "type": "date",
         "validate": [{"expression": "first_payment_date > apply_date",
                       "message": "首次还款日须晚于申请日"}]},
        {"key": "submitted_at", "label": "提交时间", "type": "datetime"},
        {"key": "has_collateral", "label": "有抵押物", "type": "boolean", "required": True},
        {"key": "collateral_type", "label": "抵押物类型", "type": "select",
         "options": _options(COLLATERALS), "visible_if": "has_collateral = TRUE",
         "required_if": "has_collateral = TRUE"},
        {"key": "collateral_value", "label": "抵押物估值", "type": "money",
         "visible_if": "has_collateral = TRUE",
         "validate": [{"expression": "collateral_value > 0", "message": "估值必须大于 0"}]},
        {"key": "annual_income", "label": "年收入", "type": "money", "required": True},
        {"key": "employer", "label": "工作单位", "type": "text"},
        {"key": "channel", "label": "来源渠道", "type": "select", "options": _options(CHANNELS)},
        {"key": "referrer_phone", "label": "推荐人电话", "type": "phone"},
        {"key": "remarks", "label": "备注", "type": "textarea"},
    ],
    "layout": [{"section": "基本信息", "columns": 2,
                "fields": ["loan_no", "customer", "customer_city", "borrower_name",
                           "id_no", "mobile", "product", "amount"]}]}
assert len(LOAN_SPEC["fields"]) == 25

# --------------------------------------------------------------------------- payloads

CITIES = ["北京", "上海", "广州", "深圳", "成都", "杭州", "武汉", "西安", "南京", "重庆"]
REGIONS = ["110101", "310104", "440305", "510107", "330106", "420106", "610113", "320102"]
SURNAMES = "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗"
GIVEN = "伟芳娜敏静丽强磊军洋勇艳杰娟涛明超秀霞平刚桂英华"
DAY0 = date(2023, 1, 1)
PROVINCES = [("北京市", "北京市", "朝阳区"), ("上海市", "上海市", "浦东新区"),
             ("广东省", "深圳市", "南山区"), ("四川省", "成都市", "武侯区"),
             ("浙江省", "杭州市", "西湖区")]


def id_card(rng: random.Random) -> str:
    born = date(1960, 1, 1) + timedelta(days=rng.randrange(365 * 40))
    first17 = f"{rng.choice(REGIONS)}{born:%Y%m%d}{rng.randrange(1000):03d}"
    return first17 + id_check_char(first17)


def mobile(rng: random.Random) -> str:
    return f"1{rng.choice('3589')}{rng.randrange(10**9):09d}"


def customer_payloads(n: int) -> list[dict[str, Any]]:
    rng = random.Random(7)
    return [{"name": f"客户{i:05d}", "mobile": mobile(rng), "city": rng.choice(CITIES)}
            for i in range(n)]


def loan_payload(rng: random.Random, i: int, customer_ids: Sequence[int]) -> dict[str, Any]:
    """One application as an integrator's system would POST it."""
    income = rng.randrange(60_000, 2_000_000)
    cents = rng.randrange(1_000_00, income * 20 * 100)
    applied = DAY0 + timedelta(days=rng.randrange(700))
    p: dict[str, Any] = {
        "customer": rng.choice(customer_ids),
        "borrower_name": rng.choice(SURNAMES) + "".join(rng.choices(GIVEN, k=2)),
        "id_no": id_card(rng),
        "mobile": mobile(rng),
        "product": rng.choice(PRODUCTS)[0],
        "amount": f"{cents // 100}.{cents % 100:02d}",
        "rate": rng.choice([3.45, 3.95, 4.35, 4.9, 5.5, 7.2, 12.0]),
        "term_months": rng.choice([6, 12, 24, 36, 60, 120, 240, 360]),
        "apply_date": applied.isoformat(),
        "first_payment_date": (applied + timedelta(days=rng.randrange(20, 45))).isoformat(),
        "submitted_at": f"{applied.isoformat()}T{rng.randrange(8, 20):02d}:"
                        f"{rng.randrange(60):02d}:{rng.randrange(60):02d}+08:00",
        "has_collateral": rng.random() < 0.4,
        "annual_income": f"{income}.00",
        "channel": rng.choice(CHANNELS)[0],
    }
    if p["has_collateral"]:
        p["collateral_type"] = rng.choice(COLLATERALS)[0]
        p["collateral_value"] = f"{rng.randrange(100_000, 20_000_000)}.00"
    if rng.random() < 0.7:
        p["email"] = f"user{i}@example.com"
    if rng.random() < 0.8:
        province, city, district = rng.choice(PROVINCES)
        p["home_address"] = {"province": province, "city": city, "district": district,
                             "detail": f"幸福路 {rng.randrange(1, 999)} 号"}
    if rng.random() < 0.8:
        p["purposes"] = sorted({rng.choice(PURPOSES)[0] for _ in range(rng.randrange(1, 3))})
    if rng.random() < 0.6:
        p["employer"] = f"某某科技有限公司 {rng.randrange(500)} 分部"
    if rng.random() < 0.2:
        p["referrer_phone"] = f"010-{rng.randrange(10**7, 10**8)}"
    if rng.random() < 0.3:
        p["remarks"] = "客户资料齐全, 已电话核实。\n收入证明为近 6 个月流水。"
    return p


def loan_payloads(n: int, customer_ids: Sequence[int], seed: int = 1) -> list[dict[str, Any]]:
    rng = random.Random(seed)
    return [loan_payload(rng, i, customer_ids) for i in range(n)]


def setup_forms(db: Database) -> list[int]:
    """App, both forms published, ``CUSTOMERS`` customers (not timed); their ids."""
    with db.write() as s:
        forms.create_app(s, key=APP, name="贷款基准")
        forms.create_form(s, app=APP, raw=CUSTOMER_SPEC)
        publishing.publish(s, app=APP, key=CUSTOMER, actor=ACTOR)
        forms.create_form(s, app=APP, raw=LOAN_SPEC)
        publishing.publish(s, app=APP, key=LOAN, actor=ACTOR)
        customer = forms.published(s, APP, CUSTOMER)
        return records.create_many(s, customer, customer_payloads(CUSTOMERS), actor=ACTOR)


def loan_form(db: Database) -> Published:
    with db.read() as s:
        return forms.published(s, APP, LOAN)


def scalar(db: Database, stmt: Any) -> Any:
    with db.read() as s:
        return s.execute(stmt).scalar_one()


# --------------------------------------------------------------------------- the two sides


def create_ours(db: Database, payloads: Sequence[dict[str, Any]], batch: int) -> float:
    """The engine: per batch one transaction that loads the form and ``create_many``."""
    gc.collect()
    t0 = time.perf_counter()
    for part in chunks(payloads, batch):
        with db.write() as s:
            pub = forms.published(s, APP, LOAN)
            records.create_many(s, pub, part, actor=ACTOR)
    return time.perf_counter() - t0


def create_bare(db: Database, docs: Sequence[dict[str, Any]], batch: int,
                schema_version: int) -> float:
    """The store alone: ``create_records`` of the final documents, same transactions."""
    gc.collect()
    t0 = time.perf_counter()
    for part in chunks(docs, min(batch, MAX_BULK)):
        with db.write() as s:
            create_records(s, app=APP, form=LOAN, items=part, actor=ACTOR,
                           schema_version=schema_version)
    return time.perf_counter() - t0


def final_documents(pub: Published, payloads: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """What the engine stores for ``payloads``: a dry pass of the validator, numbered as
    the first import into a fresh database numbers them (1..N, today's period)."""
    env = Env()  # as env_for's, without ``related``: no formula reads the customer
    today = env.today()
    docs = []
    for n, payload in enumerate(payloads, start=1):
        doc = validate_record(pub.compiled, payload, env=env)
        doc["loan_no"] = render_number(LOAN_PATTERN, today, n)
        docs.append(doc)
    return docs


def singles_ours(db: Database, payloads: Sequence[dict[str, Any]]) -> float:
    """``records.create`` one at a time, each in its own transaction (an API POST)."""
    gc.collect()
    t0 = time.perf_counter()
    for payload in payloads:
        with db.write() as s:
            pub = forms.published(s, APP, LOAN)
            records.create(s, pub, payload, actor=ACTOR)
    return time.perf_counter() - t0


def singles_bare(db: Database, docs: Sequence[dict[str, Any]], schema_version: int) -> float:
    gc.collect()
    t0 = time.perf_counter()
    for doc in docs:
        with db.write() as s:
            create_record(s, app=APP, form=LOAN, data=doc, actor=ACTOR,
                          schema_version=schema_version)
    return time.perf_counter() - t0


# --------------------------------------------------------------------------- checks


CENT = Decimal("0.01")


def monthly_interest(payload: dict[str, Any]) -> str:
    """The formula, by hand: ROUND(amount * rate / 1200, 2) as stored money text."""
    value = Decimal(payload["amount"]) * Decimal(repr(payload["rate"])) / Decimal(1200)
    return str(value.quantize(CENT, rounding=ROUND_HALF_UP))


def check_ours(db: Database, payloads: Sequence[dict[str, Any]],
               docs: Sequence[dict[str, Any]], first_id: int) -> None:
    """Counts, gap-free numbers, stored documents, formula, links and lookup (untimed)."""
    n = len(payloads)
    live = (Record.app == APP) & (Record.form == LOAN)
    assert scalar(db, select(func.count()).where(live)) == n, "record count"
    assert scalar(db, select(func.count()).select_from(OutboxEvent)
                  .where(OutboxEvent.form == LOAN)) == n, "outbox event count"
    assert scalar(db, select(func.count()).select_from(RecordLink)
                  .where(RecordLink.field == "customer")) == n, "relation link count"
    with db.read() as s:
        rows = s.execute(select(Record.id, Record.data).where(live).order_by(Record.id)).all()
    ids = [r.id for r in rows]
    assert ids == list(range(first_id, first_id + n)), "ids are not consecutive"
    numbers = [r.data["loan_no"] for r in rows]
    prefix = numbers[0][:-6]
    assert all(x.startswith(prefix) for x in numbers), "auto numbers span two periods"
    assert [int(x[-6:]) for x in numbers] == list(range(1, n + 1)), "auto numbers have a gap"
    for (_, data), doc in zip(rows, docs, strict=True):  # loan_no: its date may differ
        assert {**data, "loan_no": None} == {**doc, "loan_no": None}, \
            f"stored document differs from the validator's: {data} != {doc}"
    rng = random.Random(3)
    sample = sorted(rng.sample(range(n), min(200, n)))
    for i in sample:
        assert rows[i].data["monthly_interest"] == monthly_interest(payloads[i]), i
        assert ("collateral_value" in rows[i].data) == payloads[i]["has_collateral"], i
    with db.read() as s:
        pub = forms.published(s, APP, LOAN)
        customers = dict(s.execute(select(Record.id, Record.data).where(
            Record.form == CUSTOMER)).all())
        picked = s.execute(select(Record).where(Record.id.in_([ids[i] for i in sample]))
                           .order_by(Record.id)).scalars().all()
        shown = present(s, pub, picked)
        for i, rec, doc in zip(sample, picked, shown, strict=True):
            assert links_from(s, rec.id, "customer") == [payloads[i]["customer"]], i
            city = customers[payloads[i]["customer"]]["city"]
            assert doc["data"]["customer_city"] == city, f"lookup of record {rec.id}"


def check_bare(db: Database, n: int) -> None:
    live = (Record.app == APP) & (Record.form == LOAN)
    assert scalar(db, select(func.count()).where(live)) == n, "baseline record count"
    assert scalar(db, select(func.count()).select_from(OutboxEvent)
                  .where(OutboxEvent.form == LOAN)) == n, "baseline outbox count"


# --------------------------------------------------------------------------- running


@dataclass
class Result(Medians):
    db: str
    n: int
    ours: list[float] = field(default_factory=list)
    baseline: list[float] = field(default_factory=list)
    dry: float = 0.0  # validate_record alone over the N payloads (one pass, informative)
    singles: int = 0
    single_ours: float | None = None
    single_bare: float | None = None

    @property
    def metric(self) -> str:
        return f"forms_validate_create_{count_label(self.n)}_{self.db}"

    def result_line(self) -> str:
        return self.result(self.metric, TARGET, 4)


def fresh_setup(target: Target, customer_ids: list[int] | None) -> tuple[Database, list[int]]:
    db = target.fresh()
    ids = setup_forms(db)
    if customer_ids is not None:
        assert ids == customer_ids, "customer ids differ between fresh databases"
    return db, ids


def run_target(target: Target, args: argparse.Namespace) -> Result:
    n, batch = args.records, args.batch
    print(f"\n== {target.name}: validate + create {n} records in batches of {batch} "
          f"(x{args.repeat} each side) ==")
    db, customer_ids = fresh_setup(target, None)
    pub = loan_form(db)
    db.dispose()
    payloads = loan_payloads(n, customer_ids)
    t0 = time.perf_counter()
    docs = final_documents(pub, payloads)
    dry = time.perf_counter() - t0
    print(f"  [{target.name}] {len(payloads)} payloads; validator dry pass (untimed, makes "
          f"the baseline's documents) {dry:.2f} s")
    res = Result(target.name, n, dry=dry)
    checked = False
    for r in range(args.repeat):
        order = ("ours", "baseline") if r % 2 == 0 else ("baseline", "ours")
        for side in order:
            db, _ = fresh_setup(target, customer_ids)
            try:
                first_id = scalar(db, select(func.max(Record.id))) + 1
                if side == "ours":
                    elapsed = create_ours(db, payloads, batch)
                    if not checked:
                        t1 = time.perf_counter()
                        check_ours(db, payloads, docs, first_id)
                        checked = True
                        print(f"  [{target.name}] correctness checked "
                              f"({time.perf_counter() - t1:.1f} s): {n} records, numbers "
                              f"1..{n} gap-free, documents = validator's, formula/links/"
                              "lookup of a sample")
                    res.ours.append(elapsed)
                else:
                    elapsed = create_bare(db, docs, batch, pub.version)
                    check_bare(db, n)
                    res.baseline.append(elapsed)
                print(f"  [{target.name}] run {r + 1}/{args.repeat} {side:8s} "
                      f"{elapsed:8.3f} s  {n / elapsed:10,.0f} records/s")
            finally:
                db.dispose()
    if args.singles:
        k = min(args.singles, n)
        for side in ("ours", "baseline"):
            db, _ = fresh_setup(target, customer_ids)
            try:
                if side == "ours":
                    res.single_ours = singles_ours(db, payloads[:k])
                else:
                    res.single_bare = singles_bare(db, docs[:k], pub.version)
            finally:
                db.dispose()
        res.singles = k
        print(f"  [{target.name}] single records x{k}: records.create "
              f"{res.single_ours * 1e3 / k:.2f} ms each, create_record "
              f"{res.single_bare * 1e3 / k:.2f} ms each")
    if args.profile:
        db, _ = fresh_setup(target, customer_ids)
        try:
            profile_call(f"create_many x{n} (batches of {batch}) on {target.name}",
                         lambda: create_ours(db, payloads, batch))
        finally:
            db.dispose()
        db, _ = fresh_setup(target, customer_ids)
        try:
            profile_call(f"create_records x{n} (batches of {batch}) on {target.name}",
                         lambda: create_bare(db, docs, batch, pub.version))
        finally:
            db.dispose()
    target.drop()
    return res


def print_report(results: list[Result]) -> None:
    print()
    for r in results:
        print(r.result_line())
    print()
    head = (f"{'metric':40s} {'db':10s} {'ours':>9s} {'rec/s':>9s} {'baseline':>9s} "
            f"{'rec/s':>9s} {'ratio':>6s} target  ok")
    print(head)
    print("-" * len(head))
    for r in results:
        ok = "yes" if r.ratio <= TARGET else "NO"
        print(f"{r.metric:40s} {r.db:10s} {r.ours_med:7.2f} s {r.n / r.ours_med:9,.0f} "
              f"{r.base_med:7.2f} s {r.n / r.base_med:9,.0f} {r.ratio:6.2f} {TARGET:6.1f}  {ok}")
        label = "  └ validate_record alone (info)"
        print(f"{label:40s} {r.db:10s} {r.dry:7.2f} s {r.n / r.dry:9,.0f} {'':9s} {'':9s} "
              f"{r.dry / r.base_med:6.2f}")
        if r.singles and r.single_ours and r.single_bare:
            label = f"  └ single create x{r.singles} (info)"
            print(f"{label:40s} {r.db:10s} {r.single_ours:7.2f} s "
                  f"{r.singles / r.single_ours:9,.0f} {r.single_bare:7.2f} s "
                  f"{r.singles / r.single_bare:9,.0f} {r.single_ours / r.single_bare:6.2f}")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--db", choices=("sqlite", "postgresql", "both"), default="both")
    parser.add_argument("--records", type=int, default=100_000, metavar="N",
                        help="records to validate and create (default 100,000)")
    parser.add_argument("--batch", type=int, default=1000, metavar="N",
                        help="records per create_many call and transaction (default 1,000)")
    parser.add_argument("--repeat", type=int, default=2,
                        help="runs per side (median reported; default 2)")
    parser.add_argument("--singles", type=int, default=1000, metavar="N",
                        help="also time N single-record creates per side, each its own "
                             "transaction (informative; 0 to skip; default 1,000)")
    parser.add_argument("--pg-url", default=os.environ.get("QIAO_BENCH_PG_URL", DEFAULT_PG_URL),
                        help="PostgreSQL server URL (env QIAO_BENCH_PG_URL); the benchmark "
                             f"creates and drops its own database {SCRATCH_DB!r} there")
    parser.add_argument("--profile", action="store_true",
                        help="also cProfile one run of each side per database")
    parser.add_argument("--quick", action="store_true",
                        help="run_all's size: 20,000 records, one run per side, 200 singles")
    args = parser.parse_args(argv)
    if args.quick:
        args.records, args.repeat, args.singles = 20_000, 1, 200
    if args.records < 1 or args.batch < 1 or args.repeat < 1:
        parser.error("--records, --batch and --repeat must be at least 1")
    kinds.register_builtins()
    expressions.register_builtins()
    fieldtypes.register_builtins()

    targets = choose_targets(args.db, args.pg_url, SCRATCH_DB)
    results: list[Result] = []
    try:
        for target in targets:
            results.append(run_target(target, args))
    finally:
        for target in targets:
            target.close()
    print_report(results)


if __name__ == "__main__":
    main()
