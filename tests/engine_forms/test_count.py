"""Counting records through the API: ``GET …/records/count`` and ``…/records?count=true``
answer how many records the caller may read match the filter — their row scope, their
field rights and the recycle bin applying as in the list."""

from __future__ import annotations

import json

import pytest

from platform_core.app import create_app
from platform_core.settings import load_settings
from tests.engine_forms.forms_setup import make_crm, ok
from tests.security_setup import client_as

CUSTOMERS = "/api/v1/apps/crm/forms/customer/records"
OWN = {"forms": {"crm.customer": {"actions": ["create", "read", "update", "delete"],
                                  "scope": "own", "fields": {"mobile": "hidden"}}}}


@pytest.fixture
def world(db, tmp_path):
    app = create_app(load_settings(data_dir=tmp_path, api_rate_per_minute=1_000_000,
                                   background_jobs=False), db=db)
    admin = client_as(app, db, "admin")
    make_crm(admin)
    ok(admin.post("/api/v1/roles", json={"key": "own", "name": "自己的", "permissions": OWN}),
       201)
    sales = client_as(app, db, "sales", roles=("own",))
    for i, city in enumerate(["北京", "北京", "上海"]):
        ok(admin.post(CUSTOMERS, json={"name": f"客户{i}", "mobile": f"1380000000{i}",
                                       "city": city}), 201)
    for i, city in enumerate(["北京", "广州"]):
        ok(sales.post(CUSTOMERS, json={"name": f"我的{i}", "city": city}), 201)
    return admin, sales


def count(client, **params) -> int:
    return ok(client.get(f"{CUSTOMERS}/count", params=params))["count"]


def in_city(city: str) -> str:
    return json.dumps({"field": "city", "op": "eq", "value": city})


def test_the_count_is_of_the_records_the_caller_may_read_that_match(world):
    admin, sales = world
    assert count(admin) == 5
    assert count(admin, filter=in_city("北京")) == 3
    assert count(sales) == 2  # their own only
    assert count(sales, filter=in_city("北京")) == 1
    assert count(sales, filter=in_city("上海")) == 0


def test_the_list_adds_the_count_over_all_pages_when_asked(world):
    admin, sales = world
    page = ok(admin.get(CUSTOMERS, params={"count": "true", "limit": 2,
                                           "filter": in_city("北京")}))
    assert (len(page["items"]), page["count"]) == (2, 3)
    assert page["next_cursor"] is not None
    assert "count" not in ok(admin.get(CUSTOMERS))
    assert ok(sales.get(CUSTOMERS, params={"count": "true"}))["count"] == 2


def test_deleted_records_count_only_when_asked_for(world):
    admin, _sales = world
    first = ok(admin.get(CUSTOMERS, params={"limit": 1}))["items"][0]
    assert admin.delete(f"{CUSTOMERS}/{first['id']}").status_code == 204
    assert count(admin) == 4
    assert count(admin, deleted="only") == 1
    assert count(admin, deleted="include") == 5
    refused = admin.get(f"{CUSTOMERS}/count", params={"deleted": "all"})
    assert refused.status_code == 422 and refused.json()["path"] == "deleted"


def test_a_count_by_a_hidden_field_or_a_bad_filter_is_refused_by_name(world):
    _admin, sales = world
    hidden = sales.get(f"{CUSTOMERS}/count", params={"filter": json.dumps(
        {"field": "mobile", "op": "eq", "value": "13800000000"})})
    assert hidden.status_code == 422
    assert hidden.json()["code"] == "field_not_permitted"
    assert hidden.json()["detail"] == "filter: field 'mobile' is not permitted"
    broken = sales.get(f"{CUSTOMERS}/count", params={"filter": "{"})
    assert broken.status_code == 422 and broken.json()["path"] == "filter"
