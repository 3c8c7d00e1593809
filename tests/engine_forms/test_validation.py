"""Record validation: every problem at once, hidden fields, defaults, patches, subtable
rows and computed formulas."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest

from engine_forms.expr import CompiledForm, compile_form, to_storage
from engine_forms.spec import load_form
from engine_forms.validation import RecordInvalid, validate_record
from platform_core.expressions import Env

CHANNELS = [{"value": "web", "label": "官网"}, {"value": "referral", "label": "转介绍"}]
LOAN: dict[str, Any] = {
    "key": "loan", "name": "贷款", "title_field": "case_no",
    "fields": [
        {"key": "case_no", "label": "业务编号", "type": "auto_number",
         "pattern": "LN-{YYYYMMDD}-{0000}"},
        {"key": "customer", "label": "客户", "type": "relation", "target": "customer",
         "required": True},
        {"key": "amount", "label": "贷款金额", "type": "money", "required": True,
         "validate": [{"expression": "amount > 0", "message": "贷款金额必须大于 0"},
                      {"expression": "amount <= 10000000", "message": "单笔不超过一千万"}]},
        {"key": "rate", "label": "年利率", "type": "percent", "default": 4.35},
        {"key": "interest", "label": "利息", "type": "formula",
         "expression": "amount * 0.035"},
        {"key": "size", "label": "规模", "type": "formula",
         "expression": 'IF(amount >= 1000000, "大额", "普通")'},
        {"key": "channel", "label": "来源渠道", "type": "select", "options": CHANNELS,
         "default": "web"},
        {"key": "referrer", "label": "介绍人", "type": "text",
         "required_if": 'channel = "referral"'},
        {"key": "signed", "label": "签约日", "type": "date"},
        {"key": "days", "label": "已签天数", "type": "formula",
         "expression": "DAYS_BETWEEN(signed, TODAY())"},
        {"key": "has_collateral", "label": "有抵押物", "type": "boolean", "default": False},
        {"key": "collateral_value", "label": "抵押物估值", "type": "money", "required": True,
         "visible_if": "has_collateral = TRUE"},
        {"key": "cover", "label": "抵押倍数", "type": "formula",
         "expression": "collateral_value * 2"},
        {"key": "borrowers", "label": "共同借款人", "type": "subtable", "max_rows": 3,
         "fields": [
             {"key": "name", "label": "姓名", "type": "text", "required": True},
             {"key": "mobile", "label": "手机", "type": "phone"},
             {"key": "share", "label": "份额", "type": "percent", "max": 100}]},
        {"key": "borrower_count", "label": "借款人数", "type": "formula",
         "expression": "COUNT(borrowers)"},
        {"key": "share_total", "label": "份额合计", "type": "formula",
         "expression": "SUM(borrowers.share)"},
    ]}
# 2024-02-29 16:30 UTC is already 1 March in China, where TODAY() is read
ENV = Env(clock=lambda: datetime(2024, 2, 29, 16, 30, tzinfo=UTC))
VALID = {"customer": 7, "amount": "1234.56"}


@pytest.fixture(scope="module")
def loan() -> CompiledForm:
    return compile_form(load_form(LOAN))


def check(compiled: CompiledForm, payload: dict[str, Any],
          old: dict[str, Any] | None = None) -> dict[str, Any]:
    return validate_record(compiled, payload, old=old, env=ENV)


def errors_of(compiled: CompiledForm, payload: dict[str, Any],
              old: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    with pytest.raises(RecordInvalid) as caught:
        check(compiled, payload, old)
    assert caught.value.code == "invalid_record" and caught.value.status == 422
    assert caught.value.extra["errors"] == [p.as_dict() for p in caught.value.problems]
    return caught.value.extra["errors"]


def codes(errors: list[dict[str, Any]]) -> list[tuple[str, str]]:
    return [(e["field"], e["code"]) for e in errors]


# --- every problem at once -------------------------------------------------------------

def test_every_problem_is_returned_at_once(loan):
    payload = {"zzz": 1, "bogus": "x", "case_no": "LN-1", "interest": "9.99",
               "signed": "2024-02-30", "amount": "-5", "channel": "referral"}
    with pytest.raises(RecordInvalid) as caught:
        check(loan, payload)
    assert caught.value.extra["errors"] == [
        {"field": "bogus", "code": "unknown_field", "message": "未知字段 bogus",
         "message_en": "bogus: unknown field of form loan"},
        {"field": "zzz", "code": "unknown_field", "message": "未知字段 zzz",
         "message_en": "zzz: unknown field of form loan"},
        {"field": "case_no", "code": "computed", "message": "业务编号: 由系统计算, 不能填写",
         "message_en": "case_no: is computed by the system and cannot be set"},
        {"field": "interest", "code": "computed", "message": "利息: 由系统计算, 不能填写",
         "message_en": "interest: is computed by the system and cannot be set"},
        {"field": "signed", "code": "format",
         "message": "签约日: 不是有效日期 (如 2024-02-29)",
         "message_en": "signed: is not a valid date (e.g. 2024-02-29)"},
        {"field": "customer", "code": "required", "message": "客户: 必填",
         "message_en": "customer: is required"},
        {"field": "referrer", "code": "required", "message": "介绍人: 必填",
         "message_en": "referrer: is required"},
        {"field": "amount", "code": "validate", "message": "贷款金额: 贷款金额必须大于 0",
         "message_en": "amount: 贷款金额必须大于 0"},
    ]
    assert str(caught.value) == ("8 field(s) are not valid; first: bogus: unknown field of "
                                 "form loan")


def test_a_value_that_does_not_coerce_is_not_also_reported_missing(loan):
    errors = errors_of(loan, {"customer": 7, "amount": "一百万"})
    assert errors == [{"field": "amount", "code": "type", "message": "贷款金额: 应为数字",
                       "message_en": "amount: must be a number"}]


def test_validate_rules_run_in_order_and_only_on_good_values(loan):
    assert codes(errors_of(loan, {**VALID, "amount": "20000000"})) == [("amount", "validate")]
    assert errors_of(loan, {**VALID, "amount": "20000000"})[0]["message"] == (
        "贷款金额: 单笔不超过一千万")
    assert codes(errors_of(loan, {**VALID, "amount": "1.234"})) == [("amount", "decimals")]


def test_required_if_follows_its_condition(loan):
    assert "referrer" not in check(loan, {**VALID, "channel": "web"})
    assert codes(errors_of(loan, {**VALID, "channel": "转介绍"})) == [("referrer", "required")]
    assert check(loan, {**VALID, "channel": "referral", "referrer": "王五"})["referrer"] == "王五"


def test_blank_values_are_missing(loan):
    for blank in (None, ""):
        assert ("customer", "required") in codes(errors_of(loan, {**VALID, "customer": blank}))


# --- hidden fields ---------------------------------------------------------------------

def test_a_hidden_field_is_cleared_and_not_required(loan):
    data = check(loan, {**VALID, "has_collateral": False, "collateral_value": "500000"})
    assert "collateral_value" not in data
    assert data["cover"] == "0.00"  # computed from the cleared value, not from 500000


def test_a_visible_field_keeps_its_value_and_is_required(loan):
    data = check(loan, {**VALID, "has_collateral": True, "collateral_value": "500000"})
    assert data["collateral_value"] == "500000.00" and data["cover"] == "1000000.00"
    errors = errors_of(loan, {**VALID, "has_collateral": True})
    assert codes(errors) == [("collateral_value", "required")]


def test_hiding_a_field_in_a_patch_clears_it(loan):
    old = check(loan, {**VALID, "has_collateral": True, "collateral_value": "500000"})
    new = check(loan, {"has_collateral": False}, old=old)
    assert "collateral_value" not in new and new["cover"] == "0.00"


def test_a_field_hidden_by_a_formula_is_cleared():
    compiled = compile_form(load_form({"key": "t", "name": "T", "fields": [
        {"key": "amount", "label": "金额", "type": "money"},
        {"key": "big", "label": "大额", "type": "formula", "expression": "amount >= 100"},
        {"key": "approver", "label": "审批人", "type": "user", "visible_if": "big"}]}))
    assert validate_record(compiled, {"amount": "100", "approver": 3})["approver"] == 3
    assert "approver" not in validate_record(compiled, {"amount": "99.99", "approver": 3})


# --- defaults and patches --------------------------------------------------------------

def test_defaults_fill_what_a_create_leaves_out(loan):
    data = check(loan, VALID)
    assert (data["rate"], data["channel"], data["has_collateral"]) == (4.35, "web", False)
    given = check(loan, {**VALID, "rate": "3.1", "channel": "转介绍", "referrer": "王五",
                         "has_collateral": True, "collateral_value": "1"})
    assert (given["rate"], given["channel"], given["has_collateral"]) == (3.1, "referral", True)


def test_an_explicit_blank_on_create_gets_no_default(loan):
    assert "rate" not in check(loan, {**VALID, "rate": None})


def test_a_patch_keeps_the_old_data_and_applies_no_defaults(loan):
    old = {"case_no": "LN-20240229-0001", "customer": 7, "amount": "1234.56",
           "signed": "2024-02-01", "borrowers": [{"name": "张三"}]}
    new = check(loan, {"amount": "2000000"}, old=old)
    assert new == {"case_no": "LN-20240229-0001", "customer": 7, "amount": "2000000.00",
                   "signed": "2024-02-01", "borrowers": [{"name": "张三"}],
                   "interest": "70000.00", "size": "大额", "days": 29, "cover": "0.00",
                   "borrower_count": 1, "share_total": 0}
    assert "rate" not in new and "channel" not in new
    assert old["amount"] == "1234.56"  # the caller's data is not changed


def test_a_patch_may_clear_a_field_but_not_a_required_one(loan):
    old = check(loan, {**VALID, "signed": "2024-02-01"})
    assert "signed" not in check(loan, {"signed": None}, old=old)
    assert "days" not in check(loan, {"signed": ""}, old=old)
    assert codes(errors_of(loan, {"amount": None}, old=old)) == [("amount", "required")]


def test_a_patch_still_refuses_computed_keys(loan):
    old = check(loan, VALID)
    assert codes(errors_of(loan, {"size": "小"}, old=old)) == [("size", "computed")]


# --- subtable rows ---------------------------------------------------------------------

def test_subtable_rows_are_coerced_column_by_column(loan):
    data = check(loan, {**VALID, "borrowers": [
        {"name": "张三", "mobile": "+86 138 0000 1234", "share": "60"},
        {"name": "李四", "share": 40, "mobile": None}]})
    assert data["borrowers"] == [{"name": "张三", "mobile": "13800001234", "share": 60},
                                 {"name": "李四", "share": 40}]
    assert (data["borrower_count"], data["share_total"]) == (2, 100)


def test_subtable_row_errors_carry_row_and_column(loan):
    errors = errors_of(loan, {**VALID, "borrowers": [
        {"name": "张三", "mobile": "12345"},
        {"share": 120, "age": 30}]})
    assert errors == [
        {"field": "borrowers", "code": "format",
         "message": "共同借款人 第 1 行: 手机不是有效的手机号或固定电话",
         "message_en": "borrowers row 1: mobile is not a valid mobile or landline number",
         "row": 0, "column": "mobile"},
        {"field": "borrowers", "code": "unknown_field", "message": "共同借款人 第 2 行: 未知列 age",
         "message_en": "borrowers row 2: unknown column age", "row": 1, "column": "age"},
        {"field": "borrowers", "code": "required", "message": "共同借款人 第 2 行: 姓名 必填",
         "message_en": "borrowers row 2: name is required", "row": 1, "column": "name"},
        {"field": "borrowers", "code": "max", "message": "共同借款人 第 2 行: 份额不能大于 100",
         "message_en": "borrowers row 2: share must be at most 100", "row": 1,
         "column": "share"},
    ]


def test_a_subtable_that_is_not_rows_or_too_long_is_one_problem(loan):
    assert errors_of(loan, {**VALID, "borrowers": {"name": "张三"}}) == [
        {"field": "borrowers", "code": "type", "message": "共同借款人: 应为行的列表",
         "message_en": "borrowers: must be a list of rows"}]
    four = [{"name": str(i)} for i in range(4)]
    assert codes(errors_of(loan, {**VALID, "borrowers": four})) == [
        ("borrowers", "too_many_rows")]


def test_the_first_problem_of_a_row_is_summarised_once(loan):
    with pytest.raises(RecordInvalid) as caught:
        check(loan, {**VALID, "borrowers": [{}]})
    assert str(caught.value) == ("1 field(s) are not valid; first: borrowers row 1: name is "
                                 "required")


# --- formulas --------------------------------------------------------------------------

def test_money_formulas_stay_exact(loan):
    data = check(loan, {**VALID, "amount": "1234.56"})
    assert data["interest"] == "43.21"  # 43.2096, rounded half up to the fen
    assert check(loan, {**VALID, "amount": "0.10"})["interest"] == "0.00"  # 0.0035
    assert check(loan, {**VALID, "amount": "1"})["interest"] == "0.04"  # 0.035 → half up
    assert check(loan, {**VALID, "amount": 0.3})["interest"] == "0.01"  # 0.0105


def test_a_money_formula_that_rounds_to_zero_is_zero_not_minus_zero():
    """-1.00 × 0.001 is -0.001: 0.00 to the fen, not "-0.00" (which reads as a loss)."""
    compiled = compile_form(load_form({"key": "t", "name": "T", "fields": [
        {"key": "fee", "label": "费用", "type": "formula", "expression": "net * 0.001"},
        {"key": "net", "label": "净额", "type": "money"}]}))
    assert validate_record(compiled, {"net": "-1.00"})["fee"] == "0.00"
    assert validate_record(compiled, {"net": "-10.00"})["fee"] == "-0.01"


def test_formulas_use_functions_and_the_clock_of_the_env(loan):
    data = check(loan, {**VALID, "amount": "1000000", "signed": "2024-02-01"})
    assert data["size"] == "大额" and data["days"] == 29  # TODAY() is 2024-03-01 in China
    assert check(loan, {**VALID, "amount": "999999.99"})["size"] == "普通"


def test_formulas_see_other_formulas_in_dependency_order():
    compiled = compile_form(load_form({"key": "t", "name": "T", "fields": [
        {"key": "total", "label": "合计", "type": "formula", "expression": "net + tax"},
        {"key": "tax", "label": "税", "type": "formula", "expression": "ROUND(net * 0.06, 2)"},
        {"key": "net", "label": "净额", "type": "money"}]}))
    data = validate_record(compiled, {"net": "100.05"})
    assert data == {"net": "100.05", "tax": "6.00", "total": "106.05"}


def test_the_stored_data_drops_blanks_but_keeps_false_and_zero(loan):
    data = check(loan, {**VALID, "has_collateral": False, "signed": None, "referrer": "",
                        "borrowers": []})
    assert data["has_collateral"] is False and data["share_total"] == 0
    assert not {"signed", "referrer", "borrowers", "days"} & set(data)


@pytest.mark.parametrize(("value", "kind", "stored"), [
    (None, "money", None),
    (Decimal("43.2096"), "money", "43.21"),
    (Decimal("1") / 3, "number", 0.3333333333),
    (Decimal("1e40"), "money", None),  # too large to store: blank
    ("", "text", None),
])
def test_formula_results_are_stored_in_their_kind(value, kind, stored):
    assert to_storage(value, kind) == stored


def test_the_loan_case_form_validates_a_record(loan_case_raw):
    compiled = compile_form(load_form(loan_case_raw))
    data = validate_record(compiled, {"customer": "3", "amount": "2000000",
                                      "channel": "官网", "id_no": "11010519491231002x",
                                      "has_collateral": False, "collateral_value": "1"})
    assert data == {"customer": 3, "amount": "2000000.00", "channel": "web",
                    "id_no": "11010519491231002X", "has_collateral": False, "size": "大额"}
    assert codes(errors_of(compiled, {"amount": "1"})) == [("customer", "required")]
