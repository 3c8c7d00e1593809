"""Report pages, hardened (issue 22 item 4): a donut draws without anything the pages'
CSP refuses, the favicon is served, and the drill-down list of a wide form chooses its
columns and scrolls instead of squeezing them, on a phone and on a desk."""

from __future__ import annotations

from engine_forms.forms import create_app as create_form_app
from engine_forms.forms import create_form, published
from engine_forms.publishing import publish
from engine_forms.records import create as create_record
from engine_reports import service
from platform_core.security.directory import ensure_builtin_roles
from tests.frontend.conftest import add_user
from tests.security_setup import SYSTEM

DEAL = {"key": "deal", "name": "成交", "fields": [
    {"key": "title", "label": "标题", "type": "text"},
    {"key": "city", "label": "城市", "type": "select", "options": [
        {"value": "bj", "label": "北京"}, {"value": "sh", "label": "上海"}]},
    {"key": "amount", "label": "金额", "type": "money"}]}
SHARE = {"key": "share", "name": "成交金额占比", "source": {"form": "deal"},
         "dimensions": [{"field": "city"}],
         "measures": [{"agg": "sum", "field": "amount", "label": "金额", "format": "money"}],
         "chart": {"type": "donut"}}
STAGES = {"key": "stages", "name": "各城市笔数", "source": {"form": "deal"},
          "dimensions": [{"field": "city"}], "measures": [{"agg": "count", "label": "笔数"}],
          "chart": {"type": "funnel", "height": 220}}


def _deals(db) -> None:
    with db.write() as s:
        ensure_builtin_roles(s)
        create_form_app(s, key="sales", name="销售")
        create_form(s, app="sales", raw=DEAL)
        publish(s, app="sales", key="deal", actor=SYSTEM)
        pub = published(s, "sales", "deal")
        for title, city, amount in (("一", "bj", "100.00"), ("二", "sh", "50.00")):
            create_record(s, pub, {"title": title, "city": city, "amount": amount},
                          actor=SYSTEM)
        service.save_report(s, app="sales", raw=SHARE, actor_id=None)
        service.save_report(s, app="sales", raw=STAGES, actor_id=None)
    add_user(db, "boss", roles=("admin",))


def test_a_donut_draws_with_nothing_the_csp_refuses(web, db):
    _deals(db)
    page = web.signed_in("boss")
    page.goto("/apps/sales/reports/share")
    page.wait_for_selector("#chart .main-svg")
    page.wait_for_selector("#chart .annotation")
    assert "150" in page.locator("#chart .annotation").text_content()  # the total
    for n in range(2):  # the hover labels too: over each slice's percentage
        box = page.locator(f"#chart .slicetext >> nth={n}").bounding_box()
        page.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
        page.wait_for_selector("#chart .hoverlayer .hovertext")
        page.mouse.move(1, 1)
    page.wait_for_timeout(300)  # a late violation is reported after the drawing
    assert web.reports == []


def test_the_favicon_is_served_and_named(web, db):
    _deals(db)
    page = web.page()
    answer = page.request.get("/favicon.ico")
    assert answer.status == 200 and answer.headers["content-type"] == "image/x-icon"
    assert answer.body()[:4] == b"\x00\x00\x01\x00"  # an ICO
    page.goto("/login")
    href = page.get_attribute("link[rel=icon]", "href")
    icon = page.request.get(href)
    assert icon.status == 200 and icon.headers["content-type"].startswith("image/svg+xml")


def test_funnel_labels_are_drawn_at_a_readable_size(web, db):
    _deals(db)
    page = web.signed_in("boss", width=375)
    page.goto("/apps/sales/reports/stages")
    page.wait_for_selector("#chart .main-svg text.bartext")
    sizes = page.eval_on_selector_all(
        "#chart text.bartext", "els => els.map(e => parseFloat(getComputedStyle(e).fontSize))")
    assert len(sizes) == 2 and min(sizes) >= 12, sizes


WIDE = {"key": "wide", "name": "宽表", "title_field": "f01", "fields": [
    {"key": "city", "label": "城市", "type": "select", "options": [
        {"value": "bj", "label": "北京"}, {"value": "sh", "label": "上海"}]},
    *({"key": f"f{i:02}", "label": f"很长的字段名称{i:02}", "type": "text"}
      for i in range(1, 26))]}
BY_CITY = {"key": "wide_by_city", "name": "宽表各城市", "source": {"form": "wide"},
           "dimensions": [{"field": "city"}], "measures": [{"agg": "count"}],
           "chart": {"type": "bar"}}


def _wide(db) -> str:
    from frontend.pages_reports import drill_url

    with db.write() as s:
        ensure_builtin_roles(s)
        create_form_app(s, key="sales", name="销售")
        create_form(s, app="sales", raw=WIDE)
        publish(s, app="sales", key="wide", actor=SYSTEM)
        pub = published(s, "sales", "wide")
        for n in range(3):
            create_record(s, pub, {"city": "bj", **{f"f{i:02}": f"第{n}条的第{i}个值很长很长"
                                                   for i in range(1, 26)}}, actor=SYSTEM)
        service.save_report(s, app="sales", raw=BY_CITY, actor_id=None)
    add_user(db, "boss", roles=("admin",))
    return drill_url("sales", "wide_by_city", ["bj"], {})


def _no_page_overflow(page) -> None:
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth + 1")


def test_the_drill_down_chooses_columns_and_scrolls_instead_of_squeezing(web, db):
    url = _wide(db)
    page = web.signed_in("boss", width=1280)
    page.goto(url)
    heads = page.locator("#drill thead th").all_inner_texts()
    assert heads == ["编号", "很长的字段名称01", "城市", *(f"很长的字段名称{i:02}"
                                                        for i in range(2, 6))]
    assert page.locator("#drill-columns input[name=col]").count() == 26
    page.click("#drill-columns summary")
    for box in page.locator("#drill-columns input[name=col]").all():
        box.check()
    page.click("#drill-columns button[type=submit]")
    page.wait_for_load_state()
    assert page.locator("#drill thead th").count() == 27
    wrap = page.locator("#drill-wrap")
    assert wrap.evaluate("e => getComputedStyle(e).overflowX") == "auto"
    assert wrap.evaluate("e => e.scrollWidth > e.clientWidth")  # it scrolls sideways
    squeezed = page.eval_on_selector_all(
        "#drill thead th", "els => els.filter(e => e.scrollWidth > e.clientWidth + 1).length")
    assert squeezed == 0  # every heading fits its column: nothing squeezed
    _no_page_overflow(page)
    assert page.url.count("col=") == 26  # the choice is the page's own address

    phone = web.signed_in("boss", width=375)
    phone.goto(page.url)
    assert phone.locator("#drill tbody tr").count() == 3
    _no_page_overflow(phone)
    cell = phone.locator("#drill tbody tr >> nth=0").locator("td[data-field=f25]")
    assert cell.is_visible() and cell.bounding_box()["width"] <= 375
