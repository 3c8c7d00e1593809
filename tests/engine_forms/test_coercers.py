"""Compiled coercers (``FieldType.coercer``): for every value, the same answer as
``coerce`` or ``DEFER`` — so a record gets the same stored data, the same errors in the same
order, whichever path its values take — and a validation plan per published version."""

from __future__ import annotations

from typing import Any

import pytest

from engine_forms import forms, publishing, records
from engine_forms.fieldtypes import DEFER, FIELD_TYPES, FieldError
from engine_forms.validation import RecordInvalid, plan_of, validate_record
from platform_core.store import Actor, get_record
from tests.engine_forms.test_fieldtypes import INVALID, VALID, field


class Text(str):
    """A str subclass: ``coerce`` stores ``str(value)``, never the subclass."""


# Values at the edges of the fast paths, next to the ones of test_fieldtypes.
EDGES: list[tuple[str, dict[str, Any], Any]] = [
    *[(t, {}, v) for t in ("text", "textarea", "email", "phone", "select", "money",
                           "number", "date", "datetime", "id_card", "user", "relation")
      for v in (None, "", " ", "a\x00b", "13800001234\x00", Text("web"), 0, -1, 2**63, 1.0)],
    ("text", {"max_length": 3}, "abc"), ("text", {"max_length": 3}, "abcd"),
    ("text", {}, "字" * 200), ("text", {}, "字" * 201), ("textarea", {}, "a\nb"),
    ("number", {"min": 0.1, "max": 0.3}, 0.1), ("number", {"min": 0.1, "max": 0.3}, 0.3),
    ("number", {"max": 0.3}, 0.1 + 0.2), ("number", {"decimals": 2}, 4.35),
    ("number", {"decimals": 2}, 4.355), ("number", {"decimals": 0}, 12.0),
    ("number", {}, -0.0), ("number", {}, 1e16), ("number", {}, 1e-7), ("number", {}, 10**30),
    ("number", {"min": 1, "max": 360}, 360), ("number", {"min": 1, "max": 360}, 361),
    ("number", {"min": 1, "max": 360}, 360.0), ("number", {"min": 1, "max": 360}, 360.5),
    ("number", {"max": 2**53 + 1}, 2.0**53), ("number", {"min": -(2**60) - 1}, -1.5),
    ("number", {"decimals": 3}, 0.0001), ("number", {"decimals": 3}, 123.456),
    ("number", {"decimals": 3}, 123.4567), ("number", {}, 1e15 + 0.5),
    ("number", {}, float("-inf")), ("number", {"min": 0}, -0.0),
    ("percent", {"min": 0, "max": 24, "decimals": 2}, 24.0),
    ("percent", {"min": 0, "max": 24, "decimals": 2}, 24.01),
    ("money", {}, "0.00"), ("money", {}, "007.00"), ("money", {}, "1234.5"),
    ("money", {}, "１２.００"), ("money", {}, "1" * 18 + ".99"), ("money", {}, "1" * 19 + ".99"),
    ("money", {"min": 1000, "max": 50000000}, "999.99"),
    ("money", {"min": 1000, "max": 50000000}, "1000.00"),
    ("money", {"min": 1000, "max": 50000000}, "50000000.01"),
    ("money", {}, "12.30\n"), ("money", {}, " 12.30"),
    ("date", {}, "2024-02-29"), ("date", {}, "2023-02-29"), ("date", {}, "0000-01-01"),
    ("date", {}, "0999-01-01"), ("date", {}, "2024-0２-29"), ("date", {}, "2024-02-29\n"),
    ("date", {"min": "2024-01-01", "max": "2024-12-31"}, "2024-01-01"),
    ("date", {"min": "2024-01-01", "max": "2024-12-31"}, "2025-01-01"),
    ("datetime", {}, "2024-02-29T09:30:00.123456+08:00"), ("datetime", {}, " 2024-02-29 "),
    ("datetime", {}, "1000-01-01T07:59:59+08:00"), ("datetime", {}, "2024-02-29T09:30Z"),
    ("boolean", {}, 1), ("boolean", {}, None),
    ("select", {}, "web"), ("select", {}, "官网"), ("select", {}, ["web"]),
    ("multiselect", {}, ["web", "web", "ad"]), ("multiselect", {}, [Text("ad")]),
    ("multiselect", {}, [{"a": 1}]), ("multiselect", {}, ["web", 1]), ("multiselect", {}, ("web",)),
    ("phone", {}, "13800001234"), ("phone", {}, "1380000123４"), ("phone", {}, "00861234567"),
    ("phone", {}, "0086-13800001234"), ("phone", {"accept": "landline"}, "13800001234"),
    ("phone", {"accept": "mobile"}, "13800001234"), ("phone", {}, "13800001234\n"),
    ("email", {}, "A@B.CN"), ("email", {}, "a\x00@b.cn"),
    ("id_card", {}, "11010519491231002X"), ("id_card", {}, "11010519491231002x"),
    ("address", {}, {}), ("address", {}, {"city": "北\x00京"}), ("address", {}, {"ci\x00ty": "x"}),
    ("address", {}, {"city": None}), ("address", {}, {"city": " 北京 ", "detail": "  "}),
    ("user", {}, True), ("department", {}, 0), ("department", {}, 5),
    ("relation", {}, 2**63 - 1), ("relation", {}, False),
    ("relation", {"multiple": True}, []), ("relation", {"multiple": True}, [3, 3, 1]),
    ("relation", {"multiple": True}, [1, True]), ("relation", {"multiple": True}, [2**63]),
]
SAMPLES = [(t, c, v) for t, c, v, _ in VALID] + [(t, c, v) for t, c, v, _ in INVALID] + EDGES


def _outcome(call: Any) -> tuple[str, Any]:
    try:
        out = call()
    except FieldError as exc:
        return "refused", (exc.code, exc.zh, exc.en)
    return "stored", (type(out), out)


def _holds_nul(value: Any) -> bool:
    if isinstance(value, str):
        return "\x00" in value
    if isinstance(value, dict):
        return any(_holds_nul(k) or _holds_nul(v) for k, v in value.items())
    return isinstance(value, list | tuple) and any(_holds_nul(v) for v in value)


@pytest.mark.parametrize(("type_", "config", "value"), SAMPLES)
def test_a_compiled_coercer_answers_as_coerce_does_or_defers(type_, config, value):
    spec, ftype = field(type_, **config), FIELD_TYPES.get(type_)
    coercer = ftype.coercer(spec)
    fast = _outcome(lambda: coercer(value))
    if fast == ("stored", (type(DEFER), DEFER)):
        return
    # the validator refuses None/"" and NUL before coerce: a coercer must leave them
    assert value is not None and value != "" and not _holds_nul(value)
    assert fast == _outcome(lambda: ftype.coerce(value, spec))


def test_the_fast_paths_take_the_usual_values():
    """Most values a record sends do not fall back (else the plan would not pay)."""
    usual = [("text", "张三"), ("textarea", "备注"), ("number", 12), ("number", 4.35),
             ("money", "1234.50"), ("percent", 3.45), ("date", "2024-02-29"),
             ("datetime", "2024-02-29T09:30:00+08:00"), ("boolean", True), ("select", "web"),
             ("multiselect", ["ad", "web"]), ("phone", "13800001234"),
             ("phone", "010-12345678"), ("email", "a@b.cn"), ("id_card", "11010519491231002X"),
             ("address", {"city": "北京"}), ("user", 7), ("department", 3),
             ("relation", 12)]
    for type_, value in usual:
        assert FIELD_TYPES.get(type_).coercer(field(type_))(value) is not DEFER, type_


# --- one plan per published version -------------------------------------------------------

ACTOR = Actor(user_id=1, department_id=1, name="admin")


def _spec(max_length: int) -> dict[str, Any]:
    return {"key": "lead", "name": "线索", "title_field": "name", "fields": [
        {"key": "name", "label": "姓名", "type": "text", "required": True,
         "max_length": max_length}]}


def test_the_plan_is_built_once_per_version_and_a_new_version_gets_its_own(db):
    with db.write() as s:
        forms.create_app(s, key="plans", name="计划")
        forms.create_form(s, app="plans", raw=_spec(5))
        publishing.publish(s, app="plans", key="lead", actor=ACTOR)
    with db.read() as s:
        v1 = forms.published(s, "plans", "lead")
    with db.read() as s:
        again = forms.published(s, "plans", "lead")
    assert plan_of(again.compiled) is plan_of(v1.compiled)  # reused, not rebuilt
    with pytest.raises(RecordInvalid) as caught:
        validate_record(v1.compiled, {"name": "王小明先生的"})
    assert [(p.field, p.code, p.en) for p in caught.value.problems] == [
        ("name", "too_long", "name: must be at most 5 characters")]

    with db.write() as s:  # a new version allows 10 characters
        forms.put_draft(s, app="plans", key="lead", raw=_spec(10))
        publishing.publish(s, app="plans", key="lead", actor=ACTOR)
    with db.write() as s:
        v2 = forms.published(s, "plans", "lead")
        assert v2.version == 2 and plan_of(v2.compiled) is not plan_of(v1.compiled)
        rid = records.create(s, v2, {"name": "王小明先生的"}, actor=ACTOR).id
    with db.read() as s:
        assert get_record(s, rid).data == {"name": "王小明先生的"}
    with pytest.raises(RecordInvalid):  # version 1 keeps its own limit
        validate_record(v1.compiled, {"name": "王小明先生的"})
