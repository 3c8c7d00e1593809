"""Field types: API coercion, spreadsheet text, display and masking — and a contract test
over every registry entry."""

from __future__ import annotations

import math
from datetime import UTC, date, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

import pytest
from jsonschema import Draft202012Validator

from engine_forms.expr import compile_form
from engine_forms.fieldtypes import FIELD_TYPES, FieldError
from engine_forms.fieldtypes.computed import period_of, render_number
from engine_forms.fieldtypes.identity import id_check_char, valid_id_card
from engine_forms.spec import FieldSpec, load_form, meta_schema
from engine_forms.validation import validate_record
from platform_core.store import SYSTEM, FieldSet, Query, create_records, query_records
from platform_core.store.kinds import KINDS

BUILTIN_KEYS = {
    "text", "textarea", "number", "money", "percent", "date", "datetime", "boolean",
    "select", "multiselect", "phone", "email", "id_card", "address", "user", "department",
    "relation", "subtable", "attachment", "auto_number", "formula", "lookup", "rollup"}
OPTIONS = [{"value": "web", "label": "官网"}, {"value": "referral", "label": "转介绍"},
           {"value": "ad", "label": "广告"}]
# The least config each type needs to be a valid field definition.
MINIMAL: dict[str, dict[str, Any]] = {
    "select": {"options": OPTIONS}, "multiselect": {"options": OPTIONS},
    "relation": {"target": "customer"},
    "subtable": {"fields": [{"key": "name", "label": "姓名", "type": "text"}]},
    "auto_number": {"pattern": "LN-{YYYYMMDD}-{0000}"},
    "formula": {"expression": "1 + 1"},
    "lookup": {"relation": "customer", "field": "city"},
    "rollup": {"source": "payment", "via": "loan", "aggregate": "count"},
}
COMPUTED = {"auto_number", "formula", "lookup", "rollup"}
NO_KIND = {"multiselect", "address", "subtable", "attachment", "lookup", "rollup", "formula"}


def id_card(first17: str) -> str:
    """A valid ID number: the 17 digits plus their check character."""
    return first17 + id_check_char(first17)


ID_X = id_card("11010519491231002")  # the standard's own example; its check is X
ID_1234 = id_card("11010119900106123")  # ends in …1234
ID_LOWER_X = id_card("11010119900119001").lower()


def field(type_: str, **config: Any) -> FieldSpec:
    return FieldSpec.model_validate(
        {"key": "f", "label": "字段", "type": type_, **MINIMAL.get(type_, {}), **config})


def coerce(type_: str, value: Any, **config: Any) -> Any:
    return FIELD_TYPES.get(type_).coerce(value, field(type_, **config))


def from_text(type_: str, text: str, **config: Any) -> Any:
    return FIELD_TYPES.get(type_).from_text(text, field(type_, **config))


# --- the contract of every registry entry ---------------------------------------------

def test_the_registry_has_the_23_builtin_types(field_types):
    assert field_types is FIELD_TYPES
    assert set(field_types) == BUILTIN_KEYS and len(BUILTIN_KEYS) == 23


@pytest.mark.parametrize("key", sorted(BUILTIN_KEYS))
def test_every_type_keeps_the_contract(key):
    ftype = FIELD_TYPES.get(key)
    assert ftype.key == key
    assert ftype.label and any("\u4e00" <= ch <= "\u9fff" for ch in ftype.label)
    Draft202012Validator.check_schema({"type": "object", "properties": ftype.config_schema})
    assert set(ftype.config_required) <= set(ftype.config_schema)
    spec = field(key)
    form = {"key": "t", "name": "T", "fields": [spec.model_dump(by_alias=True,
                                                                exclude_defaults=True)]}
    assert list(Draft202012Validator(meta_schema()).iter_errors(form)) == []
    kind = ftype.value_kind(spec)
    assert kind is None if key in NO_KIND else kind in KINDS
    Draft202012Validator.check_schema(ftype.value_schema(spec))
    assert ftype.computed == (key in COMPUTED)
    assert isinstance(ftype.format(None, spec), str)


def test_a_relation_to_many_records_has_no_value_kind():
    relation = FIELD_TYPES.get("relation")
    assert relation.value_kind(field("relation")) == "number"
    assert relation.value_kind(field("relation", multiple=True)) is None


# --- valid API values ------------------------------------------------------------------

VALID: list[tuple[str, dict[str, Any], Any, Any]] = [
    ("text", {}, "  张三 ", "  张三 "),
    ("text", {}, 42, "42"),
    ("text", {"max_length": 2}, "张三", "张三"),
    ("textarea", {}, "第一行\n第二行", "第一行\n第二行"),
    ("textarea", {}, "字" * 10000, "字" * 10000),
    ("number", {}, 3, 3),
    ("number", {}, -1.5, -1.5),
    ("number", {}, "1,234.5", 1234.5),
    ("number", {}, "2.0", 2),
    ("number", {}, "1e3", 1000),
    ("number", {"decimals": 1}, "2.50", 2.5),
    ("number", {"decimals": 0}, "100", 100),
    ("number", {"min": 0, "max": 10}, 10, 10),
    ("money", {}, "1234.56", "1234.56"),
    ("money", {}, "1234.5", "1234.50"),
    ("money", {}, 1234.5, "1234.50"),
    ("money", {}, 1000000, "1000000.00"),
    ("money", {}, "1.000", "1.00"),
    ("money", {}, "-0", "0.00"),
    ("money", {}, "-12.30", "-12.30"),
    ("money", {}, "1,000,000.00", "1000000.00"),
    ("money", {"min": 0}, "0.00", "0.00"),
    ("percent", {}, 4.35, 4.35),
    ("percent", {}, "4.35", 4.35),
    ("percent", {"max": 100}, 100, 100),
    ("date", {}, "2024-02-29", "2024-02-29"),
    ("date", {}, "2024年2月29日", "2024-02-29"),
    ("date", {}, "2024/2/9", "2024-02-09"),
    ("date", {}, "2024.02.29", "2024-02-29"),
    ("date", {}, date(2024, 2, 29), "2024-02-29"),
    ("date", {}, datetime(2024, 2, 29, 23, 59), "2024-02-29"),
    ("date", {"min": "2024-01-01", "max": "2024-12-31"}, "2024-12-31", "2024-12-31"),
    ("datetime", {}, "2024-02-29T09:30:00+08:00", "2024-02-29T01:30:00Z"),
    ("datetime", {}, "2024-02-29T01:30:00Z", "2024-02-29T01:30:00Z"),
    ("datetime", {}, "2024-02-29 09:30", "2024-02-29T01:30:00Z"),  # naive = China time
    ("datetime", {}, "2024/02/29 09:30:15", "2024-02-29T01:30:15Z"),
    ("datetime", {}, "2024-03-01T00:30:00+08:00", "2024-02-29T16:30:00Z"),
    ("datetime", {}, datetime(2024, 2, 29, 1, 30, tzinfo=UTC), "2024-02-29T01:30:00Z"),
    ("datetime", {}, datetime(2024, 2, 28, 20, 30, tzinfo=timezone(timedelta(hours=-5))),
     "2024-02-29T01:30:00Z"),
    ("boolean", {}, True, True),
    ("boolean", {}, False, False),
    ("select", {}, "web", "web"),
    ("select", {}, "转介绍", "referral"),  # by label, stored as the stable value
    ("select", {}, " 官网 ", "web"),
    ("multiselect", {}, ["ad", "web"], ["web", "ad"]),  # option order
    ("multiselect", {}, ["官网", "web", "广告"], ["web", "ad"]),  # no duplicates
    ("multiselect", {}, [], []),
    ("phone", {}, "13800001234", "13800001234"),
    ("phone", {}, "+86 138 0000 1234", "13800001234"),
    ("phone", {}, "0086 13800001234", "13800001234"),
    ("phone", {}, "138-0000-1234", "13800001234"),
    ("phone", {}, 13800001234, "13800001234"),
    ("phone", {}, "010-12345678", "010-12345678"),
    ("phone", {}, "(0755) 8765 4321", "075587654321"),
    ("phone", {}, "010-12345678-123", "010-12345678-123"),
    ("phone", {"accept": "mobile"}, "19912345678", "19912345678"),
    ("phone", {"accept": "landline"}, "02112345678", "02112345678"),
    ("email", {}, " Zhang.San@Example.COM ", "zhang.san@example.com"),
    ("id_card", {}, ID_X, ID_X),
    ("id_card", {}, ID_X.lower(), ID_X),
    ("id_card", {}, f" {ID_1234} ", ID_1234),
    ("id_card", {}, ID_LOWER_X, ID_LOWER_X.upper()),
    ("id_card", {}, id_card("11010120000229123"), id_card("11010120000229123")),  # leap
    ("address", {}, {"province": "北京市", "city": "北京市", "district": "海淀区",
                     "detail": " 中关村大街 1 号 "},
     {"province": "北京市", "city": "北京市", "district": "海淀区",
      "detail": "中关村大街 1 号"}),
    ("address", {}, {"province": "广东省", "city": "", "detail": None, "district": "  "},
     {"province": "广东省"}),
    ("user", {}, 7, 7),
    ("user", {}, "7", 7),
    ("department", {}, 3, 3),
    ("relation", {}, 12, 12),
    ("relation", {}, "12", 12),
    ("relation", {}, {"id": 12, "title": "LN-1"}, 12),
    ("relation", {"multiple": True}, [3, "1", {"id": 3}], [3, 1]),
    ("relation", {"multiple": True}, 5, [5]),
    ("subtable", {}, [{"name": "张三"}, {}], [{"name": "张三"}, {}]),
    ("subtable", {"max_rows": 2}, [{}, {}], [{}, {}]),
    ("attachment", {}, [4, 5, 4], [4, 5]),
    ("attachment", {}, 4, [4]),
    ("attachment", {"max_files": 2}, [1, 2], [1, 2]),
]


@pytest.mark.parametrize(("type_", "config", "value", "stored"), VALID)
def test_valid_api_values_are_stored_canonically(type_, config, value, stored):
    out = coerce(type_, value, **config)
    assert out == stored and type(out) is type(stored)


@pytest.mark.parametrize(("type_", "config", "value", "stored"), VALID)
def test_a_stored_value_round_trips_and_fits_its_schemas(type_, config, value, stored):
    """Re-sending a stored value stores it unchanged; it satisfies the type's value
    schema and, when the type has a value kind, the store accepts it as it is."""
    spec = field(type_, **config)
    ftype = FIELD_TYPES.get(type_)
    assert ftype.coerce(stored, spec) == stored
    Draft202012Validator(ftype.value_schema(spec)).validate(stored)
    kind = ftype.value_kind(spec)
    if kind is not None:
        assert KINDS.get(kind).to_storage(stored) == stored
    assert isinstance(ftype.format(stored, spec), str)
    assert isinstance(ftype.mask(stored, spec), str)


# --- refused API values: stable code, Chinese and English message --------------------

NOT_A_NUMBER = ("type", "应为数字", "must be a number")
BAD_DATE = ("format", "不是有效日期 (如 2024-02-29)", "is not a valid date (e.g. 2024-02-29)")
BAD_ID = ("format", "不是有效的 18 位身份证号 (校验位或出生日期不对)",
          "is not a valid 18-digit ID number (check digit or birth date)")
BAD_PHONE = ("format", "不是有效的手机号或固定电话", "is not a valid mobile or landline number")
NOT_AN_ID = ("type", "应为记录编号", "must be a record id")
OPTION_LIST = "官网、转介绍、广告"

INVALID: list[tuple[str, dict[str, Any], Any, tuple[str, str, str]]] = [
    ("text", {}, ["a"], ("type", "应为文本", "must be text")),
    ("text", {}, True, ("type", "应为文本", "must be text")),
    ("text", {}, "字" * 201, ("too_long", "不能超过 200 个字符", "must be at most 200 characters")),
    ("text", {"max_length": 2}, "张三丰",
     ("too_long", "不能超过 2 个字符", "must be at most 2 characters")),
    ("textarea", {}, "字" * 10001,
     ("too_long", "不能超过 10000 个字符", "must be at most 10000 characters")),
    ("number", {}, True, NOT_A_NUMBER),  # a bool is not a number, though Python says so
    ("number", {}, False, NOT_A_NUMBER),
    ("number", {}, "abc", NOT_A_NUMBER),
    ("number", {}, "", NOT_A_NUMBER),
    ("number", {}, float("nan"), NOT_A_NUMBER),
    ("number", {}, float("inf"), NOT_A_NUMBER),
    ("number", {}, "-Infinity", NOT_A_NUMBER),
    ("number", {}, "NaN", NOT_A_NUMBER),
    ("number", {}, [1], NOT_A_NUMBER),
    ("number", {}, None, NOT_A_NUMBER),
    ("number", {"min": 0}, -1, ("min", "不能小于 0", "must be at least 0")),
    ("number", {"max": 10}, 10.5, ("max", "不能大于 10", "must be at most 10")),
    ("number", {"decimals": 1}, "2.55", ("decimals", "最多 1 位小数", "at most 1 decimals")),
    ("money", {}, "1.005", ("decimals", "金额最多 2 位小数", "an amount has at most 2 decimals")),
    ("money", {}, 0.1 + 0.2, ("decimals", "金额最多 2 位小数", "an amount has at most 2 decimals")),
    ("money", {}, True, NOT_A_NUMBER),
    ("money", {}, float("nan"), NOT_A_NUMBER),
    ("money", {}, "Infinity", NOT_A_NUMBER),
    ("money", {}, "¥12", NOT_A_NUMBER),  # the currency sign is for spreadsheets only
    ("money", {}, "1e30", ("too_large", "金额过大", "the amount is too large")),
    ("money", {"min": 0}, "-0.01", ("min", "不能小于 0", "must be at least 0")),
    ("money", {"max": 1000000}, "1000000.01",
     ("max", "不能大于 1000000", "must be at most 1000000")),
    ("percent", {}, True, NOT_A_NUMBER),
    ("percent", {}, "4.35%", NOT_A_NUMBER),  # the % sign is for spreadsheets only
    ("percent", {"min": 0, "max": 100}, 100.01, ("max", "不能大于 100", "must be at most 100")),
    ("date", {}, "2023-02-29", BAD_DATE),  # not a leap year
    ("date", {}, "2024-02-30", BAD_DATE),
    ("date", {}, "2024年2月30日", BAD_DATE),
    ("date", {}, "2024-13-01", BAD_DATE),
    ("date", {}, "昨天", BAD_DATE),
    ("date", {}, 20240229, ("type", "应为日期", "must be a date")),
    ("date", {"min": "2024-01-01"}, "2023-12-31",
     ("min", "不能早于 2024-01-01", "must be on or after 2024-01-01")),
    ("date", {"max": "2024-12-31"}, "2025-01-01",
     ("max", "不能晚于 2024-12-31", "must be on or before 2024-12-31")),
    ("datetime", {}, "2024-02-30T09:00:00",
     ("format", "不是有效的日期时间 (如 2024-02-29T09:30:00+08:00)",
      "is not a valid date-time (e.g. 2024-02-29T09:30:00+08:00)")),
    ("datetime", {}, 1709170200, ("type", "应为日期时间", "must be a date-time")),
    ("datetime", {}, date(2024, 2, 29), ("type", "应为日期时间", "must be a date-time")),
    ("datetime", {}, "0001-01-01T00:00:00",  # before year 1 once moved to UTC
     ("range", "日期时间超出范围 (1000–9999 年)", "is out of range (years 1000–9999)")),
    ("datetime", {}, "9999-12-31T23:00:00-08:00",
     ("range", "日期时间超出范围 (1000–9999 年)", "is out of range (years 1000–9999)")),
    ("datetime", {}, "0999-06-01T00:00:00Z",
     ("range", "日期时间超出范围 (1000–9999 年)", "is out of range (years 1000–9999)")),
    ("boolean", {}, "true", ("type", "应为 是/否 (true/false)", "must be true or false")),
    ("boolean", {}, 1, ("type", "应为 是/否 (true/false)", "must be true or false")),
    ("select", {}, "tv", ("option", f"不是可选项 'tv' (可选: {OPTION_LIST})",
                          "'tv' is not one of the options (web, referral, ad)")),
    ("select", {}, ["web"], ("option", f"不是可选项 ['web'] (可选: {OPTION_LIST})",
                             "['web'] is not one of the options (web, referral, ad)")),
    ("select", {}, {"value": "web"},
     ("option", f"不是可选项 {{'value': 'web'}} (可选: {OPTION_LIST})",
      "{'value': 'web'} is not one of the options (web, referral, ad)")),
    ("multiselect", {}, "web", ("type", "应为选项列表", "must be a list of options")),
    ("multiselect", {}, ["web", "tv"], ("option", f"不是可选项 'tv' (可选: {OPTION_LIST})",
                                        "'tv' is not one of the options (web, referral, ad)")),
    ("multiselect", {}, [["web"]], ("option", f"不是可选项 ['web'] (可选: {OPTION_LIST})",
                                    "['web'] is not one of the options (web, referral, ad)")),
    ("phone", {}, "12345678901", BAD_PHONE),
    ("phone", {}, "1380000123", BAD_PHONE),
    ("phone", {}, "+1 415 555 0100", BAD_PHONE),
    ("phone", {}, True, ("type", "应为电话号码", "must be a phone number")),
    ("phone", {}, 13800001234.0, ("type", "应为电话号码", "must be a phone number")),
    ("phone", {"accept": "mobile"}, "010-12345678",
     ("format", "不是有效的手机号", "is not a valid mobile number")),
    ("phone", {"accept": "landline"}, "13800001234",
     ("format", "不是有效的固定电话", "is not a valid landline number")),
    ("email", {}, "zhangsan", ("format", "不是有效的邮箱地址", "is not a valid e-mail address")),
    ("email", {}, "a@b", ("format", "不是有效的邮箱地址", "is not a valid e-mail address")),
    ("email", {}, "a b@c.cn", ("format", "不是有效的邮箱地址", "is not a valid e-mail address")),
    ("email", {}, "x" * 250 + "@a.cn",
     ("format", "不是有效的邮箱地址", "is not a valid e-mail address")),
    ("id_card", {}, ID_X[:17] + "0", BAD_ID),  # wrong check character
    ("id_card", {}, ID_1234[:17] + "X", BAD_ID),
    ("id_card", {}, id_card("11010120230229123"), BAD_ID),  # 2023-02-29 does not exist
    ("id_card", {}, id_card("11010120240230123"), BAD_ID),  # nor does any Feb 30
    ("id_card", {}, id_card("11010118991231123"), BAD_ID),  # born before 1900
    ("id_card", {}, ID_X[:17], BAD_ID),
    ("id_card", {}, "110105194912310", BAD_ID),  # the old 15-digit number
    ("id_card", {}, "１１０１０５１９４９１２３１００２X", BAD_ID),  # full-width digits
    ("id_card", {}, "11010519491231002²", BAD_ID),
    ("id_card", {}, 110105194912310021, ("type", "应为身份证号 (文本)",
                                         "must be an ID number (text)")),
    ("address", {}, "北京市 海淀区", ("type", "应为地址对象 (province/city/district/detail)",
                                  "must be an address object (province/city/district/detail)")),
    ("address", {}, {"street": "x"}, ("unknown_part", "未知的地址部分 street",
                                      "unknown address part street")),
    ("address", {}, {"city": 5}, ("type", "city 应为不超过 200 字的文本",
                                  "city must be text of at most 200 characters")),
    ("user", {}, 0, ("type", "应为成员编号", "must be a user id")),
    ("user", {}, True, ("type", "应为成员编号", "must be a user id")),
    ("user", {}, "张三", ("type", "应为成员编号", "must be a user id")),
    ("user", {}, "²", ("type", "应为成员编号", "must be a user id")),
    ("user", {}, 1.5, ("type", "应为成员编号", "must be a user id")),
    ("department", {}, -3, ("type", "应为部门编号", "must be a department id")),
    ("relation", {}, [1, 2], ("type", "只能关联一条记录", "links to one record only")),
    ("relation", {}, True, NOT_AN_ID),
    ("relation", {}, "²", NOT_AN_ID),
    ("relation", {}, {"title": "LN-1"}, NOT_AN_ID),
    ("relation", {"multiple": True}, [1, 0], NOT_AN_ID),
    ("subtable", {}, {"name": "张三"}, ("type", "应为行的列表", "must be a list of rows")),
    ("subtable", {}, ["张三"], ("type", "应为行的列表", "must be a list of rows")),
    ("subtable", {"max_rows": 2}, [{}, {}, {}], ("too_many_rows", "最多 2 行", "at most 2 rows")),
    ("attachment", {}, ["a.pdf"], NOT_AN_ID),
    ("attachment", {"max_files": 2}, [1, 2, 3],
     ("too_many_files", "最多 2 个文件", "at most 2 files")),
    ("auto_number", {}, "LN-20240229-0001",
     ("computed", "自动编号由系统生成, 不能填写", "is numbered automatically; it cannot be set")),
    ("formula", {}, 2, ("computed", "公式字段由系统计算, 不能填写",
                        "is computed; it cannot be set")),
    ("lookup", {}, "北京", ("computed", "引用字段由系统计算, 不能填写",
                          "is computed; it cannot be set")),
    ("rollup", {}, 3, ("computed", "引用字段由系统计算, 不能填写",
                       "is computed; it cannot be set")),
]


@pytest.mark.parametrize(("type_", "config", "value", "error"), INVALID)
def test_refused_api_values_say_why_in_both_languages(type_, config, value, error):
    with pytest.raises(FieldError) as caught:
        coerce(type_, value, **config)
    assert (caught.value.code, caught.value.zh, caught.value.en) == error
    assert str(caught.value) == error[2]


def test_every_type_refuses_something_and_accepts_something():
    assert {t for t, *_ in INVALID} == BUILTIN_KEYS
    assert {t for t, *_ in VALID} | COMPUTED == BUILTIN_KEYS


# --- spreadsheet text ------------------------------------------------------------------

FROM_TEXT: list[tuple[str, dict[str, Any], str, Any]] = [
    ("text", {}, "  张三 ", "张三"),
    ("textarea", {}, " 第一行\n第二行 ", " 第一行\n第二行 "),  # kept as typed
    ("number", {}, "1,234.5", 1234.5),
    ("number", {}, " 42 ", 42),
    ("money", {}, "¥1,234.50", "1234.50"),
    ("money", {}, "￥ 1,000", "1000.00"),
    ("money", {}, "-12.3", "-12.30"),
    ("percent", {}, "4.35%", 4.35),
    ("percent", {}, "4.35 %", 4.35),
    ("percent", {}, "4.35％", 4.35),
    ("percent", {}, "12", 12),
    ("date", {}, "2024年2月29日", "2024-02-29"),
    ("date", {}, "2024 年 2 月 9 日", "2024-02-09"),
    ("date", {}, "45351", "2024-02-29"),  # a spreadsheet serial day number
    ("date", {}, "45351.0", "2024-02-29"),
    ("date", {}, "45352", "2024-03-01"),
    ("date", {}, "2024/2/29", "2024-02-29"),
    ("date", {}, "2024-02-29 00:00:00", "2024-02-29"),
    ("date", {}, "2024/2/29 0:00", "2024-02-29"),
    ("datetime", {}, "2024-02-29 09:30", "2024-02-29T01:30:00Z"),  # China time
    ("datetime", {}, "2024/2/29 9:30", "2024-02-29T01:30:00Z"),
    ("datetime", {}, "2024年2月29日 09:30:15", "2024-02-29T01:30:15Z"),
    ("datetime", {}, "2024-02-29T09:30:00+08:00", "2024-02-29T01:30:00Z"),
    ("datetime", {}, "45351.5", "2024-02-29T04:00:00Z"),  # serial: noon in China
    ("datetime", {}, "45351", "2024-02-28T16:00:00Z"),
    ("boolean", {}, "是", True),
    ("boolean", {}, "否", False),
    ("boolean", {}, " TRUE ", True),
    ("boolean", {}, "N", False),
    ("boolean", {}, "√", True),
    ("boolean", {}, "×", False),
    ("select", {}, "官网", "web"),
    ("select", {}, "referral", "referral"),
    ("multiselect", {}, "官网、转介绍", ["web", "referral"]),
    ("multiselect", {}, "转介绍，官网", ["web", "referral"]),
    ("multiselect", {}, "广告, web,", ["web", "ad"]),
    ("phone", {}, "+86 138 0000 1234", "13800001234"),
    ("phone", {}, " 010-12345678 ", "010-12345678"),
    ("email", {}, "ZhangSan@Example.com", "zhangsan@example.com"),
    ("id_card", {}, ID_LOWER_X, ID_LOWER_X.upper()),
    ("address", {}, "北京市 北京市 海淀区 中关村大街 1 号",
     {"province": "北京市", "city": "北京市", "district": "海淀区",
      "detail": "中关村大街 1 号"}),
    ("address", {}, "上海市 上海市", {"province": "上海市", "city": "上海市"}),
    ("user", {}, "7", 7),
    ("department", {}, " 3 ", 3),
    ("relation", {}, "12", 12),
]


@pytest.mark.parametrize(("type_", "config", "text", "stored"), FROM_TEXT)
def test_spreadsheet_text_is_read(type_, config, text, stored):
    out = from_text(type_, text, **config)
    assert out == stored and type(out) is type(stored)


@pytest.mark.parametrize(("type_", "text", "error"), [
    ("date", "2024年2月30日", BAD_DATE),
    ("date", "2023年2月29日", BAD_DATE),
    ("date", "45351.5", BAD_DATE),  # a serial with a time of day is not a date
    ("boolean", "也许", ("type", "应为 是/否", "must be yes or no")),
    ("multiselect", "官网、电视", ("option", f"不是可选项 '电视' (可选: {OPTION_LIST})",
                                "'电视' is not one of the options (web, referral, ad)")),
    ("money", "¥1,234.567", ("decimals", "金额最多 2 位小数",
                             "an amount has at most 2 decimals")),
    ("number", "一百", NOT_A_NUMBER),
    ("phone", "138 0000 123", BAD_PHONE),
    ("datetime", "2024/2/30 9:30", ("format", "不是有效的日期时间 (如 2024-02-29T09:30:00+08:00)",
                                    "is not a valid date-time (e.g. 2024-02-29T09:30:00+08:00)")),
    ("datetime", "2024/2/29 25:00", ("format", "不是有效的日期时间 (如 2024-02-29T09:30:00+08:00)",
                                     "is not a valid date-time (e.g. 2024-02-29T09:30:00+08:00)")),
    ("id_card", ID_X[:17] + "1", BAD_ID),
])
def test_bad_spreadsheet_text_is_refused(type_, text, error):
    with pytest.raises(FieldError) as caught:
        from_text(type_, text)
    assert (caught.value.code, caught.value.zh, caught.value.en) == error


# --- display and masking ---------------------------------------------------------------

FORMAT: list[tuple[str, dict[str, Any], Any, str]] = [
    ("text", {}, "张三", "张三"),
    ("number", {}, 1234567, "1,234,567"),
    ("number", {}, 1234.5, "1,234.5"),
    ("number", {"decimals": 2}, 1234.5, "1,234.50"),
    ("money", {}, "1234.50", "¥1,234.50"),
    ("money", {}, "-5.00", "¥-5.00"),
    ("money", {}, "0.00", "¥0.00"),
    ("percent", {}, 4.35, "4.35%"),
    ("percent", {"decimals": 1}, 12, "12.0%"),
    ("date", {}, "2024-02-29", "2024-02-29"),
    ("datetime", {}, "2024-02-29T16:30:00Z", "2024-03-01 00:30"),  # shown in China time
    ("boolean", {}, True, "是"),
    ("boolean", {}, False, "否"),
    ("select", {}, "referral", "转介绍"),
    ("select", {}, "gone", "gone"),  # an option removed later still shows its value
    ("multiselect", {}, ["web", "referral"], "官网、转介绍"),
    ("multiselect", {}, [], ""),
    ("address", {}, {"province": "北京市", "district": "海淀区"}, "北京市 海淀区"),
    ("subtable", {}, [{}, {}], "2 行"),
    ("attachment", {}, [1, 2, 3], "3 个文件"),
    ("user", {}, 7, "7"),
]


@pytest.mark.parametrize(("type_", "config", "stored", "text"), FORMAT)
def test_values_are_displayed(type_, config, stored, text):
    assert FIELD_TYPES.get(type_).format(stored, field(type_, **config)) == text


@pytest.mark.parametrize("type_", sorted(BUILTIN_KEYS - {"subtable", "attachment"}))
def test_a_blank_displays_as_nothing(type_):
    ftype = FIELD_TYPES.get(type_)
    assert ftype.format(None, field(type_)) == ""
    assert ftype.mask(None, field(type_)) == ""


MASK: list[tuple[str, Any, str]] = [
    ("phone", "13800001234", "138****1234"),
    ("phone", "010-12345678", "010****5678"),
    ("phone", "0101234567", "010****"),  # too short to show an end
    ("id_card", ID_1234, "1101**********1234"),
    ("id_card", ID_X, "1101**********002X"),
    ("text", "张三", "张*"),
    ("text", "张三丰", "张**"),
    ("text", "A", "*"),  # one character: nothing of it shows
    ("email", "zhangsan@example.com", "z***@example.com"),
    ("address", {"province": "北京市", "city": "北京市", "district": "海淀区",
                 "detail": "中关村大街 1 号"}, "北京市 北京市 海淀区 ****"),
    ("address", {"province": "北京市"}, "北京市"),
    ("money", "1234.50", "¥********"),
]


@pytest.mark.parametrize(("type_", "stored", "masked"), MASK)
def test_sensitive_values_are_masked(type_, stored, masked):
    assert FIELD_TYPES.get(type_).mask(stored, field(type_)) == masked


# --- edge cases ------------------------------------------------------------------------

def test_id_check_character_follows_iso_7064():
    assert id_check_char("11010519491231002") == "X"
    assert ID_X.endswith("X") and ID_LOWER_X.endswith("x")
    assert valid_id_card(ID_X) and not valid_id_card(ID_X.lower())  # coerce upper-cases
    # exactly one check character fits each 17 digits
    first17 = "44030419851015293"
    fits = [c for c in "0123456789X" if valid_id_card(first17 + c)]
    assert fits == [id_check_char(first17)]


@pytest.mark.parametrize("day", ["2000-02-29", "2024-02-29", "1904-02-29"])
def test_leap_days_are_dates(day):
    assert coerce("date", day) == day
    assert from_text("date", day.replace("-", "/")) == day


@pytest.mark.parametrize("day", ["1900-02-29", "2100-02-29", "2023-02-29", "2024-04-31"])
def test_days_that_do_not_exist_are_refused(day):
    with pytest.raises(FieldError, match="not a valid date"):
        coerce("date", day)


def test_serial_dates_count_from_the_spreadsheet_epoch():
    epoch = date(1899, 12, 30)
    for serial in (10000, 45351, 60000):
        expected = (epoch + timedelta(days=serial)).isoformat()
        assert from_text("date", str(serial)) == expected


@pytest.mark.parametrize("value", [float("nan"), float("inf"), float("-inf"), "nan", "inf",
                                   "sNaN"])
@pytest.mark.parametrize("type_", ["number", "money", "percent"])
def test_not_a_number_and_infinity_are_refused(type_, value):
    with pytest.raises(FieldError) as caught:
        coerce(type_, value)
    assert caught.value.code == "type"


@pytest.mark.parametrize("type_", ["number", "money", "percent", "user", "department",
                                   "relation", "attachment"])
@pytest.mark.parametrize("value", [True, False])
def test_a_bool_is_not_a_number(type_, value):
    with pytest.raises(FieldError):
        coerce(type_, value)


def test_money_is_exact_text_never_a_float():
    assert coerce("money", 0.1) == "0.10"
    assert coerce("money", "0.1") == "0.10"
    assert coerce("money", 19.99) == "19.99"
    assert coerce("money", "99999999999999.99") == "99999999999999.99"
    assert coerce("money", "1e25") == "10000000000000000000000000.00"


def test_numbers_keep_integers_integral():
    assert coerce("number", 3.0) == 3 and isinstance(coerce("number", 3.0), int)
    assert coerce("number", "0.1") == 0.1
    assert coerce("number", "-0") == 0 and not math.copysign(1, coerce("number", "-0")) < 0


def test_auto_number_patterns_render_their_period_and_counter():
    day = date(2024, 2, 29)
    assert render_number("LN-{YYYYMMDD}-{0000}", day, 7) == "LN-20240229-0007"
    assert render_number("{YY}{MM}{DD}/{000}", day, 12345) == "240229/12345"
    assert period_of("LN-{YYYYMMDD}-{0000}", day) == "20240229"
    assert period_of("LN-{YYYY}-{MM}-{0000}", day) == "202402"
    assert period_of("LN-{0000}", day) == "all"


# --- the SQL accessor agrees with Python (run on SQLite and on PostgreSQL) -------------

# Per type: API values (coerced before storing; duplicates on purpose). Each set is
# stored once more with the field missing, twice, to check blanks.
SQL_SAMPLES: dict[str, tuple[dict[str, Any], list[Any]]] = {
    "text": ({}, ["北京", "上海", "Beijing", "beijing", "Zürich", "a", "ab", "张三", "北京",
                  "a b", "~"]),
    "textarea": ({}, ["第一行\n第二行", "第一行", "x\ny", "第一行"]),
    "number": ({}, [3, -1.5, 0, 2.25, 1000000, 3, 0.1, "12345678.9", -1000000, "1e-7"]),
    "money": ({}, ["1234.50", "0.10", "-5.00", "1000000.00", "0.01", "1234.5", "0.00",
                   "99999999999.99", "12345678901234.56", "12345678901234.57", -0.01]),
    "percent": ({}, [4.35, 0, 100, -1.5, 12, "4.350"]),
    "date": ({}, ["2024-02-29", "2023-12-31", "2024年3月1日", "1999-01-01", "2024/2/29",
                  "2100-12-31"]),
    "datetime": ({}, ["2024-02-29T09:30:00+08:00", "2024-02-29T01:30:00Z",
                      "2024-02-28T23:00:00-05:00", "2024-03-01 00:00", "1999-12-31T23:59:59Z",
                      "2024-02-29T01:30:01Z"]),
    "boolean": ({}, [True, False, True, False, True]),
    "select": ({}, ["web", "转介绍", "ad", "web", "广告"]),
    "phone": ({}, ["13800001234", "+86 139 0000 0000", "010-12345678", "13800001234",
                   "02112345678"]),
    "email": ({}, ["b@example.com", "A@example.com", "a@example.cn", "张@例子.中国"]),
    "id_card": ({}, [ID_X, ID_1234, ID_LOWER_X, id_card("44030419851015293"), ID_1234]),
    "user": ({}, [7, 2, "12", 7, 100]),
    "department": ({}, [3, 1, 30, 3]),
    "relation": ({}, [12, 5, {"id": 99}, 12, 1]),
}


def _sql_values(type_: str, spec: FieldSpec) -> list[Any]:
    if type_ == "auto_number":
        days = [date(2024, 2, 29), date(2024, 3, 1), date(2023, 12, 31)]
        return [render_number(spec.config["pattern"], d, n) for d in days for n in (1, 12, 2)]
    config, values = SQL_SAMPLES[type_]
    return [FIELD_TYPES.get(type_).coerce(v, spec) for v in values]


def _typed(kind: str, value: Any) -> Any:
    """The stored value as Python compares it."""
    if value is None or kind not in ("number", "money"):
        return value
    return Decimal(str(value))


def _python_filter(kind: str, op: str, param: Any, value: Any) -> bool:
    """docs/query.md: a blank never satisfies eq/gt/lt, always satisfies ne."""
    v, p = _typed(kind, value), _typed(kind, param)
    if op == "is_empty":
        return v is None or v == ""
    if op == "is_not_empty":
        return not (v is None or v == "")
    if op == "ne":
        return v is None or v != p
    if v is None:
        return False
    return {"eq": v == p, "gt": v > p, "lt": v < p, "gte": v >= p, "lte": v <= p}[op]


def _filters(kind: str, values: list[Any]) -> list[dict[str, Any]]:
    distinct = list(dict.fromkeys(values))
    ops = ["eq", "ne"] if kind == "boolean" else ["eq", "ne", "gt", "lt", "gte", "lte"]
    out: list[dict[str, Any]] = [{"field": "f", "op": "is_empty"},
                                 {"field": "f", "op": "is_not_empty"}]
    out += [{"field": "f", "op": op, "value": v} for v in distinct for op in ops]
    return out


SQL_TYPES = sorted([*SQL_SAMPLES, "auto_number"])


def test_every_type_with_a_value_kind_is_checked_against_sql():
    kinds = {k for k in BUILTIN_KEYS if FIELD_TYPES.get(k).value_kind(field(k)) is not None}
    assert kinds == set(SQL_TYPES)


@pytest.mark.parametrize("type_", SQL_TYPES)
def test_sql_accessor_agrees_with_python(db, type_):
    spec = field(type_, **SQL_SAMPLES.get(type_, ({}, []))[0])
    kind = FIELD_TYPES.get(type_).value_kind(spec)
    values: list[Any] = [*_sql_values(type_, spec), None, None]
    fields = FieldSet("forms", "sample", {"f": kind})
    with db.write() as s:
        ids = create_records(s, app="forms", form="sample", actor=SYSTEM,
                             items=[{} if v is None else {"f": v} for v in values])
    stored = dict(zip(ids, values, strict=True))

    def run(**query: Any) -> list[int]:
        with db.read() as s:
            page = query_records(s, Query(fields, limit=1000, **query))
        return [r.id for r in page.records]

    for leaf in _filters(kind, [v for v in values if v is not None]):
        expected = [i for i, v in stored.items()
                    if _python_filter(kind, leaf["op"], leaf.get("value"), v)]
        assert run(filter=leaf, sort=["id"]) == expected, leaf
        negated = [i for i in ids if i not in expected]
        assert run(filter={"not": leaf}, sort=["id"]) == negated, {"not": leaf}

    present = [(i, _typed(kind, v)) for i, v in stored.items() if v is not None]
    blanks = [i for i, v in stored.items() if v is None]
    ascending = [i for i, _ in sorted(present, key=lambda p: p[1])]  # stable: ties by id
    descending = [i for i, _ in sorted(present, key=lambda p: p[1], reverse=True)]
    assert run(sort=["f"]) == ascending + blanks
    assert run(sort=["-f"]) == descending + blanks


def test_formula_results_are_filtered_by_their_result_kind(db):
    """A formula's kind comes from its expression; the store filters it with that kind."""
    spec = load_form({"key": "calc", "name": "计算", "fields": [
        {"key": "amount", "label": "金额", "type": "money"},
        {"key": "fee", "label": "手续费", "type": "formula", "expression": "amount * 0.035"}]})
    compiled = compile_form(spec)
    assert compiled.kinds["fee"] == "money"
    amounts = ["1234.56", "100", "0.14", "99999.99", "0.15", "100.00"]
    rows = [validate_record(compiled, {"amount": a}) for a in amounts]
    assert [r["fee"] for r in rows] == ["43.21", "3.50", "0.00", "3500.00", "0.01", "3.50"]
    fields = FieldSet("forms", "calc", compiled.kinds)
    with db.write() as s:
        ids = create_records(s, app="forms", form="calc", items=rows, actor=SYSTEM)
    with db.read() as s:
        page = query_records(s, Query(fields, filter={"field": "fee", "op": "gte",
                                                      "value": "3.50"}, sort=["-fee"]))
    assert [r.id for r in page.records] == [ids[3], ids[0], ids[1], ids[5]]
