"""A report result becomes plotly figure JSON: each chart type draws the right traces
with the values in the report's order, numbers read the Chinese way (¥, 万元, %), money
totals are exact, and a shape a chart cannot draw is refused in both languages."""

from __future__ import annotations

import json
import re
from decimal import Decimal

import plotly.graph_objects as go
import pytest

from engine_reports.charts import (
    CHART_TYPES,
    EMPTY_LABEL,
    FONT_FAMILY,
    TOTAL_LABEL,
    build_figure,
    format_value,
)


def dim(label: str, key: str = "d0", type_: str = "text") -> dict:
    return {"key": key, "label": label, "role": "dimension", "type": type_}


def measure(label: str, fmt: str = "number", key: str = "m0") -> dict:
    return {"key": key, "label": label, "role": "measure", "format": fmt}


OWNER, PRODUCT = dim("负责人", "d0", "user"), dim("产品", "d1", "option")
AMOUNT, COUNT = measure("放款金额", "money", "m0"), measure("笔数", "integer", "m1")
LOANS = [[OWNER, AMOUNT, COUNT], [["张三", "1234.50", 3], ["李四", "800", 2], [None, "0.10", 1]]]
CROSS = [[OWNER, PRODUCT, AMOUNT],
         [["张三", "经营贷", "0.10"], ["张三", "消费贷", "0.20"], ["李四", "经营贷", "50"]]]

# one drawable shape per chart type: (columns, rows, previous); LOANS mixes money and an
# integer count, so its bar chart draws the count as a line on a second axis
SHAPES = {
    "table": (*LOANS, None), "bar": (*LOANS, None), "stacked_bar": (*CROSS, None),
    "line": (*LOANS, None), "area": (*CROSS, None), "pie": (*LOANS, None),
    "donut": (*LOANS, None), "funnel": (*LOANS, None),
    "kpi": ([AMOUNT], [["1200"]], [["1000"]]), "pivot": (*CROSS, None),
    "leaderboard": (*LOANS, None), "scatter": (*LOANS, None),
}
TRACES = {"table": ["table"], "bar": ["bar", "scatter"], "stacked_bar": ["bar", "bar"],
          "line": ["scatter", "scatter"], "area": ["scatter", "scatter"], "pie": ["pie"],
          "donut": ["pie"], "funnel": ["funnel"], "kpi": ["indicator"], "pivot": ["table"],
          "leaderboard": ["bar"], "scatter": ["scatter"]}


def figure(kind: str, columns: list, rows: list, **options) -> dict:
    return build_figure({"type": kind, **options}, columns, rows)


def test_the_twelve_chart_types_are_listed():
    assert CHART_TYPES == ("table", "bar", "stacked_bar", "line", "area", "pie", "donut",
                           "funnel", "kpi", "pivot", "leaderboard", "scatter")
    assert set(SHAPES) == set(CHART_TYPES)


@pytest.mark.parametrize("kind", CHART_TYPES)
def test_every_type_gives_plain_json_with_layout_and_config(kind):
    columns, rows, previous = SHAPES[kind]
    fig = build_figure({"type": kind, "title": "本月放款", "height": 320}, columns, rows,
                       previous=previous)
    text = json.dumps(fig, ensure_ascii=False, allow_nan=False)  # no numpy, Decimal, NaN
    assert json.loads(text) == fig
    assert [t["type"] for t in fig["data"]] == TRACES[kind]
    assert "放款金额" in text
    layout = fig["layout"]
    assert layout["font"]["family"] == FONT_FAMILY
    assert layout["separators"] == ".,"
    assert layout["autosize"] is True
    assert layout["title"]["text"] == "本月放款" and layout["height"] == 320
    # a row under the figure, not over its slanted category labels
    assert layout["legend"]["orientation"] == "h" and layout["legend"]["y"] == 0
    assert layout["legend"]["yref"] == "container"
    assert fig["config"] == {"displaylogo": False, "responsive": True}
    assert_plotly_accepts(fig)


def assert_plotly_accepts(fig: dict) -> None:
    """The figure JSON is written by hand (plotly's figure objects cost more than a
    widget's query); plotly's own validators take it as it is: no unknown property, no
    bad value, nothing they would change."""
    checked = json.loads(go.Figure(fig["data"], fig["layout"]).to_json())
    assert checked["data"] == fig["data"]
    assert checked["layout"] == fig["layout"]


@pytest.mark.parametrize(("value", "fmt", "shown"), [
    ("12345678.90", "wan", "1,234.57万元"),
    (0.2534, "percent", "25.3%"),
    ("1234.5", "money", "¥1,234.50"),
    (Decimal("-1234.5"), "money", "-¥1,234.50"),
    ("-0.001", "money", "¥0.00"),
    ("-0.4", "integer", "0"),  # never "-0"
    (-0.00001, "percent", "0.0%"),
    ("0.125", "money", "¥0.13"),  # half-up (四舍五入), not banker's rounding
    (2.5, "integer", "3"),
    (1234567, "integer", "1,234,567"),
    ("1234.50", "number", "1,234.5"),
    (3, "number", "3"),
    (1, "percent", "100.0%"),
    (None, "money", ""),
    (None, "anything", ""),
])
def test_format_value(value, fmt, shown):
    assert format_value(value, fmt) == shown


@pytest.mark.parametrize(("value", "fmt"), [("1.0", "yuan"), ("abc", "money"),
                                            (float("nan"), "number"), ([1], "number")])
def test_format_value_refuses_unknown_formats_and_non_numbers(value, fmt):
    with pytest.raises(ValueError):
        format_value(value, fmt)


def test_table_shows_every_column_with_exact_strings():
    (trace,) = figure("table", *LOANS)["data"]
    assert trace["header"]["values"] == ["负责人", "放款金额", "笔数"]
    assert trace["cells"]["values"] == [["张三", "李四", EMPTY_LABEL],
                                        ["¥1,234.50", "¥800.00", "¥0.10"], ["3", "2", "1"]]
    assert trace["cells"]["align"] == ["left", "right", "right"]


def test_bar_with_one_dimension_has_a_trace_per_measure_in_report_order():
    fig = figure("bar", [OWNER, AMOUNT, measure("费用", "money", "m1")],
                 [["张三", "1234.50", "10"], ["李四", "800", None]])
    first, second = fig["data"]
    assert (first["name"], second["name"]) == ("放款金额", "费用")
    assert first["x"] == ["张三", "李四"] and first["y"] == [1234.5, 800.0]
    assert second["y"] == [10.0, None] and second["customdata"] == ["¥10.00", ""]
    assert first["customdata"] == ["¥1,234.50", "¥800.00"]
    layout = fig["layout"]
    assert layout["barmode"] == "group" and layout["xaxis"]["type"] == "category"
    assert layout["yaxis"]["title"]["text"] == "放款金额、费用（元）"
    assert "yaxis2" not in layout


def test_bar_without_dimensions_draws_one_bar_per_measure():
    (trace,) = figure("bar", [AMOUNT, COUNT], [["1200.5", 7]])["data"]
    assert trace["x"] == ["放款金额", "笔数"] and trace["y"] == [1200.5, 7.0]
    assert trace["customdata"] == ["¥1,200.50", "7"]


def test_horizontal_bar_puts_categories_down_the_side_first_on_top():
    fig = figure("bar", [OWNER, AMOUNT], [["张三", "1"], ["李四", "2"]], orientation="h")
    (trace,) = fig["data"]
    assert trace["orientation"] == "h" and trace["y"] == ["张三", "李四"]
    assert trace["x"] == [1.0, 2.0]
    assert fig["layout"]["yaxis"]["autorange"] == "reversed"


@pytest.mark.parametrize(("kind", "barmode"), [("bar", "group"), ("stacked_bar", "stack")])
def test_two_dimensions_give_a_trace_per_value_of_the_second(kind, barmode):
    fig = figure(kind, *CROSS)
    assert fig["layout"]["barmode"] == barmode
    assert fig["layout"]["legend"]["title"]["text"] == "产品"
    business, consumer = fig["data"]
    assert (business["name"], consumer["name"]) == ("经营贷", "消费贷")
    assert business["x"] == consumer["x"] == ["张三", "李四"]
    assert business["y"] == [0.1, 50.0] and consumer["y"] == [0.2, None]


def test_wan_values_are_divided_and_labelled():
    fig = figure("bar", [OWNER, measure("放款金额", "wan")], [["张三", "12345678.90"]])
    (trace,) = fig["data"]
    assert trace["y"] == [pytest.approx(1234.56789)]
    assert trace["customdata"] == ["1,234.57万元"]
    assert fig["layout"]["yaxis"]["title"]["text"].endswith("（万元）")


def test_a_differently_formatted_measure_gets_its_own_axis_as_a_line():
    fig = figure("bar", [OWNER, AMOUNT, measure("逾期率", "percent", "m1")],
                 [["张三", "100", 0.0253], ["李四", "50", 0.1]])
    bars, rate = fig["data"]
    assert bars["type"] == "bar" and "yaxis" not in bars
    assert rate["type"] == "scatter" and rate["yaxis"] == "y2"
    assert rate["y"] == [0.0253, 0.1] and rate["customdata"] == ["2.5%", "10.0%"]
    assert fig["layout"]["yaxis2"]["tickformat"] == ".1%"
    assert fig["layout"]["yaxis2"]["overlaying"] == "y"


def test_a_small_count_on_the_second_axis_ticks_whole_numbers():
    """Money bars with a count of 1–5 as the line: the count's axis reads 1, 2, 3 …, not
    1, 1, 2, 2 from half steps (seen on the CRM's 各产品放款)."""
    fig = figure("bar", *LOANS)
    assert fig["layout"]["yaxis2"]["dtick"] == 1 and fig["layout"]["yaxis2"]["tick0"] == 0


def test_percent_axis_uses_a_percent_tickformat():
    fig = figure("line", [dim("月份"), measure("转化率", "percent")],
                 [["2024-01", 0.25], ["2024-02", 0.3]])
    assert fig["layout"]["yaxis"]["tickformat"] == ".1%"
    assert fig["data"][0]["mode"] == "lines+markers"
    assert fig["data"][0]["x"] == ["2024-01", "2024-02"]  # categories, not parsed dates
    assert fig["layout"]["xaxis"]["type"] == "category"


def test_area_fills_measures_and_stacks_a_second_dimension():
    one = figure("area", *LOANS)["data"]
    assert [t["fill"] for t in one] == ["tozeroy", "tozeroy"]
    two = figure("area", *CROSS)["data"]
    assert [t["stackgroup"] for t in two] == ["one", "one"]


@pytest.mark.parametrize("kind", ["pie", "donut"])
def test_pie_uses_the_first_measure_in_report_order(kind):
    fig = figure(kind, *LOANS)
    (trace,) = fig["data"]
    assert trace["labels"] == ["张三", "李四", EMPTY_LABEL]
    assert trace["values"] == [1234.5, 800.0, 0.1]
    assert trace["customdata"] == ["¥1,234.50", "¥800.00", "¥0.10"]
    assert trace["sort"] is False
    assert ("hole" in trace) == (kind == "donut")


def test_donut_shows_the_exact_total_in_the_middle():
    fig = figure("donut", [OWNER, AMOUNT], [["张三", "0.10"], ["李四", "0.20"]])
    (note,) = fig["layout"]["annotations"]
    assert "¥0.30" in note["text"] and TOTAL_LABEL in note["text"]
    # no <b>/<i>/<span>: plotly draws them with a style attribute the pages' CSP refuses
    assert not re.search(r"<(?!br>)", note["text"]) and note["font"]["weight"] == "bold"


def test_funnel_stages_are_the_measures_without_dimensions():
    stages = [measure("线索", "integer", "m0"), measure("商机", "integer", "m1"),
              measure("成交", "integer", "m2")]
    (trace,) = figure("funnel", stages, [[100, 40, 12]])["data"]
    assert trace["y"] == ["线索", "商机", "成交"] and trace["x"] == [100.0, 40.0, 12.0]
    assert trace["customdata"] == ["100", "40", "12"]


def test_funnel_with_one_dimension_uses_its_values():
    (trace,) = figure("funnel", *LOANS)["data"]
    assert trace["y"] == ["张三", "李四", EMPTY_LABEL] and trace["x"] == [1234.5, 800.0, 0.1]


def test_kpi_delta_refers_to_the_previous_total():
    fig = build_figure({"type": "kpi"}, [OWNER, AMOUNT], [["张三", "1000.10"], ["李四", "200"]],
                       previous=[["张三", "1000"]])
    (card,) = fig["data"]
    assert card["value"] == pytest.approx(1200.1)
    assert card["mode"] == "number+delta"
    assert card["delta"]["reference"] == 1000.0 and card["delta"]["relative"] is True
    assert card["number"]["prefix"] == "¥"
    assert "放款金额" in card["title"]["text"]
    assert "较上期 +¥200.10" in card["title"]["text"]


def test_kpi_in_wan_refers_in_wan():
    fig = build_figure({"type": "kpi"}, [measure("放款金额", "wan")], [["30000"]],
                       previous=[["20000"]])
    (card,) = fig["data"]
    assert (card["value"], card["delta"]["reference"]) == (3.0, 2.0)
    assert card["number"]["suffix"] == "万元"
    assert "较上期 +1.00万元" in card["title"]["text"]


def test_kpi_of_a_falling_percent_speaks_in_points():
    fig = build_figure({"type": "kpi"}, [measure("逾期率", "percent")], [[0.02]],
                       previous=[[0.035]])
    (card,) = fig["data"]
    assert card["number"]["valueformat"] == ".1%"
    assert "较上期 -1.5个百分点" in card["title"]["text"]


@pytest.mark.parametrize(("previous", "note"), [
    (None, None), ([[None]], "上期无数据"), ([["0"]], "上期 ¥0.00"), ([], "上期无数据"),
    ([["-100"]], "较上期 +¥600.00")])
def test_kpi_without_a_usable_previous_value_shows_just_the_number(previous, note):
    fig = build_figure({"type": "kpi"}, [AMOUNT], [["500"]], previous=previous)
    (card,) = fig["data"]
    assert card["mode"] == "number" and "delta" not in card
    assert card["value"] == 500.0
    if note is None:
        assert card["title"]["text"] == "放款金额"
    else:
        assert note in card["title"]["text"]


@pytest.mark.parametrize("kind", CHART_TYPES)
def test_every_type_draws_a_result_without_rows(kind):
    """A new app's dashboard, a period without data: every chart says so (once a chart
    of two dimensions and no rows failed on a missing series)."""
    columns = SHAPES[kind][0]
    fig = build_figure({"type": kind}, columns, [], previous=[] if kind == "kpi" else None)
    text = json.dumps(fig, ensure_ascii=False, allow_nan=False)
    assert "暂无数据" in text or kind in ("table", "pivot")
    assert_plotly_accepts(fig)


def test_kpi_without_data_says_so():
    (card,) = figure("kpi", [OWNER, AMOUNT], [])["data"]
    assert "value" not in card and "暂无数据" in card["title"]["text"]


def test_pivot_totals_are_exact_for_money():
    (trace,) = figure("pivot", *CROSS)["data"]
    corner, *across = trace["header"]["values"]
    assert corner == "放款金额<br>负责人 \\ 产品"  # the measure over rows \ columns
    assert across == ["经营贷", "消费贷", TOTAL_LABEL]
    assert trace["cells"]["values"] == [
        ["张三", "李四", TOTAL_LABEL],
        ["¥0.10", "¥50.00", "¥50.10"],
        ["¥0.20", "", "¥0.20"],
        ["¥0.30", "¥50.00", "¥50.30"],
    ]


def test_pivot_totals_add_decimals_not_floats():
    # as floats 0.005 + 0.010 is 0.01499999…, which would round to ¥0.01
    rows = [["张三", "经营贷", "0.005"], ["张三", "消费贷", "0.010"]]
    (trace,) = figure("pivot", CROSS[0], rows)["data"]
    assert trace["cells"]["values"][1:] == [["¥0.01", "¥0.01"], ["¥0.01", "¥0.01"],
                                            ["¥0.02", "¥0.02"]]


def test_pivot_of_a_percent_has_no_totals():
    columns = [OWNER, PRODUCT, measure("逾期率", "percent")]
    (trace,) = figure("pivot", columns, [["张三", "经营贷", 0.1], ["张三", "消费贷", 0.2]])["data"]
    assert trace["header"]["values"][1:] == ["经营贷", "消费贷"]  # no 合计 column
    assert trace["cells"]["values"] == [["张三"], ["10.0%"], ["20.0%"]]


def test_leaderboard_ranks_top_down_in_report_order():
    fig = figure("leaderboard", *LOANS)
    (trace,) = fig["data"]
    assert trace["orientation"] == "h"
    assert trace["y"] == ["第1名 张三", "第2名 李四", f"第3名 {EMPTY_LABEL}"]
    assert trace["x"] == [1234.5, 800.0, 0.1]
    assert trace["text"] == ["¥1,234.50", "¥800.00", "¥0.10"]
    assert fig["layout"]["yaxis"]["autorange"] == "reversed"


def test_scatter_plots_the_first_two_measures_labelled_by_the_dimensions():
    (trace,) = figure("scatter", [OWNER, PRODUCT, AMOUNT, COUNT],
                      [["张三", "经营贷", "1234.5", 3], ["李四", None, "800", 2]])["data"]
    assert trace["mode"] == "markers"
    assert trace["x"] == [1234.5, 800.0] and trace["y"] == [3.0, 2.0]
    assert trace["text"] == ["张三 / 经营贷", f"李四 / {EMPTY_LABEL}"]
    assert trace["customdata"][0] == ["放款金额: ¥1,234.50", "笔数: 3"]


@pytest.mark.parametrize(("kind", "columns", "rows", "message"), [
    ("scatter", [OWNER, AMOUNT], [["张三", "1"]], "散点图需要至少两个度量"),
    ("gauge", [AMOUNT], [["1"]], "未知的图表类型"),
    ("pie", CROSS[0], CROSS[1], "at most one dimension"),
    ("funnel", CROSS[0], CROSS[1], "at most one dimension"),
    ("pivot", *LOANS, "exactly two dimensions"),
    ("leaderboard", *CROSS, "exactly one dimension"),
    ("line", [AMOUNT], [["1"]], "at least one dimension"),
    ("bar", [OWNER, PRODUCT, dim("区域", "d2"), AMOUNT], [["a", "b", "c", "1"]],
     "at most two dimensions"),
    ("bar", [OWNER], [["张三"]], "at least one measure"),
    ("kpi", [OWNER, measure("逾期率", "percent")], [["张三", 0.1], ["李四", 0.2]],
     "cannot be totalled"),
    ("pivot", CROSS[0], [*CROSS[1], ["张三", "经营贷", "1"]], "appears twice"),
    ("table", [AMOUNT, OWNER], [["1", "张三"]], "dimensions come before measures"),
    ("table", [OWNER, AMOUNT], [["张三"]], "row's length"),
    ("table", [AMOUNT], [["1"], ["2"]], "one row"),
    ("table", [measure("金额", "rmb")], [["1"]], "unknown number format"),
    ("table", [AMOUNT], [["一百"]], "not a number"),
])
def test_shapes_a_chart_cannot_draw_are_refused_in_both_languages(kind, columns, rows,
                                                                  message):
    with pytest.raises(ValueError, match=message) as caught:
        figure(kind, columns, rows)
    assert " / " in str(caught.value)


@pytest.mark.parametrize("options", [{"orientation": "up"}, {"height": 10},
                                     {"height": "300"}, {"title": 3}])
def test_bad_options_are_refused(options):
    with pytest.raises(ValueError):
        figure("bar", *LOANS, **options)


def test_stacks_of_small_counts_tick_by_the_stack_not_the_part():
    """Parts of at most 10 stacked to 28: ticks of 1 would print 29 labels on the axis."""
    columns = [{"role": "dimension", "label": "金额段"}, {"role": "dimension", "label": "类型"},
               {"role": "measure", "label": "笔数", "format": "integer"}]
    rows = [[band, kind, 7] for band in ("低", "中", "高") for kind in ("甲", "乙", "丙", "丁")]
    stacked = build_figure({"type": "stacked_bar"}, columns, rows)["layout"]["yaxis"]
    grouped = build_figure({"type": "bar"}, columns, rows)["layout"]["yaxis"]
    assert "dtick" not in stacked
    assert grouped["dtick"] == 1  # side by side, each bar is the part


def test_small_counts_get_whole_number_ticks():
    columns = [{"key": "d0", "label": "城市", "role": "dimension", "type": "text"},
               {"key": "m0", "label": "数量", "role": "measure", "format": "integer"}]
    fig = build_figure({"type": "bar"}, columns, [["北京", 3], ["上海", 1]])
    assert fig["layout"]["yaxis"]["dtick"] == 1
    big = build_figure({"type": "bar"}, columns, [["北京", 300], ["上海", 1]])
    assert "dtick" not in big["layout"]["yaxis"]
