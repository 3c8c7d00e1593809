"""The report builder in a real browser, on the CRM template: a team lead drags 银行 (a
lookup through the loan's 匹配产品 to the product's bank) and 放款日期 (by month) into
the dimensions, sums the approved amounts in 万元, picks a
stacked bar, watches the preview draw it and saves it; a calculated measure over an
unknown key shows the checker's message beside it and saving is refused with the same
message; a chart the shape cannot draw cannot be chosen and says why; the page fits a
phone."""

from __future__ import annotations

import re

from engine_reports import service
from platform_core.security.directory import save_role
from tests.frontend.conftest import add_user, path_of
from tests.frontend.test_workspace import _create, _crm
from tests.security_setup import SYSTEM, add_department
from tests.security_setup import add_user as add_team_member

NEW = "/apps/crm/reports/new"
KEY = "disbursed_by_bank_month"
# the team lead also designs the app's reports (app:manage on crm)
DESIGNER = {"forms": {"crm.*": {"actions": ["read", "manage"], "scope": "department_tree"}}}
CASES = (("icbc", "300000.00", "2026-01-10"), ("icbc", "200000.00", "2026-02-05"),
         ("ccb", "500000.00", "2026-01-20"))
BANKS = {"icbc": "工商银行经营贷", "ccb": "建设银行经营贷"}


def lead_with_cases(db, keyring) -> None:
    """``lao.li``: team lead and report designer of 销售一部, with three disbursed loans
    (two at 工商银行, one at 建设银行; January and February 2026)."""
    _crm(db)
    with db.write() as s:
        save_role(s, key="report_designer", name="报表设计", description=None,
                  permissions=DESIGNER, principal=None, actor=SYSTEM, create=True)
    team = add_department(db, "销售一部")
    add_team_member(db, "lao.li", roles=("team_lead", "report_designer"), department_id=team)
    products = {}
    for bank in ("icbc", "ccb"):
        products[bank] = _create(db, keyring, "lao.li", "bank_product",
                                 {"name": BANKS[bank], "bank": bank,
                                  "loan_type": "business"})["id"]
    customer = _create(db, keyring, "lao.li", "customer",
                       {"name": "张三", "mobile": "13800138000"})["id"]
    for bank, amount, day in CASES:
        _create(db, keyring, "lao.li", "loan_case", {
            "customer": customer, "loan_type": "business", "amount": amount,
            "product": products[bank], "stage": "disbursed", "approved_amount": amount,
            "disbursed_date": day})


def drag(page, chip: str, zone: str = "#b-dims") -> None:
    """Drag a field chip into a zone with the mouse (SortableJS' fallback drag)."""
    page.evaluate("z => window.scrollBy(0, document.querySelector(z)"
                  ".getBoundingClientRect().top - 10)", zone)
    src = page.locator(f'#b-fields li[data-field="{chip}"] span').bounding_box()
    dst = page.locator(zone).bounding_box()
    page.mouse.move(src["x"] + src["width"] / 2, src["y"] + src["height"] / 2)
    page.mouse.down()
    page.wait_for_timeout(50)
    page.mouse.move(src["x"] + 20, src["y"] + 10, steps=5)
    page.wait_for_timeout(50)
    page.mouse.move(dst["x"] + dst["width"] / 2, dst["y"] + dst["height"] - 8, steps=15)
    page.wait_for_timeout(50)
    page.mouse.up()


def previewed(page) -> None:
    """Wait for the debounced preview to settle."""
    page.wait_for_selector("#b-preview-status:has-text('预览已更新'), "
                           "#b-preview-status:has-text('报表还有问题')")


def build_disbursed_report(page, app: str = "crm") -> None:
    """As a signed-in report designer of the CRM: build 放款金额 by bank and month
    (stacked bar, 万元) in the builder and save it as ``disbursed_by_bank_month``; the
    page ends on the saved report."""
    page.goto(f"/apps/{app}/reports/new")
    page.fill("#b-name", "各银行月度放款")
    page.fill("#b-key", KEY)
    page.select_option("#b-source", "form:loan_case")
    drag(page, "bank")
    page.wait_for_selector('#b-dims li.dim[data-field="bank"]')
    drag(page, "disbursed_date")
    page.wait_for_selector('#b-dims li.dim[data-field="disbursed_date"]')
    page.select_option("#b-dim-1-bucket", "month")
    page.select_option("#b-m-0-agg", "sum")
    page.select_option("#b-m-0-field", "approved_amount")
    page.fill("#b-m-0-key", "amount")
    page.fill("#b-m-0-label", "放款金额")
    page.select_option("#b-m-0-format", "wan")
    page.select_option("#b-chart", "stacked_bar")
    page.select_option("#b-colors", "warm")
    page.wait_for_selector("#preview-chart .main-svg")
    page.click("#b-save")
    page.wait_for_url(f"**/apps/{app}/reports/{KEY}**")


def test_a_team_lead_builds_disbursed_by_bank_and_month(web, db, server_keyring):
    lead_with_cases(db, server_keyring)
    page = web.signed_in("lao.li")
    page.goto("/apps/crm/reports")
    page.click("#new-report")
    assert path_of(page) == NEW
    build_disbursed_report(page)
    page.wait_for_selector("#chart .main-svg")
    # stacked: one trace per month, one bar per bank
    assert page.evaluate("document.getElementById('chart').data.length") == 2
    assert page.evaluate("document.getElementById('chart').layout.barmode") == "stack"
    table = page.inner_text("#report-table")
    assert "50.00万元" in table and "30.00万元" in table and "20.00万元" in table
    assert "工商银行" in table and "建设银行" in table and "经营贷" not in table
    with db.read() as s:
        spec = service.get_report(s, "crm", KEY).spec
    assert spec["chart"]["type"] == "stacked_bar"
    assert spec["chart"]["colors"][0] == "#c2410c"  # the warm colour set
    assert page.evaluate("document.getElementById('chart').layout.colorway[0]") == "#c2410c"
    assert spec["dimensions"] == [{"field": "bank"},
                                  {"field": "disbursed_date", "bucket": "month"}]
    assert spec["measures"][0] == {"key": "amount", "label": "放款金额", "agg": "sum",
                                   "field": "approved_amount", "format": "wan"}
    # explain this number: the bank by its name, the month, the loans behind it
    page.locator("#report-table tr:has-text('建设银行') a.drill").first.click()
    page.wait_for_selector("#drill")
    why = page.inner_text("#drill-why")
    assert "银行 = 建设银行 且 放款日期 在 2026-01" in why, why
    assert page.locator("#drill tbody tr").count() == 1
    page.go_back()
    # the saved report opens in the builder again, as it was
    page.click("#edit-report")
    page.wait_for_selector("#preview-chart .main-svg")
    assert page.input_value("#b-key") == KEY
    assert page.locator("#b-dims li.dim").count() == 2
    assert page.input_value("#b-colors") == "warm"


def test_an_unknown_key_in_a_calculated_measure_is_shown_and_refused(web, db,
                                                                     server_keyring):
    lead_with_cases(db, server_keyring)
    page = web.signed_in("lao.li")
    page.goto(NEW)
    page.fill("#b-name", "坏公式")
    page.fill("#b-key", "bad_formula")
    page.select_option("#b-source", "form:loan_case")
    page.click("#b-add-calc")
    page.fill("#b-m-1-key", "ratio")
    page.fill("#b-m-1-expr", "n / nope")
    shown = page.locator('#b-measures .measure[data-index="1"] .measure-error')
    shown.wait_for()
    message = shown.inner_text()
    assert "nope" in message and message.startswith("measures[1].expr")
    page.click("#b-save")
    page.locator("#b-save-error").wait_for()
    assert message in page.inner_text("#b-save-error")
    assert path_of(page) == NEW
    with db.read() as s:
        assert "bad_formula" not in {r.key for r in service.list_reports(s, "crm")}


def test_a_chart_the_shape_cannot_draw_is_disabled_with_its_reason(web, db,
                                                                   server_keyring):
    lead_with_cases(db, server_keyring)
    page = web.signed_in("lao.li")
    page.goto(NEW)
    page.select_option("#b-source", "form:loan_case")
    page.click('#b-fields li[data-field="product"] .add-dim')
    page.click('#b-fields li[data-field="loan_type"] .add-dim')
    pie = page.locator('#b-chart option[value="pie"]')
    page.wait_for_selector('#b-chart-reasons li[data-chart="pie"]')
    assert pie.is_disabled()
    assert "最多一个维度" in page.inner_text('#b-chart-reasons li[data-chart="pie"]')
    assert not page.locator('#b-chart option[value="stacked_bar"]').is_disabled()
    # one dimension: a pie can draw it again
    page.click('#b-dims li.dim[data-field="loan_type"] .remove')
    page.wait_for_selector('#b-chart-reasons li[data-chart="pie"]', state="detached")
    assert not pie.is_disabled()


def test_the_builder_fits_a_phone(web, db, server_keyring):
    lead_with_cases(db, server_keyring)
    page = web.page(width=375, height=740)
    web.sign_in(page, "lao.li")
    page.goto(NEW)
    page.select_option("#b-source", "form:loan_case")
    page.click('#b-fields li[data-field="product"] .add-dim')
    page.wait_for_selector("#preview-chart .main-svg")
    page.wait_for_load_state("networkidle")
    assert page.evaluate("document.documentElement.scrollWidth") <= 375
    side = page.locator(".builder-side").bounding_box()
    preview = page.locator(".builder-preview").bounding_box()
    assert preview["y"] >= side["y"] + side["height"] - 1  # stacked below the settings
    assert re.search("预览", page.inner_text("#b-preview-title"))


def test_a_saved_report_is_edited_and_a_large_source_previewed_on_a_sample(
        web, db, server_keyring, monkeypatch):
    """The template's 各产品放款 opens in the builder as saved (its filter kept) and
    previews; over more records than the preview samples, the preview says it used a
    sample (only the latest records count) and shows an admin the engine it ran on."""
    import frontend.pages_report_builder as builder

    lead_with_cases(db, server_keyring)
    page = web.signed_in("lao.li")
    page.goto("/apps/crm/reports/by_bank/edit")
    page.wait_for_selector("#preview-chart .main-svg")
    assert page.input_value("#b-key") == "by_bank"
    assert page.locator("#b-dims li.dim[data-field='product']").count() == 1
    assert page.locator("#preview-sampled").count() == 0
    assert page.locator("#preview-engine").count() == 0  # not an administrator
    monkeypatch.setattr(builder, "SAMPLE_ROWS", 2)
    add_user(db, "boss")
    admin = web.signed_in("boss")
    admin.goto("/apps/crm/reports/by_bank/edit")
    admin.wait_for_selector("#preview-chart .main-svg")
    assert "2" in admin.inner_text("#preview-sampled")
    assert admin.inner_text("#preview-engine").endswith(("projection", "json"))
    # the two latest cases: 建设银行 50 万 and 工商银行 20 万 (not January's 30 万)
    table = admin.inner_text("#preview-table")
    assert "50.00万元" in table and "20.00万元" in table and "30.00万元" not in table


def test_filters_parameters_sharing_and_schedule_are_set_in_the_builder(web, db,
                                                                        server_keyring):
    """The builder's other panels: a report filter, a period parameter, sharing with one
    role and a weekly e-mail — saved into the spec; the report page offers the period,
    filters by it, and whoever lacks the role cannot open the report."""
    lead_with_cases(db, server_keyring)
    page = web.signed_in("lao.li")
    page.goto(NEW)
    page.fill("#b-name", "工行放款")
    page.fill("#b-key", "icbc_paid")
    page.select_option("#b-source", "form:loan_case")
    page.click('#b-fields li[data-field="bank"] .add-dim')
    page.select_option("#b-m-0-agg", "sum")
    page.select_option("#b-m-0-field", "approved_amount")
    page.click("#b-add-filter")
    page.select_option("#b-f-0-field", "bank")
    page.select_option("#b-f-0-op", "eq")
    page.fill("#b-f-0-value", "icbc")
    page.click("#b-add-param")
    page.select_option("#b-p-0-type", "date_range")
    page.select_option("#b-p-0-field", "disbursed_date")
    page.fill("#b-p-0-key", "period")
    page.fill("#b-p-0-label", "放款期间")
    page.click("#b-share-panel summary")
    page.check("#b-role-team_lead")
    page.click("#b-schedule-panel summary")
    page.check("#b-schedule-on")
    page.select_option("#b-schedule-every", "friday")
    page.fill("#b-schedule-at", "17:30")
    page.check("#b-srole-team_lead")
    previewed(page)
    page.click("#b-save")
    page.wait_for_url(re.compile(r".*/apps/crm/reports/icbc_paid(\?.*)?$"))
    with db.read() as s:
        spec = service.get_report(s, "crm", "icbc_paid").spec
    assert spec["filters"] == {"and": [{"field": "bank", "op": "eq", "value": "icbc"}]}
    assert spec["parameters"] == [{"key": "period", "type": "date_range",
                                   "field": "disbursed_date", "label": "放款期间"}]
    assert spec["roles"] == ["team_lead"]
    assert spec["schedule"]["every"] == "friday" and spec["schedule"]["at"] == "17:30"
    assert spec["schedule"]["roles"] == ["team_lead"]
    # only 工行 (50万 in January and February); the period narrows it to January
    assert "工商银行\t¥500000.00" in page.inner_text("#report-table").replace(",", "")
    page.fill("#p-period-from", "2026-01-01")
    page.fill("#p-period-to", "2026-01-31")
    page.click("#params button[type=submit]")
    page.wait_for_url("**p.period.from=2026-01-01**")
    assert "工商银行\t¥300000.00" in page.inner_text("#report-table").replace(",", "")
    sales = web.signed_in("xiao.wang")
    assert sales.goto("/apps/crm/reports/icbc_paid").status == 403
