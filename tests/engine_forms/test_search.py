"""Global search (GET /api/v1/search) on the CRM template: what each role finds, by
mobile, ID number, case number and name, inside their row scope and field rights."""

from __future__ import annotations

import pytest

from platform_core.app import create_app
from platform_core.settings import load_settings
from templates_catalog.bundle import template
from templates_catalog.install import install
from tests.engine_forms.forms_setup import ok
from tests.security_setup import SYSTEM, client_as

CUSTOMERS = "/api/v1/apps/crm/forms/customer/records"
CASES = "/api/v1/apps/crm/forms/loan_case/records"
ID_NO = "11010519491231002X"


@pytest.fixture
def app(db, tmp_path):
    with db.write() as s:
        install(s, template("bank_intermediary_crm"), actor=SYSTEM,
                template="bank_intermediary_crm")
    return create_app(load_settings(data_dir=tmp_path), db=db)


@pytest.fixture
def people(app, db):
    """Two salespeople, a clerk (ID numbers hidden) and a risk officer (unmasks)."""
    made = {name: client_as(app, db, name, roles=(role,)) for name, role in (
        ("xiao.wang", "sales"), ("lao.zhao", "sales"), ("clerk", "clerk"),
        ("risk", "risk"))}
    yield made
    for c in made.values():
        c.close()


def _groups(client, q: str, **params) -> dict[str, list[dict]]:
    body = ok(client.get("/api/v1/search", params={"q": q, **params}))
    return {g["form"]: g["items"] for g in body["groups"]}


def test_a_salesperson_finds_only_their_own_customers(people):
    wang, zhao = people["xiao.wang"], people["lao.zhao"]
    mine = ok(wang.post(CUSTOMERS, json={"name": "张三", "mobile": "13800001234",
                                          "id_no": ID_NO}), 201)
    ok(zhao.post(CUSTOMERS, json={"name": "张四", "mobile": "13900005678"}), 201)

    found = _groups(wang, "张")
    assert [i["title"] for i in found["customer"]] == ["张三"]
    assert found["customer"][0]["url"] == f"/apps/crm/forms/customer/records/{mine['id']}"
    assert _groups(wang, "139 0000 5678") == {}  # lao.zhao's customer, by exact mobile
    assert [i["title"] for i in _groups(zhao, "张")["customer"]] == ["张四"]
    # the risk officer reads every customer: both, newest first
    assert [i["title"] for i in _groups(people["risk"], "张")["customer"]] == ["张四", "张三"]


def test_mobile_is_found_exactly_and_shown_masked(people):
    wang = people["xiao.wang"]
    ok(wang.post(CUSTOMERS, json={"name": "李四", "mobile": "13800001234"}), 201)
    found = _groups(wang, "138-0000-1234")["customer"]
    assert found[0]["title"] == "李四"
    assert found[0]["values"]["mobile"] == "138****1234"  # sales see mobiles masked
    assert _groups(wang, "1380000123") == {}  # a part of a number finds nothing
    assert _groups(people["risk"], "13800001234")["customer"][0]["values"]["mobile"] \
        == "13800001234"  # risk may unmask


def test_encrypted_id_number_is_found_by_its_exact_value(people, db):
    wang = people["xiao.wang"]
    ok(wang.post(CUSTOMERS, json={"name": "王五", "mobile": "13700001234", "id_no": ID_NO}),
       201)
    with db.read() as s:  # stored sealed: the plain number is nowhere in the row
        from sqlalchemy import text
        stored = s.execute(text("SELECT data FROM records WHERE form = 'customer'")).scalar()
    assert ID_NO not in str(stored)
    found = _groups(people["risk"], ID_NO.lower())["customer"]
    assert [i["title"] for i in found] == ["王五"]
    assert found[0]["values"]["id_no"] == ID_NO
    assert _groups(wang, ID_NO)["customer"][0]["values"]["id_no"] == "1101**********002X"


def test_a_hidden_field_is_not_searchable(people):
    ok(people["xiao.wang"].post(CUSTOMERS, json={"name": "赵六", "mobile": "13600001234",
                                                 "id_no": ID_NO}), 201)
    assert _groups(people["clerk"], ID_NO) == {}  # the clerk's role hides ID numbers
    found = _groups(people["clerk"], "赵六")["customer"]
    assert "id_no" not in found[0]["values"]


def test_case_number_and_more_than_the_limit(people):
    wang = people["xiao.wang"]
    customer = ok(wang.post(CUSTOMERS, json={"name": "孙七", "mobile": "13500001234"}), 201)
    cases = [ok(wang.post(CASES, json={"customer": customer["id"], "loan_type": "mortgage",
                                       "amount": "800000"}), 201) for _ in range(3)]
    number = cases[1]["data"]["case_no"]
    found = _groups(wang, number.lower())["loan_case"]
    assert [i["title"] for i in found] == [number]
    prefix = number.rsplit("-", 1)[0]
    body = ok(wang.get("/api/v1/search", params={"q": prefix, "limit": 2}))
    group = next(g for g in body["groups"] if g["form"] == "loan_case")
    assert [i["id"] for i in group["items"]] == [cases[2]["id"], cases[1]["id"]]
    assert group["more"] is True


@pytest.mark.parametrize("params", [{}, {"q": ""}, {"q": "   "}, {"q": "x" * 101},
                                    {"q": "张", "limit": 0}, {"q": "张", "limit": 21}])
def test_bad_input_is_a_problem(people, params):
    response = people["xiao.wang"].get("/api/v1/search", params=params)
    assert response.status_code == 422, response.text
    assert response.headers["content-type"] == "application/problem+json"


def test_sign_in_is_needed(app):
    from fastapi.testclient import TestClient

    with TestClient(app, raise_server_exceptions=False) as anonymous:
        assert anonymous.get("/api/v1/search", params={"q": "张"}).status_code == 401
