"""A lookup as a report dimension: the CRM's "放款金额 by 银行, by month", where 银行 is a
lookup through the loan's 匹配产品 to the product's bank — grouped in SQL, labelled with
the bank's option labels, limited to the viewer's scope, and drilled down to the loans."""

from __future__ import annotations

import json

from tests.security_setup import client_as
from tests.templates_catalog.conftest import crm, install_crm, qiao  # noqa: F401

APP = "/api/v1/apps/crm"
BY_BANK = {
    "key": "paid_by_bank", "name": "放款金额 按银行 按月", "source": {"form": "loan_case"},
    "dimensions": [{"field": "bank"}, {"field": "apply_date", "bucket": "month"}],
    "measures": [{"agg": "sum", "field": "amount", "label": "申请金额"},
                 {"agg": "count", "label": "笔数"}],
    "chart": {"type": "stacked_bar"},
}


def _ok(response, status=200):
    assert response.status_code == status, response.text
    return response.json()


def _product(client, name, bank):
    return _ok(client.post(f"{APP}/forms/bank_product/records", json={
        "name": name, "bank": bank, "loan_type": "mortgage"}), 201)["id"]


def _case(client, customer, product, amount, day):
    data = {"customer": customer, "loan_type": "mortgage", "amount": amount,
            "apply_date": day}
    if product:
        data["product"] = product
    return _ok(client.post(f"{APP}/forms/loan_case/records", json=data), 201)["id"]


def test_loans_grouped_by_the_bank_of_their_product(qiao, db, crm):  # noqa: F811
    app, admin = qiao
    install_crm(db, crm)
    icbc = _product(admin, "工行房抵贷", "icbc")
    icbc2 = _product(admin, "工行经营贷", "icbc")
    ccb = _product(admin, "建行快贷", "ccb")
    sales = client_as(app, db, "sales1", roles=("sales",))
    mine = _ok(sales.post(f"{APP}/forms/customer/records",
                          json={"name": "王五", "mobile": "13800000001"}), 201)["id"]
    other = _ok(admin.post(f"{APP}/forms/customer/records",
                           json={"name": "赵六", "mobile": "13800000002"}), 201)["id"]
    ids = {
        "a": _case(sales, mine, icbc, "100000.00", "2026-03-05"),
        "b": _case(sales, mine, icbc2, "50000.50", "2026-03-20"),
        "c": _case(sales, mine, ccb, "70000.00", "2026-04-01"),
        "d": _case(admin, other, ccb, "9000.00", "2026-04-02"),
        "e": _case(admin, other, None, "1.00", "2026-04-03"),
    }
    _ok(admin.post(f"{APP}/reports", json=BY_BANK), 201)

    body = _ok(admin.get(f"{APP}/reports/paid_by_bank/data"))
    rows = {(r[0], r[1]): (r[2], r[3]) for r in body["rows"]}
    assert rows == {("工商银行", "2026-03"): ("150000.50", 2),
                    ("建设银行", "2026-04"): ("79000.00", 2),
                    (None, "2026-04"): ("1.00", 1)}

    # the salesperson's numbers are only their own loans
    theirs = _ok(sales.get(f"{APP}/reports/paid_by_bank/data"))
    assert {(r[0], r[1]): r[3] for r in theirs["rows"]} == {
        ("工商银行", "2026-03"): 2, ("建设银行", "2026-04"): 1}

    # drill-down: the loans behind 建设银行 / April, within the viewer's scope
    keys = next(k for k, r in zip(body["keys"], body["rows"], strict=True)
                if r[0] == "建设银行")
    listed = _ok(admin.get(f"{APP}/reports/paid_by_bank/drill",
                           params={"keys": json.dumps(keys)}))
    assert sorted(i["id"] for i in listed["items"]) == sorted([ids["c"], ids["d"]])
    seen = _ok(sales.get(f"{APP}/reports/paid_by_bank/drill",
                         params={"keys": json.dumps(keys)}))
    assert [i["id"] for i in seen["items"]] == [ids["c"]]

    # a lookup can also filter the report
    only = {**BY_BANK, "filters": {"field": "bank", "op": "eq", "value": "icbc"}}
    _ok(admin.put(f"{APP}/reports/paid_by_bank", json=only))
    body = _ok(admin.get(f"{APP}/reports/paid_by_bank/data"))
    assert [r[0] for r in body["rows"]] == ["工商银行"]
