"""Rows, fields, masking, encryption and mass assignment on the records API — each
checked against what the database holds, not only against the response."""

from __future__ import annotations

import io
import json
import zipfile

import pytest
from python_calamine import CalamineWorkbook
from sqlalchemy import func, select

from platform_core.app import create_app
from platform_core.models import Record
from platform_core.security.models import AuditEntry, Role
from platform_core.settings import load_settings
from tests.engine_forms.forms_setup import make_crm, ok
from tests.security_setup import add_department, client_as

CUSTOMERS = "/api/v1/apps/crm/forms/customer/records"
CLERK = {"forms": {"crm.customer": {
    "actions": ["create", "read", "update", "export"], "scope": "all",
    "fields": {"mobile": "hidden", "city": "read"}}, "crm.loan_case": {"actions": ["read"]}}}


@pytest.fixture
def world(db, tmp_path):
    app = create_app(load_settings(data_dir=tmp_path), db=db)
    hq = add_department(db, "总部")
    a = add_department(db, "一部", hq)
    b = add_department(db, "二部", hq)
    admin = client_as(app, db, "admin", department_id=hq)
    make_crm(admin)
    ok(admin.post("/api/v1/roles", json={"key": "clerk", "name": "录入员",
                                         "permissions": CLERK}), 201)
    users = {name: client_as(app, db, name, roles=(role,), department_id=dept)
             for name, role, dept in [("staff", "staff", a), ("staff_b", "staff", b),
                                      ("manager", "manager", a), ("viewer", "viewer", a),
                                      ("clerk", "clerk", a)]}
    users["admin"] = admin
    return app, users


def make_customer(client, **data):
    body = {"name": "张三", "mobile": "13812341234", "city": "北京"} | data
    return ok(client.post(CUSTOMERS, json=body), 201)


def row(db, record_id):
    with db.read() as s:
        return s.get(Record, record_id)


def test_another_departments_record_is_not_found_for_read_update_delete(db, world):
    _app, u = world
    mine = make_customer(u["staff"])
    theirs = make_customer(u["staff_b"], mobile="13900001111")
    for client in (u["staff"], u["viewer"], u["manager"]):
        assert client.get(f"{CUSTOMERS}/{theirs['id']}").status_code == 404
        assert client.get(f"{CUSTOMERS}/{theirs['id']}/history").status_code == 404
    patched = u["staff"].patch(f"{CUSTOMERS}/{theirs['id']}", json={"city": "偷改"},
                               headers={"If-Match": '"1"'})
    assert patched.status_code == 404
    assert u["manager"].delete(f"{CUSTOMERS}/{theirs['id']}").status_code == 404
    stored = row(db, theirs["id"])
    assert stored.data["city"] == "北京" and stored.deleted_at is None
    # …and the same ids in scope work: a 404 above is the scope, not a broken route
    assert u["manager"].get(f"{CUSTOMERS}/{mine['id']}").status_code == 200
    listed = ok(u["staff_b"].get(CUSTOMERS))["items"]
    assert [r["id"] for r in listed] == [theirs["id"]]
    assert {r["id"] for r in ok(u["admin"].get(CUSTOMERS))["items"]} == {mine["id"],
                                                                        theirs["id"]}


def test_hidden_fields_never_leave_the_server(db, world):
    _app, u = world
    rec = make_customer(u["admin"])
    ok(u["admin"].patch(f"{CUSTOMERS}/{rec['id']}", json={"mobile": "13911112222"},
                        headers={"If-Match": '"1"'}))
    clerk = u["clerk"]
    for doc in (ok(clerk.get(CUSTOMERS))["items"][0], ok(clerk.get(f"{CUSTOMERS}/{rec['id']}"))):
        assert "mobile" not in doc["data"] and doc["data"]["name"] == "张三"
    history = ok(clerk.get(f"{CUSTOMERS}/{rec['id']}/history"))["items"]
    assert all("mobile" not in h["diff"] for h in history) and len(history) == 2
    exported = clerk.get("/api/v1/apps/crm/forms/customer/export", params={"format": "csv"})
    assert exported.status_code == 200
    assert "1381234" not in exported.text and "13911112222" not in exported.text
    assert "手机" not in exported.text and "张三" in exported.text
    form = ok(clerk.get("/api/v1/apps/crm/forms/customer"))
    assert "mobile" not in [f["key"] for f in form["published"]["fields"]]
    assert "draft" not in form


@pytest.mark.parametrize("params", [
    {"sort": "mobile"}, {"sort": "-name,mobile"}, {"fields": "mobile"},
    {"filter": json.dumps({"field": "mobile", "op": "eq", "value": "13812341234"})},
    {"filter": json.dumps({"not": {"field": "mobile", "op": "starts_with", "value": "138"}})},
])
def test_sorting_filtering_projecting_by_a_hidden_field_is_refused(world, params):
    _app, u = world
    make_customer(u["admin"])
    refused = u["clerk"].get(CUSTOMERS, params=params)
    assert refused.status_code == 422 and refused.json()["code"] == "field_not_permitted"
    assert "field 'mobile' is not permitted" in refused.json()["detail"]
    assert u["admin"].get(CUSTOMERS, params=params).status_code == 200


@pytest.mark.parametrize("payload", [
    {"id": 999}, {"owner_id": 1}, {"department_id": 1}, {"row_version": 7},
    {"created_at": "2020-01-01T00:00:00Z"}, {"created_by": 1}, {"deleted_at": None},
])
def test_system_fields_cannot_be_set_by_any_write(db, world, payload):
    _app, u = world
    rec = make_customer(u["staff"])
    with db.read() as s:
        before = s.execute(select(func.count()).select_from(Record)).scalar_one()
    created = u["staff"].post(CUSTOMERS, json={"name": "李四"} | payload)
    assert created.status_code == 422 and created.json()["code"] == "system_field"
    patched = u["staff"].patch(f"{CUSTOMERS}/{rec['id']}", json=payload,
                               headers={"If-Match": '"1"'})
    assert patched.status_code == 422 and patched.json()["code"] == "system_field"
    with db.read() as s:
        assert s.execute(select(func.count()).select_from(Record)).scalar_one() == before
    stored = row(db, rec["id"])
    assert (stored.owner_id, stored.row_version) == (u["staff"].user_id, 1)


def test_read_only_and_hidden_fields_cannot_be_written(db, world):
    _app, u = world
    rec = make_customer(u["admin"])
    read_only = u["clerk"].patch(f"{CUSTOMERS}/{rec['id']}", json={"city": "上海"},
                                 headers={"If-Match": '"1"'})
    assert read_only.status_code == 403 and read_only.json()["code"] == "field_read_only"
    hidden = u["clerk"].post(CUSTOMERS, json={"name": "王五", "mobile": "13700000000"})
    assert hidden.status_code == 422 and hidden.json()["code"] == "field_not_permitted"
    assert hidden.json()["detail"] == "field 'mobile' is not permitted"
    assert row(db, rec["id"]).data["city"] == "北京"
    assert ok(u["clerk"].post(CUSTOMERS, json={"name": "王五"}), 201)["data"]["name"] == "王五"


def test_masked_values_and_the_audited_unmask(db, world):
    _app, u = world
    rec = make_customer(u["staff"])
    seen = ok(u["viewer"].get(f"{CUSTOMERS}/{rec['id']}"))
    assert seen["data"]["mobile"] == "138****1234"
    assert u["viewer"].get(CUSTOMERS, params={"sort": "mobile"}).status_code == 422
    exact = ok(u["viewer"].get(CUSTOMERS, params={"filter": json.dumps(
        {"field": "mobile", "op": "eq", "value": "13812341234"})}))["items"]
    assert [r["id"] for r in exact] == [rec["id"]]
    assert u["viewer"].get(CUSTOMERS, params={"filter": json.dumps(
        {"field": "mobile", "op": "starts_with", "value": "1381"})}).status_code == 422
    url = f"{CUSTOMERS}/{rec['id']}/unmask"
    assert u["viewer"].post(url, json={"field": "mobile"}).status_code == 403
    assert ok(u["manager"].post(url, json={"field": "mobile"}))["value"] == "13812341234"
    assert ok(u["manager"].get(f"{CUSTOMERS}/{rec['id']}"))["data"]["mobile"] == "13812341234"
    with db.read() as s:
        entry = s.execute(select(AuditEntry).where(AuditEntry.action == "record.unmask")
                          ).scalar_one()
    assert entry.actor_name == "manager" and entry.detail == {"field": "mobile"}
    assert entry.target == f"crm.customer/{rec['id']}"


def test_export_is_a_separate_audited_right_and_formula_safe(db, world):
    _app, u = world
    make_customer(u["staff"], name="=HYPERLINK(\"http://evil\")")
    assert u["staff"].get("/api/v1/apps/crm/forms/customer/export").status_code == 403
    got = u["manager"].get("/api/v1/apps/crm/forms/customer/export")
    assert got.status_code == 200 and got.headers["content-disposition"].endswith('.xlsx"')
    sheet = zipfile.ZipFile(io.BytesIO(got.content)).read("xl/worksheets/sheet1.xml").decode()
    cells = CalamineWorkbook.from_filelike(io.BytesIO(got.content)).get_sheet_by_index(0
                                                                                   ).to_python()
    assert "<f>" not in sheet and cells[1][1] == "'=HYPERLINK(\"http://evil\")"
    assert cells[1][2] == "13812341234"  # the manager may unmask: the clear value, as text
    with db.read() as s:
        entry = s.execute(select(AuditEntry).where(AuditEntry.action == "record.export")
                          ).scalar_one()
    assert entry.detail["rows"] == 1 and entry.detail["format"] == "xlsx"


def test_record_changes_are_audited_in_the_same_transaction(db, world):
    _app, u = world
    rec = make_customer(u["staff"])
    ok(u["staff"].patch(f"{CUSTOMERS}/{rec['id']}", json={"city": "上海"},
                        headers={"If-Match": '"1"'}))
    u["staff"].post(CUSTOMERS, json={"mobile": "not a phone"})  # refused: nothing audited
    with db.read() as s:
        actions = [(e.action, e.target, e.detail.get("fields")) for e in s.execute(
            select(AuditEntry).where(AuditEntry.action.startswith("record."))
            .order_by(AuditEntry.id)).scalars()]
    target = f"crm.customer/{rec['id']}"
    assert actions == [("record.create", target, ["city", "mobile", "name"]),
                       ("record.update", target, ["city"])]


def test_a_removed_role_is_refused_on_the_very_next_request(db, world):
    _app, u = world
    assert u["clerk"].get(CUSTOMERS).status_code == 200
    ok(u["admin"].put("/api/v1/roles/clerk", json={"name": "录入员", "permissions": {}}))
    assert u["clerk"].get(CUSTOMERS).status_code == 403
    ok(u["admin"].delete("/api/v1/roles/clerk"), 204)
    with db.read() as s:
        assert s.execute(select(Role).where(Role.key == "clerk")).first() is None
    assert u["clerk"].get(CUSTOMERS).status_code == 403


def test_lookups_and_rollups_never_show_what_their_source_hides(db, world):
    app, u = world
    customer = make_customer(u["admin"], city="杭州")
    ok(u["admin"].post("/api/v1/apps/crm/forms/loan_case/records", json={
        "customer": customer["id"], "amount": "500000.00"}), 201)
    ok(u["admin"].post("/api/v1/roles", json={"key": "narrow", "name": "窄", "permissions": {
        "forms": {"crm.customer": {"actions": ["read"], "scope": "all",
                                   "fields": {"city": "hidden"}},
                  "crm.loan_case": {"actions": ["read"], "scope": "all",
                                    "fields": {"amount": "hidden"}}}}}), 201)
    narrow = client_as(app, db, "narrow", roles=("narrow",))
    loan = ok(narrow.get("/api/v1/apps/crm/forms/loan_case/records"))["items"][0]["data"]
    assert "customer_city" not in loan and "amount" not in loan and "case_no" in loan
    seen = ok(narrow.get(f"{CUSTOMERS}/{customer['id']}"))["data"]
    assert seen["loans"] == 1 and "total" not in seen and "city" not in seen
    assert narrow.get("/api/v1/apps/crm/forms/loan_case/records",
                      params={"fields": "customer_city"}).status_code == 422
    full = ok(u["admin"].get(f"{CUSTOMERS}/{customer['id']}"))["data"]
    assert full["total"] == "500000.00" and full["city"] == "杭州"


def test_rollups_count_only_the_source_rows_the_reader_may_read(db, world):
    _app, u = world
    customer = make_customer(u["staff"])
    loans = "/api/v1/apps/crm/forms/loan_case/records"
    ok(u["staff"].post(loans, json={"customer": customer["id"], "amount": "100.00"}), 201)
    ok(u["admin"].post(loans, json={"customer": customer["id"], "amount": "900.00"}), 201)
    mine = ok(u["staff"].get(f"{CUSTOMERS}/{customer['id']}"))["data"]
    assert (mine["loans"], mine["total"]) == (1, "100.00")
    listed = ok(u["staff"].get(CUSTOMERS))["items"][0]["data"]
    assert (listed["loans"], listed["total"]) == (1, "100.00")
    everything = ok(u["admin"].get(f"{CUSTOMERS}/{customer['id']}"))["data"]
    assert (everything["loans"], everything["total"]) == (2, "1000.00")
