"""A report spec over a frame → one SQL aggregate statement, and its rows → typed values.

Dimensions group by the field's typed accessor, a date bucket of it (China time, the
same text on SQLite and PostgreSQL: ``2026-03-05`` day, ``2026-03-02`` week = its
Monday, ``2026-03`` month, ``2026-Q1`` quarter, ``2026`` year) or its number bin. Measures
aggregate in SQL; money reads as integer fen so sums are exact to the fen on both
databases; an average of money is its exact sum over its count. Calculated measures run
in Python over the aggregated rows (never over records). The filter — report filters,
parameters and the viewer's row scope — is one WHERE clause of the same statement.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import (
    Date,
    DateTime,
    Integer,
    String,
    and_,
    case,
    cast,
    func,
    literal,
    literal_column,
    select,
    true,
)
from sqlalchemy.sql.elements import ColumnElement

from engine_reports.frames import Column, Frame
from engine_reports.spec import Dimension, Measure, ReportSpec
from platform_core.errors import InvalidInput
from platform_core.expressions import ExpressionError, ExprSchema, Formula
from platform_core.store.kinds import to_fen
from platform_core.store.query import compile_filter

MAX_GROUPS = 10_000
SHANGHAI = "Asia/Shanghai"  # reports bucket time in China time (UTC+8, no DST since 1991)
DATED = ("date", "datetime", "timestamp")
NUMERIC = ("number", "money", "integer")


class ReportError(InvalidInput):
    """A report that cannot run over its source as it stands (a field gone, a bucket on
    a text field …); the message names the part."""

    code = "invalid_report"


def _local_date(expr: Any, kind: str, dialect: str) -> ColumnElement[Any]:
    """The China-time calendar date of a date/datetime/timestamp value, as ISO text."""
    if kind == "date":
        return expr
    if dialect == "postgresql":
        moment = cast(expr, DateTime(timezone=True)) if kind == "datetime" else expr
        return func.to_char(func.timezone(SHANGHAI, moment), "YYYY-MM-DD")
    return func.date(expr, "+8 hours")


def _bucket(day: ColumnElement[Any], bucket: str, dialect: str) -> ColumnElement[Any]:
    if bucket == "day":
        return day
    if bucket == "month":
        return func.substr(day, 1, 7)
    if bucket == "year":
        return func.substr(day, 1, 4)
    if bucket == "quarter":
        month = cast(func.substr(day, 6, 2), Integer())
        quarter = (month + 2) // 3
        return func.substr(day, 1, 4).concat("-Q").concat(cast(quarter, String()))
    # week: the date of its Monday (ISO weeks run Monday to Sunday)
    if dialect == "postgresql":
        return func.to_char(func.date_trunc("week", cast(day, Date())), "YYYY-MM-DD")
    return func.date(day, "-6 days", "weekday 1")


@dataclass
class DimPlan:
    spec: Dimension
    column: Column
    label: str


@dataclass
class MeasurePlan:
    spec: Measure
    label: str
    key: str
    fmt: str
    kind: str  # the result's kind: integer, number, money, date, datetime, timestamp, text
    slots: list[str] = field(default_factory=list)  # SQL result columns it reads
    formula: Formula | None = None


@dataclass
class Plan:
    dims: list[DimPlan]
    measures: list[MeasurePlan]
    statement: Any
    python_sort: bool
    # the statement in parts, for a dashboard's shared scans (engine_reports/fusion.py):
    # the rows it reads, its grouping expressions, each slot's (aggregate, argument)
    scan: Any = None
    groups: list[Any] = field(default_factory=list)
    parts: dict[str, tuple[str, Any]] = field(default_factory=dict)


AGGREGATES = {"sum": func.sum, "avg": func.avg, "min": func.min, "max": func.max}


def aggregate(agg: str, arg: Any) -> Any:
    """The SQL aggregate of a slot: count (of rows when ``arg`` is None), distinct (a
    count of distinct values), sum, avg, min or max."""
    if agg == "count":
        return func.count() if arg is None else func.count(arg)
    if agg == "distinct":
        return func.count(arg.distinct())
    return AGGREGATES[agg](arg)


def _dim_label(dim: Dimension, col: Column) -> str:
    if dim.label:
        return dim.label
    suffix = {"day": "（日）", "week": "（周）", "month": "（月）", "quarter": "（季度）",
              "year": "（年）"}.get(dim.bucket or "", "")
    return col.label + suffix


def _default_label(m: Measure, cols: dict[str, Column]) -> str:
    if m.label:
        return m.label
    if m.expr:
        return m.key or m.expr
    names = {"count": "数量", "count_distinct": "去重数", "sum": "合计", "avg": "平均",
             "min": "最小", "max": "最大"}
    if m.field and m.field in cols:
        return f"{cols[m.field].label}{names[m.agg or 'count']}"
    return names[m.agg or "count"]


def _format(m: Measure, kind: str) -> str:
    if m.format:
        return m.format
    if kind in DATED:
        return "date"
    if kind == "money":
        return "money"
    if kind == "integer":
        return "integer"
    return "number"


class Compiler:
    """Builds the plan of one report over one frame for one dialect."""

    def __init__(self, spec: ReportSpec, frame: Frame, dialect: str):
        self.spec, self.frame, self.dialect = spec, frame, dialect

    def column(self, key: str | None, path: str) -> Column:
        try:
            col = self.frame.column(key or "")
            self.frame.fields.accessor(key, self.dialect)
        except KeyError:
            raise ReportError(f"{path}: unknown field {key!r}", path=path) from None
        return col

    def expr(self, key: str) -> Any:
        return self.frame.fields.accessor(key, self.dialect).expr

    def dimension(self, i: int, dim: Dimension) -> tuple[DimPlan, ColumnElement[Any]]:
        path = f"dimensions[{i}]"
        col = self.column(dim.field, f"{path}.field")
        if col.sealed:
            raise ReportError(f"{path}: the encrypted field {dim.field!r} cannot be a "
                              "dimension", path=path)
        expr = self.expr(dim.field)
        if dim.bucket:
            if col.kind not in DATED:
                raise ReportError(f"{path}: a {dim.bucket} bucket needs a date field; "
                                  f"{dim.field!r} is {col.kind}", path=path)
            expr = _bucket(_local_date(expr, col.kind, self.dialect), dim.bucket,
                           self.dialect)
        elif dim.bins:
            if col.kind not in NUMERIC:
                raise ReportError(f"{path}: bins need a number field; {dim.field!r} is "
                                  f"{col.kind}", path=path)
            scale = 100 if col.kind == "money" else 1
            value = self.frame.fen(dim.field, self.dialect) if col.kind == "money" else expr
            whens = [(value < literal(Decimal(str(e)) * scale), j) for j, e in enumerate(dim.bins)]
            expr = case(*whens, else_=len(dim.bins))
            expr = case((value.is_(None), None), else_=expr)
        elif col.kind == "money":
            expr = self.frame.fen(dim.field, self.dialect)
        return DimPlan(dim, col, _dim_label(dim, col)), expr

    def measure(self, i: int, m: Measure, cols: dict[str, Column]
                ) -> tuple[MeasurePlan, list[tuple[str, Any]]]:
        """The measure's plan and its slots as (aggregate, argument) pairs."""
        path = f"measures[{i}]"
        key = m.key or f"m{i}"
        label = _default_label(m, cols)
        if m.expr is not None:
            return MeasurePlan(m, label, key, m.format or "number", "number"), []
        cond = None
        if m.where is not None:
            cond = compile_filter(m.where, self.frame.fields, self.dialect)

        def only(value: Any) -> Any:
            return value if cond is None else case((cond, value))

        if m.agg == "count" and not m.field:
            return MeasurePlan(m, label, key, m.format or "integer", "integer"), [
                ("count", None if cond is None else case((cond, 1)))]
        col = self.column(m.field, f"{path}.field")
        if col.sealed and m.agg != "count":
            raise ReportError(f"{path}: the encrypted field {m.field!r} can only be "
                              "counted", path=path)
        expr = self.expr(m.field)  # type: ignore[arg-type]
        if m.agg == "count":
            return MeasurePlan(m, label, key, m.format or "integer", "integer"), [
                ("count", only(expr))]
        if m.agg == "count_distinct":
            return MeasurePlan(m, label, key, m.format or "integer", "integer"), [
                ("distinct", only(expr))]
        if m.agg in ("sum", "avg") and col.kind not in NUMERIC:
            raise ReportError(f"{path}: {m.agg} needs a number or money field; "
                              f"{m.field!r} is {col.kind}", path=path)
        if m.agg in ("min", "max") and col.kind not in (*NUMERIC, *DATED):
            raise ReportError(f"{path}: {m.agg} needs a number, money or date field; "
                              f"{m.field!r} is {col.kind}", path=path)
        kind = "number" if col.kind == "integer" and m.agg == "avg" else col.kind
        plan = MeasurePlan(m, label, key, _format(m, kind), kind)
        if col.kind == "money":
            fen = only(self.frame.fen(m.field, self.dialect))  # type: ignore[arg-type]
            if m.agg == "avg":  # an exact quotient: sum and count of fen
                return plan, [("sum", fen), ("count", fen)]
            return plan, [(m.agg, fen)]  # type: ignore[list-item]
        return plan, [(m.agg, only(expr))]  # type: ignore[list-item]

    def formulas(self, measures: list[MeasurePlan]) -> None:
        kinds = {p.key: "money" if p.kind == "money" else "number"
                 for p in measures if p.formula is None and p.spec.expr is None
                 and p.kind in (*NUMERIC, "integer")}
        schema = ExprSchema.of(kinds)
        for i, p in enumerate(measures):
            if p.spec.expr is None:
                continue
            try:
                p.formula = Formula.build(p.spec.expr, schema)
            except ExpressionError as exc:
                raise ReportError(f"measures[{i}].expr: {exc}", path=f"measures[{i}].expr",
                                  ) from None

    def plan(self, condition: ColumnElement[bool]) -> Plan:
        cols = self.frame.columns
        dims, group = [], []
        for i, d in enumerate(self.spec.dimensions):
            plan, expr = self.dimension(i, d)
            dims.append(plan)
            group.append(expr.label(f"d{i}"))
        measures, selected, parts = [], [], {}
        for i, m in enumerate(self.spec.measures):
            plan, slots = self.measure(i, m, cols)
            for j, (agg, arg) in enumerate(slots):
                name = f"m{i}_{j}"
                plan.slots.append(name)
                parts[name] = (agg, arg)
                selected.append(aggregate(agg, arg).label(name))
            measures.append(plan)
        self.formulas(measures)
        where = and_(true(), *self.frame.where, condition)
        stmt = select(*group, *selected).select_from(self.frame.table).where(where)
        if group:
            stmt = stmt.group_by(*[literal_column(f"d{i}") for i in range(len(group))])
        # calculated measures and money averages (an exact quotient) sort in Python
        python_sort = any(s.measure is not None and (
            measures[s.measure].formula is not None or len(measures[s.measure].slots) > 1)
            for s in self.spec.sort)
        if not python_sort:
            order = []
            for s in self.spec.sort:
                name = (f"d{s.dimension}" if s.dimension is not None
                        else measures[s.measure].slots[0])  # type: ignore[index]
                col = literal_column(name)
                order.append((col.desc() if s.desc else col.asc()).nulls_last())
            order += [literal_column(f"d{i}").asc().nulls_last() for i in range(len(group))]
            if order:
                stmt = stmt.order_by(*order)
            stmt = stmt.limit(self.spec.limit or MAX_GROUPS + 1)
        else:
            stmt = stmt.limit(MAX_GROUPS + 1)
        scan = select(literal(1)).select_from(self.frame.table).where(where)
        return Plan(dims, measures, stmt, python_sort, scan,
                    [g.element for g in group], parts)


def _fen_to_money(value: Any) -> str | None:
    if value is None:
        return None
    return str(to_fen(Decimal(value) / 100))


def _number(value: Any) -> Any:
    if value is None or isinstance(value, int):
        return value
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    return value


def measure_value(plan: MeasurePlan, values: list[Any]) -> Any:
    """The value of an aggregate measure from its result columns."""
    if plan.kind == "money":
        if plan.spec.agg == "avg":
            total, n = values
            if not n:
                return None
            return str(to_fen(Decimal(total) / Decimal(n) / 100))
        return _fen_to_money(values[0])
    if plan.kind in ("integer",):
        return None if values[0] is None else int(values[0])
    if plan.kind == "number":
        return _number(values[0])
    if plan.kind == "timestamp":
        return instant(values[0])
    return values[0]


def dimension_value(plan: DimPlan, value: Any) -> Any:
    """A group's raw key as JSON: fen back to money text, PostgreSQL numerics as numbers."""
    col = plan.column
    if value is None:
        return None
    if plan.spec.bins or plan.spec.bucket:
        return int(value) if plan.spec.bins else str(value)
    if col.kind == "money":
        return _fen_to_money(value)
    if col.kind == "boolean":
        return bool(value)
    if col.kind in ("number", "integer"):
        return _number(value)
    if col.kind == "timestamp":
        return instant(value)
    return value


def instant(value: Any) -> str | None:
    """A timestamp column's value as ISO text in UTC, the same on both databases (SQLite
    hands back naive UTC, as a datetime or as text)."""
    if value is None:
        return None
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC).isoformat()


def calculated(plan: MeasurePlan, row: dict[str, Any]) -> Any:
    """A calculated measure over one group's aggregate values (blank when it fails, e.g.
    a division by zero)."""
    assert plan.formula is not None
    try:
        value = plan.formula.evaluate(row)
    except (ArithmeticError, ValueError, ExpressionError):
        return None
    if isinstance(value, Decimal):
        return _number(value)
    return value


def bin_label(edges: list[float], index: int) -> str:
    def show(x: float) -> str:
        return f"{int(x):,}" if float(x).is_integer() else f"{x:,}"

    if index == 0:
        return f"< {show(edges[0])}"
    if index >= len(edges):
        return f"≥ {show(edges[-1])}"
    return f"{show(edges[index - 1])}–{show(edges[index])}"
