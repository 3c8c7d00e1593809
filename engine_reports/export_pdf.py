"""Reports and dashboards as a PDF for a meeting: each widget's title, its chart drawn
natively with reportlab.graphics (bar, stacked bar, line, area, pie, donut, funnel,
KPI, scatter; no browser) and its table. Chinese text uses the Adobe CID font
``STSong-Light`` that every PDF reader carries, so no font file is embedded."""

from __future__ import annotations

import io
from typing import Any

from reportlab.graphics.charts.barcharts import HorizontalBarChart, VerticalBarChart
from reportlab.graphics.charts.doughnut import Doughnut
from reportlab.graphics.charts.legends import Legend
from reportlab.graphics.charts.linecharts import HorizontalLineChart
from reportlab.graphics.charts.lineplots import LinePlot
from reportlab.graphics.charts.piecharts import Pie
from reportlab.graphics.shapes import Drawing, Rect, String
from reportlab.lib import colors
from reportlab.lib.pagesizes import A4, landscape
from reportlab.lib.styles import ParagraphStyle
from reportlab.lib.units import mm
from reportlab.pdfbase import pdfmetrics
from reportlab.pdfbase.cidfonts import UnicodeCIDFont
from reportlab.platypus import (
    KeepTogether,
    Paragraph,
    SimpleDocTemplate,
    Spacer,
    Table,
    TableStyle,
)
from reportlab.platypus.flowables import Flowable

from engine_reports.charts import ChartError, format_value

FONT = "STSong-Light"
PALETTE = [colors.HexColor(c) for c in ("#2563eb", "#16a34a", "#f59e0b", "#dc2626",
                                        "#7c3aed", "#0891b2", "#db2777", "#65a30d",
                                        "#ea580c", "#475569")]
WIDTH, HEIGHT = 250 * mm, 70 * mm
MAX_POINTS = 30  # categories drawn per chart (the table has every row)
MAX_TABLE_ROWS = 500

pdfmetrics.registerFont(UnicodeCIDFont(FONT))
TITLE = ParagraphStyle("title", fontName=FONT, fontSize=16, leading=22, spaceAfter=6)
HEAD = ParagraphStyle("head", fontName=FONT, fontSize=12, leading=16, spaceBefore=8,
                      spaceAfter=4)
NOTE = ParagraphStyle("note", fontName=FONT, fontSize=9, leading=12,
                      textColor=colors.HexColor("#64748b"))


def _num(value: Any) -> float:
    try:
        return float(value) if value is not None else 0.0
    except (TypeError, ValueError):
        return 0.0


def _text(value: Any, col: dict[str, Any]) -> str:
    if value is None:
        return "（空）" if col["role"] != "measure" else ""
    if col["role"] != "measure":
        return str(value)
    try:
        return format_value(value, col.get("format") or "number")
    except ChartError:
        return str(value)


def _esc(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def series(columns: list[dict[str, Any]], rows: list[list[Any]]
           ) -> tuple[list[str], list[str], list[list[float]]]:
    """(categories, series names, values[series][category]) of a result, laid out as
    the page's charts are: no dimension → one bar per measure; one → a series per
    measure; two → a series per value of the second dimension (first measure)."""
    dims = [i for i, c in enumerate(columns) if c["role"] == "dimension"]
    meas = [i for i, c in enumerate(columns) if c["role"] == "measure"]
    if not meas:
        return [], [], []
    if not dims:
        row = rows[0] if rows else [None] * len(columns)
        return ([columns[i]["label"] for i in meas], [""],
                [[_num(row[i]) for i in meas]])
    d0 = dims[0]
    if len(dims) == 1:  # the measures on the first one's scale (a count beside money: lost)
        unit = columns[meas[0]].get("format")
        meas = [i for i in meas if columns[i].get("format") == unit]
        cats = [_text(r[d0], columns[d0]) for r in rows][:MAX_POINTS]
        return cats, [columns[i]["label"] for i in meas], [
            [_num(r[i]) for r in rows][:MAX_POINTS] for i in meas]
    d1, m = dims[1], meas[0]
    cats = list(dict.fromkeys(_text(r[d0], columns[d0]) for r in rows))[:MAX_POINTS]
    names = list(dict.fromkeys(_text(r[d1], columns[d1]) for r in rows))[:len(PALETTE)]
    values = [[0.0] * len(cats) for _ in names]
    for r in rows:
        c, s = _text(r[d0], columns[d0]), _text(r[d1], columns[d1])
        if c in cats and s in names:
            values[names.index(s)][cats.index(c)] += _num(r[m])
    return cats, names, values


def _legend(drawing: Drawing, names: list[str], x: float, y: float,
            always: bool = False) -> None:
    if len(names) < 2 and not always:
        return
    legend = Legend()
    legend.x, legend.y, legend.fontName, legend.fontSize = x, y, FONT, 7
    legend.alignment, legend.columnMaximum = "right", 12
    legend.dxTextSpace = 4
    legend.colorNamePairs = [(PALETTE[i % len(PALETTE)], n) for i, n in enumerate(names)]
    drawing.add(legend)


def _axes(chart: Any, cats: list[str]) -> None:
    chart.categoryAxis.categoryNames = [c[:12] for c in cats]
    for axis in (chart.categoryAxis, chart.valueAxis):
        axis.labels.fontName, axis.labels.fontSize = FONT, 7
    chart.valueAxis.forceZero = True


def drawing(kind: str, columns: list[dict[str, Any]], rows: list[list[Any]],
            orientation: str | None = None) -> Drawing | None:
    """The chart of one result (None for a table or pivot, or nothing to draw)."""
    if kind in ("table", "pivot") or not rows:
        return None
    cats, names, values = series(columns, rows)
    if not cats:
        return None
    d = Drawing(WIDTH, HEIGHT)
    if kind == "kpi":
        measures = [c for c in columns if c["role"] == "measure"]
        for i, col in enumerate(measures[:4]):
            x = 10 + i * (WIDTH - 20) / min(len(measures), 4)
            d.add(String(x, HEIGHT - 30, col["label"], fontName=FONT, fontSize=11,
                         fillColor=colors.HexColor("#64748b")))
            value = rows[0][columns.index(col)]
            d.add(String(x, HEIGHT - 75, _text(value, col), fontName=FONT, fontSize=28))
        return d
    if kind in ("pie", "donut"):
        pie = Doughnut() if kind == "donut" else Pie()
        pie.x, pie.y, pie.width, pie.height = 20, 10, HEIGHT - 20, HEIGHT - 20
        pie.data = [max(v, 0.0) for v in values[0]] or [1]
        if sum(pie.data) == 0:
            return None
        pie.labels = None
        for i in range(len(pie.data)):
            pie.slices[i].fillColor = PALETTE[i % len(PALETTE)]
            pie.slices[i].strokeColor = colors.white
        d.add(pie)
        _legend(d, [f"{c}  {v:g}" for c, v in zip(cats, values[0], strict=False)],
                HEIGHT + 120, HEIGHT - 10, always=True)
        return d
    if kind == "funnel":  # a flow funnel's exits (未成交, its last rows) named under it
        exits = next((c.get("exits") or 0 for c in columns if c["role"] == "dimension"), 0)
        pairs = list(zip(cats, values[0], strict=False))
        n = len(pairs) - min(int(exits), len(pairs) - 1)
        if n < len(pairs):
            d.add(String(100, 2, "　".join(f"{c}：{v:g}" for c, v in pairs[n:])[:80],
                         fontName=FONT, fontSize=8))
        top = max(v for _c, v in pairs[:n]) or 1.0
        step = (HEIGHT - 10 - (14 if n < len(pairs) else 0)) / n
        for i, (c, v) in enumerate(pairs[:n]):
            w = max((WIDTH - 200) * v / top, 2)
            y = HEIGHT - (i + 1) * step
            d.add(Rect(100 + (WIDTH - 200 - w) / 2, y + 2, w, step - 4,
                       fillColor=PALETTE[i % len(PALETTE)], strokeColor=None))
            d.add(String(0, y + step / 2 - 3, c[:14], fontName=FONT, fontSize=8))
            d.add(String(WIDTH - 90, y + step / 2 - 3, f"{v:g}", fontName=FONT,
                         fontSize=8))
        return d
    if kind == "scatter":
        meas = [i for i, c in enumerate(columns) if c["role"] == "measure"]
        if len(meas) < 2:
            return None
        plot = LinePlot()
        plot.x, plot.y, plot.width, plot.height = 40, 20, WIDTH - 60, HEIGHT - 30
        plot.data = [[(_num(r[meas[0]]), _num(r[meas[1]])) for r in rows[:500]]]
        plot.lines[0].strokeColor = None
        from reportlab.graphics.widgets.markers import makeMarker

        plot.lines[0].symbol = makeMarker("FilledCircle")
        for axis in (plot.xValueAxis, plot.yValueAxis):
            axis.labels.fontName, axis.labels.fontSize = FONT, 7
        d.add(plot)
        return d
    if kind in ("line", "area"):
        chart: Any = HorizontalLineChart()
        chart.joinedLines = 1
        if kind == "area":
            chart.inFill = 1
    elif orientation == "h":
        chart = HorizontalBarChart()
    else:
        chart = VerticalBarChart()
    chart.x, chart.y = (90 if orientation == "h" and kind not in ("line", "area") else 45), 25
    chart.width, chart.height = WIDTH - chart.x - 130, HEIGHT - 35
    chart.data = values
    _axes(chart, cats)
    for i in range(len(values)):
        target = chart.lines[i] if kind in ("line", "area") else chart.bars[i]
        if kind in ("line", "area"):
            target.strokeColor = PALETTE[i % len(PALETTE)]
            target.strokeWidth = 1.5
        else:
            target.fillColor = PALETTE[i % len(PALETTE)]
            target.strokeColor = None
    if kind == "stacked_bar":
        chart.categoryAxis.style = "stacked"
    if len(cats) > 8 and orientation != "h":
        chart.categoryAxis.labels.angle, chart.categoryAxis.labels.boxAnchor = 30, "ne"
    d.add(chart)
    _legend(d, names, WIDTH - 115, HEIGHT - 10)
    return d


def _table(columns: list[dict[str, Any]], rows: list[list[Any]]) -> Table:
    body = [[c["label"] for c in columns]] + [
        [_text(v, c) for v, c in zip(r, columns, strict=True)] for r in rows[:MAX_TABLE_ROWS]]
    t = Table(body, repeatRows=1, hAlign="LEFT")
    style = [("FONTNAME", (0, 0), (-1, -1), FONT), ("FONTSIZE", (0, 0), (-1, -1), 8),
             ("BACKGROUND", (0, 0), (-1, 0), colors.HexColor("#e2e8f0")),
             ("GRID", (0, 0), (-1, -1), 0.25, colors.HexColor("#cbd5e1"))]
    style += [("ALIGN", (i, 1), (i, -1), "RIGHT") for i, c in enumerate(columns)
              if c["role"] == "measure"]
    t.setStyle(TableStyle(style))
    return t


class _Chart(Flowable):
    def __init__(self, d: Drawing):
        super().__init__()
        self.d = d
        self.width, self.height = d.width, d.height

    def draw(self) -> None:
        from reportlab.graphics import renderPDF

        renderPDF.draw(self.d, self.canv, 0, 0)


def document(title: str, subtitle: str, widgets: list[dict[str, Any]]) -> bytes:
    """``widgets``: ``{"title", "chart", "orientation", "columns", "rows"}`` (or
    ``"error"``). One A4 landscape document, a section per widget."""
    stream = io.BytesIO()
    doc = SimpleDocTemplate(stream, pagesize=landscape(A4), title=title,
                            leftMargin=15 * mm, rightMargin=15 * mm, topMargin=12 * mm,
                            bottomMargin=12 * mm)
    story: list[Any] = [Paragraph(_esc(title), TITLE), Paragraph(_esc(subtitle), NOTE)]
    for w in widgets:
        head = Paragraph(_esc(w["title"]), HEAD)
        if "error" in w:
            story += [head, Paragraph(_esc(str(w["error"])), NOTE)]
            continue
        d = drawing(w.get("chart") or "table", w["columns"], w["rows"], w.get("orientation"))
        story.append(KeepTogether([head] + ([_Chart(d)] if d is not None else [])))
        story += [Spacer(1, 4), _table(w["columns"], w["rows"])]
        if len(w["rows"]) > MAX_TABLE_ROWS:
            story.append(Paragraph(f"… {len(w['rows']) - MAX_TABLE_ROWS} 行未列出", NOTE))
    doc.build(story)
    return stream.getvalue()
