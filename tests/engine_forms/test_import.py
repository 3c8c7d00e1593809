"""Spreadsheet import: every row or none, problems named by row, rights and audit."""

from __future__ import annotations

import io

import pytest
import xlsxwriter
from sqlalchemy import func, select

from platform_core.app import create_app
from platform_core.models import Record
from platform_core.security.models import AuditEntry
from platform_core.settings import load_settings
from tests.engine_forms.forms_setup import make_crm, ok
from tests.security_setup import client_as

IMPORT = "/api/v1/apps/crm/forms/customer/import"


@pytest.fixture
def crm(db, tmp_path):
    app = create_app(load_settings(data_dir=tmp_path), db=db)
    admin = client_as(app, db, "admin")
    make_crm(admin)
    return app, admin


def xlsx(rows) -> bytes:
    out = io.BytesIO()
    book = xlsxwriter.Workbook(out, {"in_memory": True})
    sheet = book.add_worksheet()
    for r, row in enumerate(rows):
        for c, value in enumerate(row):
            sheet.write(r, c, value)
    book.close()
    return out.getvalue()


def count(db) -> int:
    with db.read() as s:
        return s.execute(select(func.count()).select_from(Record)).scalar_one()


def test_an_excel_sheet_with_labels_becomes_records(db, crm):
    _app, admin = crm
    content = xlsx([["姓名", "手机", "city"], ["张三", 13812341234, "北京"],
                    ["李四", None, "上海"]])
    made = ok(admin.post(IMPORT, files={"file": ("客户.xlsx", content)}))
    assert made["rows"] == 2 and len(made["ids"]) == 2
    got = ok(admin.get(f"/api/v1/apps/crm/forms/customer/records/{made['ids'][0]}"))
    assert got["data"] == {"name": "张三", "mobile": "13812341234", "city": "北京", "loans": 0}
    with db.read() as s:
        entry = s.execute(select(AuditEntry).where(AuditEntry.action == "record.import")
                          ).scalar_one()
    assert entry.detail == {"rows": 2, "file": "客户.xlsx"}


def test_a_gb18030_csv_from_chinese_excel_imports(crm):
    _app, admin = crm
    content = "姓名,城市\n王五,深圳\n".encode("gb18030")
    assert ok(admin.post(IMPORT, files={"file": ("c.csv", content)}))["rows"] == 1


def test_one_bad_row_writes_nothing_and_names_its_row(db, crm):
    _app, admin = crm
    content = xlsx([["姓名", "手机"], ["张三", "13812341234"], ["", "12"], ["赵六", "x"]])
    refused = admin.post(IMPORT, files={"file": ("c.xlsx", content)})
    assert refused.status_code == 422 and refused.json()["code"] == "invalid_import"
    rows = {e["row"] for e in refused.json()["errors"]}
    assert rows == {3, 4} and count(db) == 0
    dry = ok(admin.post(IMPORT, params={"dry_run": True}, files={"file": (
        "c.xlsx", xlsx([["姓名"], ["甲"], ["乙"]]))}))
    assert dry == {"dry_run": True, "rows": 2, "ids": []} and count(db) == 0


def test_unknown_columns_and_bad_files_are_refused(crm):
    _app, admin = crm
    unknown = admin.post(IMPORT, files={"file": ("c.csv", "姓名,年龄\n张三,30\n".encode())})
    assert unknown.status_code == 422 and "年龄" in unknown.json()["detail"]
    junk = admin.post(IMPORT, files={"file": ("c.xlsx", b"not a spreadsheet")})
    assert junk.status_code == 422 and junk.json()["code"] == "invalid_import"
    wrong = admin.post(IMPORT, files={"file": ("c.pdf", b"%PDF")})
    assert wrong.status_code == 422 and ".xlsx" in wrong.json()["detail"]


def test_import_is_its_own_right_and_respects_field_permissions(db, crm):
    app, admin = crm
    staff = client_as(app, db, "staff", roles=("staff",))
    content = "姓名\n张三\n".encode()
    assert staff.post(IMPORT, files={"file": ("c.csv", content)}).status_code == 403
    ok(admin.post("/api/v1/roles", json={"key": "importer", "name": "导入员", "permissions": {
        "forms": {"crm.customer": {"actions": ["import", "read"], "scope": "own",
                                   "fields": {"mobile": "read"}}}}}), 201)
    importer = client_as(app, db, "importer", roles=("importer",))
    assert ok(importer.post(IMPORT, files={"file": ("c.csv", content)}))["rows"] == 1
    locked = importer.post(IMPORT, files={"file": ("c.csv", "姓名,手机\n李四,13812341234\n"
                                                   .encode())})
    assert locked.status_code == 403 and locked.json()["code"] == "field_read_only"
    with db.read() as s:
        owners = set(s.execute(select(Record.owner_id)).scalars())
    assert owners == {importer.user_id}


def test_columns_may_be_named_by_a_fields_label_in_another_language():
    from types import SimpleNamespace

    from engine_forms.importing import columns
    from engine_forms.spec import load_form

    spec = load_form({"key": "c", "name": "客户", "fields": [
        {"key": "mobile", "label": "手机", "labels": {"en": "Mobile"}, "type": "phone"}]})

    pub = SimpleNamespace(spec=spec)  # columns() reads only the spec
    assert columns(pub, ["Mobile"]) == ["mobile"]
    assert columns(pub, ["手机"]) == ["mobile"] and columns(pub, ["mobile"]) == ["mobile"]
