"""Benchmark of the flow engine: task completions per second against bare record updates,
on SQLite and PostgreSQL.

``flows_complete_<N>_x10_<db>``: ``--instances`` N flow instances (default 10,000), each
driven through the 10 user steps of a published linear flow
(start → s1 → … → s10 → end), vs. the same number (N × 10) of plain record updates.

One *business action* is taken to be "a person saves their work on a case": at a flow
step that is completing the step's task with the field they filled in; without a flow it
is saving the same change to the record. So both sides write the same field change to a
record of the same form through the same code (``engine_forms.records.update``: validate
against the published form, record history, ``record.update`` outbox event); what the
flow engine adds on top is the price of the flow.

* ours: per completion one ``Database.write()`` transaction calling
  ``engine_flows.tasks.complete(s, task_id, Who(principal, keyring, now),
  data={"note": …})`` as ``POST /api/v1/tasks/{id}/complete`` does (without HTTP, token
  lookup and the read-back the route answers with): lock the run, load and check the
  task, the assignee's right, the step's editable/required fields, ``records.update`` of
  the record (history + outbox), close the task, leave the step, enter the next one
  (step row, assignee resolution, due times, the next task), with flow history and the
  outbox events ``task.completed``, ``flow.step_left``, ``flow.step_entered``,
  ``task.created`` (the last step: ``flow.completed``) in the same transaction.
* baseline: per update one ``Database.write()`` transaction calling
  ``forms.published`` (as every API request does) and ``engine_forms.records.update``
  of the same ``{"note": …}`` change, with the client's known ``expected_version`` (as an
  ``If-Match`` would carry it) and the same ``FieldCrypt``: validation, record history,
  one ``record.update`` outbox event. ``engine_forms.records.update`` rather than the
  store's ``update_record`` because it is exactly what a completion with data runs, so
  the difference is the flow and nothing else.

Every step is a ``user_task`` assigned to one named user (strategy ``users``), with an
SLA of 8 hours, ``note`` editable and required — what a typical step of a real flow
carries. The instances are started first (``engine_flows.runs.start``, one transaction
each; timed for information), then driven pass by pass: pass ``k`` completes step ``k``
of every instance and makes update ``k`` of every baseline record. Within a pass the two
sides alternate every ``--block`` operations (ABBA), so a change of load on the machine
hits both alike; every operation is timed on its own (the untimed lookup of the open
task ids happens once between passes). Flow and baseline records are interleaved in one
``records`` table of one fresh, migrated database.

Set-up (not timed): app ``bench``, form ``case`` published (``engine_forms``), a role
``clerk`` that may create/read/update every case, users ``starter`` and ``user1`` …
``user10`` with that role (``platform_core.security``), the flow created and published
(``engine_flows.definitions``), 2 N records through ``records.create_many``. Checked
once per database (not timed): every instance completed, 10 N tasks done, every record
of both sides at row version 11 holding the last note, outbox and history counts. The
queries of one completion and of one update are counted on a few more instances with a
SQLAlchemy ``before_cursor_execute`` listener.

Usage::

    python bench/flows.py [--db sqlite|postgresql|both] [--instances N] [--quick]
                          [--block N] [--sample N] [--pg-url URL] [--profile]

Prints one ``RESULT metric=… ours=… baseline=… ratio=… target=2.5`` line per database
(seconds for all N × 10 operations; ratio = ours / baseline) and a table. No assertions
on time. ``--profile`` adds cProfile listings of completions and of updates on extra
instances, and the statements of a completion and of an update by kind and by the
platform code that issued them.
"""

from __future__ import annotations

import argparse
import gc
import os
import re
import statistics
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import event, func, select
from targets import DEFAULT_PG_URL, Target, choose_targets, chunks, count_label, profile_call

from engine_flows import definitions, runs, tasks
from engine_flows.models import FlowHistory, FlowRun, FlowStep, Task
from engine_flows.plugin import register_builtins as register_flows
from engine_flows.tasks import Who
from engine_forms import fieldtypes, forms, publishing, records
from engine_forms.sealing import FieldCrypt
from platform_core import expressions
from platform_core.db import Database
from platform_core.models import OutboxEvent, Record, RecordHistory, utcnow
from platform_core.security.crypto import Keyring
from platform_core.security.directory import ensure_builtin_roles, save_role
from platform_core.security.models import Role, User, UserRole
from platform_core.security.passwords import hash_password
from platform_core.security.principal import Principal, load_principal
from platform_core.settings import load_settings
from platform_core.store import Actor, kinds

SCRATCH_DB = "qiao_bench_flows"
TARGET = 2.5  # issue 23: ≤ 2.5× a record update (with ≤ 12 statements, p50 ≤ 10 ms)
STEPS = 10
QUICK_INSTANCES = 1000
APP, FORM, FLOW = "bench", "case", "review"
SYSTEM = Actor(user_id=None, name="bench")
CREATE_BATCH = 1000

CASE_SPEC: dict[str, Any] = {
    "key": FORM, "name": "贷款案件", "title_field": "title",
    "fields": [
        {"key": "title", "label": "标题", "type": "text", "required": True},
        {"key": "region", "label": "区域", "type": "text"},
        {"key": "amount", "label": "金额", "type": "money"},
        {"key": "note", "label": "备注", "type": "text"},
        {"key": "mobile", "label": "客户手机", "type": "phone", "sensitive": {"mask": True}},
    ]}
ROLE_PERMS = {"forms": {f"{APP}.*": {"actions": ["create", "read", "update"],
                                     "scope": "all"}}}
REGIONS = ["北京", "上海", "广州", "深圳", "成都"]


def flow_spec() -> dict[str, Any]:
    """start → s1 … s10 → end; step k is ``user{k}``'s, 8 h SLA, note editable+required."""
    steps = [{"id": f"s{k}", "type": "user_task", "name": f"第{k}步审核",
              "assignee": {"strategy": "users", "users": [f"user{k}"]},
              "sla": {"hours": 8}, "fields": {"editable": ["note"], "required": ["note"]}}
             for k in range(1, STEPS + 1)]
    nodes = [{"id": "start", "type": "start"}, *steps, {"id": "end", "type": "end"}]
    ids = [n["id"] for n in nodes]
    return {"key": FLOW, "name": "十步审核", "form": FORM, "nodes": nodes,
            "edges": [{"from": a, "to": b} for a, b in zip(ids, ids[1:], strict=False)]}


def case(i: int) -> dict[str, Any]:
    return {"title": f"案件{i:06d}", "region": REGIONS[i % len(REGIONS)],
            "amount": f"{100000 + i}.00", "mobile": f"139{i:08d}"}


def note(step: int, i: int) -> str:
    return f"第{step}步已处理, 材料齐全 #{i}"


# --------------------------------------------------------------------------- set-up


@dataclass
class World:
    db: Database
    keyring: Keyring
    starter: Principal
    users: list[Principal]  # users[k - 1] acts at step k
    tmp: tempfile.TemporaryDirectory[str]
    next_case: int = 0

    def close(self) -> None:
        self.db.dispose()
        self.tmp.cleanup()

    def records(self, n: int) -> list[int]:
        """``n`` new case records (not timed), created by the starter."""
        first, self.next_case = self.next_case, self.next_case + n
        ids: list[int] = []
        for batch in chunks(range(first, first + n), CREATE_BATCH):
            with self.db.write() as s:
                pub = forms.published(s, APP, FORM)
                ids += records.create_many(s, pub, [case(i) for i in batch],
                                           actor=self.starter.actor)
        return ids

    def who(self, principal: Principal) -> Who:
        return Who(principal, self.keyring, utcnow())


def build(target: Target) -> World:
    """Fresh database, app and form, role, users, the flow published (not timed)."""
    db = target.fresh()
    tmp = tempfile.TemporaryDirectory(prefix="qiao_bench_flows_")
    keyring = Keyring.load(load_settings(data_dir=Path(tmp.name)))
    password = hash_password("Bench-Passw0rd!")
    with db.write() as s:
        forms.create_app(s, key=APP, name="流程基准")
        forms.create_form(s, app=APP, raw=CASE_SPEC)
        publishing.publish(s, app=APP, key=FORM, actor=SYSTEM)
        ensure_builtin_roles(s)
        save_role(s, key="clerk", name="clerk", description=None, permissions=ROLE_PERMS,
                  actor=SYSTEM, principal=None, create=True)
        clerk = s.execute(select(Role.id).where(Role.key == "clerk")).scalar_one()
        people = []
        for name in ["starter", *(f"user{k}" for k in range(1, STEPS + 1))]:
            user = User(username=name, display_name=name, password_hash=password)
            s.add(user)
            s.flush()
            s.add(UserRole(user_id=user.id, role_id=clerk))
            people.append(user)
        s.flush()
        principals = [load_principal(s, u, via="token") for u in people]
    with db.write() as s:
        definitions.create_flow(s, app=APP, raw=flow_spec())
        definitions.publish(s, app=APP, key=FLOW, actor=principals[0].actor)
    return World(db, keyring, principals[0], principals[1:], tmp)


# --------------------------------------------------------------------------- the sides


def start_one(world: World, record_id: int) -> int:
    with world.db.write() as s:
        return runs.start(s, app=APP, flow=FLOW, record_id=record_id,
                          who=world.who(world.starter)).id


def complete_one(world: World, task_id: int, step: int, i: int) -> None:
    """Ours: the assignee of step ``step`` completes its task with the note filled in."""
    with world.db.write() as s:
        tasks.complete(s, task_id, world.who(world.users[step - 1]),
                       data={"note": note(step, i)})


def update_one(world: World, record_id: int, version: int, step: int, i: int) -> int:
    """Baseline: the same person saves the same change to a record; its new version."""
    with world.db.write() as s:
        pub = forms.published(s, APP, FORM)
        rec = records.update(s, pub, record_id, {"note": note(step, i)},
                             expected_version=version, actor=world.users[step - 1].actor,
                             crypt=FieldCrypt(pub, world.keyring))
        return rec.row_version


def open_tasks(world: World, run_ids: list[int]) -> list[int]:
    """The one open task of each run, in the order of ``run_ids`` (not timed)."""
    with world.db.read() as s:
        found = dict(s.execute(select(Task.run_id, Task.id).where(
            Task.app == APP, Task.status == "open")).all())
    return [found[r] for r in run_ids]


@dataclass
class Driver:
    """N instances and N baseline records, driven pass by pass."""

    world: World
    run_ids: list[int]
    base_ids: list[int]
    versions: list[int]
    step: int = 0
    task_ids: list[int] = field(default_factory=list)

    @classmethod
    def start(cls, world: World, n: int, times: list[float] | None = None) -> Driver:
        ids = world.records(2 * n)
        flow_recs, base_recs = ids[0::2], ids[1::2]  # interleaved in the table
        run_ids = []
        for rid in flow_recs:
            t0 = time.perf_counter()
            run_ids.append(start_one(world, rid))
            if times is not None:
                times.append(time.perf_counter() - t0)
        return cls(world, run_ids, base_recs, [1] * n)

    def next_pass(self) -> None:
        self.step += 1
        self.task_ids = open_tasks(self.world, self.run_ids)

    def ours(self, i: int) -> None:
        complete_one(self.world, self.task_ids[i], self.step, i)

    def base(self, i: int) -> None:
        self.versions[i] = update_one(self.world, self.base_ids[i], self.versions[i],
                                      self.step, i)

    def run_all(self) -> None:
        """Every step of every instance and every update (profiling, counting)."""
        for _ in range(STEPS):
            self.next_pass()
            for i in range(len(self.run_ids)):
                self.ours(i)
                self.base(i)


def timed(fn: Callable[[int], None], start: int, k: int, out: list[float]) -> None:
    for i in range(start, start + k):
        t0 = time.perf_counter()
        fn(i)
        out.append(time.perf_counter() - t0)


# --------------------------------------------------------------------------- counting


_KIND = re.compile(r"^\s*(SELECT|INSERT INTO|UPDATE|DELETE FROM|SAVEPOINT|RELEASE|BEGIN|"
                   r"COMMIT|ROLLBACK)\b", re.IGNORECASE)
_FROM = re.compile(r"\bFROM\s+\"?(\w+)", re.IGNORECASE)
_TABLE = re.compile(r"^\s*(?:INSERT INTO|UPDATE|DELETE FROM)\s+\"?(\w+)", re.IGNORECASE)


def label_sql(sql: str) -> str:
    """``SELECT flow_runs … FOR UPDATE``-like label of a statement."""
    kind = _KIND.match(sql)
    if kind is None:
        return sql.split(None, 1)[0].upper() if sql.strip() else "?"
    verb = kind.group(1).upper()
    if verb == "SELECT":
        table = _FROM.search(sql)
        name = table.group(1) if table else "-"
        extra = " FOR UPDATE" if "FOR UPDATE" in sql.upper() else ""
        return f"SELECT {name}{extra}"
    table = _TABLE.match(sql)
    return f"{verb.split()[0]} {table.group(1) if table else ''}".strip()


REPO = str(Path(__file__).resolve().parent.parent)
BENCH = str(Path(__file__).resolve().parent)


def call_site() -> str:
    """Where the platform's code issued the statement: its innermost two frames outside
    SQLAlchemy and this script, ``file:line function`` each."""
    frames = []
    frame = sys._getframe(2)
    while frame is not None and len(frames) < 2:
        name = frame.f_code.co_filename
        if name.startswith(REPO) and not name.startswith(BENCH):
            frames.append(f"{os.path.relpath(name, REPO)}:{frame.f_lineno} "
                          f"{frame.f_code.co_name}")
        frame = frame.f_back
    return " ← ".join(frames) or "?"


@dataclass
class Seen:
    """Statements run on a database: how many and how long in the driver, by label (and
    by label + call site when ``sites``)."""

    sites: bool = False
    count: Counter[str] = field(default_factory=Counter)
    seconds: Counter[str] = field(default_factory=Counter)
    by_site: Counter[tuple[str, str]] = field(default_factory=Counter)

    def __iadd__(self, other: Seen) -> Seen:
        self.count += other.count
        self.seconds += other.seconds
        self.by_site += other.by_site
        return self

    @property
    def total(self) -> int:
        return sum(self.count.values())

    @property
    def total_seconds(self) -> float:
        return sum(self.seconds.values())


@contextmanager
def counting(db: Database, *, sites: bool = False) -> Iterator[Seen]:
    """Counts and times the statements run on ``db`` inside the block (``label_sql``)."""
    seen = Seen(sites)
    started: list[tuple[str, float]] = []

    def before(_conn: Any, _cursor: Any, statement: str, *_rest: Any) -> None:
        label = label_sql(statement)
        seen.count[label] += 1
        if sites:
            seen.by_site[(label, call_site())] += 1
        started.append((label, time.perf_counter()))

    def after(*_args: Any) -> None:
        label, t0 = started.pop()
        seen.seconds[label] += time.perf_counter() - t0

    event.listen(db.engine, "before_cursor_execute", before)
    event.listen(db.engine, "after_cursor_execute", after)
    try:
        yield seen
    finally:
        event.remove(db.engine, "before_cursor_execute", before)
        event.remove(db.engine, "after_cursor_execute", after)


@dataclass
class Queries:
    """Statements of starts, completions and updates on a few extra instances, and the
    wall time of those operations (to split a completion into driver time and Python)."""

    n: int  # instances (and records)
    start: Seen
    completion: Seen
    update: Seen
    completion_s: float = 0.0  # wall time of all completions
    update_s: float = 0.0

    @property
    def ops(self) -> int:
        return self.n * STEPS

    @property
    def per_start(self) -> float:
        return self.start.total / self.n

    @property
    def per_completion(self) -> float:
        return self.completion.total / self.ops

    @property
    def per_update(self) -> float:
        return self.update.total / self.ops


def count_queries(world: World, n: int, *, sites: bool = False) -> Queries:
    """Statements per start, per completion and per update, on ``n`` extra instances."""
    ids = world.records(2 * n)
    with counting(world.db, sites=sites) as started:
        run_ids = [start_one(world, rid) for rid in ids[0::2]]
    drv = Driver(world, run_ids, ids[1::2], [1] * n)
    q = Queries(n, started, Seen(sites), Seen(sites))
    for _ in range(STEPS):
        drv.next_pass()
        for i in range(n):
            with counting(world.db, sites=sites) as seen:
                t0 = time.perf_counter()
                drv.ours(i)
                q.completion_s += time.perf_counter() - t0
            q.completion += seen
            with counting(world.db, sites=sites) as seen:
                t0 = time.perf_counter()
                drv.base(i)
                q.update_s += time.perf_counter() - t0
            q.update += seen
    return q


# --------------------------------------------------------------------------- checking


def check(world: World, drv: Driver) -> str:
    """Every instance completed, every task done, every record at version 11 with the
    last note; outbox and history counts of both sides."""
    n = len(drv.run_ids)
    last = note(STEPS, 0)[:-1]
    with world.db.read() as s:
        statuses = Counter(s.execute(select(FlowRun.status).where(
            FlowRun.id.in_(drv.run_ids))).scalars())
        assert statuses == {"completed": n}, statuses
        done = s.execute(select(func.count()).select_from(Task).where(
            Task.run_id.in_(drv.run_ids), Task.status == "done")).scalar_one()
        assert done == STEPS * n, (done, STEPS * n)
        flow_recs = [r for r, in s.execute(select(FlowRun.record_id).where(
            FlowRun.id.in_(drv.run_ids)))]
        for label, ids in (("flow", flow_recs), ("baseline", drv.base_ids)):
            rows = s.execute(select(Record.id, Record.row_version, Record.data).where(
                Record.id.in_(ids))).all()
            assert len(rows) == n, (label, len(rows))
            bad = [r.id for r in rows if r.row_version != STEPS + 1
                   or not str(r.data.get("note", "")).startswith(last)]
            assert not bad, (label, bad[:5])
            hist = s.execute(select(func.count()).select_from(RecordHistory).where(
                RecordHistory.record_id.in_(ids), RecordHistory.action == "update")
            ).scalar_one()
            assert hist == STEPS * n, (label, hist)
        events = dict(s.execute(select(OutboxEvent.event_type, func.count()).group_by(
            OutboxEvent.event_type)).all())
        steps = s.execute(select(func.count()).select_from(FlowStep).where(
            FlowStep.run_id.in_(drv.run_ids))).scalar_one()
        history = s.execute(select(func.count()).select_from(FlowHistory).where(
            FlowHistory.run_id.in_(drv.run_ids))).scalar_one()
    want = {"task.completed": STEPS * n, "task.created": STEPS * n,
            "flow.completed": n, "record.updated": 2 * STEPS * n}
    for kind, count in want.items():
        assert events.get(kind) == count, (kind, events.get(kind), count)
    assert steps == (STEPS + 2) * n, steps
    return (f"{n} instances completed, {STEPS * n} tasks done, {2 * n} records at version "
            f"{STEPS + 1}; {steps} steps, {history} flow history rows; outbox "
            + ", ".join(f"{k} {v}" for k, v in sorted(events.items())))


# --------------------------------------------------------------------------- running


@dataclass
class Result:
    db: str
    n: int
    ours: list[float] = field(default_factory=list)  # every completion, seconds
    base: list[float] = field(default_factory=list)  # every update, seconds
    starts: list[float] = field(default_factory=list)
    queries: Queries | None = None
    wall: float = 0.0

    @property
    def metric(self) -> str:
        return f"flows_complete_{count_label(self.n)}_x{STEPS}_{self.db}"

    @property
    def ours_s(self) -> float:
        return sum(self.ours)

    @property
    def base_s(self) -> float:
        return sum(self.base)

    @property
    def ratio(self) -> float:
        return self.ours_s / self.base_s

    def result_line(self) -> str:
        return (f"RESULT metric={self.metric} ours={self.ours_s:.3f} "
                f"baseline={self.base_s:.3f} ratio={self.ratio:.3f} target={TARGET}")


def run_target(target: Target, args: argparse.Namespace) -> Result:
    n = args.instances
    print(f"\n== {target.name}: {n} instances × {STEPS} completions vs. {n} records × "
          f"{STEPS} updates, alternating every {args.block} ==")
    started = time.perf_counter()
    world = build(target)
    res = Result(target.name, n)
    try:
        t0 = time.perf_counter()
        drv = Driver.start(world, n, res.starts)
        print(f"  [{target.name}] set-up + {n} starts {time.perf_counter() - t0:.1f} s "
              f"(start: {statistics.mean(res.starts) * 1e3:.2f} ms each)")
        for step in range(1, STEPS + 1):
            gc.collect()
            drv.next_pass()
            o0, b0 = len(res.ours), len(res.base)
            for b, first in enumerate(range(0, n, args.block)):
                k = min(args.block, n - first)
                sides = [(drv.ours, res.ours), (drv.base, res.base)]
                for fn, out in sides if (b + step) % 2 == 0 else sides[::-1]:
                    timed(fn, first, k, out)
            ours, base = sum(res.ours[o0:]), sum(res.base[b0:])
            print(f"  [{target.name}] step {step:2d}/{STEPS}: ours {ours / n * 1e3:7.3f} ms, "
                  f"baseline {base / n * 1e3:7.3f} ms per operation, ratio "
                  f"{ours / base:5.2f} ({n / ours:6.0f} completions/s)")
        print(f"  [{target.name}] checked: {check(world, drv)}")
        res.queries = count_queries(world, args.sample)
        q = res.queries
        print(f"  [{target.name}] statements: {q.per_start:.1f} per start, "
              f"{q.per_completion:.1f} per completion, {q.per_update:.1f} per update "
              f"(over {args.sample} more instances); in the driver: "
              f"{driver_share(q.completion, q.completion_s)} of a completion, "
              f"{driver_share(q.update, q.update_s)} of an update")
        if args.profile:
            profile_target(world, target.name, args)
    finally:
        world.close()
        target.drop()
    res.wall = time.perf_counter() - started
    return res


# --------------------------------------------------------------------------- profiling


def profile_target(world: World, name: str, args: argparse.Namespace) -> None:
    """cProfile of ``--sample`` × 5 more instances' completions and their baseline
    updates; the statements of a completion and of an update by kind (count and driver
    time per operation) and by call site, on ``--sample`` more instances."""
    q = args.sample * 5
    drv = Driver.start(world, q)
    ops = q * STEPS

    def ours() -> None:
        for _ in range(STEPS):
            drv.next_pass()
            for i in range(q):
                drv.ours(i)

    def base() -> None:
        for step in range(1, STEPS + 1):
            drv.step = step
            for i in range(q):
                drv.base(i)

    profile_call(f"{ops} task completions ({q} instances × {STEPS}) on {name}", ours,
                 cumulative=60)
    profile_call(f"{ops} record updates ({q} records × {STEPS}) on {name}", base)
    queries = count_queries(world, args.sample, sites=True)
    ops = queries.ops
    for label, seen, wall in (("completion", queries.completion, queries.completion_s),
                              ("update", queries.update, queries.update_s)):
        print(f"\n---- statements per {label} on {name} (mean over {ops}; "
              f"{wall / ops * 1e3:.2f} ms per {label}, "
              f"{driver_share(seen, wall)} of it in the driver) ----")
        print(f"  {'count':>5s} {'ms':>6s}  statement")
        for stmt, count in seen.count.most_common():
            print(f"  {count / ops:5.2f} {seen.seconds[stmt] / ops * 1e3:6.3f}  {stmt}")
        print(f"  {seen.total / ops:5.2f} {seen.total_seconds / ops * 1e3:6.3f}  (all)")
        print(f"\n  by call site ({label}; an INSERT/UPDATE of the ORM shows where its "
              "flush happened):")
        for (stmt, site), count in sorted(seen.by_site.items(), key=lambda kv: (-kv[1],
                                                                                 kv[0])):
            print(f"  {count / ops:5.2f}  {stmt:28s} {site}")


def driver_share(seen: Seen, wall: float) -> str:
    """The share of ``wall`` spent in the database driver's execute."""
    return f"{seen.total_seconds / wall:.0%}" if wall else "-"


# --------------------------------------------------------------------------- report


def pct(times: list[float], p: float) -> float:
    ordered = sorted(times)
    return ordered[min(len(ordered) - 1, int(p * len(ordered)))]


def print_report(results: list[Result]) -> None:
    print()
    for r in results:
        print(r.result_line())
    print()
    head = (f"{'metric':34s} {'ours s':>8s} {'/s':>6s} {'base s':>8s} {'/s':>6s} "
            f"{'ratio':>6s} target  ok   {'p50 ms ours/base':>17s} {'p95 ms ours/base':>17s} "
            f"{'stmts ours/base':>15s}")
    print(head)
    print("-" * len(head))
    for r in results:
        ok = "yes" if r.ratio <= TARGET else "NO "
        p50 = f"{pct(r.ours, .5) * 1e3:.2f} / {pct(r.base, .5) * 1e3:.2f}"
        p95 = f"{pct(r.ours, .95) * 1e3:.2f} / {pct(r.base, .95) * 1e3:.2f}"
        q = r.queries
        stmts = f"{q.per_completion:.1f} / {q.per_update:.1f}" if q else "-"
        print(f"{r.metric:34s} {r.ours_s:8.2f} {len(r.ours) / r.ours_s:6.0f} "
              f"{r.base_s:8.2f} {len(r.base) / r.base_s:6.0f} {r.ratio:6.2f} "
              f"{TARGET:6.1f}  {ok}  {p50:>17s} {p95:>17s} {stmts:>15s}")
    for r in results:
        label = f"  └ start, {r.db} (info)"
        per = statistics.mean(r.starts)
        stmts = f", {r.queries.per_start:.1f} statements" if r.queries else ""
        print(f"{label:34s} {sum(r.starts):8.2f} {1 / per:6.0f}   ({per * 1e3:.2f} ms per "
              f"start{stmts}; whole run {r.wall:.0f} s)")
    print(f"(seconds for all N × {STEPS} operations, each its own transaction; /s = "
          "operations per second; ours = tasks.complete with a note, base = records.update "
          "of the same note)")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--db", choices=("sqlite", "postgresql", "both"), default="both")
    parser.add_argument("--instances", type=int, default=None, metavar="N",
                        help="flow instances (and baseline records), each through "
                             f"{STEPS} steps (default 10,000; {QUICK_INSTANCES} with --quick)")
    parser.add_argument("--quick", action="store_true",
                        help=f"a smaller run: {QUICK_INSTANCES} instances unless "
                             "--instances says otherwise")
    parser.add_argument("--block", type=int, default=100, metavar="N",
                        help="operations of one side before switching to the other "
                             "(default 100)")
    parser.add_argument("--sample", type=int, default=20, metavar="N",
                        help="extra instances whose statements are counted (default 20; "
                             "--profile profiles 5 × as many)")
    parser.add_argument("--pg-url", default=os.environ.get("QIAO_BENCH_PG_URL", DEFAULT_PG_URL),
                        help="PostgreSQL server URL (env QIAO_BENCH_PG_URL); the benchmark "
                             f"creates and drops its own database {SCRATCH_DB!r} there")
    parser.add_argument("--profile", action="store_true",
                        help="also cProfile completions and updates on extra instances, "
                             "and list the statements of one completion")
    args = parser.parse_args(argv)
    if args.instances is None:
        args.instances = QUICK_INSTANCES if args.quick else 10_000
    if min(args.instances, args.block, args.sample) < 1:
        parser.error("--instances, --block and --sample must be at least 1")
    kinds.register_builtins()
    expressions.register_builtins()
    fieldtypes.register_builtins()
    register_flows()

    targets = choose_targets(args.db, args.pg_url, SCRATCH_DB)
    results: list[Result] = []
    started = time.perf_counter()
    try:
        for target in targets:
            results.append(run_target(target, args))
    finally:
        for target in targets:
            target.close()
    print_report(results)
    print(f"(total {time.perf_counter() - started:.0f} s)")


if __name__ == "__main__":
    main()
