"""Benchmark of the report engine: a 2-dimension, 3-measure report over 1,000,000 records
against the same aggregate in hand-written SQL over a typed table, on SQLite and
PostgreSQL.

``reports_2d3m_<N>_<db>``: the report "放款 by region and month" over N loan records
(default 1,000,000; ``--quick``: 100,000) of a published form, filtered to one year
(``signed_date`` between 2024-01-01 and 2024-12-31, a third of the rows), grouped by
``region`` (30 values) and ``signed_date`` bucketed by month (12 in the year: 360
groups), measuring ``sum(amount)`` (money, exact to the fen), ``count`` and
``avg(rate)``.

* ours: ``engine_reports.frames.form_frame(session, pub)`` (one primary-key SELECT: is
  the form's typed projection current? → it is) and ``engine_reports.running.execute(
  session, spec, frame, spec.filters)`` — compile the spec and the filter, run the one
  aggregate statement over the projection, turn fen into money text and numerics into
  numbers — as ``running.run`` does for an administrator (whose row scope is "all", so
  the WHERE clause is the report's filter alone), each run in its own ``Database.read()``.
* baseline: the same aggregate written by hand over ``bench_loans``, a typed table holding
  the same rows (the SQL is in ``BASELINE_SQL``), run with ``session.execute(text(…))
  .all()`` in its own ``Database.read()``.

What a developer would write for ``bench_loans``: real columns, ``signed_date`` a
``DATE`` on PostgreSQL and ISO ``TEXT`` on SQLite (SQLite has no date type; ISO text is
its documented convention), the month ``date_trunc('month', signed_date)`` on PostgreSQL
and ``strftime('%Y-%m', signed_date)`` on SQLite, ``rate`` ``NUMERIC(5,2)`` / ``REAL``.
``amount`` is ``BIGINT`` fen on both: the one exact choice on SQLite (no decimal type; a
``REAL`` sum drifts off the fen) and on PostgreSQL the faster one (``sum(bigint)`` beats
``sum(numeric(14,2))``), so the baseline is not flattered — it is the same integer layout
the projection keeps. Neither table has an index besides its primary key (a third of
the rows qualify: both databases scan the table either way). The table also has the
``created_at``/``updated_at`` a real one would. Both tables are ANALYZEd (PostgreSQL:
VACUUM ANALYZE) after the load.

Extra, informational: ``reports_json_path_<N>_<db>``: the same ``execute`` over the
JSON documents (the frame ``form_frame`` builds when the form has no current projection),
against the same baseline; and in the table, the engine's statement alone on the same
session (the SQL share of "ours"), the whole ``running.run`` for an in-memory
administrator (permissions, field checks, labels) and, on PostgreSQL, ours' statement
after ``SET LOCAL work_mem = '64MB'`` (with the default 4 MB the planner sorts the
filtered rows for a GroupAggregate, spilling to disk, where the baseline gets a
HashAggregate: see the plans printed at the end).

Set-up (timed and printed, not part of any metric): a migrated database, app ``bench``,
form ``loan`` (12 fields: text, select, date, money, number, user) published through
``engine_forms``, then N records through ``platform_core.store.create_records`` (1,000
per call, 50 calls per transaction, each record with its ``record.created`` outbox
event) *before* the projection exists, the same rows into ``bench_loans`` (executemany
on SQLite, COPY on PostgreSQL), then ``ensure_projection`` (its backfill is one
INSERT … SELECT) and ``engine_reports.service.save_report``. The loaded database is kept
for the next run (SQLite: ``<tmp>/qiao_bench_reports/reports_<N>.db``; PostgreSQL: the
scratch database ``qiao_bench_reports_<N>``) and reused when its bookkeeping says it holds
N rows of this generator (``--fresh`` reloads, ``--drop`` removes it at the end).

Checked on every run (not timed): the row counts of records, projection and table, and
every group of ours, of the JSON path and of the baseline equal to the same aggregate
computed in Python while the deterministic generator replays the rows (exact fen sums,
counts, the average rate to 1e-9).

Usage::

    python bench/reports.py [--db sqlite|postgresql|both] [--records N] [--quick]
                            [--repeat R] [--json-repeat R] [--pg-url URL]
                            [--fresh] [--drop] [--profile]

Prints one ``RESULT metric=… ours=… baseline=… ratio=… target=2.5`` line per database
(best of ``--repeat`` runs after a warm-up, seconds; ratio = ours / baseline), the JSON
path's line (``target=-``), a table of absolute times (best and median) and the plans
(EXPLAIN QUERY PLAN; PostgreSQL: EXPLAIN ANALYZE) of both statements. No assertions on
time. ``--profile`` adds a cProfile listing of ours.
"""

from __future__ import annotations

import argparse
import gc
import math
import os
import random
import statistics
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

from sqlalchemy import func, select, text
from targets import (
    DEFAULT_PG_URL,
    PostgresTarget,
    SqliteTarget,
    Target,
    choose_targets,
    count_label,
    profile_call,
)

from engine_forms import fieldtypes, forms, publishing
from engine_forms.forms import projected_fields
from engine_reports import running, service
from engine_reports.frames import Frame, form_frame, record_columns, report_fields
from engine_reports.running import Viewer, execute
from engine_reports.spec import ReportSpec, parse_report
from platform_core import expressions
from platform_core.db import Database
from platform_core.migrate import upgrade
from platform_core.models import Record
from platform_core.security.permissions import BUILTIN_ROLES
from platform_core.security.principal import Principal
from platform_core.store import Actor, create_records, kinds
from platform_core.store.projection import ensure_projection, projection_of

SCRATCH_DB = "qiao_bench_reports"  # + "_<N>": one cached database per size
CACHE_DIR = Path(tempfile.gettempdir()) / "qiao_bench_reports"
TARGET = 2.5
QUICK_RECORDS = 100_000
APP, FORM, REPORT = "bench", "loan", "region_month"
SYSTEM = Actor(user_id=None, name="bench")
BATCH = 1000  # records per create_records call
TX_BATCHES = 50  # calls per transaction
SEED = 20240601
DATA_VERSION = 1  # bump when the generator or the tables change: cached databases reload
FIRST_DAY, N_DAYS = date(2023, 1, 1), 1096  # 2023-01-01 … 2025-12-31
YEAR = (date(2024, 1, 1), date(2024, 12, 31))
WORK_MEM = "64MB"  # PostgreSQL, informational: ours' statement with more sort/hash memory

REGIONS = [("beijing", "北京"), ("shanghai", "上海"), ("tianjin", "天津"),
           ("chongqing", "重庆"), ("guangzhou", "广州"), ("shenzhen", "深圳"),
           ("hangzhou", "杭州"), ("nanjing", "南京"), ("suzhou", "苏州"), ("wuhan", "武汉"),
           ("chengdu", "成都"), ("xian", "西安"), ("changsha", "长沙"), ("zhengzhou", "郑州"),
           ("jinan", "济南"), ("qingdao", "青岛"), ("dalian", "大连"), ("shenyang", "沈阳"),
           ("harbin", "哈尔滨"), ("changchun", "长春"), ("fuzhou", "福州"), ("xiamen", "厦门"),
           ("hefei", "合肥"), ("nanchang", "南昌"), ("kunming", "昆明"), ("guiyang", "贵阳"),
           ("nanning", "南宁"), ("haikou", "海口"), ("taiyuan", "太原"),
           ("shijiazhuang", "石家庄")]
PRODUCTS = ["经营贷", "消费贷", "房抵贷", "车抵贷", "信用贷", "供应链贷", "票据贴现",
            "农户贷", "科技贷", "助学贷", "公积金贷", "装修贷"]
CHANNELS = [("branch", "网点"), ("app", "手机银行"), ("agent", "合作机构"),
            ("phone", "电话"), ("web", "网银")]
STATUSES = [("active", "正常"), ("overdue", "逾期"), ("settled", "结清"),
            ("restructured", "重组"), ("written_off", "核销")]
TERMS = [6, 12, 24, 36, 60]
NOTES = ["材料齐全", "客户资质良好", "需补充收入证明", "抵押物已评估", "担保人已面签", ""]
OWNERS = 200


def _options(pairs: list[tuple[str, str]]) -> dict[str, Any]:
    return {"options": [{"value": v, "label": label} for v, label in pairs]}


LOAN_SPEC: dict[str, Any] = {
    "key": FORM, "name": "贷款台账", "title_field": "contract_no",
    "fields": [
        {"key": "contract_no", "label": "合同编号", "type": "text", "required": True},
        {"key": "customer", "label": "客户名称", "type": "text", "required": True},
        {"key": "region", "label": "区域", "type": "select", **_options(REGIONS)},
        {"key": "product", "label": "产品", "type": "text"},
        {"key": "channel", "label": "渠道", "type": "select", **_options(CHANNELS)},
        {"key": "signed_date", "label": "签约日期", "type": "date"},
        {"key": "amount", "label": "放款金额", "type": "money"},
        {"key": "rate", "label": "年利率", "type": "number", "decimals": 2},
        {"key": "term_months", "label": "期限(月)", "type": "number"},
        {"key": "owner", "label": "客户经理", "type": "user"},
        {"key": "status", "label": "状态", "type": "select", **_options(STATUSES)},
        {"key": "note", "label": "备注", "type": "text"},
    ]}

REPORT_SPEC: dict[str, Any] = {
    "key": REPORT, "name": "区域月度放款", "source": {"form": FORM},
    "filters": {"field": "signed_date", "op": "between",
                "value": [YEAR[0].isoformat(), YEAR[1].isoformat()]},
    "dimensions": [{"field": "region"}, {"field": "signed_date", "bucket": "month"}],
    "measures": [{"agg": "sum", "field": "amount", "label": "放款金额"},
                 {"agg": "count", "label": "笔数"},
                 {"agg": "avg", "field": "rate", "label": "平均利率"}],
    "chart": {"type": "table"}}

BASELINE_DDL = {
    "sqlite": """CREATE TABLE bench_loans (
        id INTEGER PRIMARY KEY, contract_no TEXT NOT NULL, customer TEXT NOT NULL,
        region TEXT, product TEXT, channel TEXT, signed_date TEXT, amount_fen INTEGER,
        rate REAL, term_months INTEGER, owner_id INTEGER, status TEXT, note TEXT,
        created_at TEXT NOT NULL, updated_at TEXT NOT NULL)""",
    "postgresql": """CREATE TABLE bench_loans (
        id BIGINT PRIMARY KEY, contract_no TEXT NOT NULL, customer TEXT NOT NULL,
        region TEXT, product TEXT, channel TEXT, signed_date DATE, amount_fen BIGINT,
        rate NUMERIC(5,2), term_months INTEGER, owner_id BIGINT, status TEXT, note TEXT,
        created_at TIMESTAMPTZ NOT NULL, updated_at TIMESTAMPTZ NOT NULL)"""}
BASELINE_COLUMNS = ("id", "contract_no", "customer", "region", "product", "channel",
                    "signed_date", "amount_fen", "rate", "term_months", "owner_id", "status",
                    "note", "created_at", "updated_at")
BASELINE_SQL = {
    "sqlite": """SELECT region, strftime('%Y-%m', signed_date) AS month,
                        SUM(amount_fen), COUNT(*), AVG(rate)
                 FROM bench_loans WHERE signed_date BETWEEN :start AND :end
                 GROUP BY region, month ORDER BY region, month""",
    "postgresql": """SELECT region, date_trunc('month', signed_date) AS month,
                            SUM(amount_fen), COUNT(*), AVG(rate)
                     FROM bench_loans WHERE signed_date BETWEEN :start AND :end
                     GROUP BY region, month ORDER BY region, month"""}
META_DDL = """CREATE TABLE bench_reports_meta (records INTEGER NOT NULL,
    version INTEGER NOT NULL, load_records_s REAL, load_table_s REAL, backfill_s REAL,
    analyze_s REAL)"""


# --------------------------------------------------------------------------- the rows


def loans(n: int) -> Iterator[dict[str, Any]]:
    """The N loan documents, as the form engine stores them (money as text, ISO dates,
    select values, user ids); the same every time (a seeded generator)."""
    rng = random.Random(SEED)
    days = [(FIRST_DAY + timedelta(days=d)).isoformat() for d in range(N_DAYS)]
    regions = [v for v, _ in REGIONS]
    channels = [v for v, _ in CHANNELS]
    statuses = [v for v, _ in STATUSES]
    rand, randrange = rng.random, rng.randrange
    for i in range(n):
        fen = randrange(100_000, 500_000_000)  # 1,000.00 … 5,000,000.00 yuan
        doc = {"contract_no": f"HT{i:08d}", "customer": f"客户{randrange(300_000):06d}",
               "region": regions[randrange(30)], "product": PRODUCTS[randrange(12)],
               "channel": channels[randrange(5)], "signed_date": days[randrange(N_DAYS)],
               "amount": f"{fen // 100}.{fen % 100:02d}",
               "term_months": TERMS[randrange(5)], "owner": randrange(1, OWNERS + 1),
               "status": statuses[randrange(5)], "note": NOTES[randrange(6)]}
        if rand() >= 0.005:  # one in 200 has no rate yet
            doc["rate"] = randrange(300, 1200) / 100
        yield doc


def fen_of(amount: str) -> int:
    whole, _, cents = amount.partition(".")
    return int(whole) * 100 + int(cents)


@dataclass
class Group:
    fen: int = 0
    count: int = 0
    rate_c: int = 0  # the rates in hundredths (exact)
    rated: int = 0


def expected(n: int) -> dict[tuple[str, str], Group]:
    """The report computed in Python over the generator's rows: (region, 'YYYY-MM') →
    exact sums."""
    start, end = YEAR[0].isoformat(), YEAR[1].isoformat()
    groups: dict[tuple[str, str], Group] = {}
    for doc in loans(n):
        day = doc["signed_date"]
        if not start <= day <= end:
            continue
        g = groups.get((doc["region"], day[:7]))
        if g is None:
            g = groups[(doc["region"], day[:7])] = Group()
        g.fen += fen_of(doc["amount"])
        g.count += 1
        if "rate" in doc:
            g.rate_c += round(doc["rate"] * 100)
            g.rated += 1
    return groups


# --------------------------------------------------------------------------- the database


@dataclass
class Loaded:
    db: Database
    pub: Any
    spec: ReportSpec
    reused: bool
    records_s: float
    table_s: float
    backfill_s: float
    analyze_s: float


def open_cached(target: Target, n: int) -> Database | None:
    """The cached database of this size if it holds a complete load of this generator."""
    if isinstance(target, PostgresTarget):
        with target.admin.connect() as conn:
            exists = conn.execute(text("SELECT 1 FROM pg_database WHERE datname = :n"),
                                  {"n": target.scratch}).first() is not None
        url = target.url.render_as_string(hide_password=False)
    else:
        url = f"sqlite:///{target.path}"
        exists = target.path.exists()
    if not exists:
        return None
    db = Database.from_url(url)
    with db.read() as s:
        try:
            row = s.execute(text("SELECT records, version FROM bench_reports_meta")).first()
        except Exception:  # noqa: BLE001 - no bookkeeping: an interrupted load
            row = None
    if row is not None and tuple(row) == (n, DATA_VERSION):
        return db
    db.dispose()
    return None


def sqlite_path(n: int) -> Path:
    return CACHE_DIR / f"reports_{count_label(n)}.db"


def wipe(target: Target) -> Database:
    """A new, empty database at the target's place."""
    if isinstance(target, PostgresTarget):
        return Database.from_url(target.fresh_url())
    target.drop()
    return Database.from_url(f"sqlite:///{target.path}")


def baseline_row(rid: int, doc: dict[str, Any], pg: bool, now: Any) -> tuple[Any, ...]:
    rate = doc.get("rate")
    return (rid, doc["contract_no"], doc["customer"], doc["region"], doc["product"],
            doc["channel"],
            date.fromisoformat(doc["signed_date"]) if pg else doc["signed_date"],
            fen_of(doc["amount"]),
            (None if rate is None else Decimal(str(rate))) if pg else rate,
            doc["term_months"], doc["owner"], doc["status"], doc["note"], now, now)


def insert_baseline(s: Any, rows: list[tuple[Any, ...]], pg: bool) -> None:
    dbapi = s.connection().connection.dbapi_connection
    cols = ", ".join(BASELINE_COLUMNS)
    if pg:
        with dbapi.cursor() as cur, cur.copy(f"COPY bench_loans ({cols}) FROM STDIN") as cp:
            for row in rows:
                cp.write_row(row)
    else:
        marks = ", ".join("?" * len(BASELINE_COLUMNS))
        dbapi.executemany(f"INSERT INTO bench_loans ({cols}) VALUES ({marks})", rows)


def load(target: Target, n: int, db: Database) -> Loaded:
    """App, form, N records, the typed table, the projection, the report (each timed)."""
    pg = target.name == "postgresql"
    upgrade(db.engine)
    with db.write() as s:
        forms.create_app(s, key=APP, name="报表基准")
        forms.create_form(s, app=APP, raw=LOAN_SPEC)
        publishing.publish(s, app=APP, key=FORM, actor=SYSTEM)
        s.execute(text(BASELINE_DDL[target.name]))
        assert projection_of(s, projected_fields(forms.published(s, APP, FORM))) is None
    records_s = table_s = 0.0
    started = time.perf_counter()
    docs = loans(n)
    done, step = 0, max(n // 10, 1)
    now_pg, now_text = datetime.now(UTC), datetime.now(UTC).isoformat()
    while done < n:
        chunk = [next(docs) for _ in range(min(BATCH * TX_BATCHES, n - done))]
        t0 = time.perf_counter()
        ids: list[int] = []
        with db.write() as s:
            for i in range(0, len(chunk), BATCH):
                ids += create_records(s, app=APP, form=FORM, items=chunk[i:i + BATCH],
                                      actor=SYSTEM)
        t1 = time.perf_counter()
        rows = [baseline_row(rid, doc, pg, now_pg if pg else now_text)
                for rid, doc in zip(ids, chunk, strict=True)]
        with db.write() as s:
            insert_baseline(s, rows, pg)
        t2 = time.perf_counter()
        records_s, table_s = records_s + t1 - t0, table_s + t2 - t1
        before, done = done, done + len(chunk)
        if done // step != before // step or done == n:
            print(f"  [{target.name}] loaded {done:>9,} / {n:,}: create_records "
                  f"{done / records_s:7.0f} rec/s, bench_loans {done / table_s:7.0f} rows/s "
                  f"({time.perf_counter() - started:.0f} s)", flush=True)
    t0 = time.perf_counter()
    with db.write() as s:
        pub = forms.published(s, APP, FORM)
        ensure_projection(s, projected_fields(pub))
    backfill_s = time.perf_counter() - t0
    print(f"  [{target.name}] ensure_projection (backfill of {n:,} rows): {backfill_s:.1f} s",
          flush=True)
    with db.write() as s:
        service.save_report(s, app=APP, raw=REPORT_SPEC, actor_id=None)
    t0 = time.perf_counter()
    analyze(db, pg)
    analyze_s = time.perf_counter() - t0
    with db.write() as s:
        s.execute(text(META_DDL))
        s.execute(text("INSERT INTO bench_reports_meta VALUES (:n, :v, :r, :t, :b, :a)"),
                  {"n": n, "v": DATA_VERSION, "r": records_s, "t": table_s, "b": backfill_s,
                   "a": analyze_s})
    return Loaded(db, None, parse_report(REPORT_SPEC), False, records_s, table_s, backfill_s,
                  analyze_s)


def analyze(db: Database, pg: bool) -> None:
    """Statistics for both tables (PostgreSQL: VACUUM too, so hint bits and the
    visibility map are set as autovacuum would leave them); SQLite: the WAL folded in."""
    if pg:
        with db.engine.connect() as conn:
            conn = conn.execution_options(isolation_level="AUTOCOMMIT")
            conn.exec_driver_sql("VACUUM ANALYZE")
        return
    with db.engine.connect() as conn:
        conn.exec_driver_sql("ANALYZE")
        conn.commit()
        conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")


def prepare(target: Target, n: int, fresh: bool) -> Loaded:
    if isinstance(target, SqliteTarget):
        target.path = sqlite_path(n)
        target.path.parent.mkdir(parents=True, exist_ok=True)
    db = None if fresh else open_cached(target, n)
    if db is None:
        db = wipe(target)
        print(f"  [{target.name}] loading {n:,} records into {where(target)}", flush=True)
        loaded = load(target, n, db)
    else:
        upgrade(db.engine)
        with db.read() as s:
            row = s.execute(text("SELECT load_records_s, load_table_s, backfill_s, analyze_s "
                                 "FROM bench_reports_meta")).one()
        loaded = Loaded(db, None, parse_report(REPORT_SPEC), True, *row)
        print(f"  [{target.name}] reusing the {n:,} records loaded earlier in "
              f"{where(target)} (--fresh reloads)", flush=True)
        with db.write() as s:  # a changed projection layout is rebuilt (and timed)
            pub = forms.published(s, APP, FORM)
            if projection_of(s, projected_fields(pub)) is None:
                t0 = time.perf_counter()
                ensure_projection(s, projected_fields(pub))
                loaded.backfill_s = time.perf_counter() - t0
                print(f"  [{target.name}] projection rebuilt: {loaded.backfill_s:.1f} s")
    with loaded.db.read() as s:
        loaded.pub = forms.published(s, APP, FORM)
    return loaded


def where(target: Target) -> str:
    if isinstance(target, PostgresTarget):
        return f"database {target.scratch!r}"
    return str(getattr(target, "path", "?"))


# --------------------------------------------------------------------------- the sides


def json_frame(pub: Any) -> Frame:
    """The frame ``form_frame`` builds when the form has no current projection."""
    fields = report_fields(pub)
    cond = [Record.app == pub.app, Record.form == pub.spec.key, Record.deleted_at.is_(None)]
    return Frame(Record.__table__, cond, fields, record_columns(pub), scope_fields=fields)


Rows = list[tuple[str, str, int, int, float | None]]  # region, month, fen, count, avg rate


def engine_rows(keys: list[list[Any]], values: list[list[Any]]) -> Rows:
    return [(k[0], k[1], fen_of(v[0]), v[1], None if v[2] is None else float(v[2]))
            for k, v in zip(keys, values, strict=True)]


def month_text(value: Any) -> str:
    return value if isinstance(value, str) else f"{value.year:04d}-{value.month:02d}"


def baseline_params(dialect: str) -> dict[str, Any]:
    if dialect == "postgresql":
        return {"start": YEAR[0], "end": YEAR[1]}
    return {"start": YEAR[0].isoformat(), "end": YEAR[1].isoformat()}


class Sides:
    """One run of each side (and of the informational variants) on a loaded database."""

    def __init__(self, loaded: Loaded):
        self.db, self.pub, self.spec = loaded.db, loaded.pub, loaded.spec
        self.dialect = self.db.dialect
        self.sql = text(BASELINE_SQL[self.dialect])
        self.params = baseline_params(self.dialect)
        admin = BUILTIN_ROLES["admin"][2]
        self.viewer = Viewer(Principal(
            user_id=1, username="admin", display_name="管理员", department_id=None,
            roles=("admin",), role_perms=(admin,), via="session"))

    def ours(self) -> Any:
        with self.db.read() as s:
            frame = form_frame(s, self.pub)
            assert frame.money_fen, "the report does not read the projection"
            return execute(s, self.spec, frame, self.spec.filters)

    def json(self) -> Any:
        with self.db.read() as s:
            return execute(s, self.spec, json_frame(self.pub), self.spec.filters)

    def baseline(self) -> Any:
        with self.db.read() as s:
            return s.execute(self.sql, self.params).all()

    def statement(self) -> Any:
        """Ours' compiled statement, for running it alone and for EXPLAIN."""
        from engine_reports.compiler import Compiler
        from platform_core.store.query import compile_filter

        with self.db.read() as s:
            frame = form_frame(s, self.pub)
            cond = compile_filter(self.spec.filters, frame.fields, self.dialect)
            return Compiler(self.spec, frame, self.dialect).plan(cond).statement

    def run_full(self) -> Any:
        with self.db.read() as s:
            return running.run(s, APP, self.spec, self.viewer, {})


def check(loaded: Loaded, sides: Sides, n: int) -> str:
    """Counts, and every group of every side equal to the Python aggregate."""
    with loaded.db.read() as s:
        records = s.execute(select(func.count()).select_from(Record).where(
            Record.app == APP, Record.form == FORM, Record.deleted_at.is_(None))).scalar_one()
        proj = projection_of(s, projected_fields(loaded.pub))
        assert proj is not None, "no current projection"
        projected = s.execute(select(func.count()).select_from(proj.table)).scalar_one()
        table = s.execute(text("SELECT COUNT(*) FROM bench_loans")).scalar_one()
    assert (records, projected, table) == (n, n, n), (records, projected, table)
    want = expected(n)
    order = sorted(want)
    _plan, keys, values, truncated = sides.ours()
    assert not truncated
    ours = engine_rows(keys, values)
    _plan, keys, values, truncated = sides.json()
    assert not truncated
    json_rows = engine_rows(keys, values)
    base = [(r[0], month_text(r[1]), int(r[2]), int(r[3]), None if r[4] is None
             else float(r[4])) for r in sides.baseline()]
    full = sides.run_full()
    assert full.engine == "projection" and full.keys == keys, "run() differs from execute()"
    for label, rows in (("ours", ours), ("json path", json_rows), ("baseline", base)):
        assert [(r[0], r[1]) for r in rows] == order, f"{label}: groups or their order differ"
        for region, month, fen, count, avg in rows:
            g = want[(region, month)]
            assert (fen, count) == (g.fen, g.count), (label, region, month, fen, count, g)
            exact = g.rate_c / g.rated / 100
            assert avg is not None and math.isclose(avg, exact, rel_tol=1e-9), (
                label, region, month, avg, exact)
    total = sum(g.count for g in want.values())
    money = sum(g.fen for g in want.values())
    return (f"{n:,} records = {n:,} projected = {n:,} typed rows; {len(order)} groups, "
            f"{total:,} rows in {YEAR[0].year}, ¥{Decimal(money).scaleb(-2):,} — ours, the "
            "JSON path and the baseline equal the Python aggregate (exact fen, counts, "
            "avg rate to 1e-9)")


# --------------------------------------------------------------------------- timing


@dataclass
class Timing:
    samples: list[float] = field(default_factory=list)

    @property
    def best(self) -> float:
        return min(self.samples)

    @property
    def median(self) -> float:
        return statistics.median(self.samples)


def once(fn: Callable[[], Any]) -> float:
    gc.collect()
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


@dataclass
class Result:
    db: str
    n: int
    loaded: Loaded
    ours: Timing = field(default_factory=Timing)
    base: Timing = field(default_factory=Timing)
    json: Timing = field(default_factory=Timing)
    sql: Timing = field(default_factory=Timing)
    full: Timing = field(default_factory=Timing)
    sql_wm: Timing = field(default_factory=Timing)  # PostgreSQL: with more work_mem
    checked: str = ""
    dash: Timing = field(default_factory=Timing)  # dashboard_data_parallel, 20 widgets
    dash_sum: Timing = field(default_factory=Timing)  # its widgets one by one, summed

    @property
    def dash_p95(self) -> float:
        return p95(self.dash.samples)

    @property
    def label(self) -> str:
        return f"{count_label(self.n)}_{self.db}"

    def lines(self) -> list[str]:
        b = self.base.best
        return [f"RESULT metric=reports_2d3m_{self.label} ours={self.ours.best:.4f} "
                f"baseline={b:.4f} ratio={self.ours.best / b:.3f} target={TARGET}",
                f"RESULT metric=reports_json_path_{self.label} ours={self.json.best:.4f} "
                f"baseline={b:.4f} ratio={self.json.best / b:.3f} target=-"] + ([
                f"RESULT metric=dashboard_20_widgets_{self.label} ours={self.dash_p95:.4f} "
                f"baseline={statistics.median(self.dash_sum.samples):.4f} "
                f"ratio={self.dash_p95 / statistics.median(self.dash_sum.samples):.3f} "
                f"target={DASH_TARGET[self.db]}"] if self.dash.samples else [])


def measure(res: Result, sides: Sides, repeat: int, json_repeat: int) -> None:
    """A warm-up of each, then ``repeat`` rounds alternating the order of ours and the
    baseline (ABBA), then the informational variants."""
    stmt = sides.statement()

    def sql_alone() -> None:
        with sides.db.read() as s:
            s.execute(stmt).all()

    def sql_more_memory() -> None:
        with sides.db.read() as s:
            s.execute(text(f"SET LOCAL work_mem = '{WORK_MEM}'"))
            s.execute(stmt).all()

    pg = sides.dialect == "postgresql"
    for fn in (sides.ours, sides.baseline, sql_alone, sides.run_full):
        fn()
    for r in range(repeat):
        pair = [(sides.ours, res.ours), (sides.baseline, res.base)]
        for fn, out in pair if r % 2 == 0 else pair[::-1]:
            out.samples.append(once(fn))
        print(f"  [{res.db}] round {r + 1}/{repeat}: ours {res.ours.samples[-1]:.3f} s, "
              f"baseline {res.base.samples[-1]:.3f} s", flush=True)
    for _ in range(repeat):
        res.sql.samples.append(once(sql_alone))
        res.full.samples.append(once(sides.run_full))
        if pg:
            res.sql_wm.samples.append(once(sql_more_memory))
    sides.json()
    for _ in range(json_repeat):
        res.json.samples.append(once(sides.json))
    print(f"  [{res.db}] JSON path: " + ", ".join(f"{t:.3f}" for t in res.json.samples)
          + " s", flush=True)


def explain(sides: Sides) -> None:
    """The plans of ours and the baseline (PostgreSQL: EXPLAIN ANALYZE, one run each)."""
    pg = sides.dialect == "postgresql"
    stmt = sides.statement()
    with sides.db.read() as s:
        conn = s.connection()
        compiled = stmt.compile(dialect=conn.dialect)
        sql = compiled.string
        prefix = "EXPLAIN (ANALYZE, BUFFERS) " if pg else "EXPLAIN QUERY PLAN "
        if pg:
            ours = conn.exec_driver_sql(prefix + sql, dict(compiled.params)).all()
        else:
            params = tuple(compiled.params[k] for k in compiled.positiontup or ())
            ours = conn.exec_driver_sql(prefix + sql, params).all()
        base = s.execute(text(prefix + BASELINE_SQL[sides.dialect]), sides.params).all()
    print(f"\n---- {sides.dialect}: ours' statement ----\n{sql}\n  params {compiled.params}")
    for label, rows in (("ours", ours), ("baseline", base)):
        print(f"---- {sides.dialect}: plan of {label} ----")
        for row in rows:
            print("  " + str(row[0] if pg else row[-1]))


# --------------------------------------------------------------------------- running


def p95(samples: list[float]) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, math.ceil(0.95 * len(ordered)) - 1)]


DASH_TARGET = {"postgresql": 0.5, "sqlite": 1.0}  # p95 seconds of the whole dashboard
DASH_KEY = "bench_dashboard"


def dashboard_reports() -> list[dict[str, Any]]:
    """20 reports over the year's loans: one dimension each way (and region × month),
    with sums, counts, averages — the widgets of a busy management dashboard."""
    dims = [[{"field": "region"}], [{"field": "product"}], [{"field": "channel"}],
            [{"field": "status"}], [{"field": "signed_date", "bucket": "month"}],
            [{"field": "signed_date", "bucket": "quarter"}], [{"field": "term_months"}],
            [{"field": "region"}, {"field": "signed_date", "bucket": "month"}],
            [{"field": "product"}, {"field": "status"}], []]
    measures = [[{"agg": "sum", "field": "amount", "label": "放款金额"},
                 {"agg": "count", "label": "笔数"}],
                [{"agg": "avg", "field": "rate", "label": "平均利率"},
                 {"agg": "max", "field": "amount", "label": "最大单笔"}]]
    out = []
    for i in range(20):
        d, m = dims[i % len(dims)], measures[i // len(dims)]
        out.append({"key": f"dash_w{i:02d}", "name": f"组件 {i}", "source": {"form": FORM},
                    "filters": REPORT_SPEC["filters"], "dimensions": d, "measures": m,
                    "chart": {"type": "table" if d else "kpi"}})
    return out


def save(saver: Any, s: Any, raw: dict[str, Any], key: str) -> None:
    """Create the definition, or save its next version on a database loaded earlier."""
    from platform_core.errors import Conflict

    try:
        with s.begin_nested():
            saver(s, app=APP, raw=raw, actor_id=None)
    except Conflict:
        saver(s, app=APP, raw=raw, actor_id=None, key=key)


def dashboard_bench(res: Result, loaded: Loaded, viewer: Viewer, repeat: int) -> None:
    """The whole 20-widget dashboard through ``service.dashboard_data_parallel`` (one
    connection per widget) against its widgets run one by one in the same round
    (``service.dashboard_widget``, summed); ``repeat`` rounds after a warm-up."""
    db = loaded.db
    reports = dashboard_reports()
    with db.write() as s:
        for raw in reports:
            save(service.save_report, s, raw, raw["key"])
        widgets = [{"report": r["key"], "x": (i % 4) * 3, "y": (i // 4) * 4, "w": 3, "h": 4}
                   for i, r in enumerate(reports)]
        save(service.save_dashboard, s,
             {"key": DASH_KEY, "name": "基准看板", "widgets": widgets}, DASH_KEY)

    def whole() -> None:
        out = service.dashboard_data_parallel(db, APP, DASH_KEY, viewer, {})
        bad = [w for w in out["widgets"] if "error" in w]
        assert len(out["widgets"]) == 20 and not bad, bad[:1]

    def one_by_one() -> float:
        total = 0.0
        for i in range(20):
            def widget(i: int = i) -> None:
                with db.read() as s:
                    w = service.dashboard_widget(s, APP, DASH_KEY, i, viewer, {})
                assert "error" not in w, w
            total += once(widget)
        return total

    whole()
    one_by_one()
    for r in range(repeat):
        res.dash.samples.append(once(whole))
        res.dash_sum.samples.append(one_by_one())
        print(f"  [{res.db}] dashboard round {r + 1}/{repeat}: 20 widgets in parallel "
              f"{res.dash.samples[-1]:.3f} s, one by one {res.dash_sum.samples[-1]:.3f} s",
              flush=True)


def run_target(target: Target, args: argparse.Namespace) -> Result:
    n = args.records
    print(f"\n== {target.name}: the 2-dimension, 3-measure report over {n:,} records ==",
          flush=True)
    loaded = prepare(target, n, args.fresh)
    res = Result(target.name, n, loaded)
    try:
        sides = Sides(loaded)
        t0 = time.perf_counter()
        res.checked = check(loaded, sides, n)
        print(f"  [{target.name}] checked ({time.perf_counter() - t0:.0f} s): {res.checked}",
              flush=True)
        measure(res, sides, args.repeat, args.json_repeat)
        print(f"  [{target.name}] the 20-widget dashboard over {n:,} records "
              f"({args.dash_repeat} rounds)", flush=True)
        dashboard_bench(res, loaded, sides.viewer, args.dash_repeat)
        explain(sides)
        if args.profile:
            profile_call(f"ours × 5 on {target.name}",
                         lambda: [sides.ours() for _ in range(5)])
    finally:
        loaded.db.dispose()
    return res


def print_report(results: list[Result]) -> None:
    print()
    for r in results:
        for line in r.lines():
            print(line)
    print()
    head = (f"{'metric':34s} {'best s':>8s} {'median s':>9s} {'base best':>9s} "
            f"{'base med':>9s} {'ratio':>6s} target  ok")
    print(head)
    print("-" * len(head))
    for r in results:
        b = r.base
        for name, t, target in ((f"reports_2d3m_{r.label}", r.ours, TARGET),
                                (f"reports_json_path_{r.label}", r.json, None)):
            ratio = t.best / b.best
            ok = "-  " if target is None else "yes" if ratio <= target else "NO "
            shown = "-" if target is None else f"{target:.1f}"
            print(f"{name:34s} {t.best:8.3f} {t.median:9.3f} {b.best:9.3f} {b.median:9.3f} "
                  f"{ratio:6.2f} {shown:>6s}  {ok}")
        info = [("  └ ours' SQL alone (info)", r.sql),
                ("  └ running.run, admin (info)", r.full)]
        if r.sql_wm.samples:
            info.append((f"  └ SQL, work_mem {WORK_MEM} (info)", r.sql_wm))
        for name, t in info:
            print(f"{name:34s} {t.best:8.3f} {t.median:9.3f} {'':9s} {'':9s} "
                  f"{t.best / b.best:6.2f}")
    print("(seconds per report run, best and median of the timed runs; ratio = best / "
          "baseline best; 'SQL alone' = ours' compiled statement executed and fetched, "
          "without compiling or converting)")
    print()
    print(f"{'set-up (not timed by any metric)':32s} {'records':>10s} {'bench_loans':>12s} "
          f"{'backfill':>9s} {'analyze':>8s}")
    for r in results:
        ld = r.loaded
        note = " (loaded by an earlier run, reused)" if ld.reused else ""
        print(f"{r.label:32s} {ld.records_s:9.1f}s {ld.table_s:11.1f}s {ld.backfill_s:8.1f}s "
              f"{ld.analyze_s:7.1f}s{note}")
        print(f"{'':32s} {r.n / ld.records_s:7.0f}/s {r.n / ld.table_s:9.0f}/s "
              f"{r.n / ld.backfill_s:6.0f}/s")
    print("(records: create_records, 1,000 per call, 50 calls per transaction, with outbox "
          "events; bench_loans: executemany (SQLite) / COPY (PostgreSQL); backfill: "
          "ensure_projection's INSERT … SELECT; analyze: ANALYZE / VACUUM ANALYZE)")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--db", choices=("sqlite", "postgresql", "both"), default="both")
    parser.add_argument("--records", type=int, default=None, metavar="N",
                        help=f"records (default 1,000,000; {QUICK_RECORDS:,} with --quick)")
    parser.add_argument("--quick", action="store_true",
                        help=f"a smaller run: {QUICK_RECORDS:,} records unless --records "
                             "says otherwise")
    parser.add_argument("--repeat", type=int, default=5, metavar="R",
                        help="timed runs of each side after a warm-up (default 5)")
    parser.add_argument("--json-repeat", type=int, default=3, metavar="R",
                        help="timed runs of the JSON path after a warm-up (default 3)")
    parser.add_argument("--dash-repeat", type=int, default=None, metavar="R",
                        help="timed rounds of the 20-widget dashboard (default 20; 10 with "
                             "--quick); its p95 is the metric")
    parser.add_argument("--pg-url", default=os.environ.get("QIAO_BENCH_PG_URL", DEFAULT_PG_URL),
                        help="PostgreSQL server URL (env QIAO_BENCH_PG_URL); the benchmark "
                             f"keeps its own database {SCRATCH_DB}_<N> there")
    parser.add_argument("--fresh", action="store_true",
                        help="reload even if a loaded database of this size is cached")
    parser.add_argument("--drop", action="store_true",
                        help="remove the cached databases of this size at the end")
    parser.add_argument("--profile", action="store_true", help="cProfile 5 runs of ours")
    args = parser.parse_args(argv)
    if args.records is None:
        args.records = QUICK_RECORDS if args.quick else 1_000_000
    if args.dash_repeat is None:
        args.dash_repeat = 10 if args.quick else 20
    if min(args.records, args.repeat, args.json_repeat, args.dash_repeat) < 1:
        parser.error("--records, --repeat and --json-repeat must be at least 1")
    kinds.register_builtins()
    expressions.register_builtins()
    fieldtypes.register_builtins()

    targets = choose_targets(args.db, args.pg_url, f"{SCRATCH_DB}_{count_label(args.records)}")
    results: list[Result] = []
    started = time.perf_counter()
    try:
        for target in targets:
            results.append(run_target(target, args))
    finally:
        for target in targets:
            if isinstance(target, SqliteTarget):
                if args.drop:
                    target.drop()
                target.path = target.dir / "bench.db"
                target.close()  # its own temporary directory only; the cache stays
            elif isinstance(target, PostgresTarget):
                if args.drop:
                    target.drop()
                target.admin.dispose()
    print_report(results)
    print(f"(total {time.perf_counter() - started:.0f} s)")


if __name__ == "__main__":
    main()
