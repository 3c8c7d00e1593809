"""A report's saved versions in the browser (who saved which, a diff against the
current one in words, restore as a new version), and "explain this number": the drill
page states the filters behind the clicked row in words."""

from __future__ import annotations

import copy

from engine_reports import service
from platform_core.security.models import AuditEntry
from tests.frontend.conftest import alert, status
from tests.frontend.test_reports_pages import BY_CITY, OVERVIEW, _world


def _edit(db, spec: dict, **changes) -> None:
    with db.write() as s:
        service.save_report(s, app="sales", raw={**copy.deepcopy(spec), **changes},
                            key=spec["key"], actor_id=None)


def test_versions_show_the_diff_in_words_and_restore_saves_a_new_version(web, db):
    _world(db)
    _edit(db, BY_CITY, chart={"type": "pie"},
          measures=[{"agg": "count", "label": "成交笔数"}])
    page = web.signed_in("boss")
    page.goto("/apps/sales/reports/by_city")
    page.click("#report-versions")
    rows = page.locator("#versions tbody tr")
    assert rows.count() == 2
    assert "当前" in rows.nth(0).inner_text() and "第 2 版" in rows.nth(0).inner_text()
    # by default: the previous version against the current one
    assert "改动了：指标、图表" in page.inner_text("#diff-summary")
    diff = page.inner_text("#diff")
    assert "measures[0].label" in diff and "chart.type" in diff
    assert '"bar"' in diff and '"pie"' in diff

    page.click("#versions tr[data-version='1'] button.restore")
    assert "已把第 1 版另存为当前版本（第 3 版）" in status(page)
    assert page.locator("#versions tbody tr").count() == 3
    with db.read() as s:
        row = service.get_report(s, "sales", "by_city")
        assert row.version == 3
        assert row.spec["chart"]["type"] == "bar"
        assert row.spec["measures"][0]["label"] == "笔数"
        entry = s.query(AuditEntry).filter(AuditEntry.action == "report.restore").one()
        assert entry.detail == {"from_version": 1, "version": 3}
    page.click("#versions tr[data-version='1'] a.compare")
    assert "与当前版本相同" in page.inner_text("#diff")
    page.goto("/apps/sales/reports/by_city")
    assert page.locator("#report-table thead").inner_text().split()[:2] == ["城市", "笔数"]


def test_dashboard_versions_and_who_may_see_them(web, db):
    _world(db)
    with db.write() as s:
        service.save_dashboard(s, app="sales", raw={**OVERVIEW, "name": "销售总览"},
                               key="overview", actor_id=None)
    page = web.signed_in("boss")
    page.goto("/apps/sales/dashboards/overview/versions")
    assert "改动了：名称" in page.inner_text("#diff-summary")
    page.click("#versions tr[data-version='1'] button.restore")
    with db.read() as s:
        assert service.get_dashboard(s, "sales", "overview").spec["name"] == "销售看板"
    ana = web.signed_in("ana")  # reads the reports, does not manage the app
    assert ana.goto("/apps/sales/reports/by_city/versions").status == 403
    ana.goto("/apps/sales/reports/by_city")
    assert ana.locator("#report-versions").count() == 0


def test_the_drill_page_states_the_filters_in_words(web, db):
    _world(db)
    _edit(db, BY_CITY, filters={"field": "amount", "op": "gte", "value": "60"})
    page = web.signed_in("ana")
    page.goto("/apps/sales/reports/by_city?p.period.from=2026-01-01&p.period.to=2026-02-28")
    page.locator("#report-table a.drill").first.click()  # 北京: 100 and 200
    page.wait_for_selector("#drill")
    why = page.inner_text("#drill-why")
    assert ("成交 中 城市 = 北京 且 金额 ≥ 60（报表筛选） 且 签约日期 在 2026-01-01 至 "
            "2026-02-28（参数：签约日期） 且 记录在你的可见范围内") in why, why
    assert sorted(page.locator("#drill td[data-field=title]").all_inner_texts()) == [
        "北京一", "北京二"]
    assert not alert(page)
