"""No probing across row scopes through writes (CRM roles): a relation value naming a
record the writer may not read answers exactly like an id that does not exist; the one
signal that cannot be hidden — a unique value already used — is audited (never the
value) and rationed per user: 30 conflicts in 10 minutes, then 429 for any write that
sets a unique field."""

from __future__ import annotations

import json
import re

from sqlalchemy import select

from engine_forms import probing
from platform_core.security.models import AuditEntry
from tests.security_setup import add_department, client_as
from tests.templates_catalog.conftest import crm, install_crm, qiao  # noqa: F401

APP = "/api/v1/apps/crm"
CUSTOMERS = f"{APP}/forms/customer/records"
CASES = f"{APP}/forms/loan_case/records"
MISSING = 987_654


def _ok(response, status=200):
    assert response.status_code == status, response.text
    return response.json()


def _anonymous(problem: dict, *ids: int) -> str:
    """The answer with the record ids named in it replaced, to compare two answers."""
    text = json.dumps(problem, ensure_ascii=False, sort_keys=True)
    for i in ids:
        text = re.sub(rf"(record|记录) {i}\b", r"\1 <id>", text)
    return text


def _setup(app, db, crm):  # noqa: F811
    install_crm(db, crm)
    sales = client_as(app, db, "sales1", roles=("sales",))
    colleague = client_as(app, db, "sales2", roles=("sales",))
    mine = _ok(sales.post(CUSTOMERS, json={"name": "王五", "mobile": "13800000001"}), 201)
    theirs = _ok(colleague.post(CUSTOMERS, json={"name": "赵六", "mobile": "13900000002"}),
                 201)
    return sales, colleague, mine["id"], theirs["id"]


def _audited(db, action):
    with db.read() as s:
        return list(s.execute(select(AuditEntry).where(AuditEntry.action == action)
                              .order_by(AuditEntry.id)).scalars())


def test_a_relation_to_a_record_outside_the_scope_answers_like_a_missing_one(qiao, db, crm):  # noqa: F811
    app, admin = qiao
    sales, colleague, mine, theirs = _setup(app, db, crm)
    case = {"loan_type": "mortgage", "amount": "1000.00"}

    hidden = sales.post(CASES, json=case | {"customer": theirs})
    missing = sales.post(CASES, json=case | {"customer": MISSING})
    assert hidden.status_code == missing.status_code == 422
    assert _anonymous(hidden.json(), theirs) == _anonymous(missing.json(), MISSING)
    assert hidden.json()["errors"][0]["code"] == "not_found"

    # changing a case's customer to one they may not read: the same again
    own = _ok(sales.post(CASES, json=case | {"customer": mine}), 201)
    headers = {"If-Match": f'"{own["row_version"]}"'}
    hidden = sales.patch(f"{CASES}/{own['id']}", json={"customer": theirs}, headers=headers)
    missing = sales.patch(f"{CASES}/{own['id']}", json={"customer": MISSING},
                          headers=headers)
    assert hidden.status_code == missing.status_code == 422
    assert _anonymous(hidden.json(), theirs) == _anonymous(missing.json(), MISSING)

    # all-or-nothing bulk: the same answer, item by item
    hidden = sales.post(f"{CASES}/bulk", json={"records": [case | {"customer": mine},
                                                           case | {"customer": theirs}]})
    missing = sales.post(f"{CASES}/bulk", json={"records": [case | {"customer": mine},
                                                            case | {"customer": MISSING}]})
    assert hidden.status_code == missing.status_code == 422
    assert _anonymous(hidden.json(), theirs) == _anonymous(missing.json(), MISSING)

    # whoever may read the customer links it
    _ok(colleague.post(CASES, json=case | {"customer": theirs}), 201)
    linked = _ok(admin.post(CASES, json=case | {"customer": theirs}), 201)

    # a link someone else made stays: the salesperson who gets that case can still edit it
    from platform_core.store import Actor, transfer_record
    with db.write() as s:
        transfer_record(s, linked["id"], owner_id=sales.user_id, department_id=None,
                        actor=Actor(user_id=None, name="tests"))
    edited = _ok(sales.patch(f"{CASES}/{linked['id']}", json={"note": "补充资料"},
                             headers={"If-Match": f'"{linked["row_version"] + 1}"'}))
    assert edited["data"]["customer"] == theirs and edited["data"]["note"] == "补充资料"


def test_a_used_unique_value_is_told_audited_without_the_value_and_rationed(qiao, db, crm):  # noqa: F811
    app, admin = qiao
    sales, colleague, mine, theirs = _setup(app, db, crm)

    # the unavoidable signal: the colleague's customer has this mobile
    used = sales.post(CUSTOMERS, json={"name": "钱七", "mobile": "13900000002"})
    assert used.status_code == 422, used.text
    assert used.json()["errors"][0]["code"] == "duplicate"
    entry, = _audited(db, probing.CONFLICT)
    assert (entry.actor_id, entry.target, entry.detail) == (
        sales.user_id, "crm.customer", {"fields": ["mobile"]})
    assert "13900000002" not in json.dumps(entry.detail) + (entry.target or "")

    # the budget: 30 conflicts; a bulk request spends it item by item, then 429
    items = [{"name": f"客户{i}", "mobile": "13900000002"} for i in range(probing.BUDGET + 2)]
    bulk = _ok(sales.post(f"{CUSTOMERS}/bulk", params={"partial": "true"},
                          json={"records": items}), 201)
    statuses = [r["status"] for r in bulk["items"]]
    assert statuses == [422] * (probing.BUDGET - 1) + [429] * 3
    assert len(_audited(db, probing.CONFLICT)) == probing.BUDGET

    # spent: a write setting a unique field is refused, used value or not — so the
    # refusal tells nothing about the value
    for mobile in ("13900000002", "13700000009"):
        refused = sales.post(CUSTOMERS, json={"name": "孙八", "mobile": mobile})
        assert refused.status_code == 429, refused.text
        assert refused.json()["code"] == "rate_limited"
        assert 0 < int(refused.headers["Retry-After"]) <= 600
    assert len(_audited(db, probing.REFUSED)) == 3 + 2  # the bulk's three and these two
    upsert = sales.put(f"{CUSTOMERS}/by/mobile/13700000009", json={"name": "孙八"})
    assert upsert.status_code == 429, upsert.text

    # writes without unique fields go on; other users are not affected
    _ok(sales.post(CASES, json={"customer": mine, "loan_type": "credit",
                                "amount": "10.00"}), 201)
    _ok(colleague.post(CUSTOMERS, json={"name": "周九", "mobile": "13600000003"}), 201)
    assert len(_audited(db, probing.CONFLICT)) == probing.BUDGET


def test_an_upsert_onto_a_record_outside_the_scope_says_only_already_used(qiao, db, crm):  # noqa: F811
    app, admin = qiao
    sales, colleague, mine, theirs = _setup(app, db, crm)
    hidden = sales.put(f"{CUSTOMERS}/by/mobile/13900000002", json={"name": "改名"})
    assert hidden.status_code == 409, hidden.text
    body = hidden.json()
    assert body["code"] == "duplicate_value" and body["field"] == "mobile"
    assert not re.search(rf"\b{theirs}\b", json.dumps(body))  # not the holder's id
    assert "record_id" not in body
    assert _audited(db, probing.CONFLICT)[-1].detail == {"fields": ["mobile"]}
    assert _ok(admin.get(f"{CUSTOMERS}/{theirs}"))["data"]["name"] == "赵六"

    # their own record: updated as before
    _ok(sales.put(f"{CUSTOMERS}/by/mobile/13800000001", json={"name": "王五五"}))


def test_an_import_linking_a_record_outside_the_scope_reads_it_as_missing(qiao, db, crm):  # noqa: F811
    app, admin = qiao
    install_crm(db, crm)
    north, south = add_department(db, "北区"), add_department(db, "南区")
    lead = client_as(app, db, "lead1", roles=("team_lead",), department_id=north)
    other = client_as(app, db, "lead2", roles=("team_lead",), department_id=south)
    theirs = _ok(other.post(CUSTOMERS, json={"name": "赵六", "mobile": "13900000002"}),
                 201)["id"]

    def imported(customer: int):
        content = f"客户,贷款类型,申请金额\n{customer},mortgage,1000\n".encode()
        return lead.post(f"{APP}/forms/loan_case/import", files={"file": ("c.csv", content)})

    hidden, missing = imported(theirs), imported(MISSING)
    assert hidden.status_code == missing.status_code == 422, hidden.text
    assert _anonymous(hidden.json(), theirs) == _anonymous(missing.json(), MISSING)
    assert hidden.json()["errors"][0]["code"] == "not_found"
