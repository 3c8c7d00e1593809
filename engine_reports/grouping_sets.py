"""A dashboard's shared statements over the same rows, read in one scan (PostgreSQL).

``fusion.Batch.plan`` leaves one statement per grouping it could not roll up from
another (by region × month; by channel × term × product × status …). Each of those reads
the same rows — at a million records, a full scan each, and the scan, not the
aggregation, is most of a statement's time (bench/reports.py: the filtered scan alone is
about 60% of a two-dimension report). On PostgreSQL they become one statement::

    SELECT grouping(rows.g0, …, rows.gN) AS gid, rows.g0, …, aggregates …
    FROM (SELECT <group expressions> AS g…, <aggregate arguments> AS a… FROM <the scan>)
         AS rows
    GROUP BY GROUPING SETS ((rows.g0, rows.g1), (rows.g2, …), …)

which reads the rows once and keeps one hash table per grouping. ``gid`` (a bit per
grouping column, set when the row's grouping does not use it) says which grouping each
result row belongs to; ``split`` hands each statement its own rows, named as its own
statement would name them, so the rest of ``fusion`` is unchanged. The subquery only
names the expressions (PostgreSQL pulls it up): ``grouping()`` must name exactly what
the sets group by.

Alone in its request and over one big table (at least PostgreSQL's
``min_parallel_table_scan_size``), the statement is also split by block ranges of the
table (``ctid``, a TID range scan: PostgreSQL 14+) into as many parts as PostgreSQL
would give one parallel query (``max_parallel_workers_per_gather`` + 1), each on its own
connection — PostgreSQL runs no grouping sets in parallel itself. The parts read one
snapshot (the first exports it, the others import it: ``REPEATABLE READ``), so together
they read each row once, as one statement would; their groups are added up in Python
(counts and sums added, minima and maxima kept, averages as the sum over the count; a
distinct count is never split).

Not combined: a grouping that had more than ``MAX_GROUPS`` groups the last time (its
widgets run their own cut statements anyway), and more than ``MAX_COLUMNS`` grouping
columns (the width of ``grouping()``'s bit mask). When the combined result reaches its
limit no grouping is handed out: each widget runs its own statement, as it does when a
shared statement is truncated.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from sqlalchemy import Table, func, literal_column, select, text, tuple_

from engine_reports.compiler import MAX_GROUPS, aggregate

if TYPE_CHECKING:
    from engine_reports.fusion import _Dim, _Shared

MAX_COLUMNS = 31  # grouping() answers an integer: one bit per column
SPLIT_MIN_BYTES: int | None = None  # None: PostgreSQL's min_parallel_table_scan_size


@dataclass
class Sets:
    """Several shared statements over the same rows (``members``), run as one."""

    members: list[_Shared]
    dims: list[_Dim] = field(default_factory=list)  # the union of the members' groups
    sets: list[tuple[int, ...]] = field(default_factory=list)  # distinct groupings
    of_member: list[int] = field(default_factory=list)  # member → its set's index
    columns: dict[tuple[str, str], str] = field(default_factory=dict)  # part → column
    args: dict[tuple[str, str], Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        where: dict[str, int] = {}
        for s in self.members:
            for d in s.dims:
                if d.sig not in where:
                    where[d.sig] = len(self.dims)
                    self.dims.append(d)
            grouping = tuple(sorted(where[d.sig] for d in s.dims))
            if grouping not in self.sets:
                self.sets.append(grouping)
            self.of_member.append(self.sets.index(grouping))
            for agg, sig in s.columns:
                for part in ((("sum", sig), ("count", sig)) if agg == "avg" else ()):
                    self._column(part, s.args[(agg, sig)])
                self._column((agg, sig), s.args[(agg, sig)])
        self.scan_sig = self.members[0].scan_sig

    def _column(self, part: tuple[str, str], arg: Any) -> None:
        if part not in self.columns:
            self.columns[part] = f"c{len(self.columns)}"
            self.args[part] = arg

    @property
    def limit(self) -> int:
        return (MAX_GROUPS + 1) * len(self.sets)

    def mask(self, index: int) -> int:
        """``grouping()``'s answer for rows of set ``index``."""
        n, grouped = len(self.dims), set(self.sets[index])
        return sum(1 << (n - 1 - i) for i in range(n) if i not in grouped)

    def statement(self, blocks: tuple[int, int | None] | None = None) -> Any:
        """The one statement; ``blocks``: only the rows in that range of the table's
        blocks (``[first, last)``, open-ended when ``last`` is None). An average is read
        as its sum and count (``split`` divides), so parts add up and every average is
        the same quotient whether the statement was split or not."""
        arg_names: dict[str, str] = {}
        inner = [d.expr.label(f"g{i}") for i, d in enumerate(self.dims)]
        for (_agg, sig), arg in self.args.items():
            if arg is not None and sig not in arg_names:
                arg_names[sig] = f"a{len(arg_names)}"
                inner.append(arg.label(arg_names[sig]))
        scan = self.members[0].scan.with_only_columns(*inner)
        if blocks is not None:
            scan = scan.where(literal_column("ctid") >= _tid(blocks[0]))
            if blocks[1] is not None:
                scan = scan.where(literal_column("ctid") < _tid(blocks[1]))
        rows = scan.subquery("rows")
        groups = [rows.c[f"g{i}"] for i in range(len(self.dims))]
        cols = [aggregate(agg, None if self.args[(agg, sig)] is None
                          else rows.c[arg_names[sig]]).label(name)
                for (agg, sig), name in self.columns.items() if agg != "avg"]
        sets = [tuple_(*[groups[i] for i in grouping]) for grouping in self.sets]
        return (select(func.grouping(*groups).label("gid"), *groups, *cols)
                .group_by(func.grouping_sets(*sets)).limit(self.limit))

    def run(self, db: Any, *, alone: bool) -> list[dict[str, Any]]:
        """The statement's rows: split into parts on their own connections when it runs
        alone over a big enough table (see the module's docstring)."""
        from concurrent.futures import ThreadPoolExecutor

        from engine_reports.fusion import _rows

        with db.read() as lead:
            parts = self._parts(lead) if alone else None
            if parts is None:
                return _rows(lead, self, alone=alone)
            snapshot, ranges = parts
            if not re.fullmatch(r"[0-9A-Fa-f-]+", snapshot):  # as PostgreSQL names them
                return _rows(lead, self, alone=alone)

            def part(blocks: tuple[int, int | None]) -> list[dict[str, Any]]:
                with db.read() as s:
                    s.execute(text("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ"))
                    s.execute(text(f"SET TRANSACTION SNAPSHOT '{snapshot}'"))
                    return _fetch(s, self.statement(blocks))

            with ThreadPoolExecutor(max_workers=len(ranges) - 1) as ex:
                others = ex.map(part, ranges[1:])
                mine = _fetch(lead, self.statement(ranges[0]))
                results = [mine, *others]
        if any(len(r) >= self.limit for r in results):
            return results[0]  # cut: ``split`` hands nothing out
        return self._add_up(results)

    def _parts(self, lead: Any) -> tuple[str, list[tuple[int, int | None]]] | None:
        """(the lead's exported snapshot, the block ranges) when the statement splits,
        else None; ``lead``: a fresh read session, its transaction then REPEATABLE READ."""
        froms = self.members[0].scan.get_final_froms()
        bind = lead.get_bind()
        if (bind.dialect.name != "postgresql" or (bind.dialect.server_version_info or (0,))
                < (14,) or len(froms) != 1 or not isinstance(froms[0], Table)
                or any(agg == "distinct" for agg, _ in self.columns)):
            return None
        lead.execute(text("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ"))
        table = froms[0]
        name = f"{table.schema}.{table.name}" if table.schema else table.name
        size, least, workers, block = lead.execute(text(
            "SELECT pg_relation_size(CAST(:name AS regclass)), "
            "pg_size_bytes(current_setting('min_parallel_table_scan_size')), "
            "current_setting('max_parallel_workers_per_gather')::int, "
            "current_setting('block_size')::int"), {"name": name}).one()
        least = least if SPLIT_MIN_BYTES is None else SPLIT_MIN_BYTES
        blocks, n = size // block, workers + 1
        if n < 2 or size < least or blocks < n:
            return None
        snapshot = lead.execute(text("SELECT pg_export_snapshot()")).scalar_one()
        edges = [blocks * i // n for i in range(n)]
        return snapshot, [(a, b) for a, b in zip(edges, [*edges[1:], None], strict=True)]

    def _add_up(self, results: list[list[dict[str, Any]]]) -> list[dict[str, Any]]:
        """The parts' groups as one statement's: counts and sums added, minima and
        maxima kept (averages are divided later, by ``split``)."""
        keys = ["gid", *(f"g{i}" for i in range(len(self.dims)))]
        merged: dict[tuple[Any, ...], dict[str, Any]] = {}
        for rows in results:
            for r in rows:
                key = tuple(r[k] for k in keys)
                acc = merged.get(key)
                if acc is None:
                    merged[key] = dict(r)
                    continue
                for (agg, _sig), name in self.columns.items():
                    if agg in ("count", "sum"):
                        acc[name] = _plus(acc[name], r[name])
                    elif agg in ("min", "max") and r[name] is not None and (
                            acc[name] is None or (r[name] < acc[name] if agg == "min"
                                                  else r[name] > acc[name])):
                        acc[name] = r[name]
        return list(merged.values())

    def split(self, rows: list[dict[str, Any]]) -> list[tuple[_Shared, list[dict[str, Any]]]]:
        """Each member's rows as its own statement would have named them; none when the
        result reached its limit (some grouping may be cut)."""
        by_mask: dict[int, list[dict[str, Any]]] = {self.mask(i): []
                                                     for i in range(len(self.sets))}
        for r in rows:
            by_mask[r["gid"]].append(r)
        if len(rows) >= self.limit:
            return []
        for (agg, sig), name in self.columns.items():
            if agg == "avg":
                total, count = self.columns[("sum", sig)], self.columns[("count", sig)]
                for r in rows:
                    r[name] = None if not r[count] or r[total] is None \
                        else r[total] / r[count]
        index = {d.sig: f"g{i}" for i, d in enumerate(self.dims)}
        out = []
        for s, k in zip(self.members, self.of_member, strict=True):
            names = [(f"g{i}", index[d.sig]) for i, d in enumerate(s.dims)]
            names += [(name, self.columns[part]) for part, name in s.columns.items()]
            out.append((s, [{mine: r[theirs] for mine, theirs in names}
                            for r in by_mask[self.mask(k)]]))
        return out


def _tid(block: int) -> Any:
    return literal_column(f"'({int(block)},0)'::tid")


def _plus(total: Any, value: Any) -> Any:
    if value is None:
        return total
    return value if total is None else total + value


def _fetch(session: Any, statement: Any) -> list[dict[str, Any]]:
    from engine_reports.running import roomy

    roomy(session)
    session.execute(text("SET LOCAL max_parallel_workers_per_gather = 0"))
    result = session.execute(statement)
    names = list(result.keys())
    return [dict(zip(names, r, strict=True)) for r in result]


def combine(plan: list[_Shared], dialect: str, seen: Any) -> list[Any]:
    """``plan`` with the statements over the same rows as one ``Sets`` each
    (PostgreSQL); ``seen``: the groups each grouping had the last time."""
    if dialect != "postgresql":
        return list(plan)
    by_scan: dict[str, list[_Shared]] = {}
    out: list[Any] = []
    for s in plan:
        count = seen.get(s.scan_sig, s.dims)
        if count is not None and count > MAX_GROUPS:
            out.append(s)
        else:
            by_scan.setdefault(s.scan_sig, []).append(s)
    for members in by_scan.values():
        width = len({d.sig for s in members for d in s.dims})
        if len(members) == 1 or width > MAX_COLUMNS:
            out += members
        else:
            out.append(Sets(members))
    return out
