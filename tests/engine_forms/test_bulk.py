"""Bulk creation (imports): validated as a whole, numbered in order, all-or-nothing."""

from __future__ import annotations

import pytest

from engine_forms import forms, publishing, records
from engine_forms.records import BulkInvalid
from platform_core.store import Actor, links_to
from tests.engine_forms.forms_setup import CUSTOMER, loan_case

ADMIN = Actor(user_id=1, name="admin")


@pytest.fixture
def crm(db):
    with db.write() as s:
        forms.create_app(s, key="crm", name="CRM")
        forms.create_form(s, app="crm", raw=CUSTOMER)
        publishing.publish(s, app="crm", key="customer", actor=ADMIN)
        forms.create_form(s, app="crm", raw=loan_case())
        publishing.publish(s, app="crm", key="loan_case", actor=ADMIN)
        customer = forms.published(s, "crm", "customer")
        return records.create(s, customer, {"name": "张三"}, actor=ADMIN).id


def test_create_many_numbers_links_and_computes(db, crm):
    items = [{"customer": crm, "amount": str(500000 * (i + 1))} for i in range(5)]
    with db.write() as s:
        pub = forms.published(s, "crm", "loan_case")
        ids = records.create_many(s, pub, items, actor=ADMIN)
    with db.read() as s:
        linked = links_to(s, crm, form="loan_case")
        assert [r.id for _, r in linked] == ids
        numbers = [r.data["case_no"][-4:] for _, r in linked]
        sizes = [r.data["size"] for _, r in linked]
    assert numbers == ["0001", "0002", "0003", "0004", "0005"]
    assert sizes == ["普通", "大额", "大额", "大额", "大额"]


def test_create_many_is_all_or_nothing_with_every_error_indexed(db, crm):
    items = [{"customer": crm}, {"customer": crm, "amount": "x"}, {"customer": 999},
             {"customer": crm, "bogus": 1}]
    with db.write() as s, pytest.raises(BulkInvalid) as err:
        pub = forms.published(s, "crm", "loan_case")
        records.create_many(s, pub, items, actor=ADMIN)
    errors = {(e["index"], e["field"], e["code"]) for e in err.value.extra["errors"]}
    assert errors == {(1, "amount", "type"), (3, "bogus", "unknown_field")}
    with db.write() as s, pytest.raises(BulkInvalid) as err:
        pub = forms.published(s, "crm", "loan_case")
        records.create_many(s, pub, [{"customer": crm}, {"customer": 999}], actor=ADMIN)
    assert [(e["index"], e["code"]) for e in err.value.extra["errors"]] == [(1, "not_found")]
    with db.read() as s:
        assert links_to(s, crm) == []
    with db.write() as s:  # nothing was numbered by the failed imports
        pub = forms.published(s, "crm", "loan_case")
        first = records.create(s, pub, {"customer": crm}, actor=ADMIN)
    assert first.data["case_no"].endswith("0001")
