"""A dashboard exported from its page: Excel with one sheet per widget holding the
numbers the page shows, PDF with every widget's chart and table; a report as PDF; each
run as the viewer (a salesperson's export holds only their deals), needing the export
right, and audited."""

from __future__ import annotations

import io

import pypdf
from python_calamine import CalamineWorkbook
from sqlalchemy import select

from engine_forms import service as records
from engine_forms.forms import published
from engine_forms.service import Caller
from engine_reports import service
from platform_core.security.directory import save_role
from platform_core.security.models import AuditEntry, User
from platform_core.security.principal import load_principal
from tests.frontend.conftest import add_user
from tests.frontend.test_reports_pages import _world
from tests.security_setup import SYSTEM

SELLER = {"forms": {"sales.*": {"actions": ["create", "read", "export"], "scope": "own"}}}
EVERY = {"key": "every", "name": "全部图表", "widgets": [
    {"report": r, "x": 0, "y": i * 4, "w": 12, "h": 4} for i, r in enumerate(
        ("by_city", "amount_share", "margins", "stack", "trend", "funnel", "kpi"))]}
EXTRA = [
    {"key": "stack", "name": "各城市每月笔数（堆叠）", "source": {"form": "deal"},
     "dimensions": [{"field": "signed_on", "bucket": "month"}, {"field": "city"}],
     "measures": [{"agg": "count"}], "chart": {"type": "stacked_bar"}},
    {"key": "trend", "name": "每月成交金额走势", "source": {"form": "deal"},
     "dimensions": [{"field": "signed_on", "bucket": "month"}],
     "measures": [{"agg": "sum", "field": "amount", "format": "money"}],
     "chart": {"type": "area"}},
    {"key": "funnel", "name": "城市漏斗", "source": {"form": "deal"},
     "dimensions": [{"field": "city"}], "measures": [{"agg": "count"}],
     "sort": [{"measure": 0, "desc": True}], "chart": {"type": "funnel"}},
    {"key": "kpi", "name": "成交总额", "source": {"form": "deal"},
     "measures": [{"agg": "sum", "field": "amount", "format": "money", "label": "总额"}],
     "chart": {"type": "kpi"}}]


def _download(page, selector: str) -> bytes:
    with page.expect_download() as info:
        page.click(selector)
    return open(info.value.path(), "rb").read()


def _sheets(body: bytes) -> dict[str, list[list]]:
    book = CalamineWorkbook.from_filelike(io.BytesIO(body))
    return {name: book.get_sheet_by_name(name).to_python() for name in book.sheet_names}


def test_the_dashboard_in_excel_has_a_sheet_per_widget_with_the_page_numbers(web, db):
    _world(db)
    page = web.signed_in("boss")
    page.goto("/apps/sales/dashboards/overview?p.period.from=2026-01-01"
              "&p.period.to=2026-02-28")
    sheets = _sheets(_download(page, "#dashboard-exports a:text-is('导出 Excel')"))
    assert list(sheets) == ["各城市成交笔数", "成交金额占比", "利润分析"]
    assert sheets["各城市成交笔数"][0] == ["城市", "笔数"]
    assert sheets["各城市成交笔数"][1] == ["北京", 2]  # sorted by the count, as on the page
    assert sorted(sheets["各城市成交笔数"][2:]) == [["上海", 1], ["广州", 1]]
    assert sheets["成交金额占比"][1:] == [["北京", 300], ["上海", 50], ["广州", 10]]
    with db.read() as s:
        entry = s.execute(select(AuditEntry).where(
            AuditEntry.action == "dashboard.export")).scalar_one()
        assert entry.target == "sales.dashboard.overview"
        assert entry.detail["format"] == "xlsx" and entry.detail["widgets"] == 3
        assert entry.detail["params"] == {"period": ["2026-01-01", "2026-02-28"]}


def test_the_dashboard_as_pdf_draws_every_chart_with_chinese_titles(web, db):
    _world(db)
    with db.write() as s:
        for spec in EXTRA:
            service.save_report(s, app="sales", raw=spec, actor_id=None)
        service.save_dashboard(s, app="sales", raw=EVERY, actor_id=None)
    page = web.signed_in("boss")
    page.goto("/apps/sales/dashboards/every")
    body = _download(page, "#dashboard-exports a:text-is('导出 PDF')")
    pdf = pypdf.PdfReader(io.BytesIO(body))
    assert len(pdf.pages) >= 1
    text = "".join(p.extract_text() for p in pdf.pages)
    for title in ("全部图表", "各城市成交笔数", "成交金额占比", "利润分析",
                  "各城市每月笔数（堆叠）", "每月成交金额走势", "城市漏斗", "成交总额"):
        assert title in text, title
    assert "¥730.00" in text  # the KPI and the tables: the page's numbers
    page.goto("/apps/sales/reports/by_city")
    body = _download(page, "#export-pdf")
    text = "".join(p.extract_text() for p in pypdf.PdfReader(io.BytesIO(body)).pages)
    assert "各城市成交笔数" in text and "北京" in text


def test_a_salesperson_exports_only_their_deals_and_a_reader_may_not_export(web, db,
                                                                           server_keyring):
    _world(db)
    with db.write() as s:
        save_role(s, key="seller", name="销售", description=None, permissions=SELLER,
                  principal=None, actor=SYSTEM, create=True)
    add_user(db, "xiao.li", roles=("seller",))
    with db.write() as s:
        user = s.execute(select(User).where(User.username == "xiao.li")).scalar_one()
        principal = load_principal(s, user, via="test")
        caller = Caller(principal, principal.access("sales", "deal"), server_keyring)
        for title, city, amount in (("李一", "sh", "5.00"), ("李二", "sh", "7.00"),
                                    ("李三", "gz", "9.00")):
            records.create(s, caller, published(s, "sales", "deal"), {
                "title": title, "city": city, "amount": amount, "signed_on": "2026-03-02"})
    page = web.signed_in("xiao.li")
    page.goto("/apps/sales/dashboards/overview")
    sheets = _sheets(_download(page, "#dashboard-exports a:text-is('导出 Excel')"))
    assert sheets["各城市成交笔数"] == [["城市", "笔数"], ["上海", 2], ["广州", 1]]
    assert sheets["成交金额占比"][1:] == [["上海", 12], ["广州", 9]]
    assert "not shared" in sheets["利润分析"][0][0]  # margins: managers' only

    ana = web.signed_in("ana")  # reads every deal, may not export
    ana.goto("/apps/sales/dashboards/overview")
    assert ana.locator("#dashboard-exports a").count() == 0
    assert ana.goto("/apps/sales/dashboards/overview/export.xlsx").status == 403
    assert ana.goto("/apps/sales/reports/by_city/export.pdf").status == 403
