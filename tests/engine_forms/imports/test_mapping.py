"""Mapping a messy spreadsheet onto the CRM's customer and loan forms: headers matched by
label, synonym, pinyin and similarity; select texts mapped with their counts; rows read
into payloads or problems naming row, column and reason; a loan row finds its customer
by mobile (one query per chunk, inside the importer's read scope); saved mappings."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import func, select

from engine_forms import service
from engine_forms.forms import published
from engine_forms.imports.mapping import (
    ColumnMap,
    Mapping,
    RowReader,
    get_mapping,
    list_mappings,
    save_mapping,
    select_values,
    suggest,
)
from engine_forms.service import Caller
from platform_core.security.crypto import Keyring
from platform_core.security.models import AuditEntry, User
from platform_core.security.principal import load_principal
from platform_core.settings import load_settings
from templates_catalog.bundle import template
from templates_catalog.install import install
from tests.security_setup import SYSTEM, add_user

GOOD_ID = "11010519491231002X"


# -- fixtures (this file's own; the folder's conftest.py belongs to the batch tests) -----


@pytest.fixture
def keyring(tmp_path) -> Keyring:
    return Keyring.load(load_settings(data_dir=tmp_path / "data", encryption_keys=""))


@pytest.fixture
def crm(db):
    """The CRM template installed; two salespeople and an admin."""
    with db.write() as s:
        install(s, template("bank_intermediary_crm"), actor=SYSTEM,
                template="bank_intermediary_crm")
    add_user(db, "xiao.wang", roles=("sales",))
    add_user(db, "lao.zhao", roles=("sales",))
    add_user(db, "boss", roles=("admin",))
    return db


def caller_of(s, username: str, form: str, keyring: Keyring) -> Caller:
    user = s.execute(select(User).where(User.username == username)).scalar_one()
    principal = load_principal(s, user, via="test")
    return Caller(principal, principal.access("crm", form), keyring)


def mapped(mapping: Mapping) -> dict[str, str | None]:
    return {c.header: c.field for c in mapping.columns}


# -- suggest ------------------------------------------------------------------------------


def test_headers_are_matched_by_label_synonym_pinyin_and_similarity(crm):
    header = ["序号", "客户姓名", "联系方式/手机", "身份证号码", "性别（选填）", "shouji2",
              "月收入(元)", "有房", "来源", "客户等级*", "微信", "备注说明", "", "Mobile"]
    with crm.read() as s:
        pub = published(s, "crm", "customer")
        mapping = suggest(pub, header)
    got = mapped(mapping)
    assert got["客户姓名"] == "name"
    # "Mobile" is the English label exactly (1.0): it wins over the joined header's lower part
    assert got["Mobile"] == "mobile" and got["联系方式/手机"] is None
    assert got["身份证号码"] == "id_no"
    assert got["性别（选填）"] == "gender"
    assert got["月收入(元)"] == "monthly_income"
    assert got["有房"] == "has_house"
    assert got["来源"] == "source"
    assert got["客户等级*"] == "level"
    assert got["微信"] == "wechat"
    assert got["备注说明"] == "note"
    assert got["序号"] is None and got[""] is None
    scores = {c.header: c.score for c in mapping.columns}
    assert scores["Mobile"] == 1.0 and 0 < scores["备注说明"] < 1
    assert len([c for c in mapping.columns if c.field]) == len(
        {c.field for c in mapping.columns if c.field})  # each field once


def test_phone_synonyms_and_pinyin_reach_the_mobile_field(crm):
    with crm.read() as s:
        pub = published(s, "crm", "customer")
        for header in ("手机号", "手机号码", "联系电话", "电话", "mobile", "shouji", "sj",
                       "联系方式/手机"):
            assert mapped(suggest(pub, ["姓名", header]))[header] == "mobile", header
        for header in ("身份证", "证件号码", "shenfenzhenghao"):
            assert mapped(suggest(pub, [header]))[header] == "id_no", header
        assert mapped(suggest(pub, ["名字"]))["名字"] == "name"


def test_a_relation_column_finds_the_target_field_in_its_title(crm):
    with crm.read() as s:
        pub = published(s, "crm", "loan_case")
        by = {c.header: c.by for c in suggest(pub, ["客户身份证号码", "业务编号"],
                                               session=s).columns}
        assert by == {"客户身份证号码": "id_no", "业务编号": None}
        assert suggest(pub, ["客户"], session=s).columns[0].by is None  # record ids
        assert suggest(pub, ["客户手机"]).columns[0].by is None  # no session: not looked up


def test_loan_headers(crm):
    with crm.read() as s:
        pub = published(s, "crm", "loan_case")
        got = mapped(suggest(pub, ["客户", "贷款金额", "申请日期", "期限（月）", "年利率",
                                   "业务编号", "规模"]))
    assert got == {"客户": "customer", "贷款金额": "amount", "申请日期": "apply_date",
                   "期限（月）": "term_months", "年利率": "rate",
                   "业务编号": None, "规模": None}  # computed fields are never filled


# -- select values ------------------------------------------------------------------------


def test_select_values_counts_texts_and_lists_unknown_ones(crm):
    rows = [(2, ["男"]), (3, ["M"]), (4, [" 女 "]), (5, ["female"]), (6, ["未知"]),
            (7, ["男"]), (8, [""]), (9, ["Male"])]
    with crm.read() as s:
        pub = published(s, "crm", "customer")
        mapping = Mapping(columns=[ColumnMap(column=0, header="性别", field="gender")])
        report = select_values(pub, mapping, rows)
    assert report["gender"] == [
        {"value": "男", "count": 2, "maps_to": "male"},
        {"value": "M", "count": 1, "maps_to": "male"},
        {"value": "女", "count": 1, "maps_to": "female"},
        {"value": "female", "count": 1, "maps_to": "female"},
        {"value": "未知", "count": 1, "maps_to": None},
        {"value": "Male", "count": 1, "maps_to": "male"}]


def test_multiselect_texts_are_split_and_counted(crm):
    rows = [(2, ["高净值、VIP"]), (3, ["vip；急用款"]), (4, ["高净值,复贷意向 ,  老客户"])]
    with crm.read() as s:
        pub = published(s, "crm", "customer")
        mapping = Mapping(columns=[ColumnMap(column=0, header="标签", field="tags")])
        report = {r["value"]: (r["count"], r["maps_to"])
                  for r in select_values(pub, mapping, rows)["tags"]}
    assert report == {"高净值": (2, "high_value"), "VIP": (1, "vip"), "vip": (1, "vip"),
                      "急用款": (1, "urgent"), "复贷意向": (1, "repeat"), "老客户": (1, None)}


# -- reading rows -------------------------------------------------------------------------


def _customer_mapping() -> Mapping:
    return Mapping(columns=[
        ColumnMap(column=0, header="姓名", field="name"),
        ColumnMap(column=1, header="手机", field="mobile"),
        ColumnMap(column=2, header="身份证", field="id_no"),
        ColumnMap(column=3, header="性别", field="gender", values={"先生": "male", "?": None}),
        ColumnMap(column=4, header="月收入", field="monthly_income"),
        ColumnMap(column=5, header="标签", field="tags"),
        ColumnMap(column=6, header="有房", field="has_house"),
        ColumnMap(column=7, header="乱七八糟", field=None)])


def test_rows_become_payloads_or_problems_with_row_column_and_reason(crm, keyring):
    rows = [
        (3, ["张三", "+86 138 0000 1234", GOOD_ID.lower(), "先生", "1.5万", "VIP、高净值",
             "√", "x"]),
        (4, ["李四", "1380000", "110105194912310021", "?", "abc", "", "否", ""]),
        (5, ["王五", 13900001111.0, "", "女", 8000.0, "", True, ""]),
    ]
    with crm.read() as s:
        pub = published(s, "crm", "customer")
        reader = RowReader(s, caller_of(s, "boss", "customer", keyring), pub,
                           _customer_mapping())
        out = reader.read(rows)
    (n1, p1, e1), (n2, p2, e2), (n3, p3, e3) = out
    assert (n1, e1) == (3, [])
    assert p1 == {"name": "张三", "mobile": "13800001234", "id_no": GOOD_ID,
                  "gender": "male", "monthly_income": "15000.00",
                  "tags": ["high_value", "vip"], "has_house": True}
    assert n2 == 4 and p2 is None
    assert [(e["row"], e["column"], e["header"], e["field"], e["value"]) for e in e2] == [
        (4, "B", "手机", "mobile", "1380000"),
        (4, "C", "身份证", "id_no", "110105194912310021"),
        (4, "E", "月收入", "monthly_income", "abc")]
    assert e2[0]["reason"].startswith("手机: ") and "mobile" in e2[0]["reason_en"]
    assert "校验位" in e2[1]["reason"]
    assert p3 == {"name": "王五", "mobile": "13900001111", "gender": "female",
                  "monthly_income": "8000.00", "has_house": True} and e3 == []


def test_a_read_only_or_hidden_field_cannot_be_mapped(crm, keyring):
    from platform_core.errors import DomainError

    with crm.write() as s:
        pub = published(s, "crm", "customer")
        caller = caller_of(s, "xiao.wang", "customer", keyring)
        capped = Caller(caller.principal, caller.access.capped({"wechat": "read"}), keyring)
        mapping = Mapping(columns=[ColumnMap(column=0, header="微信", field="wechat")])
        with pytest.raises(DomainError, match="read-only"):
            RowReader(s, capped, pub, mapping)
        hidden = Caller(caller.principal, caller.access.capped({"wechat": "hidden"}), keyring)
        with pytest.raises(DomainError, match="not permitted"):
            RowReader(s, hidden, pub, mapping)


def _customer(db, keyring, username: str, data: dict[str, Any]) -> dict[str, Any]:
    with db.write() as s:
        return service.create(s, caller_of(s, username, "customer", keyring),
                              published(s, "crm", "customer"), data)


def test_a_loan_row_finds_its_customer_by_mobile_or_id_number_in_scope(crm, keyring):
    mine = _customer(crm, keyring, "xiao.wang", {"name": "张三", "mobile": "13800001234",
                                                 "id_no": GOOD_ID})
    theirs = _customer(crm, keyring, "lao.zhao", {"name": "赵六", "mobile": "13900009999"})
    rows = [(2, ["138 0000 1234", "100万"]), (3, ["13900009999", "5万"]),
            (4, ["13700000000", "1万"]), (5, ["12", "1万"]), (6, ["+8613800001234", "2万"])]
    by_mobile = Mapping(columns=[
        ColumnMap(column=0, header="客户手机", field="customer", by="mobile"),
        ColumnMap(column=1, header="金额", field="amount")])
    with crm.read() as s:
        pub = published(s, "crm", "loan_case")
        out = RowReader(s, caller_of(s, "xiao.wang", "loan_case", keyring), pub,
                        by_mobile).read(rows)
        boss = RowReader(s, caller_of(s, "boss", "loan_case", keyring), pub,
                         by_mobile).read(rows[1:2])
        by_id = RowReader(s, caller_of(s, "xiao.wang", "loan_case", keyring), pub, Mapping(
            columns=[ColumnMap(column=0, header="身份证", field="customer", by="id_no")])
        ).read([(2, [GOOD_ID.lower()])])
    assert out[0][2] == []
    assert out[0][1] == {"customer": mine["id"], "amount": "1000000.00"}
    assert out[4][1] == {"customer": mine["id"], "amount": "20000.00"}
    # a colleague's customer is outside the salesperson's read scope: not found
    assert out[1][1] is None and out[1][2][0]["reason"] == "客户: 没有手机为 13900009999 的客户"
    assert out[1][2][0]["reason_en"] == "customer: no customer with mobile 13900009999"
    assert out[2][2][0]["column"] == "A" and "13700000000" in out[2][2][0]["reason"]
    assert "不是有效的手机号" in out[3][2][0]["reason"]
    assert boss[0][1] == {"customer": theirs["id"], "amount": "50000.00"}
    assert by_id[0][1] == {"customer": mine["id"]}  # the ID number is encrypted: blind index


def test_relations_are_resolved_with_one_query_per_chunk(crm, keyring):
    from sqlalchemy import event

    for i in range(30):
        _customer(crm, keyring, "boss", {"name": f"客户{i}", "mobile": f"1380000{i:04d}"})
    rows = [(i + 2, [f"1380000{i % 30:04d}", "1万"]) for i in range(500)]
    mapping = Mapping(columns=[
        ColumnMap(column=0, header="客户手机", field="customer", by="mobile"),
        ColumnMap(column=1, header="金额", field="amount")])
    with crm.read() as s:
        pub = published(s, "crm", "loan_case")
        reader = RowReader(s, caller_of(s, "boss", "loan_case", keyring), pub, mapping)
        statements: list[str] = []

        def seen(*args: Any) -> None:
            statements.append(args[2])

        event.listen(s.get_bind(), "before_cursor_execute", seen)
        out = reader.read(rows)
        event.remove(s.get_bind(), "before_cursor_execute", seen)
    assert all(payload is not None for _n, payload, _p in out)
    assert len([q for q in statements if "records" in q]) == 1


# -- saved mappings -----------------------------------------------------------------------


def test_a_mapping_is_saved_by_name_replaced_and_audited(crm, keyring):
    first = Mapping(sheet="客户", header_row=3, columns=[
        ColumnMap(column=0, header="姓名", field="name", score=1.0),
        ColumnMap(column=1, header="性别", field="gender", values={"先生": "male"})])
    with crm.write() as s:
        pub = published(s, "crm", "customer")
        caller = caller_of(s, "boss", "customer", keyring)
        save_mapping(s, caller, pub, "老系统导出", first)
        save_mapping(s, caller, pub, "老系统导出", first.model_copy(update={"header_row": 4}))
        save_mapping(s, caller, pub, "另一个", first)
    with crm.read() as s:
        pub = published(s, "crm", "customer")
        assert [m["name"] for m in list_mappings(s, pub)] == ["另一个", "老系统导出"]
        again = get_mapping(s, pub, "老系统导出")
        assert again.header_row == 4 and again.columns[1].values == {"先生": "male"}
        audited = s.scalar(select(func.count()).select_from(AuditEntry).where(
            AuditEntry.action == "import.mapping.save"))
    assert audited == 3


# -- the messy samples, end to end --------------------------------------------------------


def test_the_messy_customer_sheet_maps_and_coerces_or_says_where_and_why(crm, keyring,
                                                                         tmp_path):
    from engine_forms.imports.reading import open_table
    from tests.data import make_messy as messy

    table = open_table(messy.customers_xlsx(tmp_path / "台账.xlsx"), sheet="客户")
    with crm.read() as s:
        pub = published(s, "crm", "customer")
        mapping = suggest(pub, table.header)
        assert mapped(mapping) == {
            "序号": None, "客户姓名": "name", "联系方式/手机": "mobile",
            "联系方式/微信": "wechat", "身份证号码": "id_no", "性别": "gender",
            "月收入": "monthly_income", "来源": "source", "备注（选填）": "note"}
        report = select_values(pub, mapping, table.rows())
        assert report["gender"] == [
            {"value": "先生", "count": 2, "maps_to": "male"},
            {"value": "F", "count": 1, "maps_to": "female"},
            {"value": "男性", "count": 1, "maps_to": "male"},
            {"value": "女", "count": 1, "maps_to": "female"},
            {"value": "未知", "count": 1, "maps_to": None}]
        assert report["source"] == [
            {"value": "官网", "count": 3, "maps_to": "web"},
            {"value": "转介绍", "count": 1, "maps_to": "referral"},
            {"value": "抖音", "count": 1, "maps_to": None}]
        gender = next(c for c in mapping.columns if c.field == "gender")
        gender.values = {"未知": None}  # the clerk: leave it empty
        out = RowReader(s, caller_of(s, "boss", "customer", keyring), pub,
                        mapping).read(list(table.rows()))
    payloads = {n: p for n, p, _e in out}
    assert payloads[6] == {"name": "张三", "mobile": "13800001234", "wechat": "zhang3",
                           "id_no": messy.X_ID, "gender": "male",
                           "monthly_income": "15000.00", "source": "web"}
    assert payloads[7] == {"name": "李四", "mobile": "13900005678", "id_no": messy.GOOD_ID,
                           "gender": "female", "monthly_income": "8000.00",
                           "source": "referral", "note": "老客户"}
    assert payloads[10] == payloads[6]  # the same customer twice: for the import mode
    where = [(e["row"], e["column"], e["header"], e["reason"]) for _n, _p, errs in out
             for e in errs]
    assert where == [
        (8, "E", "身份证号码", "身份证号: 不是有效的 18 位身份证号 (校验位或出生日期不对)"),
        (9, "E", "身份证号码", "身份证号: 身份证号被 Excel 存成了数字, 末几位已丢失; 请把这一列"
                               "设为“文本”格式后重新输入"),
        (9, "H", "来源", "来源渠道: 不是可选项 '抖音' (可选: 官网/小程序、老客户转介绍、电话营销、"
                         "合作渠道、门店到访)"),
        (12, "C", "联系方式/手机", "手机: 不是有效的手机号或固定电话"),
        (12, "E", "身份证号码", "身份证号: 不是有效的 18 位身份证号 (校验位或出生日期不对)"),
        (12, "G", "月收入", "月收入: 应为数字")]
    assert payloads[8] is None and payloads[9] is None and payloads[12] is None


@pytest.mark.parametrize("encoding", ["gb18030", "utf-8-sig"])
def test_the_csv_samples_read_like_the_sheet(crm, keyring, tmp_path, encoding):
    from engine_forms.imports.reading import open_table
    from tests.data import make_messy as messy

    table = open_table(messy.customers_csv(tmp_path / "客户.csv", encoding))
    with crm.read() as s:
        pub = published(s, "crm", "customer")
        mapping = suggest(pub, table.header)
        out = RowReader(s, caller_of(s, "boss", "customer", keyring), pub,
                        mapping).read(list(table.rows()))
    assert out[0][1] == {"name": "张三", "mobile": "13800001234", "id_no": messy.X_ID,
                         "gender": "male", "monthly_income": "15000.00", "source": "web"}
    # the CSV's ID of 赵六 is text: its 18 digits as Excel showed them (wrong check digit)
    assert [(n, [e["column"] for e in errs]) for n, _p, errs in out if errs] == [
        (4, ["C"]), (5, ["C", "F"]), (8, ["B", "C", "D", "E"])]


def test_the_loan_dates_typed_five_ways(crm, keyring, tmp_path):
    from engine_forms.imports.reading import open_table
    from tests.data import make_messy as messy

    mine = _customer(crm, keyring, "boss", {"name": "张三", "mobile": "13800001234"})
    table = open_table(messy.loans_xlsx(tmp_path / "loans.xlsx"))
    with crm.read() as s:
        pub = published(s, "crm", "loan_case")
        mapping = suggest(pub, table.header, session=s)
        assert mapped(mapping) == {"客户手机": "customer", "贷款类型": "loan_type",
                                   "申请金额": "amount", "申请日期": "apply_date",
                                   "年利率": "rate", "期限(月)": "term_months"}
        assert mapping.columns[0].by == "mobile"  # "客户手机" − "客户" = the customer's 手机
        out = RowReader(s, caller_of(s, "boss", "loan_case", keyring), pub,
                        mapping).read(list(table.rows()))
    good = [p for _n, p, _e in out if p]
    assert [p["apply_date"] for p in good] == [messy.LOAN_DAY] * 6
    assert [p["amount"] for p in good] == ["1000000.00", "50000.00", "500000.00",
                                           "200000.00", "35000.00", "10000.00"]
    assert [p["rate"] for p in good] == [4.35, 12, 6.5, 8, 9.9, 10]
    assert {p["customer"] for p in good} == {mine["id"]}
    assert [(n, e["column"], e["reason"]) for n, _p, errs in out for e in errs] == [
        (8, "D", "申请日期: 不是有效日期 (如 2024-02-29)"),
        (9, "A", "客户: 没有手机为 13900009999 的客户")]
