"""Reports and dashboards in a real browser: a dashboard draws its bar and pie charts, the
shared date range changes the numbers, clicking a bar lists exactly the records behind
it, what is not shared with a user says so, the grid stacks on a phone, and the export
links are there only for those who may export."""

from __future__ import annotations

import re

from engine_forms.forms import create_app as create_form_app
from engine_forms.forms import create_form, published
from engine_forms.publishing import publish
from engine_forms.records import create as create_record
from engine_reports import service
from engine_reports.charts import build_figure
from frontend.dashboard_loads import LOADS
from frontend.pages_reports import chart, drill_url
from platform_core.security.directory import ensure_builtin_roles, save_role
from tests.frontend.conftest import add_user, alert, path_of
from tests.security_setup import SYSTEM

DEAL = {"key": "deal", "name": "成交", "fields": [
    {"key": "title", "label": "标题", "type": "text"},
    {"key": "city", "label": "城市", "type": "select", "options": [
        {"value": "bj", "label": "北京"}, {"value": "sh", "label": "上海"},
        {"value": "gz", "label": "广州"}]},
    {"key": "amount", "label": "金额", "type": "money"},
    {"key": "signed_on", "label": "签约日期", "type": "date"}]}
DEALS = [("北京一", "bj", "100.00", "2026-01-10"), ("北京二", "bj", "200.00", "2026-02-05"),
         ("北京三", "bj", "300.00", "2026-03-20"), ("上海一", "sh", "50.00", "2026-01-15"),
         ("上海二", "sh", "70.00", "2026-03-01"), ("广州一", "gz", "10.00", "2026-02-20")]
PERIOD = {"key": "period", "type": "date_range", "field": "signed_on", "label": "签约日期"}
BY_CITY = {"key": "by_city", "name": "各城市成交笔数", "source": {"form": "deal"},
           "dimensions": [{"field": "city"}], "measures": [{"agg": "count", "label": "笔数"}],
           "sort": [{"measure": 0, "desc": True}], "parameters": [PERIOD],
           "chart": {"type": "bar"}}
SHARE = {"key": "amount_share", "name": "成交金额占比", "source": {"form": "deal"},
         "dimensions": [{"field": "city"}],
         "measures": [{"agg": "sum", "field": "amount", "label": "金额", "format": "money"}],
         "sort": [{"measure": 0, "desc": True}], "parameters": [PERIOD],
         "chart": {"type": "pie"}}
MARGINS = {"key": "margins", "name": "利润分析", "source": {"form": "deal"},
           "roles": ["manager"], "dimensions": [{"field": "city"}],
           "measures": [{"agg": "count"}], "chart": {"type": "bar"}}
OVERVIEW = {"key": "overview", "name": "销售看板", "parameters": [
    {"key": "period", "type": "date_range", "label": "签约日期"}], "widgets": [
    {"report": "by_city", "x": 0, "y": 0, "w": 6, "h": 5},
    {"report": "amount_share", "x": 6, "y": 0, "w": 6, "h": 5},
    {"report": "margins", "x": 0, "y": 5, "w": 12, "h": 4}]}
BOSSES = {"key": "bosses", "name": "经理看板", "roles": ["manager"],
          "widgets": [{"report": "by_city"}]}
ANALYST = {"forms": {"sales.*": {"actions": ["read"], "scope": "all"}}}


def _world(db) -> None:
    """App ``sales``: six deals, the reports and dashboards above; ``boss`` (admin) and
    ``ana`` (reads every deal, may not export, not a manager)."""
    with db.write() as s:
        ensure_builtin_roles(s)
        save_role(s, key="analyst", name="分析员", description=None, permissions=ANALYST,
                  principal=None, actor=SYSTEM, create=True)
        create_form_app(s, key="sales", name="销售")
        create_form(s, app="sales", raw=DEAL)
        publish(s, app="sales", key="deal", actor=SYSTEM)
        pub = published(s, "sales", "deal")
        for title, city, amount, day in DEALS:
            create_record(s, pub, {"title": title, "city": city, "amount": amount,
                                   "signed_on": day}, actor=SYSTEM)
        for spec in (BY_CITY, SHARE, MARGINS):
            service.save_report(s, app="sales", raw=spec, actor_id=None)
        for spec in (OVERVIEW, BOSSES):
            service.save_dashboard(s, app="sales", raw=spec, actor_id=None)
    add_user(db, "boss", roles=("admin",))
    add_user(db, "ana", roles=("analyst",))


def drawn(page, chart: str) -> None:
    page.wait_for_selector(f"#{chart} .main-svg")


def bars(page, chart: str) -> int:
    return page.locator(f"#{chart} .bars .point").count()


def values(page, chart: str, axis: str = "y") -> list:
    return page.evaluate(f"document.getElementById('{chart}').data[0].{axis}")


def click_mark(page, selector: str) -> None:
    """Click the middle of a bar or slice (plotly's drag layer takes the pointer)."""
    box = page.locator(selector).bounding_box()
    page.mouse.click(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)


def drill_titles(page) -> list[str]:
    page.wait_for_selector("#drill, #no-records")
    return sorted(page.locator("#drill td[data-field=title]").all_inner_texts())


def test_the_dashboard_draws_both_charts_and_follows_the_date_range(web, db):
    _world(db)
    page = web.signed_in("ana")
    page.click("#apps >> a:text-is('看板')")
    page.click("#dashboards >> text=销售看板")
    drawn(page, "chart-0")
    drawn(page, "chart-1")
    assert bars(page, "chart-0") == 3
    assert values(page, "chart-0", "x") == ["北京", "上海", "广州"]
    assert values(page, "chart-0") == [3, 2, 1]
    assert page.locator("#chart-1 .slice").count() == 3
    assert values(page, "chart-1", "values") == [600, 120, 10]
    assert "未与你共享" in page.inner_text("#widget-2 .widget-error")  # margins: managers'

    page.fill("#p-period-from", "2026-01-01")
    page.fill("#p-period-to", "2026-01-31")
    page.click("#params button[type=submit]")
    drawn(page, "chart-0")
    drawn(page, "chart-1")
    assert values(page, "chart-0") == [1, 1]
    assert values(page, "chart-1", "values") == [100, 50]
    assert page.input_value("#p-period-from") == "2026-01-01"

    click_mark(page, "#chart-0 .bars .point path >> nth=0")  # 北京, in January only
    page.wait_for_url(re.compile(r"/apps/sales/reports/by_city/drill\?"))
    assert drill_titles(page) == ["北京一"]
    assert "北京" in page.inner_text("#drill-row")


def test_a_bar_a_slice_and_a_table_row_open_exactly_their_records(web, db):
    _world(db)
    page = web.signed_in("ana")
    page.goto("/apps/sales/reports/by_city")
    drawn(page, "chart")
    assert page.locator("#report-table tbody tr").count() == 3
    assert page.locator("#report-table tbody tr").first.inner_text().split()[:2] == [
        "北京", "3"]
    click_mark(page, "#chart .bars .point path >> nth=1")  # 上海
    page.wait_for_url(re.compile(r"/drill\?"))
    assert drill_titles(page) == ["上海一", "上海二"]
    assert page.locator("#drill thead").inner_text().split() == [
        "编号", "标题", "城市", "金额", "签约日期"]
    assert "¥70.00" in page.inner_text("#drill")

    page.goto("/apps/sales/reports/by_city")
    page.locator("#report-table a.drill").nth(2).click()  # 广州
    assert drill_titles(page) == ["广州一"]

    page.goto("/apps/sales/reports/amount_share")
    drawn(page, "chart")
    assert page.locator("#chart .slice").count() == 3
    click_mark(page, "#chart .slice >> nth=0 >> text.slicetext")  # 北京: its label is inside
    page.wait_for_url(re.compile(r"/drill\?"))
    assert drill_titles(page) == ["北京一", "北京三", "北京二"]


def test_what_is_not_shared_says_so(web, db):
    _world(db)
    page = web.signed_in("ana")
    page.goto("/apps/sales/dashboards")
    assert page.locator("#dashboards a").all_inner_texts() == ["销售看板"]
    page.goto("/apps/sales/reports")
    assert "利润分析" not in page.inner_text("main")
    for path in ("/apps/sales/dashboards/bosses", "/apps/sales/reports/margins"):
        response = page.goto(path)
        assert response.status == 403, path
        assert "not shared with your roles" in alert(page)
    boss = web.signed_in("boss")
    boss.goto("/apps/sales/dashboards/bosses")
    drawn(boss, "chart-0")
    assert bars(boss, "chart-0") == 3


def test_bad_parameters_get_a_message_not_an_error_page(web, db):
    _world(db)
    page = web.signed_in("ana")
    response = page.goto("/apps/sales/reports/by_city?p.period.from=2026-03-01"
                         "&p.period.to=2026-01-01")
    assert response.status == 422
    assert "end is before the start" in alert(page)
    assert page.input_value("#p-period-from") == "2026-03-01"  # what was typed stays
    response = page.goto("/apps/sales/dashboards/overview?p.period.from=2026-03-01"
                         "&p.period.to=")
    assert response.status == 422
    assert "请填写开始和结束日期" in alert(page)
    response = page.goto("/apps/sales/reports/by_city/drill?keys=nonsense")
    assert response.status == 422
    assert "链接有误" in alert(page)


def test_the_dashboard_stacks_on_a_phone(web, db):
    _world(db)
    wide = web.signed_in("ana")
    wide.goto("/apps/sales/dashboards/overview")
    drawn(wide, "chart-1")
    left, right = (wide.locator(f"#widget-{i}").bounding_box() for i in (0, 1))
    assert left["y"] == right["y"] and right["x"] > left["x"] + left["width"]

    phone = web.signed_in("ana", width=375, height=740)
    phone.goto("/apps/sales/dashboards/overview")
    drawn(phone, "chart-0")
    drawn(phone, "chart-1")
    boxes = [phone.locator(f"#widget-{i}").bounding_box() for i in range(3)]
    assert len({round(b["x"]) for b in boxes}) == 1  # one column
    assert boxes[0]["y"] + boxes[0]["height"] <= boxes[1]["y"]
    assert boxes[1]["y"] + boxes[1]["height"] <= boxes[2]["y"]
    assert all(b["x"] + b["width"] <= 375 for b in boxes)
    for path in ("/apps/sales/dashboards/overview", "/apps/sales/reports/by_city",
                 "/apps/sales/reports/by_city/drill?keys=%5B%22bj%22%5D"):
        phone.goto(path)
        assert phone.evaluate("document.documentElement.scrollWidth") <= 375, path


def test_export_links_only_for_those_who_may_export(web, db):
    _world(db)
    page = web.signed_in("ana")
    page.goto("/apps/sales/reports/by_city")
    drawn(page, "chart")
    assert page.locator("#exports").count() == 0

    boss = web.signed_in("boss")
    boss.goto("/apps/sales/reports/by_city?p.period.from=2026-01-01&p.period.to=2026-02-28")
    with boss.expect_download() as info:
        boss.click("#exports >> text=导出 Excel")
    download = info.value
    assert download.suggested_filename.startswith("sales-by_city-")
    assert download.suggested_filename.endswith(".xlsx")
    with open(download.path(), "rb") as f:
        assert f.read(2) == b"PK"
    with boss.expect_download() as info:
        boss.click("#exports >> text=导出 CSV")
    with open(info.value.path(), encoding="utf-8-sig") as f:
        text = f.read()
    assert "北京,2" in text and "上海,1" in text and "广州,1" in text
    assert path_of(boss).startswith("/apps/sales/reports/by_city")


def test_each_point_of_a_stacked_bar_opens_its_own_pair():
    """Two dimensions: one trace per channel, one bar per city; a pair with no row has
    no link."""
    columns = [{"key": "d0", "label": "城市", "role": "dimension"},
               {"key": "d1", "label": "渠道", "role": "dimension"},
               {"key": "n", "label": "笔数", "role": "measure", "format": "integer"}]
    rows = [["北京", "官网", 2], ["北京", "转介绍", 1], ["上海", "转介绍", 4]]
    keys = [["bj", "web"], ["bj", "referral"], ["sh", "referral"]]
    doc = {"report": {"key": "mix", "chart": "stacked_bar"}, "columns": columns,
           "rows": rows, "keys": keys,
           "figure": build_figure({"type": "stacked_bar"}, columns, rows)}
    links = chart(doc, "sales", {"period": None}, drillable=True)["payload"]["links"]
    assert [(t["name"], t["x"]) for t in doc["figure"]["data"]] == [
        ("官网", ["北京", "上海"]), ("转介绍", ["北京", "上海"])]
    url = [drill_url("sales", "mix", k, {"period": None}) for k in keys]
    assert links == [[url[0], None], [url[1], url[2]]]
    assert chart(doc, "sales", {}, drillable=False)["payload"]["links"] is None


def test_one_page_load_reads_its_dashboard_once_and_a_reload_reads_afresh(web, db):
    """The widgets of a page load share one fused read (frontend/dashboard_loads.py)
    instead of each scanning the rows again; a reload reads the data as it is now."""
    _world(db)
    page = web.signed_in("ana")
    before = LOADS.computed
    page.goto("/apps/sales/dashboards/overview")
    drawn(page, "chart-0")
    drawn(page, "chart-1")
    assert "未与你共享" in page.inner_text("#widget-2 .widget-error")
    tokens = {re.search(r"load=([\w-]+)", page.get_attribute(f"#widget-{i}", "data-src"))[1]
              for i in range(3)}
    assert len(tokens) == 1
    assert LOADS.computed == before + 1  # three widgets, one read
    with db.write() as s:
        create_record(s, published(s, "sales", "deal"), {
            "title": "北京四", "city": "bj", "amount": "1.00", "signed_on": "2026-03-02"},
            actor=SYSTEM)
    page.reload()
    drawn(page, "chart-0")
    assert values(page, "chart-0") == [4, 2, 1]  # the new deal: this load read afresh
    assert LOADS.computed == before + 2
