"""The permission matrix's round trip (rows ⇄ permission document) and the ``next``
check of the sign-in page: plain functions, no browser."""

from __future__ import annotations

import pytest
from starlette.datastructures import ImmutableMultiDict

from frontend.matrix import Target, build, rows_from_form, rows_from_permissions
from frontend.web import safe_next
from platform_core.security.permissions import check_permissions

TARGETS = [Target("*", "every form"), Target("crm.*", "crm"),
           Target("crm.customer", "customer", (("name", "姓名"), ("mobile", "手机")))]
STORED = {"users": True, "forms": {
    "*": {"actions": ["read"], "scope": "own"},
    "crm.customer": {"actions": ["read", "update"], "scope": {"filter": {
        "field": "city", "op": "eq", "value": "杭州"}},
        "fields": {"mobile": "hidden", "old_field": "read"}, "default_field": "read"}}}


def _form(*pairs: tuple[str, str], rows: tuple[str, ...] = ("*", "crm.*", "crm.customer")
          ) -> ImmutableMultiDict:
    return ImmutableMultiDict([("row", key) for key in rows] + list(pairs))


def _as_form(stored: dict) -> ImmutableMultiDict:
    """What the browser sends back for an untouched page showing ``stored``."""
    pairs = [("users", "1")] if stored.get("users") else []
    for row in rows_from_permissions(TARGETS, stored):
        key = row.target.key
        pairs += [(f"act:{key}", a) for a in sorted(row.actions)]
        pairs += [(f"scope:{key}", row.scope), (f"default:{key}", row.default_field)]
        pairs += [(f"field:{key}:{k}", row.levels.get(k, "")) for k, _ in row.target.fields]
        if row.scope == "filter":  # the condition's box, as the page filled it
            pairs.append((f"filter:{key}", row.filter_text))
    return _form(*pairs)


def test_an_untouched_matrix_saves_the_same_document():
    form = _as_form(STORED)
    doc, errors = build(rows_from_form(TARGETS, form, STORED), form, STORED)
    assert errors == [] and doc == STORED
    check_permissions(doc)


def test_a_condition_scope_is_read_from_its_box_and_must_be_a_filter():
    stored = {"forms": {"crm.customer": {"actions": ["read"], "scope": "own"}}}
    form = _form(("act:crm.customer", "read"), ("scope:crm.customer", "filter"),
                 ("filter:crm.customer", '{"field": "city", "op": "eq", "value": "北京"}'))
    doc, errors = build(rows_from_form(TARGETS, form, stored), form, stored)
    assert errors == []
    assert doc["forms"]["crm.customer"]["scope"] == {
        "filter": {"field": "city", "op": "eq", "value": "北京"}}
    for text, problem in (("city = 北京", "不是有效的 JSON"), ("[]", "筛选对象")):
        form = _form(("act:crm.customer", "read"), ("scope:crm.customer", "filter"),
                     ("filter:crm.customer", text))
        _doc, errors = build(rows_from_form(TARGETS, form, stored), form, stored)
        assert len(errors) == 1 and problem in errors[0]


def test_checked_actions_need_a_scope():
    form = _form(("act:crm.*", "read"), ("scope:crm.*", ""))
    doc, errors = build(rows_from_form(TARGETS, form, {}), form, {})
    assert doc == {} and errors == ["crm.*：勾选了操作但未选择范围"]


def test_a_scope_without_actions_is_an_explicit_nothing():
    form = _form(("scope:crm.customer", "all"), ("field:crm.customer:mobile", "read"))
    doc, errors = build(rows_from_form(TARGETS, form, {}), form, {})
    assert errors == [] and doc == {"forms": {"crm.customer": {
        "actions": [], "scope": "all", "fields": {"mobile": "read"}}}}


def test_actions_keep_their_canonical_order_and_unknown_ones_are_dropped():
    form = _form(("act:*", "unmask"), ("act:*", "create"), ("act:*", "fly"), ("scope:*", "all"))
    doc, _ = build(rows_from_form(TARGETS, form, {}), form, {})
    assert doc["forms"]["*"]["actions"] == ["create", "unmask"]


def test_rows_missing_from_the_form_keep_their_stored_entry():
    form = _form(("scope:*", "department"), ("act:*", "read"), rows=("*",))
    doc, errors = build(rows_from_form(TARGETS, form, STORED), form, STORED)
    assert errors == [] and doc["forms"]["crm.customer"] == STORED["forms"]["crm.customer"]
    assert doc["forms"]["*"] == {"actions": ["read"], "scope": "department"}
    assert "users" not in doc  # an unchecked box is a removed right


def test_an_unknown_scope_is_refused():
    form = _form(("scope:*", "everyone"), ("act:*", "read"))
    _, errors = build(rows_from_form(TARGETS, form, {}), form, {})
    assert errors == ["*：未知范围 'everyone'"]


@pytest.mark.parametrize("target,expected", [
    ("/admin/users?x=1", "/admin/users?x=1"), ("/", "/"), ("", "/"), (None, "/"),
    ("//evil.example/x", "/"), ("/\\evil.example", "/"), ("https://evil.example/", "/"),
    ("javascript:alert(1)", "/"), ("/ok\r\nSet-Cookie: x=1", "/"), ("admin", "/"),
])
def test_next_stays_on_this_site(target, expected):
    assert safe_next(target) == expected
