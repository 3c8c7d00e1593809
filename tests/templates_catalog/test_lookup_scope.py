"""A lookup shows the linked record's field only when the reader may read that record:
in the CRM, a salesperson's loan case whose customer went to a colleague shows no
customer mobile — in the API's read and list, the export and the record page — while an
administrator still sees it; the lookup stays masked as the reader's rights on the
customer say."""

from __future__ import annotations

import csv
import io

from platform_core.store import Actor, transfer_record
from tests.security_setup import add_department, client_as
from tests.templates_catalog.conftest import install_crm

APP = "/api/v1/apps/crm"
CASES = f"{APP}/forms/loan_case/records"
SYSTEM = Actor(user_id=None, name="tests")


def _ok(response, status=200):
    assert response.status_code == status, response.text
    return response.json()


def _exported(client) -> list[dict[str, str]]:
    response = client.get(f"{APP}/forms/loan_case/export", params={"format": "csv"})
    assert response.status_code == 200, response.text
    return list(csv.DictReader(io.StringIO(response.content.decode("utf-8-sig"))))


def test_a_lookup_through_a_record_outside_the_readers_scope_shows_nothing(qiao, db, crm):
    app, admin = qiao
    install_crm(db, crm)
    product = _ok(admin.post(f"{APP}/forms/bank_product/records", json={
        "name": "工行房抵贷", "bank": "icbc", "loan_type": "mortgage"}), 201)["id"]
    sales = client_as(app, db, "sales1", roles=("sales",))
    colleague = client_as(app, db, "sales2", roles=("sales",))
    kept = _ok(sales.post(f"{APP}/forms/customer/records",
                          json={"name": "王五", "mobile": "13800000001"}), 201)["id"]
    moved = _ok(sales.post(f"{APP}/forms/customer/records",
                           json={"name": "赵六", "mobile": "13900000002"}), 201)["id"]
    mine = _ok(sales.post(CASES, json={"customer": kept, "loan_type": "mortgage",
                                       "amount": "100000.00", "product": product}), 201)
    theirs = _ok(sales.post(CASES, json={"customer": moved, "loan_type": "credit",
                                         "amount": "50000.00", "product": product}), 201)
    # while the customer is the salesperson's, the lookup shows (masked: no unmask right)
    assert theirs["data"]["customer_mobile"] == mine["data"]["customer_mobile"][:3] \
        .replace("138", "139") + "****0002"

    # the customer goes to a colleague; the loan case stays with the salesperson
    with db.write() as s:
        transfer_record(s, moved, owner_id=colleague.user_id, department_id=None,
                        actor=SYSTEM)

    one = _ok(sales.get(f"{CASES}/{theirs['id']}"))["data"]
    assert "customer_mobile" not in one and one["customer"] == moved
    assert one["bank"] == "icbc"  # the product is theirs to read: its lookup still shows
    listed = {d["id"]: d["data"] for d in _ok(sales.get(CASES))["items"]}
    assert "customer_mobile" not in listed[theirs["id"]]
    assert listed[mine["id"]]["customer_mobile"] == "138****0001"
    assert _ok(sales.get(CASES, params={"fields": "customer_mobile"}))["items"] is not None

    # the administrator sees every value, unmasked
    assert _ok(admin.get(f"{CASES}/{theirs['id']}"))["data"]["customer_mobile"] \
        == "13900000002"
    # and the colleague, who now holds the customer, reads it through their own case
    their_case = _ok(colleague.post(CASES, json={"customer": moved, "loan_type": "credit",
                                                 "amount": "1.00"}), 201)
    assert their_case["data"]["customer_mobile"] == "139****0002"


def test_the_export_and_the_record_page_hold_lookups_to_the_scope(qiao, db, crm):
    app, admin = qiao
    install_crm(db, crm)
    north, south = add_department(db, "北区"), add_department(db, "南区")
    lead = client_as(app, db, "lead1", roles=("team_lead",), department_id=north)
    other = client_as(app, db, "lead2", roles=("team_lead",), department_id=south)
    customer = _ok(lead.post(f"{APP}/forms/customer/records",
                             json={"name": "王五", "mobile": "13800000001"}), 201)["id"]
    case = _ok(lead.post(CASES, json={"customer": customer, "loan_type": "mortgage",
                                      "amount": "100000.00"}), 201)["id"]
    row = next(r for r in _exported(lead) if r["ID"] == str(case))
    assert row["客户手机"] == "13800000001"  # the team lead may unmask

    with db.write() as s:
        transfer_record(s, customer, owner_id=other.user_id, department_id=south,
                        actor=SYSTEM)
    row = next(r for r in _exported(lead) if r["ID"] == str(case))
    assert row["客户手机"] == ""
    assert next(r for r in _exported(admin) if r["ID"] == str(case))["客户手机"] \
        == "13800000001"

    page = lead.get(f"/apps/crm/forms/loan_case/records/{case}")
    assert page.status_code == 200, page.text
    assert "13800000001" not in page.text and "****0001" not in page.text
    shown = admin.get(f"/apps/crm/forms/loan_case/records/{case}")
    assert shown.status_code == 200 and "13800000001" in shown.text
