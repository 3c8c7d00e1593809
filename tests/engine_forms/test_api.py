"""Round trip of every forms/records endpoint, and the errors a user can cause."""

from __future__ import annotations

import json

import pytest

from platform_core.app import create_app
from platform_core.settings import load_settings
from tests.engine_forms.forms_setup import CUSTOMER, make_crm, ok
from tests.security_setup import client_as

CUSTOMERS = "/api/v1/apps/crm/forms/customer/records"
LOANS = "/api/v1/apps/crm/forms/loan_case/records"


@pytest.fixture
def client(db, tmp_path):
    app = create_app(load_settings(data_dir=tmp_path), db=db)
    with client_as(app, db, "admin") as c:
        yield c


@pytest.fixture
def crm(client):
    make_crm(client)
    return client


def problem(response, status: int, code: str) -> dict:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    body = response.json()
    assert body["code"] == code, body
    return body


def test_apps_and_forms_round_trip(crm):
    apps = ok(crm.get("/api/v1/apps"))["items"]
    assert [a["key"] for a in apps] == ["crm"]
    app = ok(crm.get("/api/v1/apps/crm"))
    assert {f["key"]: f["published_version"] for f in app["forms"]} == {
        "customer": 2, "loan_case": 1}
    forms = ok(crm.get("/api/v1/apps/crm/forms"))["items"]
    assert [f["key"] for f in forms] == ["customer", "loan_case"]
    form = ok(crm.get("/api/v1/apps/crm/forms/customer"))
    assert form["published"]["fields"][0]["key"] == "name"
    draft = json.loads(json.dumps(CUSTOMER))
    draft["name"] = "客户档案"
    assert ok(crm.put("/api/v1/apps/crm/forms/customer", json=draft))["name"] == "客户档案"
    versions = ok(crm.get("/api/v1/apps/crm/forms/customer/versions"))["items"]
    assert [v["version"] for v in versions] == [1, 2]
    assert versions[0]["changes"]["added"][:3] == ["name", "mobile", "city"]


def test_app_and_form_errors(crm):
    problem(crm.post("/api/v1/apps", json={"key": "Bad Key", "name": "x"}), 422,
            "invalid_input")
    problem(crm.post("/api/v1/apps", json={"key": "crm", "name": "again"}), 409, "conflict")
    problem(crm.get("/api/v1/apps/nope"), 404, "not_found")
    problem(crm.get("/api/v1/apps/crm/forms/nope"), 404, "not_found")
    bad = problem(crm.post("/api/v1/apps/crm/forms", json={
        "key": "x", "name": "X", "fields": [{"key": "a", "label": "A", "type": "colour"}]}),
        422, "invalid_form")
    assert any("colour" in p for p in bad["problems"])
    problem(crm.post("/api/v1/apps/crm/forms", json=CUSTOMER), 409, "conflict")
    renamed = {**CUSTOMER, "key": "client"}
    problem(crm.put("/api/v1/apps/crm/forms/customer", json=renamed), 422, "invalid_input")
    orphan = {"key": "visit", "name": "回访", "fields": [
        {"key": "who", "label": "客户", "type": "relation", "target": "nobody"}]}
    ok(crm.post("/api/v1/apps/crm/forms", json=orphan), 201)
    body = problem(crm.post("/api/v1/apps/crm/forms/visit/publish"), 422, "invalid_form")
    assert "relation target form 'nobody' is not published" in body["problems"][0]
    problem(crm.get("/api/v1/apps/crm/forms/visit/records"), 404, "not_found")


def test_a_money_average_rollup_that_rounds_to_zero_is_zero_not_minus_zero(crm):
    """-0.01, 0.00 and 0.00 average -0.0033…: a rollup shows 0.00, not "-0.00"."""
    forms = "/api/v1/apps/crm/forms"
    ok(crm.post(forms, json={"key": "account", "name": "账户", "fields": [
        {"key": "name", "label": "名称", "type": "text"},
        {"key": "mean", "label": "平均", "type": "rollup", "source": "entry", "via": "account",
         "aggregate": "avg", "field": "amount"}]}), 201)
    ok(crm.post(f"{forms}/account/publish"))
    ok(crm.post(forms, json={"key": "entry", "name": "流水", "fields": [
        {"key": "account", "label": "账户", "type": "relation", "target": "account"},
        {"key": "amount", "label": "金额", "type": "money"}]}), 201)
    ok(crm.post(f"{forms}/entry/publish"))
    ok(crm.post(f"{forms}/account/publish"))  # the rollup's source is published now
    account = ok(crm.post(f"{forms}/account/records", json={"name": "备用金"}), 201)
    for amount in ("-0.01", "0.00", "0.00"):
        ok(crm.post(f"{forms}/entry/records", json={"account": account["id"],
                                                     "amount": amount}), 201)
    assert ok(crm.get(f"{forms}/account/records/{account['id']}"))["data"]["mean"] == "0.00"


def test_record_round_trip_with_computed_fields(crm):
    customer = ok(crm.post(CUSTOMERS, json={"name": "张三", "mobile": "13800001234",
                                            "city": "北京"}), 201)
    assert customer["data"] == {"name": "张三", "mobile": "13800001234", "city": "北京",
                                "loans": 0}
    created = crm.post(LOANS, json={"customer": customer["id"], "amount": "1500000.50",
                                    "channel": "官网", "has_collateral": True,
                                    "collateral_value": 2000000})
    loan = ok(created, 201)
    assert created.headers["ETag"] == '"1"'
    assert created.headers["Location"].endswith(f"/records/{loan['id']}")
    assert loan["data"]["case_no"].startswith("LN-") and loan["data"]["case_no"].endswith("-0001")
    assert loan["data"]["size"] == "大额" and loan["data"]["channel"] == "web"
    assert loan["data"]["customer_city"] == "北京"
    assert loan["data"]["collateral_value"] == "2000000.00"
    ok(crm.post(LOANS, json={"customer": customer["id"], "amount": "10.25"}), 201)
    got = ok(crm.get(f"{CUSTOMERS}/{customer['id']}"))
    assert got["data"]["loans"] == 2 and got["data"]["total"] == "1500010.75"
    assert got["created_at"].endswith("+00:00")

    changed = crm.patch(f"{LOANS}/{loan['id']}", json={"has_collateral": False},
                        headers={"If-Match": '"1"'})
    assert ok(changed)["row_version"] == 2 and changed.headers["ETag"] == '"2"'
    assert "collateral_value" not in changed.json()["data"]  # hidden → cleared
    history = ok(crm.get(f"{LOANS}/{loan['id']}/history"))["items"]
    assert [h["action"] for h in history] == ["create", "update"]
    assert history[1]["diff"]["collateral_value"] == ["2000000.00", None]


def test_list_filter_sort_projection_and_next_link(crm):
    for i, city in enumerate(["北京", "上海", "北京", "深圳", "北京"]):
        ok(crm.post(CUSTOMERS, json={"name": f"客户{i}", "city": city}), 201)
    page = ok(crm.get(CUSTOMERS, params={
        "filter": json.dumps({"field": "city", "op": "eq", "value": "北京"}),
        "sort": "-name", "limit": 2, "fields": "name"}))
    assert [r["data"] for r in page["items"]] == [{"name": "客户4"}, {"name": "客户2"}]
    rest = ok(crm.get(page["next"].replace("http://testserver", "")))
    assert [r["data"]["name"] for r in rest["items"]] == ["客户0"] and rest["next"] is None
    problem(crm.get(CUSTOMERS, params={"filter": "{bad json"}), 422, "invalid_query")
    problem(crm.get(CUSTOMERS, params={"filter": json.dumps(
        {"field": "nope", "op": "eq", "value": 1})}), 422, "invalid_query")
    problem(crm.get(CUSTOMERS, params={"fields": "name,nope"}), 422, "invalid_query")
    problem(crm.get(CUSTOMERS, params={"limit": 0}), 422, "invalid_input")


def test_record_errors(crm):
    body = problem(crm.post(LOANS, json={"customer": 999, "amount": "1.234", "bogus": 1,
                                         "case_no": "X"}), 422, "invalid_record")
    codes = {(e["field"], e["code"]) for e in body["errors"]}
    assert codes == {("bogus", "unknown_field"), ("amount", "decimals"),
                     ("case_no", "computed"), ("customer", "not_found")}
    body = problem(crm.post(CUSTOMERS, json={"city": "北京"}), 422, "invalid_record")
    assert body["errors"] == [{"field": "name", "code": "required", "message": "姓名: 必填",
                               "message_en": "name: is required"}]
    problem(crm.post(CUSTOMERS, json=["not", "an", "object"]), 422, "invalid_input")
    c = ok(crm.post(CUSTOMERS, json={"name": "李四", "mobile": "13900001111"}), 201)
    dup = problem(crm.post(CUSTOMERS, json={"name": "王五", "mobile": "139 0000 1111"}), 422,
                  "invalid_record")
    assert dup["errors"][0]["code"] == "duplicate"
    url = f"{CUSTOMERS}/{c['id']}"
    problem(crm.patch(url, json={"city": "上海"}), 428, "precondition_required")
    problem(crm.patch(url, json={"city": "上海"}, headers={"If-Match": "abc"}), 422,
            "invalid_query")
    ok(crm.patch(url, json={"city": "上海"}, headers={"If-Match": '"1"'}))
    stale = problem(crm.patch(url, json={"city": "广州"}, headers={"If-Match": '"1"'}), 409,
                    "conflict")
    assert stale["current_version"] == 2
    assert ok(crm.get(url))["data"]["city"] == "上海"
    problem(crm.get(f"{LOANS}/{c['id']}"), 404, "not_found")  # a customer is not a loan
    problem(crm.get(f"{CUSTOMERS}/424242"), 404, "not_found")


def test_delete_restore_and_relation_policy(crm):
    c = ok(crm.post(CUSTOMERS, json={"name": "张三"}), 201)
    loan = ok(crm.post(LOANS, json={"customer": c["id"]}), 201)
    blocked = problem(crm.delete(f"{CUSTOMERS}/{c['id']}"), 409, "conflict")
    assert blocked["linked_from"] == loan["id"]
    assert crm.delete(f"{LOANS}/{loan['id']}", headers={"If-Match": '"1"'}).status_code == 204
    problem(crm.get(f"{LOANS}/{loan['id']}"), 404, "not_found")
    binned = ok(crm.get(LOANS, params={"deleted": "only"}))["items"]
    assert [r["id"] for r in binned] == [loan["id"]]
    assert crm.delete(f"{CUSTOMERS}/{c['id']}").status_code == 204
    restored = ok(crm.post(f"{CUSTOMERS}/{c['id']}/restore"))
    assert restored["deleted_at"] is None and restored["row_version"] == 3
    problem(crm.post(f"{CUSTOMERS}/{c['id']}/restore"), 409, "conflict")


def test_attachments_upload_bind_download_and_limits(crm):
    url = "/api/v1/apps/crm/forms/customer/attachments"
    up = ok(crm.post(url, data={"field": "docs"},
                     files={"file": ("合同.pdf", b"%PDF-1.4 test", "application/pdf")}), 201)
    assert up["size"] == 13 and up["record_id"] is None
    c = ok(crm.post(CUSTOMERS, json={"name": "张三", "docs": [up["id"]]}), 201)
    assert c["data"]["docs"] == [up["id"]]
    got = crm.get(f"{url}/{up['id']}")
    assert got.status_code == 200 and got.content == b"%PDF-1.4 test"
    assert "attachment" in got.headers["content-disposition"]
    other = ok(crm.post(CUSTOMERS, json={"name": "李四"}), 201)
    taken = problem(crm.patch(f"{CUSTOMERS}/{other['id']}", json={"docs": [up["id"]]},
                              headers={"If-Match": '"1"'}), 422, "invalid_record")
    assert taken["errors"][0]["field"] == "docs"
    big = b"x" * 20_000  # the field allows 0.01 MB
    problem(crm.post(url, data={"field": "docs"}, files={"file": ("big.pdf", big,
                                                                  "application/pdf")}),
            413, "too_large")
    problem(crm.post(url, data={"field": "docs"}, files={"file": ("a.exe", b"MZ",
                                                                  "application/x-msdownload")}),
            422, "invalid_input")
    problem(crm.post(url, data={"field": "name"}, files={"file": ("a.pdf", b"x",
                                                                  "application/pdf")}),
            422, "invalid_input")
    problem(crm.get(f"/api/v1/apps/crm/forms/loan_case/attachments/{up['id']}"), 404,
            "not_found")


def test_values_no_database_can_hold_are_clear_errors_not_crashes(crm):
    """Found by schemathesis: ids beyond 64 bits and NUL characters used to be 500s."""
    huge = 2**63
    problem(crm.get(f"{CUSTOMERS}/{huge}"), 422, "invalid_input")
    problem(crm.post(LOANS, json={"customer": huge, "amount": "1.00"}), 422, "invalid_record")
    problem(crm.get(CUSTOMERS, params={"filter": json.dumps(
        {"field": "id", "op": "eq", "value": huge})}), 422, "invalid_query")
    bad = problem(crm.post(CUSTOMERS, json={"name": "a\u0000b"}), 422, "invalid_record")
    assert "NUL" in bad["errors"][0]["message_en"]
    problem(crm.get(CUSTOMERS, params={"filter": json.dumps(
        {"field": "name", "op": "eq", "value": "a\u0000"})}), 422, "invalid_query")
