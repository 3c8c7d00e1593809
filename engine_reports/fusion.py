"""A dashboard's widgets share their scans.

Twenty widgets over the same form, filters and viewer read the same rows twenty times;
at a million records each read costs a full scan. A dashboard request therefore runs in
two passes:

1. **collect** — every widget runs with no rows (``batch.collecting``): each aggregate
   statement it would run is noted with its parts (the rows it reads, its grouping
   expressions, each slot's aggregate and argument);
2. **run** — the noted statements are planned into as few as possible and run in
   parallel, one connection each; then every widget runs again and takes its rows from
   the results (``rows_for``), ordered and cut in Python.

Planning, per set of statements reading the same rows (equal FROM and WHERE, compiled
with their values — so the viewer's row scope is part of it):

- statements grouping by the same expressions become one statement with all their
  aggregates;
- a statement whose groups are a subset of another's (or coarser date buckets of the
  same field: day → week, month, quarter, year; month → quarter, year; quarter → year)
  is rolled up in Python from that one's groups, when all its aggregates can be (count,
  sum, min, max, average as sum over count; not a distinct count) and that result has
  at most ``ROLLUP_MAX`` groups; otherwise it runs its own statement.

On PostgreSQL the statements left over the same rows then run as one, ``GROUP BY
GROUPING SETS`` (``engine_reports/grouping_sets.py``): the rows are read once for all the
groupings, and that one statement is split by block ranges over several connections
sharing one snapshot. On SQLite (no grouping sets), statements over the same rows whose
groups, the last time they ran, multiply to at most ``MERGE_MAX`` become one statement
grouping by all their fields, the others rolled up from it (by channel, by term and by
product × status: one statement of a few hundred groups instead of three scans). The
counts are remembered per process (``GROUPS_SEEN``); a first run, or a count that grew,
only costs the scans saved. Run in parallel, the statements that took longest the last
time (``MS_SEEN``) start first.

The widgets' report rows and their form's projection are read once per request
(``remember``), not once per widget and pass.

A statement that cannot share (a funnel, a flow or audit source, a truncated shared
result) runs as it would alone. The numbers are the same either way; the tests compare
them (``tests/engine_reports/test_fusion.py``).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from datetime import date, timedelta
from threading import Lock
from typing import Any

from sqlalchemy import literal_column, text

from engine_reports.compiler import MAX_GROUPS, Plan, aggregate

ROLLUP_MAX = 5_000  # groups of a shared result that may be rolled up in Python
MERGE_MAX = 2_000  # groups, as last seen, that statements over the same rows may merge into
SEEN_MAX = 4_096  # groupings whose last count is remembered
FINER = {"day": ("week", "month", "quarter", "year"), "month": ("quarter", "year"),
         "quarter": ("year",)}  # a bucket → the buckets derivable from its text
FINENESS = {"day": 4, "week": 3, "month": 3, "quarter": 2, "year": 1}

_batch: ContextVar[Batch | None] = ContextVar("engine_reports_fusion", default=None)


def coarser(value: Any, finer: str, bucket: str) -> Any:
    """A date bucket's text as a coarser bucket's (see ``compiler._bucket``)."""
    if value is None or finer == bucket:
        return value
    if bucket == "year":
        return value[:4]
    if bucket == "quarter":
        month = int(value[5:7])
        return f"{value[:4]}-Q{(month + 2) // 3}"
    if bucket == "month":
        return value[:7]
    day = date.fromisoformat(value)  # week: its Monday
    return (day - timedelta(days=day.weekday())).isoformat()


def _signature(clause: Any, dialect: Any) -> str:
    compiled = clause.compile(dialect=dialect)
    return f"{compiled.string}\x00{sorted(compiled.params.items(), key=lambda kv: kv[0])!r}"


@dataclass
class _Dim:
    sig: str
    expr: Any
    field: str | None
    bucket: str | None


def _fineness(dims: list[_Dim]) -> tuple[int, int]:
    """Statements with more groups, then finer date buckets, go first: they can host the
    others."""
    return len(dims), sum(FINENESS.get(d.bucket or "", 0) for d in dims)


@dataclass
class _Need:
    """One noted statement: what it reads and how its slots aggregate."""

    plan: Plan
    dims: list[_Dim]
    parts: dict[str, tuple[str, str, Any]]  # slot → (aggregate, argument signature, arg)

    def derivable(self) -> bool:
        return all(agg != "distinct" for agg, _, _ in self.parts.values())


class _Seen:
    """How many groups each grouping had the last time it ran (this process), by the rows
    it read and the fields it grouped by: what merging statements goes by."""

    def __init__(self) -> None:
        self._counts: OrderedDict[str, int] = OrderedDict()
        self._lock = Lock()

    @staticmethod
    def key(scan: str, dims: list[_Dim]) -> str:
        return f"{scan}\x01{sorted(d.sig for d in dims)!r}"

    def get(self, scan: str, dims: list[_Dim]) -> int | None:
        with self._lock:
            return self._counts.get(self.key(scan, dims))

    def put(self, scan: str, dims: list[_Dim], count: int) -> None:
        with self._lock:
            key = self.key(scan, dims)
            self._counts[key] = count
            self._counts.move_to_end(key)
            while len(self._counts) > SEEN_MAX:
                self._counts.popitem(last=False)

    def clear(self) -> None:
        with self._lock:
            self._counts.clear()


GROUPS_SEEN = _Seen()
MS_SEEN = _Seen()  # how long each grouping's statement took the last time, in milliseconds


@dataclass
class _Shared:
    """One statement run for several needs."""

    dims: list[_Dim]
    scan: Any
    scan_sig: str = ""
    exact: list[tuple[str, _Need]] = field(default_factory=list)
    derived: list[tuple[str, _Need, list[tuple[int, str | None, str | None]]]] = field(
        default_factory=list)
    columns: dict[tuple[str, str], str] = field(default_factory=dict)  # part → column
    args: dict[tuple[str, str], Any] = field(default_factory=dict)

    def column(self, agg: str, arg_sig: str, arg: Any) -> str:
        key = (agg, arg_sig)
        if key not in self.columns:
            self.columns[key] = f"p{len(self.columns)}"
            self.args[key] = arg
        return self.columns[key]

    def covers(self, dims: list[_Dim]) -> list[tuple[int, str | None, str | None]] | None:
        """For each of ``dims``: (index of the group here, this bucket, wanted bucket),
        or None when they cannot be rolled up from these groups."""
        out = []
        for d in dims:
            for i, mine in enumerate(self.dims):
                if mine.sig == d.sig:
                    out.append((i, None, None))
                    break
                if (mine.field == d.field and mine.bucket and d.bucket
                        and d.bucket in FINER.get(mine.bucket, ())):
                    out.append((i, mine.bucket, d.bucket))
                    break
            else:
                return None
        return out

    def statement(self) -> Any:
        groups = [d.expr.label(f"g{i}") for i, d in enumerate(self.dims)]
        cols = [aggregate(agg, self.args[(agg, sig)]).label(name)
                for (agg, sig), name in self.columns.items()]
        stmt = self.scan.with_only_columns(*groups, *cols)
        if groups:
            stmt = stmt.group_by(*[literal_column(f"g{i}") for i in range(len(groups))])
        return stmt.limit(MAX_GROUPS + 1)


class Batch:
    """The statements of one dashboard request: noted, planned, run, handed out."""

    def __init__(self) -> None:
        self.collecting = True
        self.needs: dict[str, _Need] = {}
        self.scans: dict[str, list[str]] = {}  # scan signature → statement signatures
        self.rows: dict[str, list[dict[str, Any]]] = {}
        self.groupings = 0  # statements planned (for the tests and the benchmark)
        self.statements = 0  # run by ``run``: PostgreSQL reads each set of rows once
        self.memo: dict[Any, Any] = {}  # what every widget reads alike (``remember``)
        self.plans: dict[Any, Plan] = {}  # a widget's compiled plan, for both passes
        self.sigs: dict[int, str] = {}  # id of a noted plan (held in ``needs``) → signature

    def note(self, plan: Plan, dialect: Any) -> None:
        sig = self.sigs.get(id(plan)) or _signature(plan.statement, dialect)
        if sig in self.needs:
            return
        self.sigs[id(plan)] = sig
        dims = [_Dim(_signature(g, dialect), g, d.spec.field, d.spec.bucket)
                for g, d in zip(plan.groups, plan.dims, strict=True)]
        parts = {slot: (agg, "" if arg is None else _signature(arg, dialect), arg)
                 for slot, (agg, arg) in plan.parts.items()}
        self.needs[sig] = _Need(plan, dims, parts)
        self.scans.setdefault(_signature(plan.scan, dialect), []).append(sig)

    def plan(self, *, merge: bool = True) -> list[_Shared]:
        """One statement per grouping left after roll-ups; ``merge``: small groupings
        over the same rows merged (where they would otherwise be scans of their own)."""
        shared: list[_Shared] = []
        for scan, sigs in self.scans.items():
            mine: list[_Shared] = []
            by_groups: dict[frozenset[str], list[str]] = {}
            for sig in sigs:
                by_groups.setdefault(frozenset(d.sig for d in self.needs[sig].dims),
                                     []).append(sig)
            for groups in sorted(by_groups, reverse=True, key=lambda g, by=by_groups:
                                 _fineness(self.needs[by[g][0]].dims)):
                members = by_groups[groups]
                needs = [self.needs[s] for s in members]
                host = None
                if all(n.derivable() for n in needs):
                    host = next((s for s in mine if s.covers(needs[0].dims) is not None),
                                None)
                if host is None:
                    one = _Shared(needs[0].dims, needs[0].plan.scan, scan)
                    one.exact = list(zip(members, needs, strict=True))
                    mine.append(one)
                else:
                    for s, n in zip(members, needs, strict=True):
                        host.derived.append((s, n, host.covers(n.dims) or []))
            shared += _merged(mine, scan) if merge else mine
        for s in shared:
            for _, n in s.exact:
                for agg, arg_sig, arg in n.parts.values():
                    s.column(agg, arg_sig, arg)
            for _, n, _ in s.derived:
                for agg, arg_sig, arg in n.parts.values():
                    if agg == "avg":
                        s.column("sum", arg_sig, arg)
                        s.column("count", arg_sig, arg)
                    else:
                        s.column(agg, arg_sig, arg)
        return shared

    def run(self, db: Any, workers: int) -> None:
        """Run the planned statements, in parallel where the database allows, each on
        its own connection; then the widgets take their rows (``rows_for``)."""
        from concurrent.futures import ThreadPoolExecutor
        from time import perf_counter

        # The longest statements, as last seen, start first (unknown ones count as
        # long): a long one started last would finish alone, after all the others.
        def last_ms(s: Any) -> int:
            ms = MS_SEEN.get(s.scan_sig, s.dims)
            return 1 << 30 if ms is None else ms

        plan = sorted(self._start(db.dialect), key=last_ms, reverse=True)

        def one(s: Any) -> list[dict[str, Any]]:
            started = perf_counter()
            if not isinstance(s, _Shared):  # a grouping_sets.Sets: it may split itself
                rows = s.run(db, alone=len(plan) == 1)
            else:
                with db.read() as session:
                    rows = _rows(session, s, alone=len(plan) == 1)
            MS_SEEN.put(s.scan_sig, s.dims, int((perf_counter() - started) * 1000))
            return rows

        url = db.engine.url
        if len(plan) <= 1 or (url.get_backend_name() == "sqlite"
                              and url.database in (None, "", ":memory:")):
            results = [one(s) for s in plan]
        else:
            with ThreadPoolExecutor(max_workers=min(workers, len(plan))) as ex:
                results = list(ex.map(one, plan))
        for s, rows in zip(plan, results, strict=True):
            self._give(s, rows)

    def run_in(self, session: Any) -> None:
        """Run the planned statements one after the other on ``session``."""
        for s in self._start(session.get_bind().dialect.name):
            self._give(s, _rows(session, s))

    def _start(self, dialect: str) -> list[Any]:
        """The statements to run: the plan, those over the same rows combined into one
        on PostgreSQL (``engine_reports/grouping_sets.py``)."""
        from engine_reports.grouping_sets import combine

        self.collecting = False
        # on PostgreSQL the groupings over the same rows share one scan anyway: merged,
        # they would only hand Python more groups to add up
        planned = self.plan(merge=dialect != "postgresql")
        plan = combine(planned, dialect, GROUPS_SEEN)
        self.groupings, self.statements = len(planned), len(plan)
        return plan

    def _give(self, s: Any, rows: list[dict[str, Any]]) -> None:
        if isinstance(s, _Shared):
            self._hand_out(s, rows)
            return
        for member, mine in s.split(rows):
            self._hand_out(member, mine)

    def _hand_out(self, s: _Shared, rows: list[dict[str, Any]]) -> None:
        GROUPS_SEEN.put(s.scan_sig, s.dims, len(rows))
        if len(rows) > MAX_GROUPS:
            return  # truncated: each runs its own ordered, cut statement
        for sig, n in s.exact:
            index = {d.sig: f"g{i}" for i, d in enumerate(s.dims)}
            dims = [(f"d{i}", index[d.sig]) for i, d in enumerate(n.dims)]
            slots = [(slot, s.columns[(agg, arg_sig)])
                     for slot, (agg, arg_sig, _) in n.parts.items()]
            self.rows[sig] = [{**{k: r[g] for k, g in dims}, **{k: r[c] for k, c in slots}}
                              for r in rows]
        if len(rows) > ROLLUP_MAX:
            return  # too many groups to roll up here: they run their own statements
        cache: dict[Any, Any] = {}
        for sig, n, mapping in s.derived:
            self.rows[sig] = _roll_up(s, n, _groups(rows, mapping, cache))
            GROUPS_SEEN.put(s.scan_sig, n.dims, len(self.rows[sig]))

    def rows_for(self, plan: Plan, dialect: Any) -> list[dict[str, Any]] | None:
        return self.rows.get(self.sigs.get(id(plan)) or _signature(plan.statement, dialect))


def _merged(mine: list[_Shared], scan: str) -> list[_Shared]:
    """``mine`` (statements over the same rows) with those of known, small groupings
    merged: smallest first, while the product of their last counts stays within
    ``MERGE_MAX`` and every measure of theirs can be rolled up."""
    known, out = [], []
    for s in mine:
        count = GROUPS_SEEN.get(scan, s.dims)
        if count is not None and all(n.derivable() for _, n in s.exact):
            known.append((max(count, 1), s))
        else:
            out.append(s)
    acc, size = None, 1
    for count, s in sorted(known, key=lambda pair: pair[0]):
        if acc is not None and size * count <= MERGE_MAX:
            acc, size = _union(acc, s), size * count
            continue
        if acc is not None:
            out.append(acc)
        acc, size = s, count
    if acc is not None:
        out.append(acc)
    return out


def _union(a: _Shared, b: _Shared) -> _Shared:
    """One statement grouping by the fields of both; every need rolled up from it."""
    have = {d.sig for d in a.dims}
    one = _Shared([*a.dims, *(d for d in b.dims if d.sig not in have)], a.scan, a.scan_sig)
    for sig, n in [*a.exact, *b.exact]:
        one.derived.append((sig, n, one.covers(n.dims) or []))
    for sig, n, _ in [*a.derived, *b.derived]:
        one.derived.append((sig, n, one.covers(n.dims) or []))
    return one


def _rows(session: Any, s: _Shared, *, alone: bool = True) -> list[dict[str, Any]]:
    """``s``'s rows. Beside other statements (``alone`` false) a PostgreSQL statement
    runs in its own process only: parallel workers of each would fight over the cores
    the statements already share (bench/reports.py: 20 widgets at 1M, ~30% faster)."""
    from engine_reports.running import roomy

    roomy(session)
    if not alone and session.get_bind().dialect.name == "postgresql":
        session.execute(text("SET LOCAL max_parallel_workers_per_gather = 0"))
    result = session.execute(s.statement())
    names = list(result.keys())
    return [dict(zip(names, r, strict=True)) for r in result]


def _groups(rows: list[dict[str, Any]], mapping: list[tuple[int, str | None, str | None]],
            cache: dict[Any, dict[tuple[Any, ...], list[dict[str, Any]]]]
            ) -> dict[tuple[Any, ...], list[dict[str, Any]]]:
    """The finer rows under each coarser group (``mapping``: see ``_Shared.covers``),
    worked out once per mapping for all the needs rolled up the same way."""
    key = tuple(mapping)
    found = cache.get(key)
    if found is None:
        found = cache[key] = {}
        for r in rows:
            k = tuple(coarser(r[f"g{i}"], finer, bucket) if bucket else r[f"g{i}"]
                      for i, finer, bucket in mapping)
            found.setdefault(k, []).append(r)
    return found


def _roll_up(s: _Shared, n: _Need, groups: dict[tuple[Any, ...], list[dict[str, Any]]]
             ) -> list[dict[str, Any]]:
    """``n``'s rows from the finer groups of ``s`` (``groups``: each coarser group's
    finer rows): counts and sums added, minima and maxima kept, averages as the sum over
    the count."""
    slots = []
    for slot, (agg, arg_sig, _) in n.parts.items():
        if agg == "avg":
            slots.append((slot, agg, s.columns[("sum", arg_sig)],
                          s.columns[("count", arg_sig)]))
        else:
            slots.append((slot, agg, s.columns[(agg, arg_sig)], None))
    out = []
    for key, members in groups.items():
        row = {f"d{i}": v for i, v in enumerate(key)}
        for slot, agg, col, count_col in slots:
            values = [v for v in (r[col] for r in members) if v is not None]
            if agg == "avg":
                count = sum(r[count_col] or 0 for r in members)
                row[slot] = None if not count or not values else sum(values) / count
            elif agg == "count":
                row[slot] = sum(values)
            elif not values:
                row[slot] = None
            else:
                row[slot] = sum(values) if agg == "sum" else min(values) if agg == "min" \
                    else max(values)
        out.append(row)
    if not out and not n.dims:  # a total over no rows is still one row, as in SQL
        out.append({slot: 0 if agg == "count" else None for slot, agg, _, _ in slots})
    return out


class NotShared(Exception):
    """Raised while collecting by a report that runs no shareable statement (a funnel):
    it runs in the second pass only."""


def active() -> bool:
    """Within a dashboard's batch (collecting or handing out)."""
    return _batch.get() is not None


def remember(key: Any, compute: Callable[[], Any]) -> Any:
    """``compute()`` once per key within a dashboard's batch — both passes, every
    thread: the metadata its widgets read alike (their report rows, a form's projection)
    — and every time outside one."""
    b = _batch.get()
    if b is None:
        return compute()
    if key not in b.memo:
        b.memo[key] = compute()
    return b.memo[key]


def planned(key: Any, build: Callable[[], Plan]) -> Plan:
    """``build()``'s plan once per key within a dashboard's batch: the second pass takes
    the plan the first compiled (and noted), not compiling it and its signature again
    (about a tenth of a dashboard read's Python); every time outside one."""
    b = _batch.get()
    if b is None:
        return build()
    found = b.plans.get(key)
    if found is None:
        found = b.plans[key] = build()
    return found


def collecting() -> bool:
    b = _batch.get()
    return b is not None and b.collecting


@contextmanager
def batch(b: Batch) -> Iterator[Batch]:
    """Within this block, reports note (collecting) or take (running) their rows."""
    token = _batch.set(b)
    try:
        yield b
    finally:
        _batch.reset(token)


def rows_for(plan: Plan, session: Any) -> list[dict[str, Any]] | None:
    """The rows of ``plan`` from the current batch: none while collecting (the statement
    is noted), a shared statement's when it ran, else None (run your own)."""
    b = _batch.get()
    if b is None:
        return None
    dialect = session.get_bind().dialect
    if b.collecting:
        b.note(plan, dialect)
        return []
    return b.rows_for(plan, dialect)
