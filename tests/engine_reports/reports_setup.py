"""A plain-Python report engine for the differential tests, and running the real one.

``expected(spec, records)`` aggregates stored record documents the way the report
engine documents it (engine_reports/compiler.py): the store's filter semantics, China-time
date buckets, half-open number bins, exact money (``Fraction``/``Decimal``, never a
float), calculated measures in the expression language's decimal arithmetic, blanks last
in both sort directions and the dimension keys ascending as the tie-break. ``run_engine``
runs the compiled SQL over the same records on both frames of a form — its typed
projection and its JSON documents — inside one transaction that is rolled back.
"""

from __future__ import annotations

import math
from bisect import bisect_right
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import ROUND_HALF_UP, Context, Decimal
from fractions import Fraction
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import select, update

from engine_reports.frames import form_frame
from engine_reports.running import execute
from engine_reports.spec import Dimension, Measure, ReportSpec
from platform_core.models import Record, StoreProjection
from platform_core.store import Actor, create_records
from platform_core.store.kinds import DateKind, DateTimeKind, MoneyKind
from platform_core.store.projection import drop_projection, ensure_projection
from tests.conftest import rolled_back

LEDGER = "ledger"
KINDS = {"t": "text", "u": "text", "n": "number", "m": "money", "d": "date",
         "dt": "datetime", "b": "boolean"}
# each field type of the form is its value kind's namesake
LEDGER_FORM: dict[str, Any] = {"key": LEDGER, "name": "流水", "fields": [
    {"key": key, "label": f"字段{key}", "type": kind} for key, kind in KINDS.items()]}
ACTOR = Actor(user_id=None, name="differential")
CHINA = ZoneInfo("Asia/Shanghai")
CENT = Decimal("0.01")
# the expression language's decimal context and division quantum (expressions/values.py)
CTX = Context(prec=100, rounding=ROUND_HALF_UP, Emax=200, Emin=-200)
DIV_QUANTUM = Decimal(1).scaleb(-16)
_MONEY, _DATE, _DATETIME = MoneyKind(), DateKind(), DateTimeKind()


# -- filters (the store's semantics: docs/query.md) ----------------------------------------


def _value(kind: str, raw: Any) -> Any:
    """A stored value (or a filter value, normalised as the store binds it) to compare."""
    if raw is None:
        return None
    if kind == "money":
        return _MONEY.to_decimal(raw)
    if kind == "date":
        return _DATE.to_storage(raw)
    if kind == "datetime":
        return _DATETIME.to_storage(raw)
    return raw


def _blank(kind: str, value: Any) -> bool:
    return value is None or (kind == "text" and value == "")


def _leaf(node: dict[str, Any], record: dict[str, Any]) -> bool:
    kind, op = KINDS[node["field"]], node["op"]
    v = _value(kind, record.get(node["field"]))
    if op in ("is_empty", "is_not_empty"):
        return _blank(kind, v) is (op == "is_empty")
    raw = node["value"]
    if op in ("in", "not_in"):
        found = v is not None and v in [_value(kind, x) for x in raw]
        return found if op == "in" else not found
    if op == "ne":
        return v is None or v != _value(kind, raw)
    if v is None:
        return False
    if op == "between":
        return _value(kind, raw[0]) <= v <= _value(kind, raw[1])
    x = _value(kind, raw)
    tests: dict[str, Callable[[], bool]] = {
        "eq": lambda: v == x, "gt": lambda: v > x, "gte": lambda: v >= x,
        "lt": lambda: v < x, "lte": lambda: v <= x, "contains": lambda: x in v,
        "starts_with": lambda: v.startswith(x)}
    return tests[op]()


def matches(node: dict[str, Any] | None, record: dict[str, Any]) -> bool:
    if node is None:
        return True
    if "and" in node:
        return all(matches(n, record) for n in node["and"])
    if "or" in node:
        return any(matches(n, record) for n in node["or"])
    if "not" in node:
        return not matches(node["not"], record)
    return _leaf(node, record)


# -- dimensions ----------------------------------------------------------------------------


def china_day(kind: str, raw: str) -> date:
    if kind == "date":
        return date.fromisoformat(raw)
    return datetime.fromisoformat(raw).astimezone(CHINA).date()


def bucket_of(day: date, bucket: str) -> str:
    if bucket == "week":
        day -= timedelta(days=day.weekday())
    return {"day": day.isoformat(), "week": day.isoformat(),
            "month": f"{day.year:04d}-{day.month:02d}", "year": f"{day.year:04d}",
            "quarter": f"{day.year:04d}-Q{(day.month - 1) // 3 + 1}"}[bucket]


def dimension_key(dim: Dimension, record: dict[str, Any]) -> Any:
    kind, raw = KINDS[dim.field], record.get(dim.field)
    if raw is None:
        return None
    if dim.bucket:
        return bucket_of(china_day(kind, raw), dim.bucket)
    if dim.bins:
        if kind == "money":  # the edges as written: 0.1 is ten fen, not 0.1000000000000000055
            return bisect_right([Decimal(str(e)) for e in dim.bins], Decimal(raw))
        return bisect_right(dim.bins, raw)
    return raw


def _dim_order(dim: Dimension, key: Any) -> Any:
    money = KINDS[dim.field] == "money" and not dim.bins
    return Decimal(key) if money and key is not None else key


# -- measures ------------------------------------------------------------------------------


def aggregate(m: Measure, rows: list[dict[str, Any]]) -> Any:
    """The exact value of an aggregate measure: int, Fraction (number), Decimal (money),
    str (date, date-time) or None."""
    rows = [r for r in rows if matches(m.where, r)]
    if m.agg == "count" and not m.field:
        return len(rows)
    kind = KINDS[m.field]  # type: ignore[index]
    values = [v for v in (_value(kind, r.get(m.field)) for r in rows) if v is not None]
    if m.agg == "count":
        return len(values)
    if m.agg == "count_distinct":
        return len(set(values))
    if not values:
        return None
    if m.agg in ("min", "max"):
        best = min(values) if m.agg == "min" else max(values)
        return Fraction(best) if kind == "number" else best
    total = sum(Fraction(v) for v in values)
    if m.agg == "sum":
        return total if kind == "number" else Decimal(total.numerator) / total.denominator
    mean = total / len(values)
    if kind == "number":
        return mean
    fen = mean * 100  # half away from zero, to the fen
    rounded = math.floor(abs(fen) + Fraction(1, 2)) * (1 if fen >= 0 else -1)
    return Decimal(rounded).scaleb(-2)


def _operand(value: Any) -> Decimal:
    if value is None:
        return Decimal(0)  # the expression language reads a blank as 0 in arithmetic
    if isinstance(value, Fraction):
        return Decimal(value.numerator) / Decimal(value.denominator)
    return Decimal(value)


def calculate(expr: str, values: dict[str, Any]) -> Decimal | None:
    """``a <op> b`` over measure keys and numbers, as the expression language computes
    it."""
    left, op, right = expr.split()
    a, b = (_operand(values[x]) if x in values else Decimal(x) for x in (left, right))
    if op == "/":
        return None if not b else CTX.divide(a, b).quantize(DIV_QUANTUM, context=CTX)
    return {"+": CTX.add, "-": CTX.subtract, "*": CTX.multiply}[op](a, b)


def shown(value: Any, kind: str) -> Any:
    """An exact reference value as the engine returns it (money text, numbers as
    int/float)."""
    if value is None:
        return None
    if kind == "money":
        return str(Decimal(value).quantize(CENT))
    if isinstance(value, Fraction | Decimal):
        return int(value) if value == int(value) else float(value)
    return value


def measure_kind(m: Measure) -> str:
    if m.expr is not None:
        return "calculated"
    if m.agg in ("count", "count_distinct"):
        return "integer"
    return KINDS[m.field]  # type: ignore[index]


# -- the whole report ----------------------------------------------------------------------


@dataclass
class Expected:
    """Every group of the report, in the report's order (before the limit)."""

    rows: list[tuple[list[Any], list[Any]]]  # (keys, values as the engine shows them)
    order: list[tuple[Any, ...]]  # per row: its exact sort-key values
    limit: int | None
    # Whether the order within a tie is left open: a calculated sort key (sorted in Python,
    # see test_a_calculated_sort_breaks_ties_like_any_sort) or a money average (ties of
    # the average shown, to the fen, may be sorted by the exact average).
    loose_ties: bool


def expected(spec: ReportSpec, records: list[dict[str, Any]]) -> Expected:
    rows = [r for r in records if matches(spec.filters, r)]
    groups: dict[tuple[Any, ...], list[dict[str, Any]]] = {}
    if not spec.dimensions:
        groups[()] = rows  # one group, even over no records (SQL's aggregate of nothing)
    for r in rows if spec.dimensions else ():
        groups.setdefault(tuple(dimension_key(d, r) for d in spec.dimensions), []).append(r)
    out = []
    for keys, members in groups.items():
        exact: dict[str, Any] = {}
        for i, m in enumerate(spec.measures):
            if m.expr is None:
                exact[m.key or f"m{i}"] = aggregate(m, members)
        for i, m in enumerate(spec.measures):
            if m.expr is not None:
                exact[m.key or f"m{i}"] = shown(calculate(m.expr, exact), "number")
        values = [exact[m.key or f"m{i}"] for i, m in enumerate(spec.measures)]
        out.append((list(keys), values))
    out = _sorted(spec, out)
    order = [_sort_values(spec, r) for r in out]
    rows_shown = [(keys, [shown(v, measure_kind(m)) for v, m in zip(values, spec.measures,
                                                                   strict=True)])
                  for keys, values in out]
    loose = [spec.measures[s.measure] for s in spec.sort if s.measure is not None]
    loose_ties = any(m.expr is not None or (m.agg == "avg" and KINDS[m.field] == "money")
                     for m in loose)  # type: ignore[index]
    return Expected(rows_shown, order, spec.limit, loose_ties)


def _sort_value(spec: ReportSpec, s: Any, row: tuple[list[Any], list[Any]]) -> Any:
    if s.dimension is not None:
        return _dim_order(spec.dimensions[s.dimension], row[0][s.dimension])
    return row[1][s.measure]


def _sort_values(spec: ReportSpec, row: tuple[list[Any], list[Any]]) -> tuple[Any, ...]:
    return tuple(_sort_value(spec, s, row) for s in spec.sort)


def _sorted(spec: ReportSpec, rows: list[Any]) -> list[Any]:
    """Sort keys in turn, blanks last both ways; ties by the dimension keys ascending."""
    def dims(row: Any) -> tuple[Any, ...]:
        return tuple((k is None, None if k is None else _dim_order(d, k))
                     for d, k in zip(spec.dimensions, row[0], strict=True))

    rows = sorted(rows, key=dims)
    for s in reversed(spec.sort):
        present = [r for r in rows if _sort_value(spec, s, r) is not None]
        blank = [r for r in rows if _sort_value(spec, s, r) is None]
        present.sort(key=lambda r, s=s: _sort_value(spec, s, r), reverse=s.desc)
        rows = present + blank
    return rows


# -- comparing -----------------------------------------------------------------------------


def same(got: Any, want: Any, kind: str) -> bool:
    """Exact for keys, counts, money and dates; numbers to a relative 1e-9."""
    if got is None or want is None:
        return got is None and want is None
    if kind in ("number", "calculated"):
        return isinstance(got, int | float) and not isinstance(got, bool) and math.isclose(
            got, want, rel_tol=1e-9, abs_tol=1e-9)
    return type(got) is type(want) and got == want


def differences(spec: ReportSpec, want: Expected, keys: list[list[Any]],
                values: list[list[Any]]) -> list[str]:
    """What the engine's rows get wrong (empty: they equal the reference)."""
    n = len(want.rows) if want.limit is None else min(want.limit, len(want.rows))
    if len(keys) != n:
        return [f"{len(keys)} rows, expected {n}"]
    kinds = [measure_kind(m) for m in spec.measures]
    by_keys = {tuple(k): (k, v, o) for (k, v), o in zip(want.rows, want.order, strict=True)}
    problems: list[str] = []
    for i, (k, v) in enumerate(zip(keys, values, strict=True)):
        if want.loose_ties:  # any order within a tie, any members of a tie cut by the limit
            found = by_keys.get(tuple(k))
            if found is None:
                problems.append(f"row {i}: no group {k!r}")
                continue
            exp_keys, exp_values, order = found
            if order != want.order[i]:
                problems.append(f"row {i}: {k!r} sorts as {order}, expected {want.order[i]}")
        else:
            exp_keys, exp_values = want.rows[i]
        if k != exp_keys or any(isinstance(x, bool) is not isinstance(y, bool)
                                for x, y in zip(k, exp_keys, strict=True)):
            problems.append(f"row {i}: keys {k!r}, expected {exp_keys!r}")
        for j, (g, w) in enumerate(zip(v, exp_values, strict=True)):
            if not same(g, w, kinds[j]):
                problems.append(f"row {i} {k!r}: measure {j} = {g!r}, expected {w!r}")
    if len({tuple(k) for k in keys}) != len(keys):
        problems.append(f"a group appears twice: {keys!r}")
    return problems


# -- running the engine --------------------------------------------------------------------


def run_engine(db: Any, pub: Any, spec: ReportSpec, records: list[dict[str, Any]], *,
               project_first: bool = True, created_at: list[datetime] | None = None,
               ) -> dict[str, tuple[list[Any], list[Any], bool]]:
    """The engine's (keys, values, truncated) over ``records`` (created at
    ``created_at``, if given) on both frames."""
    out = {}
    with rolled_back(db) as s:
        if project_first:  # the triggers fill the projection; otherwise the backfill does
            ensure_projection(s, pub.fields)
        ids = create_records(s, app=pub.app, form=pub.spec.key, items=records, actor=ACTOR)
        for rid, moment in zip(ids, created_at or (), strict=False):
            s.execute(update(Record).where(Record.id == rid).values(created_at=moment))
        ensure_projection(s, pub.fields)
        frame = form_frame(s, pub)
        assert frame.money_fen, "the projection is not read"
        out["projection"] = execute(s, spec, frame, spec.filters)[1:]
        drop_projection(s, pub.app, pub.spec.key)
        frame = form_frame(s, pub)
        assert not frame.money_fen, "the JSON documents are not read"
        out["json"] = execute(s, spec, frame, spec.filters)[1:]
    return out


def drop_all_projections(db: Any) -> None:
    """Projections are not platform tables: the per-test reset does not drop them."""
    with db.write() as s:
        for app, form in s.execute(select(StoreProjection.app, StoreProjection.form)).all():
            drop_projection(s, app, form)
