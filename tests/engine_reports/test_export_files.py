"""The export files themselves: a workbook's sheet names (Excel's 31 characters, no
forbidden characters, unique whatever the titles) and numbers; a PDF with every chart
type drawn and its Chinese text extractable."""

from __future__ import annotations

import io
from decimal import Decimal

import pypdf
from python_calamine import CalamineWorkbook

from engine_reports.export_pdf import document, drawing, series
from engine_reports.export_xlsx import sheet_names, workbook

COLS = [{"role": "dimension", "label": "城市"},
        {"role": "measure", "label": "笔数", "format": "number"},
        {"role": "measure", "label": "金额", "format": "money"}]
ROWS = [["北京", 3, "600.00"], ["上海", 2, "120.50"], [None, 1, None]]
TWO = [{"role": "dimension", "label": "月"}, {"role": "dimension", "label": "城市"},
       {"role": "measure", "label": "笔数", "format": "number"}]


def test_sheet_names_are_excel_safe_and_unique():
    long = "各城市各产品各月份的放款金额与笔数以及平均利率的对比分析报表"
    names = sheet_names([long, long, "利润/分析?", "", "Sales", "sales"])
    assert all(len(n) <= 31 for n in names)
    assert len({n.lower() for n in names}) == len(names)
    assert names[0] == long[:31] and names[1].endswith("(2)")
    assert names[2] == "利润_分析_"
    assert names[5].lower() != names[4].lower()


def test_the_workbook_holds_each_widget_with_exact_money():
    body, rows = workbook([{"title": "成交", "columns": COLS, "rows": ROWS},
                           {"title": "利润", "error": "report 'margins' is not shared"},
                           {"title": "=危险", "columns": COLS[:2], "rows": [["=1+1", 1]]}])
    book = CalamineWorkbook.from_filelike(io.BytesIO(body))
    assert book.sheet_names == ["成交", "利润", "=危险"]
    sheet = book.get_sheet_by_name("成交").to_python()
    assert sheet[0] == ["城市", "笔数", "金额"]
    assert sheet[2] == ["上海", 2, float(Decimal("120.50"))]
    assert "not shared" in book.get_sheet_by_name("利润").to_python()[0][0]
    assert book.get_sheet_by_name("=危险").to_python()[1][0] == "'=1+1"  # no formula
    assert rows == 4


def test_series_follow_the_page_charts_layout():
    assert series(COLS, ROWS)[0] == ["北京", "上海", "（空）"]
    cats, names, values = series(TWO, [["2026-01", "北京", 2], ["2026-02", "北京", 3],
                                       ["2026-01", "上海", 1]])
    assert cats == ["2026-01", "2026-02"] and names == ["北京", "上海"]
    assert values == [[2.0, 3.0], [1.0, 0.0]]


def test_every_chart_type_is_drawn_into_one_pdf():
    kinds = ("bar", "stacked_bar", "line", "area", "pie", "donut", "funnel", "kpi",
             "scatter", "table", "pivot", "leaderboard")
    for kind in kinds:
        if kind not in ("table", "pivot"):
            assert drawing(kind, COLS, ROWS) is not None, kind
    widgets = [{"title": f"图表 {k}", "chart": k, "columns": COLS, "rows": ROWS}
               for k in kinds]
    widgets.append({"title": "两个维度", "chart": "stacked_bar", "columns": TWO,
                    "rows": [["2026-01", "北京", 2], ["2026-02", "上海", 1]]})
    widgets.append({"title": "空的", "chart": "pie", "columns": COLS, "rows": []})
    widgets.append({"title": "未共享", "error": "not shared with your roles"})
    pdf = pypdf.PdfReader(io.BytesIO(document("周会看板", "导出", widgets)))
    text = "".join(p.extract_text() for p in pdf.pages)
    assert len(pdf.pages) >= 2
    for w in widgets:
        assert w["title"] in text, w["title"]
    assert "¥120.50" in text and "not shared with your roles" in text
