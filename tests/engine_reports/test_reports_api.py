"""The report API as managers and staff meet it: saving reports (refusals name the
part), data with the viewer's row scope and field rights, drill-down, exports,
dashboards with shared parameters and role visibility, KPI comparison."""

from __future__ import annotations

import csv
import io
import json
from datetime import datetime
from zoneinfo import ZoneInfo

import pytest

from tests.engine_flows.flows_setup import API, APP, ok

CHINA = ZoneInfo("Asia/Shanghai")

LEADERBOARD = {
    "key": "leaderboard", "name": "销售业绩龙虎榜", "source": {"form": "case"},
    "filters": {"and": [{"field": "approval_result", "op": "eq", "value": "approved"}]},
    "dimensions": [{"field": "owner_id"}],
    "measures": [{"agg": "sum", "field": "amount", "label": "放款金额"},
                 {"agg": "count", "label": "笔数"}],
    "sort": [{"measure": 0, "desc": True}], "limit": 10, "chart": {"type": "bar"}}


def by_region(**extra):
    return {"key": "by_region", "name": "区域", "source": {"form": "case"},
            "dimensions": [{"field": "region"}],
            "measures": [{"agg": "sum", "field": "amount", "key": "total"},
                         {"agg": "count", "key": "n"}],
            "parameters": [{"key": "period", "type": "date_range", "field": "maturity_date"}],
            "chart": {"type": "pie"}, **extra}


@pytest.fixture
def sales(world):
    """Two sales people (own rows only) and their approved cases, plus the admin's."""
    world.role("seller", ("create", "read"), scope="own")
    world.user("li", "seller")
    world.user("wang", "seller")
    for who, amount in (("li", "100.10"), ("li", "0.20"), ("wang", "5000.00")):
        world.case(who, amount=amount, approval_result="approved", region="华东",
                   maturity_date="2026-03-01")
    world.case(amount="7.00", approval_result="rejected", region="华北",
               maturity_date="2026-04-01")
    return world


def data(client, key="leaderboard", **params):
    query = {"params": json.dumps(params)} if params else {}
    return ok(client.get(f"{APP}/reports/{key}/data", params=query))


def test_leaderboard_sums_exactly_sorts_and_names_people(sales):
    ok(sales.admin.post(f"{APP}/reports", json=LEADERBOARD), 201)
    body = data(sales.admin)
    assert [c["label"] for c in body["columns"]] == ["负责人", "放款金额", "笔数"]
    assert body["rows"] == [["wang", "5000.00", 1], ["li", "100.30", 2]]
    assert body["keys"] == [[sales.users["wang"]], [sales.users["li"]]]
    bars = body["figure"]["data"]
    assert bars and bars[0]["type"] == "bar"
    assert body["engine"] == "projection"


def test_a_sales_user_sees_only_their_own_numbers(sales):
    ok(sales.admin.post(f"{APP}/reports", json=LEADERBOARD), 201)
    assert data(sales.as_("li"))["rows"] == [["li", "100.30", 2]]
    assert data(sales.as_("wang"))["rows"] == [["wang", "5000.00", 1]]


def test_a_hidden_field_cannot_be_a_dimension_or_measure_for_that_role(world):
    world.role("nosecret", ("read",), fields={"secret_note": "hidden", "amount": "hidden"})
    world.user("zhao", "nosecret")
    world.case(secret_note="x", amount="1.00")
    ok(world.admin.post(f"{APP}/reports", json={
        "key": "secrets", "name": "s", "source": {"form": "case"},
        "dimensions": [{"field": "secret_note"}], "measures": [{"agg": "count"}]}), 201)
    ok(world.admin.post(f"{APP}/reports", json={
        "key": "amounts", "name": "a", "source": {"form": "case"},
        "measures": [{"agg": "sum", "field": "amount"}]}), 201)
    for key, field in (("secrets", "secret_note"), ("amounts", "amount")):
        r = world.as_("zhao").get(f"{APP}/reports/{key}/data")
        assert r.status_code == 403, r.text
        assert r.json()["code"] == "report_field_hidden"
        assert r.json()["field"] == field
    assert data(world.admin, "secrets")["rows"] == [["x", 1]]


def test_a_masked_field_can_be_counted_but_not_grouped(world):
    world.role("plain", ("read",))
    world.user("sun", "plain")
    world.case(mobile="13800001234")
    world.case(mobile="13800001234")
    ok(world.admin.post(f"{APP}/reports", json={
        "key": "phones", "name": "p", "source": {"form": "case"},
        "dimensions": [{"field": "mobile"}], "measures": [{"agg": "count"}]}), 201)
    ok(world.admin.post(f"{APP}/reports", json={
        "key": "phone_count", "name": "p", "source": {"form": "case"},
        "measures": [{"agg": "count_distinct", "field": "mobile"},
                     {"agg": "count", "field": "mobile"}]}), 201)
    r = world.as_("sun").get(f"{APP}/reports/phones/data")
    assert r.status_code == 403 and r.json()["code"] == "report_field_hidden"
    # count_distinct would let a user test values: only plain counts
    r = world.as_("sun").get(f"{APP}/reports/phone_count/data")
    assert r.status_code == 403
    assert data(world.admin, "phones")["rows"] == [["13800001234", 2]]


def test_a_report_shared_with_roles_is_hidden_from_others(sales):
    ok(sales.admin.post(f"{APP}/reports", json={**LEADERBOARD, "roles": ["director"]}), 201)
    r = sales.as_("li").get(f"{APP}/reports/leaderboard/data")
    assert r.status_code == 403 and r.json()["code"] == "report_forbidden"
    assert ok(sales.as_("li").get(f"{APP}/reports"))["items"] == []
    sales.role("director", ("read",))
    sales.user("boss", "director")
    assert data(sales.as_("boss"))["rows"][0][0] == "wang"


@pytest.mark.parametrize(("change", "needle"), [
    ({"dimensions": [{"field": "nope"}]}, "unknown field 'nope'"),
    ({"dimensions": [{"field": "region", "bucket": "month"}]}, "needs a date field"),
    ({"measures": [{"agg": "sum", "field": "region"}]}, "needs a number or money field"),
    ({"measures": [{"agg": "sum"}]}, "sum needs a field"),
    ({"measures": [{"key": "a", "agg": "count"}, {"expr": "a / b"}]}, "measures[1].expr"),
    ({"source": {"form": "missing"}}, "source"),
    ({"sort": [{"measure": 5}]}, "measure 5"),
    ({"chart": {"type": "radar"}}, "chart.type"),
    ({"filters": {"field": "amount", "op": "gt", "value": "abc"}}, "filter"),
    ({"dimensions": [{"field": "amount", "bins": [10, 5]}]}, "ascending"),
])
def test_a_report_that_cannot_run_is_refused_naming_the_part(world, change, needle):
    r = world.admin.post(f"{APP}/reports", json={**LEADERBOARD, **change})
    assert r.status_code == 422, r.text
    body = r.json()
    assert body["code"] == "invalid_report"
    assert needle in " ".join(body["problems"]), body["problems"]
    assert ok(world.admin.get(f"{APP}/reports"))["items"] == []


def test_saving_again_makes_a_new_version_and_staff_cannot_save(sales):
    ok(sales.admin.post(f"{APP}/reports", json=LEADERBOARD), 201)
    assert sales.admin.post(f"{APP}/reports", json=LEADERBOARD).status_code == 409
    saved = ok(sales.admin.put(f"{APP}/reports/leaderboard",
                               json={**LEADERBOARD, "limit": 1}))
    assert saved["version"] == 2
    assert [v["version"] for v in ok(sales.admin.get(
        f"{APP}/reports/leaderboard/versions"))["items"]] == [1, 2]
    assert data(sales.admin)["rows"] == [["wang", "5000.00", 1]]
    assert sales.as_("li").put(f"{APP}/reports/leaderboard",
                               json=LEADERBOARD).status_code == 403
    assert sales.admin.delete(f"{APP}/reports/leaderboard").status_code == 204
    assert sales.admin.get(f"{APP}/reports/leaderboard/data").status_code == 404


def test_parameters_filter_the_period_and_bad_ones_are_refused(sales):
    ok(sales.admin.post(f"{APP}/reports", json=by_region()), 201)
    assert data(sales.admin, "by_region")["rows"] == [["华东", "5100.30", 3], ["华北", "7.00", 1]]
    march = data(sales.admin, "by_region", period=["2026-03-01", "2026-03-31"])
    assert march["rows"] == [["华东", "5100.30", 3]]
    for bad in ({"period": ["2026-03-31", "2026-03-01"]}, {"period": "march"},
                {"nope": 1}):
        r = sales.admin.get(f"{APP}/reports/by_region/data",
                            params={"params": json.dumps(bad)})
        assert r.status_code == 422, r.text
    r = sales.admin.get(f"{APP}/reports/by_region/data", params={"params": "{"})
    assert r.status_code == 422


def test_kpi_compares_with_the_previous_period(sales):
    ok(sales.admin.post(f"{APP}/reports", json=by_region(
        key="kpi", dimensions=[], measures=[{"agg": "count"}], chart={"type": "kpi"})), 201)
    body = data(sales.admin, "kpi", period=["2026-03-31", "2026-04-29"])  # before: 03-01…03-30
    assert body["rows"] == [[1]]
    indicator = body["figure"]["data"][0]
    assert indicator["type"] == "indicator"
    assert indicator["value"] == 1 and indicator["delta"]["reference"] == 3


def test_drill_down_lists_the_records_behind_a_bar_in_the_viewers_scope(sales):
    ok(sales.admin.post(f"{APP}/reports", json=by_region()), 201)
    body = data(sales.admin, "by_region")
    east = body["keys"][0]
    drill = ok(sales.admin.get(f"{APP}/reports/by_region/drill",
                               params={"keys": json.dumps(east)}))
    assert sorted(i["data"]["amount"] for i in drill["items"]) == ["0.20", "100.10", "5000.00"]
    mine = ok(sales.as_("li").get(f"{APP}/reports/by_region/drill",
                                  params={"keys": json.dumps(east)}))
    assert sorted(i["data"]["amount"] for i in mine["items"]) == ["0.20", "100.10"]
    blank = ok(sales.admin.get(f"{APP}/reports/by_region/drill",
                               params={"keys": json.dumps(["不存在"])}))
    assert blank["items"] == []
    r = sales.admin.get(f"{APP}/reports/by_region/drill", params={"keys": "[1, 2]"})
    assert r.status_code == 422


def test_drill_down_of_a_month_bucket_and_a_bin(world):
    for day, amount in (("2026-01-31", "10.00"), ("2026-02-01", "20.00"),
                        ("2026-02-28", "300.00")):
        world.case(maturity_date=day, amount=amount)
    ok(world.admin.post(f"{APP}/reports", json={
        "key": "monthly", "name": "m", "source": {"form": "case"},
        "dimensions": [{"field": "maturity_date", "bucket": "month"},
                       {"field": "amount", "bins": [100]}],
        "measures": [{"agg": "count"}]}), 201)
    body = data(world.admin, "monthly")
    assert body["keys"] == [["2026-01", 0], ["2026-02", 0], ["2026-02", 1]]
    assert [r[:2] for r in body["rows"]] == [["2026-01", "< 100"], ["2026-02", "< 100"],
                                             ["2026-02", "≥ 100"]]
    drill = ok(world.admin.get(f"{APP}/reports/monthly/drill",
                               params={"keys": json.dumps(["2026-02", 0])}))
    assert [i["data"]["amount"] for i in drill["items"]] == ["20.00"]


def test_export_needs_the_export_right_and_is_exact_and_audited(sales):
    ok(sales.admin.post(f"{APP}/reports", json=LEADERBOARD), 201)
    r = sales.admin.get(f"{APP}/reports/leaderboard/export", params={"format": "csv"})
    assert r.status_code == 200, r.text
    rows = list(csv.reader(io.StringIO(r.content.decode("utf-8-sig"))))
    assert rows == [["负责人", "放款金额", "笔数"], ["wang", "5000.00", "1"],
                    ["li", "100.30", "2"]]
    xlsx = sales.admin.get(f"{APP}/reports/leaderboard/export")
    assert xlsx.status_code == 200 and xlsx.content[:2] == b"PK"
    r = sales.as_("li").get(f"{APP}/reports/leaderboard/export")  # sellers cannot export
    assert r.status_code == 403
    audit = ok(sales.admin.get(f"{API}/audit", params={"action": "report.export"}))
    assert len(audit["items"]) == 2


DASHBOARD = {"key": "sales", "name": "销售看板", "roles": ["director"],
             "parameters": [{"key": "period", "type": "date_range", "label": "期间"}],
             "widgets": [{"report": "by_region", "x": 0, "y": 0, "w": 6, "h": 4},
                         {"report": "leaderboard", "x": 6, "y": 0, "w": 6, "h": 4}]}


def test_a_dashboard_passes_shared_parameters_and_is_shown_to_its_roles(sales):
    ok(sales.admin.post(f"{APP}/reports", json=by_region()), 201)
    ok(sales.admin.post(f"{APP}/reports", json={**LEADERBOARD, "roles": ["admin"]}), 201)
    ok(sales.admin.post(f"{APP}/dashboards", json=DASHBOARD), 201)
    sales.role("director", ("read",))
    sales.user("boss", "director")
    body = ok(sales.as_("boss").get(f"{APP}/dashboards/sales/data", params={
        "params": json.dumps({"period": ["2026-04-01", "2026-04-30"]})}))
    first, second = body["widgets"]
    assert first["params"] == {"period": ["2026-04-01", "2026-04-30"]}
    assert first["data"]["rows"] == [["华北", "7.00", 1]]
    assert second["error"]["code"] == "report_forbidden"  # the leaderboard is admins'
    r = sales.as_("li").get(f"{APP}/dashboards/sales/data")
    assert r.status_code == 403
    assert ok(sales.as_("li").get(f"{APP}/dashboards"))["items"] == []
    assert [d["key"] for d in ok(sales.as_("boss").get(f"{APP}/dashboards"))["items"]] == [
        "sales"]


def test_a_dashboard_naming_a_missing_report_or_overflowing_the_grid_is_refused(world):
    r = world.admin.post(f"{APP}/dashboards", json=DASHBOARD)
    assert r.status_code == 422 and r.json()["code"] == "invalid_dashboard"
    assert "by_region" in " ".join(r.json()["problems"])
    ok(world.admin.post(f"{APP}/reports", json=by_region()), 201)
    r = world.admin.post(f"{APP}/dashboards", json={
        **DASHBOARD, "widgets": [{"report": "by_region", "x": 8, "w": 6}]})
    assert r.status_code == 422 and "12 columns" in r.text


def test_a_chart_that_cannot_draw_the_report_is_refused_on_save(world):
    r = world.admin.post(f"{APP}/reports", json={
        **LEADERBOARD, "dimensions": [{"field": "region"}, {"field": "owner_id"}],
        "chart": {"type": "pie"}})
    assert r.status_code == 422 and "chart" in " ".join(r.json()["problems"])
    ok(world.admin.post(f"{APP}/reports", json=LEADERBOARD), 201)
    body = ok(world.admin.get(f"{APP}/reports/leaderboard/data", params={"chart": "pivot"}))
    assert body["figure"] is None and "pivot" in body["figure_error"]


def test_publishing_a_new_field_keeps_reports_on_the_projection(world):
    ok(world.admin.post(f"{APP}/reports", json=by_region()), 201)
    world.case(region="华东", amount="1.00")
    assert data(world.admin, "by_region")["engine"] == "projection"
    form = ok(world.admin.get(f"{APP}/forms/case"))
    draft = form.get("draft") or form["spec"]
    draft["fields"].append({"key": "channel", "label": "渠道", "type": "text"})
    ok(world.admin.put(f"{APP}/forms/case", json=draft))
    ok(world.admin.post(f"{APP}/forms/case/publish"))
    world.case(region="华东", amount="2.00", channel="网销")
    assert data(world.admin, "by_region")["engine"] == "projection"  # rebuilt on publish
    ok(world.admin.put(f"{APP}/reports/by_region", json=by_region(
        dimensions=[{"field": "channel"}])))
    body = data(world.admin, "by_region")
    assert body["engine"] == "projection"
    assert body["rows"] == [["网销", "2.00", 1], [None, "1.00", 1]]


def test_a_value_parameter_typed_as_text_matches_a_number_field(world):
    world.case(owner_user=world.user("qian"), amount="3.00")
    world.case(amount="4.00")
    ok(world.admin.post(f"{APP}/reports", json={
        "key": "by_person", "name": "p", "source": {"form": "case"},
        "parameters": [{"key": "who", "type": "value", "field": "owner_user"}],
        "measures": [{"agg": "sum", "field": "amount"}]}), 201)
    assert data(world.admin, "by_person", who=str(world.users["qian"]))["rows"] == [["3.00"]]
    r = world.admin.get(f"{APP}/reports/by_person/data",
                        params={"params": json.dumps({"who": "abc"})})
    assert r.status_code == 422 and "not a number" in r.json()["detail"]


def test_the_audit_log_is_a_source_for_administrators_only(sales):
    ok(sales.admin.post(f"{APP}/reports", json={
        "key": "audit_actions", "name": "操作统计", "source": {"of": "audit"},
        "filters": {"field": "action", "op": "starts_with", "value": "record."},
        "dimensions": [{"field": "action"}, {"field": "at", "bucket": "year"}],
        "measures": [{"agg": "count"}], "chart": {"type": "table"}}), 201)
    rows = data(sales.admin, "audit_actions")["rows"]
    assert ["record.create", str(datetime.now(CHINA).year), 4] in rows
    r = sales.as_("li").get(f"{APP}/reports/audit_actions/data")
    assert r.status_code == 403 and r.json()["code"] == "report_forbidden"


def test_exporting_needs_the_export_right_on_the_reports_own_form(world):
    """Export on some form of the app passes the route's rule; the report's form decides."""
    perms = {"forms": {"bank.case": {"actions": ["read"], "scope": "all"},
                       "bank.other": {"actions": ["read", "export"], "scope": "all"}}}
    from platform_core.security.directory import save_role
    from tests.security_setup import SYSTEM

    with world.db.write() as s:
        save_role(s, key="half", name="half", description=None, permissions=perms,
                  actor=SYSTEM, principal=None, create=True)
    world.user("he", "half")
    ok(world.admin.post(f"{APP}/reports", json=LEADERBOARD), 201)
    r = world.as_("he").get(f"{APP}/reports/leaderboard/export")
    assert r.status_code == 403 and r.json()["code"] == "export_forbidden"
