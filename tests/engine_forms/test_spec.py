"""Form definitions: the meta-schema, ``load_form`` and the exact problem each mistake
gives (all problems of a phase are reported at once)."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from jsonschema import Draft202012Validator

from engine_forms.expr import compile_form
from engine_forms.fieldtypes import FIELD_TYPES
from engine_forms.spec import FORMAT_VERSION, FormSpec, SpecError, load_form, meta_schema

OPTIONS = [{"value": "web", "label": "官网"}, {"value": "referral", "label": "转介绍"}]


def f(key: str, type_: str = "text", **config: Any) -> dict[str, Any]:
    return {"key": key, "label": key.upper(), "type": type_, **config}


def form(*fields: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {"key": "t", "name": "测试", "fields": list(fields), **extra}


def problems_of(raw: Any) -> list[str]:
    with pytest.raises(SpecError) as caught:
        load_form(raw)
    assert caught.value.code == "invalid_form" and caught.value.status == 422
    assert caught.value.extra["problems"] == caught.value.problems
    return caught.value.problems


# --- the meta-schema and the example form ---------------------------------------------

def test_the_meta_schema_is_json_schema_2020_12():
    schema = meta_schema()
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    Draft202012Validator.check_schema(schema)
    assert schema["$defs"]["field"]["properties"]["type"]["enum"] == list(FIELD_TYPES)


def test_the_loan_case_form_loads(loan_case_raw):
    assert list(Draft202012Validator(meta_schema()).iter_errors(loan_case_raw)) == []
    spec = load_form(loan_case_raw)
    assert isinstance(spec, FormSpec) and spec.format_version == FORMAT_VERSION
    assert spec.key == "loan_case" and spec.title_field == "case_no"
    assert [x.key for x in spec.fields] == [
        "case_no", "customer", "amount", "channel", "id_no", "size", "has_collateral",
        "collateral_value"]
    assert spec.field("customer").config == {"target": "customer"}
    assert spec.field("id_no").sensitive.encrypt is True
    assert spec.field("amount").indexed is True
    assert spec.field("collateral_value").visible_if == "has_collateral = TRUE"
    assert spec.layout[0].fields == ("case_no", "customer", "amount", "channel")
    assert spec.field("nope") is None


def test_the_loan_case_form_compiles_with_typed_fields(loan_case_raw):
    compiled = compile_form(load_form(loan_case_raw))
    assert compiled.kinds == {
        "case_no": "text", "amount": "money", "channel": "text", "id_no": "text",
        "size": "text", "has_collateral": "boolean", "collateral_value": "money"}
    assert set(compiled.visible_if) == {"collateral_value"}


def test_a_loaded_form_dumps_to_json_that_loads_to_the_same_spec(loan_case_raw):
    spec = load_form(loan_case_raw)
    dumped = spec.dump()
    assert load_form(dumped) == spec
    assert load_form(copy.deepcopy(dumped)).dump() == dumped


def test_validate_rules_use_the_validate_key():
    spec = load_form(form(f("amount", "money", validate=[
        {"expression": "amount > 0", "message": "金额必须大于 0"}])))
    rule = spec.field("amount").validations[0]
    assert (rule.expression, rule.message) == ("amount > 0", "金额必须大于 0")
    assert spec.dump()["fields"][0]["validate"] == [
        {"expression": "amount > 0", "message": "金额必须大于 0"}]


def test_a_minimal_field_of_every_type_loads():
    fields = [
        f("t"), f("ta", "textarea"), f("n", "number", decimals=2, min=0), f("m", "money"),
        f("p", "percent"), f("d", "date"), f("dt", "datetime"), f("b", "boolean"),
        f("s", "select", options=OPTIONS), f("ms", "multiselect", options=OPTIONS),
        f("ph", "phone", accept="mobile"), f("e", "email"), f("idc", "id_card"),
        f("a", "address"), f("u", "user", default_current=True), f("dep", "department"),
        f("r", "relation", target="customer", on_delete="restrict"),
        f("st", "subtable", fields=[f("name", required=True), f("share", "percent")]),
        f("att", "attachment", max_files=3), f("no", "auto_number", pattern="{YYYY}-{000}"),
        f("calc", "formula", expression="n * 2"),
        f("city", "lookup", relation="r", field="city"),
        f("paid", "rollup", source="payment", via="loan", aggregate="sum", field="amount")]
    spec = load_form(form(*fields))
    assert {x.type for x in spec.fields} == set(FIELD_TYPES)


# --- one mistake, one exact problem line ----------------------------------------------

TYPE_ENUM = ", ".join(repr(k) for k in FIELD_TYPES)
BAD_FORMS: list[tuple[str, dict[str, Any], list[str]]] = [
    ("select without options", form(f("s", "select")),
     ["/fields/0: 'options' is a required property"]),
    ("select with no option", form(f("s", "select", options=[])),
     ["/fields/0/options: [] should be non-empty"]),
    ("option value not a key", form(f("s", "select", options=[{"value": "官网", "label": "x"}])),
     ["/fields/0/options/0/value: '官网' does not match '^[a-z0-9][a-z0-9_]{0,62}$'"]),
    ("option value twice", form(f("s", "select", options=[*OPTIONS, OPTIONS[0]])),
     ["'s': option value 'web' appears twice"]),
    ("unknown type", form(f("a", "colour")),
     [f"/fields/0/type: 'colour' is not one of [{TYPE_ENUM}]"]),
    ("unknown key on a field", form(f("a", colour="red")),
     ["/fields/0: Unevaluated properties are not allowed ('colour' was unexpected)"]),
    ("another type's config key", form(f("a", options=OPTIONS)),
     ["/fields/0: Unevaluated properties are not allowed ('options' was unexpected)"]),
    ("key not snake_case", form(f("Amount")),
     ["/fields/0/key: 'Amount' does not match '^[a-z][a-z0-9_]{0,62}$'"]),
    ("missing label", form({"key": "a", "type": "text"}),
     ["/fields/0: 'label' is a required property"]),
    ("unknown top-level key", form(f("a"), colour="red"),
     ["/: Additional properties are not allowed ('colour' was unexpected)"]),
    ("no fields", form(), ["/fields: [] should be non-empty"]),
    ("future format", form(f("a"), format_version=2), ["/format_version: 1 was expected"]),
    ("duplicate field key", form(f("a"), f("b"), f("a", "number")),
     ["field key 'a' appears twice"]),
    ("reserved key id", form(f("id")), ["field key 'id' is reserved for a system field"]),
    ("reserved key created_at", form(f("created_at", "datetime")),
     ["field key 'created_at' is reserved for a system field"]),
    ("layout naming a missing field", form(f("a"), layout=[{"section": "S",
                                                            "fields": ["a", "b"]}]),
     ["layout names 'b', which is not a field of the form"]),
    ("a tab naming a missing field", form(f("a"), layout=[
        {"tab": "T", "sections": [{"section": "S", "fields": ["c"]}]}]),
     ["layout names 'c', which is not a field of the form"]),
    ("layout placing a field twice", form(f("a"), layout=[
        {"section": "S", "fields": ["a"]}, {"section": "U", "fields": ["a"]}]),
     ["layout places 'a' twice"]),
    ("title_field missing", form(f("a"), title_field="name"),
     ["title_field 'name' is not a field of the form"]),
    ("auto_number without a counter", form(f("no", "auto_number", pattern="LN-{YYYYMMDD}")),
     ["auto_number 'no': the pattern needs exactly one counter such as {0000}"]),
    ("auto_number with two counters", form(f("no", "auto_number", pattern="{000}-{000}")),
     ["auto_number 'no': the pattern needs exactly one counter such as {0000}"]),
    ("auto_number with an unknown token", form(f("no", "auto_number", pattern="{XX}-{000}")),
     ["auto_number 'no': unknown token in '{XX}-{000}' (use YYYY, YY, MM, DD, YYYYMM, "
      "YYYYMMDD and one {000…})"]),
    ("formula with an unknown field", form(f("a", "number"), f("c", "formula",
                                                                expression="a + bb")),
     ["'c' formula: 第 5 列: 未知字段 bb / column 5: unknown field bb — in 'a + bb'"]),
    ("formula with a syntax error", form(f("c", "formula", expression="1 +")),
     ["'c' formula: 第 4 列: 语法错误: 表达式不完整 / column 4: syntax error: the expression "
      "is incomplete — in '1 +'"]),
    ("formula cycle a→b→a", form(f("a", "formula", expression="b + 1"),
                                 f("b", "formula", expression="a + 1")),
     ["formulas refer to each other in a cycle: a → b → a"]),
    ("formula referring to itself", form(f("a", "formula", expression="a + 1")),
     ["formulas refer to each other in a cycle: a → a"]),
    ("visible_if that is not a condition", form(f("a", "number"), f("b", visible_if="a + 1")),
     ["'b' visible_if: must be a TRUE/FALSE condition, not number — in 'a + 1'"]),
    ("required_if that is not a condition", form(f("a"), f("b", required_if="a")),
     ["'b' required_if: must be a TRUE/FALSE condition, not text — in 'a'"]),
    ("validate rule that is not a condition", form(f("a", "number", validate=[
        {"expression": "a * 2", "message": "x"}])),
     ["'a' validate: must be a TRUE/FALSE condition, not number — in 'a * 2'"]),
    ("validate rule without a message", form(f("a", "number", validate=[
        {"expression": "a > 0"}])),
     ["/fields/0/validate/0: 'message' is a required property"]),
    ("indexed multiselect", form(f("m", "multiselect", options=OPTIONS, indexed=True)),
     ["'m': a multiselect field cannot be indexed or unique"]),
    ("unique subtable", form(f("s", "subtable", fields=[f("c")], unique=True)),
     ["'s': a subtable field cannot be indexed or unique"]),
    ("indexed relation to many", form(f("r", "relation", target="x", multiple=True,
                                        indexed=True)),
     ["'r': a relation field cannot be indexed or unique"]),
    ("bad default value", form(f("amount", "money", default="abc")),
     ["'amount': default must be a number"]),
    ("default that is not an option", form(f("s", "select", options=OPTIONS, default="tv")),
     ["'s': default 'tv' is not one of the options (web, referral)"]),
    ("default on a computed field", form(f("c", "formula", expression="1", default=2)),
     ["'c': a computed field has no default"]),
    ("subtable with a relation column", form(f("s", "subtable", fields=[
        f("name"), f("who", "relation", target="customer")])),
     ["subtable 's': column 'who' cannot be of type 'relation'"]),
    ("subtable with a column twice", form(f("s", "subtable", fields=[f("c"), f("c")])),
     ["subtable 's': column 'c' appears twice"]),
    ("subtable column with a bad default", form(f("s", "subtable", fields=[
        f("c", "money", default="x")])),
     ["subtable 's': column 'c': default must be a number"]),
    ("subtable column with an option twice", form(f("s", "subtable", fields=[
        f("c", "select", options=[OPTIONS[0], OPTIONS[0]])])),
     ["subtable 's': column 'c': option value 'web' appears twice"]),
    ("subtable column with an unknown key", form(f("s", "subtable", fields=[
        f("c", colour="red")])),
     ["/fields/0/fields/0: Unevaluated properties are not allowed ('colour' was unexpected)"]),
    ("lookup through a non-relation", form(f("a"), f("l", "lookup", relation="a",
                                                      field="city")),
     ["lookup 'l': 'a' is not a relation field of this form"]),
    ("rollup sum without a field", form(f("r", "rollup", source="p", via="loan",
                                         aggregate="sum")),
     ["rollup 'r': aggregate 'sum' needs 'field'"]),
    ("relation without target", form(f("r", "relation")),
     ["/fields/0: 'target' is a required property"]),
]


@pytest.mark.parametrize(("raw", "expected"), [(raw, exp) for _, raw, exp in BAD_FORMS],
                         ids=[name for name, *_ in BAD_FORMS])
def test_a_bad_form_gives_its_exact_problem(raw, expected):
    assert problems_of(raw) == expected


def test_every_structural_and_field_problem_is_reported_at_once():
    raw = form(f("a"), f("a"), f("id"), f("m", "multiselect", options=OPTIONS, indexed=True),
               f("amount", "money", default="abc"),
               title_field="nope", layout=[{"section": "S", "fields": ["ghost"]}])
    assert problems_of(raw) == [
        "field key 'a' appears twice",
        "field key 'id' is reserved for a system field",
        "title_field 'nope' is not a field of the form",
        "layout names 'ghost', which is not a field of the form",
        "'m': a multiselect field cannot be indexed or unique",
        "'amount': default must be a number",
    ]


def test_every_expression_problem_is_reported_at_once():
    raw = form(f("a", "number"), f("c", "formula", expression="a + bb"),
               f("b", visible_if="a + 1"), f("d", required_if="zz = 1"))
    problems = problems_of(raw)
    assert problems[0].startswith("'c' formula: ")
    assert problems[1:] == [
        "'b' visible_if: must be a TRUE/FALSE condition, not number — in 'a + 1'",
        "'d' required_if: 第 1 列: 未知字段 zz / column 1: unknown field zz — in 'zz = 1'"]


def test_the_error_message_summarises_the_first_problems():
    with pytest.raises(SpecError) as caught:
        load_form(form(f("a"), f("a"), f("id")))
    assert str(caught.value) == ("the form definition has 2 problem(s): field key 'a' appears "
                                 "twice; field key 'id' is reserved for a system field")


@pytest.mark.parametrize("raw", [None, [], "form", {"key": "t"}])
def test_what_is_not_a_form_object_is_refused(raw):
    assert problems_of(raw)


def test_formulas_may_use_formulas_in_any_order():
    spec = load_form(form(f("g", "formula", expression="f + 1"),
                          f("f", "formula", expression="n * 2"), f("n", "number")))
    compiled = compile_form(spec)
    assert [x.key for x, _, _ in compiled.formulas] == ["f", "g"]
    assert compiled.kinds["g"] == "number"


def test_a_formula_may_be_indexed_because_its_kind_comes_from_its_expression():
    spec = load_form(form(f("n", "number"), f("c", "formula", expression="n > 1",
                                              indexed=True)))
    assert compile_form(spec).kinds["c"] == "boolean"


def test_labels_in_other_languages_load_and_round_trip():
    raw = form(f("mobile", "phone", labels={"en": "Mobile"}),
               f("kind", "select", options=[{"value": "a", "label": "甲",
                                             "labels": {"en": "A"}}]),
               labels={"en": "Test"},
               layout=[{"section": "基本", "labels": {"en": "Basics"},
                        "fields": ["mobile", "kind"]}])
    spec = load_form(raw)
    assert spec.labels == {"en": "Test"} and spec.field("mobile").labels == {"en": "Mobile"}
    assert spec.layout[0].labels == {"en": "Basics"}
    assert spec.field("kind").config["options"][0]["labels"] == {"en": "A"}
    assert load_form(spec.dump()) == spec


def test_a_label_in_an_unknown_language_is_refused():
    problems = problems_of(form(f("mobile", "phone", labels={"fr": "Portable"})))
    assert any("fr" in p for p in problems), problems
