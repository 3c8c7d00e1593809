"""The CRM template's value tiers (客户价值分层): a segmentation report that tags each
customer 高价值 (≥ 100万 paid out), 有潜力 (a case in progress) or 沉睡 (no case, or
none applied for in the last 180 days) — run through the API as "run now" does."""

from __future__ import annotations

from datetime import date, timedelta

from tests.templates_catalog.conftest import crm, install_crm, qiao  # noqa: F401

APP = "/api/v1/apps/crm"


def _ok(response, status=200):
    assert response.status_code == status, response.text
    return response.json()


def test_customers_are_tiered_by_the_templates_rules(qiao, db, crm):  # noqa: F811
    _app, admin = qiao
    install_crm(db, crm)
    ids = {}
    for name, mobile in (("大客户", "13800000001"), ("在办", "13800000002"),
                         ("久未联系", "13800000003"), ("新客户", "13800000004")):
        ids[name] = _ok(admin.post(f"{APP}/forms/customer/records",
                                   json={"name": name, "mobile": mobile}), 201)["id"]
    long_ago = (date.today() - timedelta(days=400)).isoformat()
    for name, data in (
            ("大客户", {"amount": "1500000.00", "stage": "disbursed",
                     "approved_amount": "1200000.00"}),
            ("在办", {"amount": "300000.00", "stage": "review"}),
            ("久未联系", {"amount": "80000.00", "stage": "lost", "apply_date": long_ago})):
        _ok(admin.post(f"{APP}/forms/loan_case/records", json={
            "customer": ids[name], "loan_type": "credit", **data}), 201)
    ran = _ok(admin.post(f"{APP}/reports/customer_tiers/segments/run"))
    assert ran["changed"] == 4, ran
    tiers = {c["data"]["name"]: c["data"].get("tier") for c in _ok(admin.get(
        f"{APP}/forms/customer/records", params={"limit": 100}))["items"]}
    assert tiers == {"大客户": "high_value", "在办": "potential", "久未联系": "dormant",
                     "新客户": "dormant"}
    listed = _ok(admin.get(f"{APP}/forms/customer/records", params={
        "filter": '{"field": "tier", "op": "eq", "value": "dormant"}'}))
    assert sorted(c["data"]["name"] for c in listed["items"]) == ["久未联系", "新客户"]
