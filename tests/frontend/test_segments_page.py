"""The segmentation page: each tag with its rule in words and how many customers hold it
now; "run now" recomputes; changing the rule of grade A (the 高价值 customers) through
the engine's save, as the API does, and running again moves customers between the
segments — the count, the change since the last run and the filtered list follow."""

from __future__ import annotations

import copy

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
    boss.goto("/apps/crm/segments")
    assert "还没有客户分群报表" in boss.inner_text("#no-segments")
