"""Loan cases by their customer (the CRM template): a relation filters by the linked id
(``eq``, ``in``, ``is_empty``) and sorts by the linked customer's name — within what the
reader may read: a salesperson asking for another's customer gets no rows (not an error),
and a case linking to a customer outside their scope sorts as a blank."""

from __future__ import annotations

import csv
import io
import json

import pytest

from platform_core.store import transfer_record
from tests.engine_forms.forms_setup import ok
from tests.security_setup import SYSTEM, client_as
from tests.templates_catalog.conftest import install_crm

FORMS = "/api/v1/apps/crm/forms"
CASES = f"{FORMS}/loan_case/records"


def customer(client, name: str, mobile: str) -> int:
    return ok(client.post(f"{FORMS}/customer/records",
                          json={"name": name, "mobile": mobile}), 201)["id"]


def case(client, customer_id: int, amount: str) -> int:
    return ok(client.post(CASES, json={"customer": customer_id, "amount": amount,
                                       "loan_type": "credit"}), 201)["id"]


@pytest.fixture
def world(qiao, crm, db):
    app, admin = qiao
    install_crm(db, crm, key="crm")
    one = client_as(app, db, "sales1", roles=("sales",))
    two = client_as(app, db, "sales2", roles=("sales",))
    ids = {"carol": customer(admin, "Carol", "13800000003")}
    ids["alice"] = customer(one, "Alice", "13800000001")
    ids["zed"] = customer(one, "Zed", "13800000004")
    ids["bob"] = customer(two, "Bob", "13800000002")
    cases = {"carol": case(admin, ids["carol"], "300000.00"),
             "alice": case(one, ids["alice"], "100000.00"),
             "zed": case(one, ids["zed"], "400000.00"),
             "bob": case(two, ids["bob"], "200000.00")}
    # sales1 takes over Carol's case, not Carol (a customer outside their scope)
    with db.write() as s:
        transfer_record(s, cases["carol"], owner_id=one.user_id, department_id=None,
                        actor=SYSTEM)
    return admin, one, two, ids, cases


def listed(client, **params) -> list[int]:
    params = {k: json.dumps(v) if k == "filter" else v for k, v in params.items()}
    return [r["id"] for r in ok(client.get(CASES, params=params))["items"]]


def test_an_admin_lists_a_customers_loan_cases(world):
    admin, _one, _two, ids, cases = world
    assert listed(admin, filter={"field": "customer", "op": "eq", "value": ids["bob"]}) \
        == [cases["bob"]]
    both = {"field": "customer", "op": "in", "value": [ids["alice"], ids["bob"]]}
    assert sorted(listed(admin, filter=both)) == sorted([cases["alice"], cases["bob"]])
    assert listed(admin, filter={"field": "customer", "op": "is_empty"}) == []
    assert ok(admin.get(f"{CASES}/count", params={"filter": json.dumps(both)}))["count"] == 2


def test_a_salesperson_asking_for_anothers_customer_gets_no_rows(world):
    _admin, one, _two, ids, cases = world
    other = {"field": "customer", "op": "eq", "value": ids["bob"]}
    answer = one.get(CASES, params={"filter": json.dumps(other)})
    assert answer.status_code == 200 and answer.json()["items"] == []
    assert listed(one, filter={"field": "customer", "op": "eq", "value": ids["alice"]}) \
        == [cases["alice"]]


def test_cases_sort_by_the_customers_name(world):
    admin, _one, _two, _ids, cases = world
    by_name = [cases[k] for k in ("alice", "bob", "carol", "zed")]
    assert listed(admin, sort="customer") == by_name
    assert listed(admin, sort="-customer") == by_name[::-1]
    # keyset pages of one: the cursor carries the name
    seen, cursor = [], None
    while True:
        params = {"sort": "customer", "limit": 1} | ({"cursor": cursor} if cursor else {})
        page = ok(admin.get(CASES, params=params))
        seen += [r["id"] for r in page["items"]]
        if not (cursor := page["next_cursor"]):
            break
    assert seen == by_name


def test_a_customer_outside_the_readers_scope_sorts_as_a_blank(world):
    _admin, one, _two, _ids, cases = world
    # by name Carol would come between Alice and Zed; sales1 may not read her: last
    assert listed(one, sort="customer") == [cases["alice"], cases["zed"], cases["carol"]]
    assert listed(one, sort="-customer") == [cases["zed"], cases["alice"], cases["carol"]]


def test_the_export_sorts_by_the_customers_name_too(world):
    admin, _one, _two, _ids, cases = world
    answer = admin.get(f"{FORMS}/loan_case/export", params={"format": "csv",
                                                             "sort": "-customer"})
    assert answer.status_code == 200, answer.text
    rows = list(csv.reader(io.StringIO(answer.content.decode("utf-8-sig"))))[1:]
    assert [int(r[0]) for r in rows] == [cases[k] for k in ("zed", "carol", "bob", "alice")]
