"""``ReportSpec``: a report as validated JSON — a source, filters, dimensions, measures,
sort, a top-N limit and a chart.

    {"key": "leaderboard", "name": "销售业绩龙虎榜", "source": {"form": "loan_case"},
     "filters": {"and": [{"field": "approval_result", "op": "eq", "value": "approved"}]},
     "dimensions": [{"field": "owner"}],
     "measures": [{"agg": "sum", "field": "amount", "label": "放款金额"},
                  {"agg": "count", "label": "笔数"}],
     "sort": [{"measure": 0, "desc": true}], "limit": 10, "chart": {"type": "bar"}}

Sources: the records of a ``form``; the ``instances``, ``tasks`` or step ``funnel`` of a
``flow``; the ``audit`` log. Filters are the store's filter AST. ``parameters`` name what
a dashboard may set at view time (a date range, a department, an owner, a value).
Measures aggregate a field (``count``, ``count_distinct``, ``sum``, ``avg``, ``min``,
``max``, optionally only over rows matching ``where``) or compute an ``expr`` over other
measures' ``key``s in the expression language (``won / leads``). Keys of the spec are
public API: never renamed, only deprecated.
"""

from __future__ import annotations

from functools import cache
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from platform_core.specs import SpecError, parse_spec

KEY = "^[a-z][a-z0-9_]{0,62}$"
AGGS = ("count", "count_distinct", "sum", "avg", "min", "max")
BUCKETS = ("day", "week", "month", "quarter", "year")
FORMATS = ("integer", "number", "money", "wan", "percent")
CHARTS = ("table", "bar", "stacked_bar", "line", "area", "pie", "donut", "funnel", "kpi",
          "pivot", "leaderboard", "scatter")
PARAMETER_TYPES = ("date_range", "department", "owner", "value")
MAX_LIMIT = 10_000


class ReportSpecError(SpecError):
    """A report that does not validate; ``problems`` names each one."""

    code, what = "invalid_report", "report"


class _Strict(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Source(_Strict):
    """What is counted: records of ``form``; ``instances``/``tasks``/``funnel`` of
    ``flow``; or the ``audit`` log (admins only)."""

    form: str | None = Field(default=None, pattern=KEY)
    flow: str | None = Field(default=None, pattern=KEY)
    of: Literal["records", "instances", "tasks", "funnel", "audit"] = "records"

    @model_validator(mode="after")
    def _one(self) -> Source:
        if self.of == "records" and (self.form is None or self.flow is not None):
            raise ValueError("a records source names a form (and no flow)")
        if self.of in ("instances", "tasks", "funnel") and (self.flow is None
                                                          or self.form is not None):
            raise ValueError(f"a {self.of} source names a flow (and no form)")
        if self.of == "audit" and (self.form or self.flow):
            raise ValueError("the audit source names no form or flow")
        return self

    @property
    def kind(self) -> str:
        return self.of


class Dimension(_Strict):
    """Group by ``field``; a date by ``bucket``; a number by ``bins`` (ascending edges:
    ``[0, 100000]`` makes "< 0", "0–100000", "≥ 100000")."""

    field: str = Field(min_length=1, max_length=64)
    label: str | None = Field(default=None, max_length=100)
    bucket: Literal[BUCKETS] | None = None  # type: ignore[valid-type]
    bins: list[float] | None = Field(default=None, min_length=1, max_length=50)

    @model_validator(mode="after")
    def _bins(self) -> Dimension:
        if self.bucket and self.bins:
            raise ValueError("a dimension has a bucket or bins, not both")
        if self.bins and any(a >= b for a, b in zip(self.bins, self.bins[1:], strict=False)):
            raise ValueError("bins must be strictly ascending")
        return self


class Measure(_Strict):
    """An aggregate (``agg`` over ``field``, only rows matching ``where``) or a
    calculated measure (``expr`` over other measures' keys)."""

    key: str | None = Field(default=None, pattern=KEY)
    label: str | None = Field(default=None, max_length=100)
    agg: Literal[AGGS] | None = None  # type: ignore[valid-type]
    field: str | None = Field(default=None, max_length=64)
    where: dict[str, Any] | None = None
    expr: str | None = Field(default=None, max_length=2000)
    format: Literal[FORMATS] | None = None  # type: ignore[valid-type]

    @model_validator(mode="after")
    def _shape(self) -> Measure:
        if (self.agg is None) == (self.expr is None):
            raise ValueError("a measure has either agg or expr")
        if self.expr is not None and (self.field or self.where):
            raise ValueError("a calculated measure (expr) has no field or where")
        if self.agg not in (None, "count") and not self.field:
            raise ValueError(f"{self.agg} needs a field")
        return self


class SortKey(_Strict):
    measure: int | None = Field(default=None, ge=0)
    dimension: int | None = Field(default=None, ge=0)
    desc: bool = False

    @model_validator(mode="after")
    def _one(self) -> SortKey:
        if (self.measure is None) == (self.dimension is None):
            raise ValueError("a sort key names a measure or a dimension")
        return self


class Parameter(_Strict):
    """A value a viewer (or a dashboard) sets: ``date_range`` over a date ``field``,
    ``department`` (with its sub-departments) or ``owner`` over a user/department field
    (``department_id``/``owner_id`` by default), ``value``: equality on ``field``."""

    key: str = Field(pattern=KEY)
    type: Literal[PARAMETER_TYPES]  # type: ignore[valid-type]
    field: str | None = Field(default=None, max_length=64)
    label: str | None = Field(default=None, max_length=100)
    default: Any = None


class Chart(_Strict):
    type: Literal[CHARTS] = "table"  # type: ignore[valid-type]
    title: str | None = Field(default=None, max_length=200)
    orientation: Literal["h", "v"] | None = None
    height: int | None = Field(default=None, ge=120, le=2000)
    # the series' colours in order (bars, lines, slices); unset: the design's palette
    colors: list[Annotated[str, Field(pattern=r"^#[0-9a-fA-F]{6}$")]] | None = Field(
        default=None, min_length=1, max_length=12)


WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")


class Schedule(_Strict):
    """E-mail the report as a table to the users of ``roles`` (their own view of it: their
    row scope applies) every ``every`` (a weekday, or ``day``) at ``at`` China time; the
    date-range parameter, if any, covers the ``period`` before."""

    every: Literal[(*WEEKDAYS, "day")] = "monday"  # type: ignore[valid-type]
    at: str = Field(default="09:00", pattern=r"^([01]\d|2[0-3]):[0-5]\d$")
    roles: list[str] = Field(min_length=1, max_length=20)
    period: Literal["last_week", "last_7_days", "last_month", "this_month", "this_year",
                    "none"] = "last_week"


class SegmentRule(_Strict):
    """Tag ``value`` when ``when`` (an expression over the measures' keys and the tagged
    record's fields) is TRUE."""

    value: str = Field(min_length=1, max_length=100)
    when: str = Field(min_length=1, max_length=2000)


class Segment(_Strict):
    """Segmentation: the report's one dimension names the records to tag (a relation
    field → its target's records; ``id`` → the source's own records); each is tagged in
    its select field ``field`` (the first rule that holds; none → blank) or multiselect
    field (every rule that holds; other tags are left alone), recomputed every ``every``
    at ``at`` (China time)."""

    field: str = Field(pattern=KEY)
    rules: list[SegmentRule] = Field(min_length=1, max_length=20)
    every: Literal[(*WEEKDAYS, "day")] = "day"  # type: ignore[valid-type]
    at: str = Field(default="02:00", pattern=r"^([01]\d|2[0-3]):[0-5]\d$")


class ReportSpec(_Strict):
    key: str = Field(pattern=KEY)
    name: str = Field(min_length=1, max_length=100)
    description: str | None = Field(default=None, max_length=2000)
    source: Source
    filters: dict[str, Any] | None = None
    parameters: list[Parameter] = Field(default_factory=list, max_length=10)
    dimensions: list[Dimension] = Field(default_factory=list, max_length=3)
    measures: list[Measure] = Field(default_factory=list, max_length=12)
    sort: list[SortKey] = Field(default_factory=list, max_length=5)
    limit: int | None = Field(default=None, ge=1, le=MAX_LIMIT)
    chart: Chart = Field(default_factory=Chart)
    roles: list[str] | None = Field(default=None, max_length=50)
    schedule: Schedule | None = None
    segment: Segment | None = None

    @model_validator(mode="after")
    def _refs(self) -> ReportSpec:
        if self.segment is not None and (self.source.of != "records"
                                         or len(self.dimensions) != 1):
            raise ValueError("a segmentation is over a form's records with exactly one "
                             "dimension (the records to tag)")
        if self.source.of != "funnel" and not self.measures:
            raise ValueError("a report needs at least one measure")
        keys = [m.key for m in self.measures if m.key]
        if len(keys) != len(set(keys)):
            raise ValueError("measure keys must be unique")
        if len({p.key for p in self.parameters}) != len(self.parameters):
            raise ValueError("parameter keys must be unique")
        for s in self.sort:
            if s.measure is not None and s.measure >= len(self.measures):
                raise ValueError(f"sort names measure {s.measure}, which does not exist")
            if s.dimension is not None and s.dimension >= len(self.dimensions):
                raise ValueError(f"sort names dimension {s.dimension}, which does not exist")
        return self

    def dump(self) -> dict[str, Any]:
        return self.model_dump(mode="json", exclude_none=True, exclude_defaults=True) | {
            "source": self.source.model_dump(mode="json", exclude_defaults=True,
                                             exclude_none=True)}


@cache
def meta_schema() -> dict[str, Any]:
    """The JSON Schema every stored report validates against."""
    schema = ReportSpec.model_json_schema()
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "Qiao report"
    return schema


def parse_report(raw: Any) -> ReportSpec:
    """Validate ``raw`` against the meta-schema and build the spec (``ReportSpecError``)."""
    return parse_spec(ReportSpec, meta_schema(), raw, ReportSpecError, "report")
