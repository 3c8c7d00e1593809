"""A report's computed result drawn as a plotly figure, and measure values as text.

The report engine hands over a small table: ``columns`` (dimensions first, then
measures) and ``rows``. :func:`build_figure` turns it into the JSON the page passes to
``Plotly.newPlot(el, figure.data, figure.layout, figure.config)``; the xlsx/csv/e-mail
exports use :func:`format_value`, so every surface shows the same strings.

Numbers follow Chinese conventions: money ``¥1,234.50``, ``wan`` ``1,234.57万元`` (value
/ 10000), ``percent`` ``25.3%`` (a ratio), rounding half-up (四舍五入). Money arrives as
decimal strings and stays ``Decimal`` for every shown string and every total; values
become floats only to be plotted. Hover texts are pre-formatted strings (``customdata``),
axis ticks use d3 tick formats.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from functools import cache
from typing import Any

FORMATS: tuple[str, ...] = ("integer", "number", "money", "wan", "percent", "date")
UNPLOTTED = ("date",)  # min/max of a date: shown in tables, not drawn
EMPTY_LABEL = "（空）"
TOTAL_LABEL = "合计"
FONT_FAMILY = "PingFang SC, Microsoft YaHei, Noto Sans CJK SC, sans-serif"
CONFIG = {"displaylogo": False, "responsive": True}

_TICKS = {"integer": ",.0f", "number": ",.2~f", "money": ",.2~f", "wan": ",.2~f",
          "percent": ".1%", "date": ""}
_UNITS = {"money": "（元）", "wan": "（万元）"}
_KPI_NUMBER = {"integer": {"valueformat": ",.0f"}, "number": {"valueformat": ",.2~f"},
               "money": {"prefix": "¥", "valueformat": ",.2f"},
               "wan": {"suffix": "万元", "valueformat": ",.2f"},
               "percent": {"valueformat": ".1%"}, "date": {}}
_BARS = ("bar", "stacked_bar")
_SHADE = "#f2f3f5"


class ChartError(ValueError):
    """A result that this chart type cannot draw; the message is Chinese / English."""

    def __init__(self, zh: str, en: str):
        super().__init__(f"{zh} / {en}")


# --- values -------------------------------------------------------------------------

def format_value(value: Any, fmt: str) -> str:
    """A measure value as people read it; ``None`` is ``""``.

    >>> format_value("12345678.90", "wan"), format_value(0.2534, "percent")
    ('1,234.57万元', '25.3%')
    """
    if value is None:
        return ""
    if fmt not in FORMATS:
        raise ChartError(f"未知的数值格式 {fmt!r}", f"unknown number format {fmt!r}")
    if fmt in UNPLOTTED:
        return str(value)
    number = _decimal(value)
    if fmt == "integer":
        return f"{_round(number, 0):,}"
    if fmt == "percent":
        return f"{_round(number * 100, 1):,.1f}%"
    rounded = _round(number / 10000 if fmt == "wan" else number, 2)
    sign, text = ("-" if rounded < 0 else ""), f"{abs(rounded):,.2f}"
    if fmt == "money":
        return f"{sign}¥{text}"
    if fmt == "wan":
        return f"{sign}{text}万元"
    return sign + text.rstrip("0").rstrip(".")


def _decimal(value: Any) -> Decimal:
    # repr() of a float is its shortest round-trip form: 0.1 becomes Decimal("0.1").
    try:
        if isinstance(value, bool) or not isinstance(value, int | float | Decimal | str):
            raise InvalidOperation
        number = Decimal(repr(value) if isinstance(value, float) else value)
    except InvalidOperation:
        raise ChartError(f"不是数值：{value!r}", f"not a number: {value!r}") from None
    if not number.is_finite():
        raise ChartError(f"不是有限数值：{value!r}", f"not a finite number: {value!r}")
    return number


def _round(number: Decimal, places: int) -> Decimal:
    rounded = number.quantize(Decimal(1).scaleb(-places), rounding=ROUND_HALF_UP)
    return abs(rounded) if rounded == 0 else rounded  # never show "-0.00"


def _plotted(value: Any, fmt: str) -> float | None:
    """A value in the units of its axis: ``wan`` in 万元, a percent still a ratio."""
    if value is None or fmt in UNPLOTTED:
        return None
    number = _decimal(value)
    return float(number / 10000 if fmt == "wan" else number)


def _total(values: list[Any], fmt: str) -> Decimal | None:
    """The exact sum of the non-empty values; a ratio has no meaningful sum."""
    present = [_decimal(v) for v in values if v is not None]
    if fmt == "percent" and len(present) > 1:
        raise ChartError("百分比度量无法合计", "percent measures cannot be totalled")
    return sum(present, Decimal(0)) if present else None


# --- the result -----------------------------------------------------------------------

@dataclass(frozen=True)
class Measure:
    """One measure column: its label and number format."""

    label: str
    fmt: str


@dataclass(frozen=True)
class Result:
    """A report result split into dimension labels and raw measure values, row by row."""

    dims: list[str]
    measures: list[Measure]
    keys: list[tuple[str, ...]]
    values: list[list[Any]]

    def column(self, i: int) -> list[Any]:
        return [row[i] for row in self.values]


def parse_result(columns: list[dict], rows: list[list]) -> Result:
    """Check the shape (dimensions before measures, full rows, known formats) and split."""
    dims: list[str] = []
    measures: list[Measure] = []
    for col in columns:
        label = str(col.get("label") or col.get("key", ""))
        if col.get("role") == "dimension" and not measures:
            dims.append(label)
        elif col.get("role") == "measure":
            fmt = col.get("format") or "number"
            if fmt not in FORMATS:
                raise ChartError(f"未知的数值格式 {fmt!r}", f"unknown number format {fmt!r}")
            measures.append(Measure(label, fmt))
        else:
            raise ChartError(f"列 {label} 的角色有误（维度须在度量之前）",
                             f"column {label!r}: bad role (dimensions come before measures)")
    if any(len(row) != len(columns) for row in rows):
        raise ChartError("行的长度与列数不符", "a row's length differs from the columns'")
    if not dims and len(rows) > 1:
        raise ChartError("没有维度时结果只能有一行", "without dimensions the result is one row")
    n = len(dims)
    keys = [tuple(EMPTY_LABEL if v is None else str(v) for v in row[:n]) for row in rows]
    return Result(dims, measures, keys, [list(row[n:]) for row in rows])


@dataclass(frozen=True)
class _Request:
    kind: str
    result: Result
    chart: dict
    previous: Result | None
    exits: int = 0  # funnel: the last rows are exits (未成交), not stages


@dataclass(frozen=True)
class _Series:
    """One line of values over categories; ``fmts`` per point (0 dimensions mix them)."""

    name: str
    x: list[str]
    raw: list[Any]
    fmts: list[str]

    @property
    def fmt(self) -> str | None:
        return self.fmts[0] if len(set(self.fmts)) == 1 else None

    @property
    def plotted(self) -> list[float | None]:
        return [_plotted(v, f) for v, f in zip(self.raw, self.fmts, strict=True)]

    @property
    def texts(self) -> list[str]:
        return [format_value(v, f) for v, f in zip(self.raw, self.fmts, strict=True)]


def _series(res: Result) -> list[_Series]:
    """0 dimensions: one series over the measures; 1: one per measure; 2: one per value
    of dimension 1 (first measure), categories from dimension 0."""
    if not res.dims:
        row = res.values[0] if res.values else [None] * len(res.measures)
        return [_Series("", [m.label for m in res.measures], row,
                        [m.fmt for m in res.measures])]
    if len(res.dims) == 1:
        x = [key[0] for key in res.keys]
        return [_Series(m.label, x, res.column(i), [m.fmt] * len(x))
                for i, m in enumerate(res.measures)]
    down, across, cells = _cross(res)
    fmt = res.measures[0].fmt
    return [_Series(name, down, [cells.get((d, name)) for d in down], [fmt] * len(down))
            for name in across]


def _cross(res: Result) -> tuple[list[str], list[str], dict[tuple[str, ...], Any]]:
    """Dimension 0 values, dimension 1 values (first-seen order), first measure by pair."""
    if len(res.dims) != 2:
        raise ChartError("此图表最多两个维度", "this chart takes at most two dimensions")
    cells: dict[tuple[str, ...], Any] = {}
    for key, values in zip(res.keys, res.values, strict=True):
        if key in cells:
            raise ChartError(f"维度组合 {' / '.join(key)} 出现了两次",
                             f"the dimension pair {key} appears twice")
        cells[key] = values[0]
    return (list(dict.fromkeys(k[0] for k in res.keys)),
            list(dict.fromkeys(k[1] for k in res.keys)), cells)


def _axis_title(labels: list[str], fmt: str | None) -> str:
    return "、".join(labels) + _UNITS.get(fmt or "", "")


def _named(s: _Series) -> str:
    """The hover line's series part: the name is read from the trace (``fullData``),
    never spliced into the template, where a label's ``%{…}`` would be interpreted."""
    return "<br>%{fullData.name}: " if s.name else ": "


def _value_axis(fmt: str | None, title: str, series: list[_Series] | None = None, *,
                stacked: bool = False) -> dict:
    axis = {"automargin": True, "title": {"text": title},
            **({"tickformat": _TICKS[fmt]} if fmt else {})}
    values = [abs(v) for s in series or () for v in s.plotted if v is not None]
    if stacked and series:  # the axis reaches the stacks' heights, not a part's
        values = [sum(abs(v or 0) for v in point)
                  for point in zip(*(s.plotted for s in series), strict=True)]
    if fmt == "integer" and values and max(values) <= 10:
        axis |= {"tick0": 0, "dtick": 1}  # small counts: no "1, 1, 2, 2" from half steps
    return axis


# --- builders ---------------------------------------------------------------------------

def _cartesian(req: _Request) -> dict:
    """bar / stacked_bar / line / area: categories on one axis, one trace per series.
    Measures formatted unlike the first go on a second value axis (as lines for bars:
    bars on two overlaid axes would hide each other)."""
    res, kind = req.result, req.kind
    if not res.dims and kind not in _BARS:
        raise ChartError("折线图和面积图需要至少一个维度",
                         "line and area charts need at least one dimension")
    series = _series(res)
    horizontal = kind in _BARS and req.chart.get("orientation", "v") == "h"
    # plotly lists stacked bars' legend bottom-up by default; keep the series order
    legend = {"traceorder": "normal",
              "title": {"text": res.dims[1] if len(res.dims) == 2 else ""}}
    fig = _figure(*(_cartesian_trace(req, s, horizontal, second=s.fmt != series[0].fmt)
                    for s in series),
                  showlegend=len(series) > 1, legend=legend,
                  **_cartesian_axes(res, series, horizontal, stacked=kind == "stacked_bar"
                                    or (kind == "area" and len(res.dims) == 2)))
    if kind in _BARS:
        fig["layout"]["barmode"] = "stack" if kind == "stacked_bar" else "group"
    return fig


def _cartesian_trace(req: _Request, s: _Series, horizontal: bool, *,
                     second: bool) -> dict:
    cat, val = ("y", "x") if horizontal else ("x", "y")
    common = {cat: s.x, val: s.plotted, "name": s.name, "customdata": s.texts,
              "hovertemplate": f"%{{{cat}}}{_named(s)}%{{customdata}}<extra></extra>"}
    if second:
        common[f"{val}axis"] = f"{val}2"
    if req.kind in _BARS and not second:
        return {"type": "bar", "orientation": "h" if horizontal else "v", **common}
    if req.kind == "area" and len(req.result.dims) == 2:  # parts of a whole
        return {"type": "scatter", "mode": "lines", "stackgroup": "one", **common}
    if req.kind == "area":
        return {"type": "scatter", "mode": "lines", "fill": "tozeroy", **common}
    return {"type": "scatter", "mode": "lines+markers", **common}


def _cartesian_axes(res: Result, series: list[_Series], horizontal: bool, *,
                    stacked: bool = False) -> dict:
    cat, val = ("y", "x") if horizontal else ("x", "y")
    base = series[0].fmt
    first = [s.name for s in series if s.fmt == base]
    title = res.measures[0].label if len(res.dims) == 2 else "、".join(first)
    axes = {f"{cat}axis": {"type": "category", "automargin": True,
                           "title": {"text": res.dims[0] if res.dims else ""},
                           **({"autorange": "reversed"} if horizontal else {})},
            f"{val}axis": _value_axis(base, _axis_title([title], base),
                                      [s for s in series if s.fmt == base], stacked=stacked)}
    others = [s for s in series if s.fmt != base]
    if others:
        fmts = {s.fmt for s in others}
        fmt = fmts.pop() if len(fmts) == 1 else None
        axes[f"{val}axis2"] = {**_value_axis(fmt, _axis_title([s.name for s in others], fmt),
                                             others),
                               "overlaying": val, "side": "top" if horizontal else "right",
                               "showgrid": False}
    return axes


def _one_series(req: _Request, zh: str, en: str) -> _Series:
    """The slices/stages of pie, donut, funnel: the measures (0 dimensions) or the values
    of the one dimension (first measure)."""
    if len(req.result.dims) > 1:
        raise ChartError(f"{zh}最多一个维度", f"a {en} chart takes at most one dimension")
    return _series(req.result)[0]


def _pie(req: _Request) -> dict:
    s = _one_series(req, "饼图" if req.kind == "pie" else "环形图", req.kind)
    fig = _figure({
        "type": "pie", "labels": s.x, "values": s.plotted, "customdata": s.texts,
        "name": s.name, "sort": False, "direction": "clockwise",
        **({"hole": 0.5} if req.kind == "donut" else {}), "textinfo": "percent",
        "hovertemplate": f"%{{label}}{_named(s)}%{{customdata}}（%{{percent}}）"
                         "<extra></extra>"})
    if req.kind == "donut" and s.fmt and s.fmt != "percent":
        total = format_value(_total(s.raw, s.fmt), s.fmt)
        # bold through the font, not <b>: plotly draws <b> as a tspan with a style
        # attribute, which the pages' CSP (style-src 'self') refuses
        fig["layout"]["annotations"] = [{
            "text": f"{TOTAL_LABEL}<br>{total}", "showarrow": False,
            "font": {"weight": "bold"}, "x": 0.5, "y": 0.5, "xref": "paper", "yref": "paper"}]
    return fig


FUNNEL_TEXT = 13  # px: the stage labels, never shrunk to fit a thin stage


def _funnel(req: _Request) -> dict:
    """The stages top-down in the report's order; the exits (a flow's 未成交: the rows
    after the stages) are not stages after the last one, so they are named under the
    funnel with their count and share of the first stage, not drawn in it."""
    s = _one_series(req, "漏斗图", "funnel")
    n = len(s.x) - min(max(req.exits, 0), max(len(s.x) - 1, 0))
    fig = _figure({
        "type": "funnel", "y": s.x[:n], "x": s.plotted[:n], "customdata": s.texts[:n],
        "name": s.name, "textposition": "auto", "textinfo": "value+percent initial",
        "texttemplate": "%{customdata}（%{percentInitial:.1%}）",
        "textfont": {"size": FUNNEL_TEXT}, "constraintext": "none",
        "hovertemplate": f"%{{y}}{_named(s)}%{{customdata}}<br>占首层 "
                         "%{percentInitial:.1%}<extra></extra>"},
        yaxis={"type": "category", "automargin": True, "tickfont": {"size": FUNNEL_TEXT}},
        uniformtext={"minsize": FUNNEL_TEXT - 1, "mode": "show"})
    if n < len(s.x):
        first = _plotted(s.raw[0], s.fmts[0]) if s.raw else None
        parts = [f"{label}：{text}" + (f"（占首层 {format_value(value / first, 'percent')}）"
                                      if first and value is not None else "")
                 for label, text, value in zip(s.x[n:], s.texts[n:], s.plotted[n:],
                                               strict=True)]
        fig["layout"]["yaxis"]["domain"] = [0.14, 1]
        fig["layout"]["annotations"] = [{
            "text": "　".join(parts), "showarrow": False, "xref": "paper", "yref": "paper",
            "x": 0.5, "y": 0, "xanchor": "center", "yanchor": "bottom",
            "font": {"size": FUNNEL_TEXT, "color": "#86909c"}}]
    return fig


def _leaderboard(req: _Request) -> dict:
    """Horizontal bars in the report's order, rank 1 on top, value printed by each bar:
    on a phone a bar's length reads faster than a column of figures."""
    res = req.result
    if len(res.dims) != 1:
        raise ChartError("排行榜需要恰好一个维度", "a leaderboard needs exactly one dimension")
    s = _series(res)[0]
    ranks = [f"第{i}名 {label}" for i, label in enumerate(s.x, start=1)]
    return _figure(
        {"type": "bar", "orientation": "h", "y": ranks, "x": s.plotted,
         "customdata": s.texts, "text": s.texts, "textposition": "auto",
         "hovertemplate": "%{y}<br>%{customdata}<extra></extra>"},
        yaxis={"type": "category", "autorange": "reversed", "automargin": True},
        xaxis=_value_axis(s.fmt, _axis_title([s.name], s.fmt)),
        height=req.chart.get("height") or max(240, 36 * len(ranks) + 100))


def _scatter(req: _Request) -> dict:
    res = req.result
    if len(res.measures) < 2:
        raise ChartError("散点图需要至少两个度量", "a scatter chart needs at least two measures")
    mx, my = res.measures[:2]
    xs, ys = res.column(0), res.column(1)
    hover = [[f"{mx.label}: {format_value(a, mx.fmt)}", f"{my.label}: {format_value(b, my.fmt)}"]
             for a, b in zip(xs, ys, strict=True)]
    text = [" / ".join(key) for key in res.keys] if res.dims else None
    return _figure(
        {"type": "scatter", "mode": "markers", "x": [_plotted(v, mx.fmt) for v in xs],
         "y": [_plotted(v, my.fmt) for v in ys], **({"text": text} if text else {}),
         "customdata": hover,
         "hovertemplate": ("%{text}<br>" if text else "")
         + "%{customdata[0]}<br>%{customdata[1]}<extra></extra>"},
        xaxis=_value_axis(mx.fmt, _axis_title([mx.label], mx.fmt)),
        yaxis=_value_axis(my.fmt, _axis_title([my.label], my.fmt)))


def _kpi(req: _Request) -> dict:
    """The first measure's total; with a previous period, the relative change as the
    indicator's delta and the absolute change written under the label."""
    m = req.result.measures[0]
    total = _total(req.result.column(0), m.fmt)
    before = _total(req.previous.column(0), m.fmt) if req.previous else None
    indicator: dict[str, Any] = {"mode": "number", "number": _KPI_NUMBER[m.fmt]}
    if total is None:
        note = "暂无数据"
    else:
        indicator["value"] = _plotted(total, m.fmt)
        note = _kpi_note(total, before, m.fmt) if req.previous is not None else ""
    # a relative change against a zero, negative or missing reference misleads: none then
    if total is not None and before is not None and before > 0:
        indicator["mode"] = "number+delta"
        indicator["delta"] = {"reference": _plotted(before, m.fmt), "relative": True,
                              "valueformat": ".1%"}
    # no <span style=…>: plotly would set a style attribute, which the pages' CSP refuses
    subtitle = f"<br>{note}" if note else ""
    return _figure({"type": "indicator", "title": {"text": m.label + subtitle}, **indicator})


def _kpi_note(total: Decimal, before: Decimal | None, fmt: str) -> str:
    if before is None:
        return "上期无数据"
    change = total - before
    if change == 0:
        return f"上期 {format_value(before, fmt)}，与上期持平"
    sign = "+" if change > 0 else "-"
    amount = (f"{_round(abs(change) * 100, 1)}个百分点" if fmt == "percent"
              else format_value(abs(change), fmt))
    return f"上期 {format_value(before, fmt)}，较上期 {sign}{amount}"


def _table(req: _Request) -> dict:
    res = req.result
    cells = [[key[i] for key in res.keys] for i in range(len(res.dims))]
    cells += [[format_value(v, m.fmt) for v in res.column(i)]
              for i, m in enumerate(res.measures)]
    align = ["left"] * len(res.dims) + ["right"] * len(res.measures)
    return _plot_table([*res.dims, *(m.label for m in res.measures)], cells, align)


def _pivot(req: _Request) -> dict:
    """Dimension 0 down, dimension 1 across, the first measure in the cells; exact 合计
    row and column (none for a percent measure: ratios do not add up)."""
    res = req.result
    if len(res.dims) != 2:
        raise ChartError("透视表需要恰好两个维度", "a pivot table needs exactly two dimensions")
    down, across, cells = _cross(res)
    fmt = res.measures[0].fmt
    grid = [[cells.get((d, a)) for a in across] for d in down]
    additive = fmt != "percent"
    if additive:
        grid = [[*row, _total(row, fmt)] for row in grid]
        grid.append([_total(list(col), fmt) for col in zip(*grid, strict=True)]
                    if grid else [None] * (len(across) + 1))
    # the corner names the measure over "rows \ columns", as a spreadsheet pivot does
    corner = f"{res.measures[0].label}<br>{res.dims[0]} \\ {res.dims[1]}"
    header = [corner, *across, *([TOTAL_LABEL] if additive else [])]
    first = [*down, *([TOTAL_LABEL] if additive else [])]
    columns = [first] + [[format_value(row[j], fmt) for row in grid]
                         for j in range(len(header) - 1)]
    return _plot_table(header, columns, ["left"] + ["right"] * (len(header) - 1),
                       totals=additive)


def _plot_table(header: list[str], columns: list[list[str]], align: list[str], *,
                totals: bool = False) -> dict:
    """A plotly Table; with ``totals`` the last row and column (合计) are shaded."""
    fill = [["#ffffff"] * len(col) for col in columns]
    if totals:
        fill = [[*col[:-1], _SHADE] for col in fill[:-1]] + [[_SHADE] * len(fill[-1])]
    return _figure({
        "type": "table",
        "header": {"values": header, "align": align, "fill": {"color": _SHADE},
                   "font": {"color": "#1f2329"}},
        "cells": {"values": columns, "align": align, "height": 28, "fill": {"color": fill},
                  "line": {"color": "#e5e6eb"}}})


def _figure(*traces: dict, **layout: Any) -> dict:
    """A figure as plotly's JSON, written directly: plotly's figure objects validate
    every value on every request, which cost more than the query behind a widget (half
    a dashboard's server time). The same JSON as ``go.Figure(...).to_plotly_json()``;
    the tests pass every chart type through ``go.Figure`` to keep it valid."""
    return {"data": list(traces), "layout": layout}


def _merge(into: dict, extra: dict) -> None:
    """``update_layout`` for a figure's JSON: nested objects merged, None left out."""
    for key, value in extra.items():
        if value is None:
            continue
        if isinstance(value, dict) and isinstance(into.get(key), dict):
            _merge(into[key], value)
        else:
            into[key] = value


_BUILDERS: dict[str, Callable[[_Request], dict]] = {
    "table": _table, "bar": _cartesian, "stacked_bar": _cartesian, "line": _cartesian,
    "area": _cartesian, "pie": _pie, "donut": _pie, "funnel": _funnel, "kpi": _kpi,
    "pivot": _pivot, "leaderboard": _leaderboard, "scatter": _scatter,
}
CHART_TYPES: tuple[str, ...] = tuple(_BUILDERS)
# the types that plot rows on axes or slices (table, pivot and kpi show "no rows" in their
# own way)
_PLOTTED = frozenset(CHART_TYPES) - {"table", "pivot", "kpi"}


def _empty() -> dict:
    """No rows (a new app, a period without data): a blank plot that says so."""
    return _figure(xaxis={"visible": False}, yaxis={"visible": False}, annotations=[{
        "text": "暂无数据 / No data", "showarrow": False, "xref": "paper", "yref": "paper",
        "x": 0.5, "y": 0.5, "font": {"size": 16, "color": "#86909c"}}])


# --- the figure -------------------------------------------------------------------------

def build_figure(chart: dict, columns: list[dict], rows: list[list], *,
                 previous: list[list] | None = None) -> dict:
    """The plotly figure JSON (``data``, ``layout``, ``config``) of one report result.

    ``chart`` is ``{"type": one of CHART_TYPES, "orientation"?, "title"?, "height"?}``;
    ``previous`` is the previous period's rows (``kpi`` only). A chart that cannot be
    drawn from this shape raises :class:`ChartError` (a ``ValueError``).
    """
    kind = chart.get("type")
    if kind not in _BUILDERS:
        raise ChartError(f"未知的图表类型 {kind!r}", f"unknown chart type {kind!r}")
    _check_options(chart)
    result = parse_result(columns, rows)
    if kind != "table" and not result.measures:
        raise ChartError("此图表需要至少一个度量", f"a {kind} chart needs at least one measure")
    before = parse_result(columns, previous) if previous is not None else None
    if not result.values and kind in _PLOTTED:
        fig = _empty()
    else:
        exits = next((c.get("exits") or 0 for c in columns if c.get("role") == "dimension"
                      and isinstance(c.get("exits"), int)), 0)
        fig = _BUILDERS[kind](_Request(kind, result, chart, before, exits))
    title = chart.get("title")
    layout: dict[str, Any] = {
        "font": {"family": FONT_FAMILY}, "separators": ".,", "autosize": True,
        "margin": {"l": 8, "r": 8, "b": 8, "t": 48 if title else 16},
        # at the foot of the whole figure, below the axis title: placed under the plot
        # area it covered slanted category labels
        "legend": {"orientation": "h", "x": 0, "xanchor": "left", "yref": "container",
                   "y": 0, "yanchor": "bottom"},
        "title": {"text": title, "x": 0.02} if title else None}
    if chart.get("height"):
        layout["height"] = chart["height"]
    if chart.get("colors"):
        layout.update(colorway=chart["colors"], piecolorway=chart["colors"],
                      funnelareacolorway=chart["colors"])
    _merge(fig["layout"], layout)
    out = _json_safe(fig)
    out["layout"]["template"] = _template()  # as plotly would embed it, built once
    return {**out, "config": dict(CONFIG)}


@cache
def _template_json() -> str:
    import plotly.io as pio

    return json.dumps(_json_safe(pio.templates["plotly_white"].to_plotly_json()))


def _template() -> dict:
    """The ``plotly_white`` template's JSON: setting it on every figure made plotly copy
    and validate it each time (about half the time of drawing a dashboard's widgets)."""
    return json.loads(_template_json())


def _check_options(chart: dict) -> None:
    if chart.get("orientation", "v") not in ("h", "v"):
        raise ChartError("方向只能是 h 或 v", "orientation must be 'h' or 'v'")
    height = chart.get("height")
    if height is not None and (isinstance(height, bool) or not isinstance(height, int)
                               or height < 100):
        raise ChartError("高度须为不小于 100 的整数", "height must be an integer of at least 100")
    if not isinstance(chart.get("title") or "", str):
        raise ChartError("标题须为文字", "title must be a string")


def _json_safe(obj: Any) -> Any:
    """Plain JSON types only: numpy arrays/scalars become lists/numbers, no NaN."""
    if isinstance(obj, dict):
        return {str(k): _json_safe(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_json_safe(v) for v in obj]
    if isinstance(obj, Decimal):
        return float(obj)
    if hasattr(obj, "tolist"):  # numpy, without importing it
        return _json_safe(obj.tolist())
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    return obj
