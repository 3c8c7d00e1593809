"""Benchmark of the generic entity store against hand-written baselines, on SQLite and PostgreSQL.

Two measurements, each against a baseline measured in the same run:

* ``store_bulk_create_<N>``: ``create_records`` of N loan-like records in one
  ``Database.write()`` transaction (records + one outbox event each) vs. a raw DB-API
  ``executemany`` of the same rows — the same JSON documents serialised by the same
  encoder (``platform_core.db.dumps``), the same columns and timestamp encoding — into a
  freshly migrated copy of the same ``records`` table, in one transaction. Both are timed
  from the Python list of dicts to the commit. Every run gets a fresh, migrated database;
  the order of the two sides alternates between repeats; the median is reported.

* ``store_indexed_query_<N>``: an equality filter on an indexed field (``city``) + sort
  ``-id`` + first page of 50 through ``query_records`` (after ``ensure_index``) on N
  records, vs. the same SELECT written by hand on a typed table holding the same rows
  (real columns, index ``(city, id)``), in the same database. Both tables are loaded with
  raw ``executemany``/``COPY`` (loading is not measured) and ANALYZEd. Each query runs
  over 50 city values for several rounds after a warm-up round, the two sides
  interleaved, on the same held connection (ours in a read transaction as an API request
  has, ``Database.read_on``); the median time per query is reported. The
  hand-written query fetches 51 rows, as ``query_records`` does (page + 1 to know
  whether a next page exists).

* ``store_deep_page_<N>``: on the same records with every tenth ``amount`` removed and
  ``ensure_index(amount)``, a page of 50 sorted ``amount`` / ``-amount`` (blanks last):
  the first page, one from the middle of the values, the one where the values end (it
  reads the first blanks with a second SELECT) and one from the middle of the blanks.
  Ours: the slowest of these relative to its sort's first page; baseline: that first
  page (target 2.0). Cursors are placed with an OFFSET query (not measured).

Usage::

    python bench/store.py [--db sqlite|postgresql|both] [--create N] [--query-records N]
                          [--pg-url URL] [--repeat R] [--rounds R] [--profile] [--quick]

``--quick`` shrinks every size (20,000 records created and queried, one create run, two
rounds) for a run of about a minute: a smoke run, not figures to report.

Prints one ``RESULT metric=… ours=… baseline=… ratio=… target=…`` line per metric
(seconds; ratio = ours / baseline) and a table of absolute times. No assertions on time.
"""

from __future__ import annotations

import argparse
import gc
import os
import random
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any

from sqlalchemy import text
from targets import DEFAULT_PG_URL, Target, choose_targets, chunks, count_label, profile_call

from platform_core.db import Database, dumps
from platform_core.models import Record, utcnow
from platform_core.store import SYSTEM, FieldSet, Query, create_records, ensure_index, kinds
from platform_core.store import query_records as store_query_records
from platform_core.store.query import encode_cursor
from platform_core.store.records import MAX_BULK

SCRATCH_DB = "qiao_bench"
TARGET = 2.0
QUERY_TARGET = 1.5  # issue 23: an indexed query within 1.5x a typed table
APP, FORM = "bench", "loan"
FIELDS_KINDS = {"name": "text", "city": "text", "amount": "money", "status": "text",
                "created": "date", "term_months": "number"}

CITIES = [f"{c}{d}" for c in ("北京", "上海", "广州", "深圳", "成都", "杭州", "武汉", "西安",
                              "南京", "重庆")
          for d in ("东", "西", "南", "北", "中", "新", "老", "高", "开", "港")]
STATUSES = ["draft", "submitted", "under_review", "approved", "rejected", "disbursed",
            "repaid", "defaulted"]
TERMS = [6, 12, 24, 36, 60]
DAY0 = date(2021, 1, 1)

RECORD_COLUMNS = ("app", "form", "data", "schema_version", "row_version", "owner_id",
                  "department_id", "created_at", "created_by", "updated_at", "updated_by")
TYPED_COLUMNS = ("id", "name", "city", "amount", "status", "created", "term_months")
TYPED_DDL = {
    "sqlite": """CREATE TABLE bench_loans (
        id INTEGER PRIMARY KEY, name TEXT NOT NULL, city TEXT NOT NULL,
        amount NUMERIC NOT NULL, status TEXT NOT NULL, created DATE NOT NULL,
        term_months INTEGER NOT NULL)""",
    "postgresql": """CREATE TABLE bench_loans (
        id BIGINT PRIMARY KEY, name TEXT NOT NULL, city TEXT NOT NULL,
        amount NUMERIC(14, 2) NOT NULL, status TEXT NOT NULL, created DATE NOT NULL,
        term_months INTEGER NOT NULL)""",
}
TYPED_INDEX = "CREATE INDEX ix_bench_loans_city_id ON bench_loans (city, id)"


# --------------------------------------------------------------------------- data


def loan(rng: random.Random, i: int) -> dict[str, Any]:
    """One loan-like document, as the form engine would store it (canonical strings)."""
    cents = rng.randrange(1_000_000, 500_000_000)
    return {
        "name": f"借款人 {i:07d}",
        "city": rng.choice(CITIES),
        "amount": f"{cents // 100}.{cents % 100:02d}",
        "status": rng.choice(STATUSES),
        "created": (DAY0 + timedelta(days=rng.randrange(1500))).isoformat(),
        "term_months": rng.choice(TERMS),
    }


def loans(n: int, seed: int, start: int = 0) -> list[dict[str, Any]]:
    rng = random.Random(seed)
    return [loan(rng, start + i) for i in range(n)]


def timestamp_param(db: Database) -> Any:
    """``utcnow()`` encoded as SQLAlchemy encodes ``Record.created_at`` for this dialect."""
    dialect = db.engine.dialect
    proc = Record.__table__.c.created_at.type.dialect_impl(dialect).bind_processor(dialect)
    now = utcnow()
    return proc(now) if proc else now


def record_insert_sql(dialect: str) -> str:
    cols = ", ".join(RECORD_COLUMNS)
    if dialect == "postgresql":
        marks = ", ".join("%s::jsonb" if c == "data" else "%s" for c in RECORD_COLUMNS)
    else:
        marks = ", ".join("?" for _ in RECORD_COLUMNS)
    return f"INSERT INTO records ({cols}) VALUES ({marks})"


def record_row(doc: dict[str, Any], ts: Any) -> tuple[Any, ...]:
    """The raw row of one record: the same values ``create_records`` writes (SYSTEM actor)."""
    return (APP, FORM, dumps(doc), 1, 1, None, None, ts, None, ts, None)


def typed_row(rid: int, doc: dict[str, Any]) -> tuple[Any, ...]:
    return (rid, doc["name"], doc["city"], doc["amount"], doc["status"], doc["created"],
            doc["term_months"])


def scalar(db: Database, sql: str) -> Any:
    with db.engine.connect() as conn:
        return conn.execute(text(sql)).scalar_one()


# --------------------------------------------------------------------------- create


def create_ours(db: Database, items: list[dict[str, Any]]) -> float:
    gc.collect()
    t0 = time.perf_counter()
    with db.write() as s:
        for part in chunks(items, MAX_BULK):
            create_records(s, app=APP, form=FORM, items=part, actor=SYSTEM)
    return time.perf_counter() - t0


def create_raw(db: Database, items: list[dict[str, Any]]) -> float:
    sql = record_insert_sql(db.dialect)
    sqlite = db.dialect == "sqlite"
    raw = db.engine.raw_connection()
    try:
        gc.collect()
        t0 = time.perf_counter()
        ts = timestamp_param(db)
        rows = [record_row(doc, ts) for doc in items]
        cur = raw.cursor()
        if sqlite:  # Qiao's SQLite connections run with isolation_level=None
            cur.execute("BEGIN IMMEDIATE")
        cur.executemany(sql, rows)
        if sqlite:
            cur.execute("COMMIT")
        else:
            raw.commit()
        elapsed = time.perf_counter() - t0
        cur.close()
    finally:
        raw.close()
    return elapsed


def bench_create(target: Target, n: int, repeat: int, profile: bool) -> dict[str, Any]:
    items = loans(n, seed=1)
    times: dict[str, list[float]] = {"ours": [], "baseline": []}
    for r in range(repeat):
        order = ("ours", "baseline") if r % 2 == 0 else ("baseline", "ours")
        for side in order:
            db = target.fresh()
            try:
                db.ping()
                elapsed = (create_ours if side == "ours" else create_raw)(db, items)
                got = scalar(db, "SELECT count(*) FROM records")
                assert got == n, f"{side}: {got} records instead of {n}"
                if side == "ours":
                    assert scalar(db, "SELECT count(*) FROM outbox") == n
                times[side].append(elapsed)
                print(f"  [{target.name}] create run {r + 1}/{repeat} {side:8s} "
                      f"{elapsed:8.3f} s")
            finally:
                db.dispose()
    if profile:
        db = target.fresh()
        try:
            profile_call(f"create_records x{n} on {target.name}",
                         lambda: create_ours(db, items))
        finally:
            db.dispose()
    target.drop()
    return times


# --------------------------------------------------------------------------- query


def load_query_data(db: Database, n: int) -> None:
    """``n`` records and the same ``n`` typed rows (ids 1..n), loaded raw; not measured."""
    with db.engine.begin() as conn:
        conn.execute(text(TYPED_DDL[db.dialect]))
    ts = timestamp_param(db)
    raw = db.engine.raw_connection()
    try:
        cur = raw.cursor()
        step = 50_000
        if db.dialect == "sqlite":
            cur.execute("BEGIN IMMEDIATE")
            rsql = (f"INSERT INTO records (id, {', '.join(RECORD_COLUMNS)}) "
                    f"VALUES ({', '.join('?' * (len(RECORD_COLUMNS) + 1))})")
            tsql = (f"INSERT INTO bench_loans ({', '.join(TYPED_COLUMNS)}) "
                    f"VALUES ({', '.join('?' * len(TYPED_COLUMNS))})")
            for start in range(0, n, step):
                docs = loans(min(step, n - start), seed=1000 + start, start=start)
                ids = range(start + 1, start + 1 + len(docs))
                rows = [(i, *record_row(d, ts)) for i, d in zip(ids, docs, strict=True)]
                cur.executemany(rsql, rows)
                cur.executemany(tsql, [typed_row(i, d) for i, d in zip(ids, docs, strict=True)])
            cur.execute("COMMIT")
        else:
            rcopy = f"COPY records (id, {', '.join(RECORD_COLUMNS)}) FROM STDIN"
            tcopy = f"COPY bench_loans ({', '.join(TYPED_COLUMNS)}) FROM STDIN"
            for start in range(0, n, step):
                docs = loans(min(step, n - start), seed=1000 + start, start=start)
                ids = range(start + 1, start + 1 + len(docs))
                with cur.copy(rcopy) as copy:
                    for i, d in zip(ids, docs, strict=True):
                        copy.write_row((i, *record_row(d, ts)))
                with cur.copy(tcopy) as copy:
                    for i, d in zip(ids, docs, strict=True):
                        copy.write_row(typed_row(i, d))
            cur.execute("SELECT setval(pg_get_serial_sequence('records', 'id'), %s)", (n,))
            raw.commit()
        cur.close()
    finally:
        raw.close()


def prepare_indexes(db: Database, fields: FieldSet) -> str:
    """The store's ``ensure_index`` on ``city``, the typed table's own index, ANALYZE."""
    with db.write() as s:
        name = ensure_index(s, fields, "city")
    with db.engine.begin() as conn:
        conn.execute(text(TYPED_INDEX))
    with db.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        if db.dialect == "postgresql":
            conn.execute(text("VACUUM (ANALYZE) records, bench_loans"))
        else:
            conn.execute(text("ANALYZE"))
    return name


def store_query(fields: FieldSet, city: str) -> Query:
    return Query(fields, filter={"field": "city", "op": "eq", "value": city}, sort=["-id"],
                 limit=50)


def compiled_store_sql(db: Database, query: Query, *, ids_only: bool = False
                       ) -> tuple[str, Any]:
    """The SQL text and DB-API parameters ``query_records`` sends for ``query``.

    ``ids_only`` keeps its WHERE / ORDER BY / LIMIT but selects ``records.id`` alone: the
    cost of finding the page through the expression index, without fetching the rows.
    """
    if not ids_only:  # exactly what query_records runs: its cached SQL and parameters
        entry, params, _ = query.compiled(db.engine.dialect)
        return entry.sql, params
    stmt, _ = query.select(db.dialect)
    stmt = stmt.with_only_columns(Record.id)
    compiled = stmt.compile(dialect=db.engine.dialect)
    params = compiled.construct_params()
    if compiled.positional:
        return compiled.string, tuple(params[k] for k in compiled.positiontup)
    return compiled.string, params


def typed_sql(dialect: str) -> str:
    mark = "%s" if dialect == "postgresql" else "?"
    return (f"SELECT {', '.join(TYPED_COLUMNS)} FROM bench_loans WHERE city = {mark} "
            "ORDER BY id DESC LIMIT 51")


def explain(db: Database, fields: FieldSet, city: str) -> dict[str, list[str]]:
    store_sql, store_params = compiled_store_sql(db, store_query(fields, city))
    plans: dict[str, list[str]] = {}
    raw = db.engine.raw_connection()
    try:
        cur = raw.cursor()
        for side, sql, params in (("ours (query_records)", store_sql, store_params),
                                  ("baseline (typed table)", typed_sql(db.dialect),
                                   (city,))):
            if db.dialect == "postgresql":
                cur.execute(f"EXPLAIN (ANALYZE, BUFFERS) {sql}", params)
                plans[side] = [r[0] for r in cur.fetchall()]
            else:
                cur.execute(f"EXPLAIN QUERY PLAN {sql}", params)
                plans[side] = [r[3] for r in cur.fetchall()]
            plans[side].insert(0, "SQL: " + " ".join(sql.split()))
        raw.rollback()
        cur.close()
    finally:
        raw.close()
    return plans


@dataclass
class QueryTimes:
    ours: list[float] = field(default_factory=list)
    baseline: list[float] = field(default_factory=list)
    store_sql_raw: list[float] = field(default_factory=list)
    store_ids_raw: list[float] = field(default_factory=list)
    session_only: list[float] = field(default_factory=list)
    ours_read_block: list[float] = field(default_factory=list)


DEEP_SORTS = (["amount"], ["-amount"])
DEEP_REPEAT = 15  # timed runs of each page (after one warm-up), interleaved


def blank_amounts(db: Database) -> None:
    """Every tenth record loses its ``amount`` (blanks sort last), then ``ensure_index``
    on it and ANALYZE; not measured."""
    with db.write() as s:
        if db.dialect == "sqlite":
            s.execute(text("UPDATE records SET data = json_remove(data, '$.amount') "
                           "WHERE id % 10 = 0"))
        else:
            s.execute(text("UPDATE records SET data = data - 'amount' WHERE id % 10 = 0"))
        ensure_index(s, FieldSet(APP, FORM, FIELDS_KINDS), "amount")
    with db.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(text("VACUUM (ANALYZE) records" if db.dialect == "postgresql"
                          else "ANALYZE"))


def cursor_at(db: Database, fields: FieldSet, sort: list[str], position: int) -> str:
    """The cursor of a page that ends at ``position`` of the order (found with OFFSET)."""
    query = Query(fields, sort=sort, limit=1)
    stmt, keys = query.select(db.dialect)
    with db.read() as s:
        first = s.execute(stmt.with_only_columns(Record.id).limit(1).offset(position)
                          ).scalar_one_or_none()
        if first is None and (blanks := query.blanks_select(db.dialect)) is not None:
            before = s.execute(select_count(stmt)).scalar_one()
            first = s.execute(blanks.with_only_columns(Record.id).limit(1)
                              .offset(position - before)).scalar_one()
        page = store_query_records(s, Query(fields, filter={"field": "id", "op": "eq",
                                                            "value": first}, sort=sort))
    return encode_cursor(keys, page.records[0])


def select_count(stmt: Any) -> Any:
    from sqlalchemy import func, select
    return select(func.count()).select_from(stmt.with_only_columns(Record.id).limit(None)
                                            .order_by(None).subquery())


def bench_deep_pages(db: Database, n: int) -> dict[str, float]:
    """Median time of a page of 50 of sort ``amount`` / ``-amount`` (nullable, indexed):
    the first page, a page from the middle of the values, the page where the values end
    and a page from the middle of the blanks — each a read transaction (``db.read_on``,
    as an API request's) on a held connection."""
    fields = FieldSet(APP, FORM, FIELDS_KINDS)
    blank_amounts(db)
    blanks = n // 10
    pages: dict[str, tuple[list[str], str | None]] = {}
    for sort in DEEP_SORTS:
        name = sort[0]
        pages[f"{name} first"] = (sort, None)
        pages[f"{name} mid-values"] = (sort, cursor_at(db, fields, sort, (n - blanks) // 2))
        pages[f"{name} values-end"] = (sort, cursor_at(db, fields, sort, n - blanks - 21))
        pages[f"{name} mid-blanks"] = (sort, cursor_at(db, fields, sort, n - blanks // 2))
    times: dict[str, list[float]] = {k: [] for k in pages}
    perf = time.perf_counter
    with db.engine.connect() as conn:
        for r in range(DEEP_REPEAT + 1):
            for label, (sort, cursor) in (pages.items() if r % 2 else
                                          reversed(list(pages.items()))):
                t0 = perf()
                with db.read_on(conn) as s:
                    got = store_query_records(s, Query(fields, sort=sort, cursor=cursor,
                                                       limit=50)).records
                if r:
                    times[label].append(perf() - t0)
                assert len(got) == 50, label
    return {k: statistics.median(v) for k, v in times.items()}


def bench_query(target: Target, n: int, rounds: int, profile: bool) -> dict[str, Any]:
    fields = FieldSet(APP, FORM, FIELDS_KINDS)
    db = target.fresh()
    try:
        t0 = time.perf_counter()
        load_query_data(db, n)
        t1 = time.perf_counter()
        index_name = prepare_indexes(db, fields)
        t2 = time.perf_counter()
        print(f"  [{target.name}] loaded {n} records + {n} typed rows in {t1 - t0:.1f} s; "
              f"indexes ({index_name}, ix_bench_loans_city_id) + ANALYZE in {t2 - t1:.1f} s")
        cities = CITIES[::2][:50]
        plans = explain(db, fields, cities[0])
        times = run_queries(db, fields, cities, rounds)
        if profile:
            profile_query(db, fields, cities)
        deep = bench_deep_pages(db, n)
    finally:
        db.dispose()
        target.drop()
    return {"times": times, "plans": plans, "deep": deep}


def run_queries(db: Database, fields: FieldSet, cities: list[str], rounds: int) -> QueryTimes:
    """Warm-up round (checks both sides return the same rows), then ``rounds`` timed ones."""
    dialect = db.dialect
    base_sql = typed_sql(dialect)
    store_sql = {c: compiled_store_sql(db, store_query(fields, c)) for c in cities}
    store_ids = {c: compiled_store_sql(db, store_query(fields, c), ids_only=True)
                 for c in cities}
    times = QueryTimes()
    perf = time.perf_counter
    with db.engine.connect() as conn:
        raw = conn.connection.dbapi_connection
        assert raw is not None
        cur = raw.cursor()
        # The store's SQL fetched raw in the format query_records fetches it (binary with
        # psycopg); the hand-written baseline keeps the driver's default (text). The raw
        # sides end their transaction with COMMIT, as ours does: psycopg forgets the
        # statements it prepared on a ROLLBACK, every side's on this shared connection.
        store_cur = raw.cursor(binary=True) if db.engine.dialect.driver == "psycopg" else cur

        def ours(city: str) -> list[Any]:
            with db.read_on(conn) as s:  # the transaction an API request's read has
                return store_query_records(s, store_query(fields, city)).records

        def baseline(city: str) -> list[Any]:
            cur.execute(base_sql, (city,))
            rows = cur.fetchall()
            raw.commit()
            return rows

        def store_raw(city: str) -> list[Any]:
            store_cur.execute(*store_sql[city])
            rows = store_cur.fetchall()
            raw.commit()
            return rows

        def session_only(_city: str) -> list[Any]:
            # What "ours" pays before and after its query: a Session, BEGIN and its end.
            with db.read_on(conn) as s:
                s.connection()
            return []

        def store_ids_raw(city: str) -> list[Any]:
            cur.execute(*store_ids[city])
            rows = cur.fetchall()
            raw.commit()
            return rows

        for r in range(rounds + 1):
            for i, city in enumerate(cities):
                sides: list[tuple[list[float], Callable[[str], list[Any]]]] = [
                    (times.ours, ours), (times.baseline, baseline),
                    (times.store_sql_raw, store_raw), (times.store_ids_raw, store_ids_raw),
                    (times.session_only, session_only)]
                if (r + i) % 2:
                    sides.reverse()
                got = {}
                for bucket, fn in sides:
                    t0 = perf()
                    rows = fn(city)
                    elapsed = perf() - t0
                    got[fn.__name__] = rows
                    if r:
                        bucket.append(elapsed)
                if r == 0:
                    ours_ids = [rec.id for rec in got["ours"]]
                    base_ids = [row[0] for row in got["baseline"]]
                    assert len(ours_ids) == 50 and len(base_ids) == 51, city
                    assert ours_ids == base_ids[:50], f"{city}: the two sides disagree"
                    assert got["ours"][0].data["city"] == city
                    assert [row[0] for row in got["store_ids_raw"]] == base_ids, city
                    assert [row[0] for row in got["store_raw"]] == base_ids, city
        cur.close()
        store_cur.close()
    # The full unit of work an API request pays: db.read() (pool checkout, and on
    # PostgreSQL its pre-ping) + query_records. Informative only, not in the ratio.
    for r in range(rounds + 1):
        for city in cities:
            t0 = perf()
            with db.read() as s:
                store_query_records(s, store_query(fields, city))
            if r:
                times.ours_read_block.append(perf() - t0)
    return times


# --------------------------------------------------------------------------- profiling


def profile_query(db: Database, fields: FieldSet, cities: list[str]) -> None:
    def run() -> None:
        with db.engine.connect() as conn:
            for _ in range(10):
                for city in cities:
                    with db.read_on(conn) as s:
                        store_query_records(s, store_query(fields, city))

    profile_call(f"query_records x{10 * len(cities)} on {db.dialect}", run)


# --------------------------------------------------------------------------- report


@dataclass
class Metric:
    name: str
    db: str
    ours: float
    baseline: float
    notes: list[tuple[str, float]] = field(default_factory=list)
    target: float = TARGET

    @property
    def ratio(self) -> float:
        return self.ours / self.baseline

    def result_line(self) -> str:
        return (f"RESULT metric={self.name} ours={self.ours:.7f} baseline={self.baseline:.7f} "
                f"ratio={self.ratio:.3f} target={self.target}")


def summarize(samples: list[float]) -> str:
    qs = statistics.quantiles(samples, n=10) if len(samples) > 1 else [samples[0]] * 9
    return (f"median {statistics.median(samples) * 1e3:9.3f} ms   p10 {qs[0] * 1e3:8.3f} ms   "
            f"p90 {qs[8] * 1e3:8.3f} ms   n={len(samples)}")


def run_target(target: Target, args: argparse.Namespace) -> list[Metric]:
    metrics = []
    print(f"\n== {target.name}: bulk create of {args.create} records "
          f"(x{args.repeat} each side) ==")
    ct = bench_create(target, args.create, args.repeat, args.profile)
    metrics.append(Metric(f"store_bulk_create_{count_label(args.create)}_{target.name}",
                          target.name, statistics.median(ct["ours"]),
                          statistics.median(ct["baseline"])))
    print(f"\n== {target.name}: indexed query on {args.query_records} records "
          f"({args.rounds} rounds x 50 cities) ==")
    q = bench_query(target, args.query_records, args.rounds, args.profile)
    for side, lines in q["plans"].items():
        print(f"  EXPLAIN {side}:")
        for line in lines:
            print(f"    {line}")
    t: QueryTimes = q["times"]
    print(f"  ours  query_records (one held connection): {summarize(t.ours)}")
    print(f"  base  hand-written SELECT on typed table:   {summarize(t.baseline)}")
    print(f"  info  store's SQL run raw (DB-API cursor):  {summarize(t.store_sql_raw)}")
    print(f"  info  store's SQL, selecting id only, raw:  {summarize(t.store_ids_raw)}")
    print(f"  info  a read transaction, no query:          {summarize(t.session_only)}")
    print(f"  info  db.read() block + query_records:      {summarize(t.ours_read_block)}")
    metrics.append(Metric(
        f"store_indexed_query_{count_label(args.query_records)}_{target.name}", target.name,
        statistics.median(t.ours), statistics.median(t.baseline),
        [("store SQL via raw cursor", statistics.median(t.store_sql_raw)),
         ("store SQL, id only, raw cursor", statistics.median(t.store_ids_raw)),
         ("read transaction (db.read_on) alone", statistics.median(t.session_only)),
         ("db.read() + query_records", statistics.median(t.ours_read_block))],
        QUERY_TARGET))
    deep: dict[str, float] = q["deep"]
    print(f"  deep pages of a nullable indexed sort (10% blanks), median of {DEEP_REPEAT}:")
    for label, value in deep.items():
        print(f"    {label:20s} {value * 1e3:8.3f} ms")
    worst = max((k for k in deep if not k.endswith("first")), key=lambda k: deep[k] / deep[
        k.split()[0] + " first"])
    metrics.append(Metric(
        f"store_deep_page_{count_label(args.query_records)}_{target.name}", target.name,
        deep[worst], deep[worst.split()[0] + " first"], [(f"slowest vs its first page: {worst}",
                                                          deep[worst])]))
    return metrics


def print_report(metrics: list[Metric]) -> None:
    print()
    for m in metrics:
        print(m.result_line())
    print()
    head = f"{'metric':40s} {'db':10s} {'ours':>12s} {'baseline':>12s} {'ratio':>7s} target  ok"
    print(head)
    print("-" * len(head))
    for m in metrics:
        unit, scale = ("ms", 1e3) if m.ours < 1 else ("s", 1.0)
        ok = "yes" if m.ratio <= m.target else "NO"
        print(f"{m.name:40s} {m.db:10s} {m.ours * scale:9.3f} {unit:2s} "
              f"{m.baseline * scale:9.3f} {unit:2s} {m.ratio:7.2f} {m.target:6.1f}  {ok}")
        for label, value in m.notes:
            print(f"  {'└ ' + label:38s} {'':10s} {value * scale:9.3f} {unit:2s} "
                  f"{'':12s} {value / m.baseline:7.2f}  (info)")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--db", choices=("sqlite", "postgresql", "both"), default="both")
    parser.add_argument("--create", type=int, default=100_000, metavar="N",
                        help="records to bulk-create (default 100,000)")
    parser.add_argument("--query-records", type=int, default=1_000_000, metavar="N",
                        help="records to query (default 1,000,000)")
    parser.add_argument("--pg-url", default=os.environ.get("QIAO_BENCH_PG_URL", DEFAULT_PG_URL),
                        help="PostgreSQL server URL (env QIAO_BENCH_PG_URL); the benchmark "
                             f"creates and drops its own database {SCRATCH_DB!r} there")
    parser.add_argument("--repeat", type=int, default=3,
                        help="bulk-create runs per side (median reported; default 3)")
    parser.add_argument("--rounds", type=int, default=5,
                        help="timed rounds over 50 cities per query side (default 5)")
    parser.add_argument("--profile", action="store_true",
                        help="also cProfile the store side of each benchmark")
    parser.add_argument("--quick", action="store_true",
                        help="small sizes for a smoke run (overrides --create, "
                             "--query-records, --repeat, --rounds)")
    args = parser.parse_args(argv)
    if args.quick:
        args.create, args.query_records, args.repeat, args.rounds = 20_000, 20_000, 1, 2
    if args.query_records < 10_000:  # 100 cities drawn at random: ~100 rows each, ≥ 51 for sure
        parser.error("--query-records must be at least 10000 (51 rows for each of 50 cities)")
    kinds.register_builtins()

    targets = choose_targets(args.db, args.pg_url, SCRATCH_DB)
    metrics: list[Metric] = []
    try:
        for target in targets:
            metrics += run_target(target, args)
    finally:
        for target in targets:
            target.close()
    print_report(metrics)


if __name__ == "__main__":
    main()
