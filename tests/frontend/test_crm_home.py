"""The CRM template in a real browser: the home page shows the app's menus with what each
user may open — a salesperson gets the sales dashboard and the reports, not the managers'
dashboard — the links work, and the menus fit a phone."""

from __future__ import annotations

import pytest

from templates_catalog.bundle import template
from templates_catalog.install import install
from tests.frontend.conftest import add_user, path_of
from tests.security_setup import SYSTEM

# CI runs these pages on PostgreSQL too: their own queries go beyond the API's.
pytestmark = pytest.mark.database_pass


def _crm(db) -> None:
    with db.write() as s:
        install(s, template("bank_intermediary_crm"), actor=SYSTEM,
                template="bank_intermediary_crm")
    add_user(db, "xiao.wang", roles=("sales",))
    add_user(db, "lao.li", roles=("team_lead",))


def _menu(page) -> dict[str, list[str]]:
    groups = page.locator("nav.app-menu[data-app=crm] .menu-group")
    return {g.locator("strong").inner_text(): g.locator("a").all_inner_texts()
            for g in groups.all()}


def test_each_user_sees_the_menus_they_may_open(web, db):
    _crm(db)
    sales = web.signed_in("xiao.wang")
    menu = _menu(sales)
    assert menu["工作台"] == ["我的待办", "销售驾驶舱"]  # 管理驾驶舱: team leads only
    assert menu["报表"] == ["服务漏斗", "销售龙虎榜", "月度放款趋势", "逾期待办"]
    assert menu["客户"] == ["客户", "跟进记录"]  # the forms' record lists
    assert menu["业务"] == ["贷款业务", "银行产品"]  # (no page for a flow yet)
    sales.click("nav.app-menu >> text=销售驾驶舱")
    sales.wait_for_selector("#chart-0 .main-svg")
    assert path_of(sales) == "/apps/crm/dashboards/sales_overview"
    sales.go_back()
    sales.click("nav.app-menu >> text=我的待办")
    assert path_of(sales).startswith("/tasks")

    lead = web.signed_in("lao.li")
    assert _menu(lead)["工作台"] == ["我的待办", "销售驾驶舱", "管理驾驶舱"]


def test_the_menus_fit_a_phone(web, db):
    _crm(db)
    phone = web.signed_in("lao.li", width=375, height=740)
    assert phone.locator("nav.app-menu .menu-group").count() == 4
    assert phone.evaluate("document.documentElement.scrollWidth") <= 375
