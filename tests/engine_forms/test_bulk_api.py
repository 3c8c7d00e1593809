"""Bulk create (all or nothing, or partial) and upsert by a unique field, through the API."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from platform_core.app import create_app
from platform_core.models import Record
from platform_core.security.models import AuditEntry
from platform_core.settings import load_settings
from tests.engine_forms.forms_setup import make_crm, ok
from tests.security_setup import client_as

BASE = "/api/v1/apps/crm/forms/customer/records"


@pytest.fixture
def crm(db, tmp_path):
    app = create_app(load_settings(data_dir=tmp_path), db=db)
    admin = client_as(app, db, "admin")
    make_crm(admin)
    return app, admin


def count(db) -> int:
    with db.read() as s:
        return s.execute(select(func.count()).select_from(Record)).scalar_one()


def test_bulk_is_all_or_nothing_by_default(db, crm):
    _app, admin = crm
    made = ok(admin.post(f"{BASE}/bulk", json={"records": [
        {"name": f"客户{i}", "mobile": f"1380000{i:04d}"} for i in range(300)]}), 201)
    assert made["created"] == 300 and made["items"][299]["record"]["data"]["name"] == "客户299"
    assert [i["status"] for i in made["items"]] == [201] * 300
    refused = admin.post(f"{BASE}/bulk", json={"records": [
        {"name": "好"}, {"mobile": "bad"}, {"name": "也好"}, {"name": "x", "id": 5}]})
    assert refused.status_code == 422 and count(db) == 300
    too_many = admin.post(f"{BASE}/bulk", json={"records": [{"name": "x"}] * 1001})
    assert too_many.status_code == 422
    with db.read() as s:
        entry = s.execute(select(AuditEntry).where(AuditEntry.action == "record.create")
                          ).scalar_one()
    assert entry.detail["count"] == 300 and entry.detail["bulk"] is True


def test_bulk_invalid_items_are_listed_by_index(db, crm):
    _app, admin = crm
    refused = admin.post(f"{BASE}/bulk", json={"records": [
        {"name": "好"}, {"mobile": "bad"}, {"name": "也好"}, {"name": ""}]})
    body = refused.json()
    assert refused.status_code == 422 and {e["index"] for e in body["errors"]} == {1, 3}
    assert count(db) == 0


def test_partial_bulk_creates_the_valid_ones(db, crm):
    _app, admin = crm
    ok(admin.post(BASE, json={"name": "已有", "mobile": "13800000001"}), 201)
    result = ok(admin.post(f"{BASE}/bulk", params={"partial": True}, json={"records": [
        {"name": "甲"}, {"mobile": "bad"}, {"name": "乙", "mobile": "13800000001"},
        {"name": "丙", "owner_id": 1}, {"name": "丁"}]}), 201)
    assert [i["status"] for i in result["items"]] == [201, 422, 422, 422, 201]
    duplicate = result["items"][2]["error"]["errors"][0]
    assert (duplicate["field"], duplicate["code"]) == ("mobile", "duplicate")
    assert result["created"] == 2 and result["items"][3]["error"]["code"] == "system_field"
    assert count(db) == 3


def test_bulk_return_minimal_answers_ids_without_records(db, crm):
    _app, admin = crm
    made = ok(admin.post(f"{BASE}/bulk", params={"return": "minimal"}, json={"records": [
        {"name": f"客户{i}"} for i in range(3)]}), 201)
    assert made["created"] == 3 and all("record" not in i for i in made["items"])
    ids = [i["id"] for i in made["items"]]
    assert ok(admin.get(f"{BASE}/{ids[2]}"))["data"]["name"] == "客户2"
    assert admin.post(f"{BASE}/bulk", params={"return": "some"},
                      json={"records": [{"name": "x"}]}).status_code == 422


def test_upsert_by_a_unique_field(db, crm):
    app, admin = crm
    url = f"{BASE}/by/mobile/13812341234"
    created = admin.put(url, json={"name": "张三", "city": "北京"})
    assert created.status_code == 201 and created.headers["ETag"] == '"1"'
    assert created.json()["data"]["mobile"] == "13812341234"
    updated = admin.put(url, json={"city": "上海"})
    assert updated.status_code == 200 and updated.json()["data"] == {
        **created.json()["data"], "city": "上海"}
    assert updated.json()["id"] == created.json()["id"] and count(db) == 1
    stale = admin.put(url, json={"city": "深圳"}, headers={"If-Match": '"1"'})
    assert stale.status_code == 409
    assert admin.put(f"{BASE}/by/name/张三", json={}).status_code == 422  # not unique
    assert admin.put(url, json={"mobile": "13900000000"}).status_code == 422
    assert admin.put(f"{BASE}/by/mobile/12", json={"name": "x"}).status_code == 422
    viewer = client_as(app, db, "viewer", roles=("viewer",))
    assert viewer.put(url, json={"city": "广州"}).status_code == 403


def test_a_refused_key_in_any_item_refuses_the_bulk_and_is_named(db, crm):
    """The keys of a bulk are checked together; a refused one still names itself as it
    would for that item alone, and nothing is written."""
    _app, admin = crm
    items = [{"name": f"客户{i}"} for i in range(5)]
    system = admin.post(f"{BASE}/bulk", json={"records": [*items, {"name": "x",
                                                                   "owner_id": 1}]})
    assert system.status_code == 422 and system.json()["code"] == "system_field"
    assert system.json()["field"] == "owner_id"
    unknown_is_fine = ok(admin.post(f"{BASE}/bulk", params={"return": "minimal"},
                                    json={"records": items}), 201)
    assert unknown_is_fine["created"] == 5 and count(db) == 5
