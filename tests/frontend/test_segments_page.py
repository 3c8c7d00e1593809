"""The segmentation page: each tag with its rule in words and how many customers hold it
now; "run now" recomputes; changing the rule of grade A (the 高价值 customers) through
the engine's save, as the API does, and running again moves customers between the
segments — the count, the change since the last run and the filtered list follow."""

from __future__ import annotations

import copy
import re

from engine_reports import service
from tests.frontend.conftest import add_user, status
from tests.frontend.test_workspace import _create, _crm

SEGMENT = {"key": "tiers", "name": "客户分层", "source": {"form": "loan_case"},
           "dimensions": [{"field": "customer"}],
           "measures": [{"key": "total", "agg": "sum", "field": "amount"},
                        {"key": "loans", "agg": "count"}],
           "segment": {"field": "level", "rules": [
               {"value": "a", "when": "total >= 1000000"},
               {"value": "b", "when": "loans >= 2"}]}}


def _rows(page) -> dict[str, tuple[str, str]]:
    out = {}
    for row in page.locator("#seg-tiers tbody tr").all():
        out[row.get_attribute("data-tag")] = (row.locator(".count").inner_text(),
                                              row.locator(".change").inner_text())
    return out


def test_run_now_and_a_changed_rule_move_customers_between_segments(web, db,
                                                                   server_keyring):
    _crm(db)
    add_user(db, "boss", roles=("admin",))
    ids = {}
    for name, mobile in (("大客户", "13800000001"), ("中客户", "13800000002"),
                         ("小客户", "13800000003")):
        ids[name] = _create(db, server_keyring, "boss", "customer",
                            {"name": name, "mobile": mobile})["id"]
    for name, amount in (("大客户", "1200000.00"), ("中客户", "300000.00"),
                         ("中客户", "400000.00"), ("小客户", "50000.00")):
        _create(db, server_keyring, "boss", "loan_case", {
            "customer": ids[name], "loan_type": "credit", "amount": amount})
    with db.write() as s:
        service.save_report(s, app="crm", raw=SEGMENT, actor_id=None)

    page = web.signed_in("boss")
    page.goto("/apps/crm/reports")
    page.click("#segments-link")
    section = page.inner_text("#seg-tiers")
    assert "当 total >= 1000000 时，客户等级 = A 优质" in section
    assert "当 loans >= 2 时，客户等级 = B 良好" in section
    assert _rows(page) == {"a": ("0", "—"), "b": ("0", "—")}

    page.click("#seg-tiers button.run")
    assert "2 条记录的标签有变化" in status(page)
    assert _rows(page) == {"a": ("1", "—"), "b": ("1", "—")}

    changed = copy.deepcopy(SEGMENT)
    changed["segment"]["rules"][0]["when"] = "total >= 500000"
    with db.write() as s:
        service.save_report(s, app="crm", raw=changed, key="tiers", actor_id=None)
    page.click("#seg-tiers button.run")
    assert "1 条记录的标签有变化" in status(page)
    assert _rows(page) == {"a": ("2", "+1"), "b": ("0", "-1")}  # 中客户: B → A

    page.click("#seg-tiers tr[data-tag=a] a.list")
    page.wait_for_selector("#rows")
    assert sorted(page.locator("#rows a.open").all_inner_texts()) == ["中客户", "大客户"]


def test_the_segments_page_is_for_those_who_manage_the_app(web, db):
    _crm(db)
    page = web.signed_in("xiao.wang")  # a salesperson
    assert page.goto("/apps/crm/segments").status == 403
    page.goto("/apps/crm/reports")
    assert page.locator("#segments-link").count() == 0
    add_user(db, "boss", roles=("admin",))
    boss = web.signed_in("boss")
    boss.goto("/apps/crm/segments")  # the template ships its value tiers
    assert "价值分层 = 高价值" in boss.inner_text("#seg-customer_tiers")


def test_the_crm_high_value_rule_changed_in_the_builder_moves_customers(web, db,
                                                                        server_keyring):
    """The template's 客户价值分层: lower the 高价值 threshold in the builder's segment
    panel, save, run now on the segments page, and the 高价值 list gains the customer."""
    _crm(db)
    add_user(db, "boss", roles=("admin",))
    ids = {}
    for name, mobile in (("大客户", "13800000001"), ("中客户", "13800000002")):
        ids[name] = _create(db, server_keyring, "boss", "customer",
                            {"name": name, "mobile": mobile})["id"]
    for name, paid in (("大客户", "1200000.00"), ("中客户", "600000.00")):
        _create(db, server_keyring, "boss", "loan_case", {
            "customer": ids[name], "loan_type": "credit", "amount": paid,
            "stage": "disbursed", "approved_amount": paid})
    page = web.signed_in("boss")
    page.goto("/apps/crm/segments")
    page.click("#seg-customer_tiers button.run")
    page.wait_for_selector("#seg-customer_tiers tr[data-tag=high_value] .count >> text=1")

    page.goto("/apps/crm/reports/customer_tiers/edit")
    if not page.evaluate("document.getElementById('b-segment-panel').open"):
        page.click("#b-segment-panel summary")
    assert page.input_value("#b-r-0-value") == "high_value"
    page.fill("#b-r-0-when", "paid >= 500000")
    page.wait_for_selector("#b-preview-status:has-text('预览已更新')")
    page.click("#b-save")
    page.wait_for_url(re.compile(r".*/apps/crm/reports/customer_tiers(\?.*)?$"))
    with db.read() as s:
        rules = service.get_report(s, "crm", "customer_tiers").spec["segment"]["rules"]
    assert rules[0] == {"value": "high_value", "when": "paid >= 500000"}

    page.goto("/apps/crm/segments")
    assert "当 paid >= 500000 时，价值分层 = 高价值" in page.inner_text("#seg-customer_tiers")
    page.click("#seg-customer_tiers button.run")
    page.wait_for_selector("#seg-customer_tiers tr[data-tag=high_value] .count >> text=2")
    page.click("#seg-customer_tiers tr[data-tag=high_value] a.list")
    page.wait_for_selector("#rows")
    assert sorted(page.locator("#rows a.open").all_inner_texts()) == ["中客户", "大客户"]
