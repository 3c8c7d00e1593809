"""The imports API end to end: inspect, start with wait, progress fields, problems JSON and
the problem file, saved mappings, and the importer's rights (a hidden or read-only field
cannot be mapped, an owner cannot be set, an upsert needs the update right)."""

from __future__ import annotations

import io

from python_calamine import CalamineWorkbook

from tests.engine_forms.forms_setup import ok
from tests.engine_forms.imports.conftest import BASE, IMPORTS, count, csv, start, work, xlsx
from tests.security_setup import client_as

HEADER = ["姓名", "手机", "城市"]


def test_inspect_start_progress_problems_and_problem_file(db, crm):
    _app, admin = crm
    file = xlsx([["客户名单 2024"], [], HEADER, ["甲", "13800000001", "北京"],
                 ["乙", "12345", "上海"]])
    seen = ok(admin.post(f"{IMPORTS}/inspect", files={"file": ("名单.xlsx", file)}))
    assert seen["header_row"] == 3 and seen["header"] == HEADER
    assert [c["field"] for c in seen["mapping"]["columns"]] == ["name", "mobile", "city"]
    done = start(admin, file, "名单.xlsx", status=200, atomic=False, wait=True,
                 mapping_name="")
    assert (done["status"], done["created"], done["failed"], done["problems"]) == \
        ("done", 1, 1, 1)
    for field in ("rows_total", "rows_done", "rate", "eta_s", "preview", "can_revert"):
        assert field in done
    page = ok(admin.get(f"{IMPORTS}/{done['id']}/problems", params={"limit": 10}))
    assert page["total"] == 1 and page["items"][0]["row"] == 5
    assert page["items"][0]["column"] == "B"
    got = admin.get(f"{IMPORTS}/{done['id']}/problems.xlsx")
    assert got.status_code == 200
    rows = CalamineWorkbook.from_filelike(io.BytesIO(got.content)).get_sheet_by_index(
        0).to_python()
    assert rows[2][-1] == "问题 / problem" and "手机" in rows[4][-1]
    listed = ok(admin.get(IMPORTS))["items"]
    assert [b["id"] for b in listed] == [done["id"]]


def test_saved_mappings_and_bad_inputs_are_problem_json(db, crm):
    _app, admin = crm
    mapping = {"columns": [{"column": 0, "header": "名字", "field": "name"}]}
    ok(admin.put(BASE + "/import-mappings/名单", json=mapping))
    assert [m["name"] for m in ok(admin.get(BASE + "/import-mappings"))["items"]] == ["名单"]
    done = start(admin, csv([["名字"], ["甲"]]), mapping_name="名单", wait=True, status=200)
    assert done["created"] == 1 and count(db) == 1
    bad = admin.post(IMPORTS, files={"file": ("a.pdf", b"%PDF")})
    assert bad.status_code == 422 and bad.headers["content-type"].startswith(
        "application/problem+json")
    unknown = admin.put(BASE + "/import-mappings/x", json={"columns": [
        {"column": 0, "header": "a", "field": "nope"}]})
    assert unknown.status_code == 422


def test_the_importers_rights_hold(db, crm):
    app, admin = crm
    ok(admin.post("/api/v1/roles", json={"key": "importer", "name": "导入员", "permissions": {
        "forms": {"crm.customer": {"actions": ["import", "read"], "scope": "own",
                                   "fields": {"mobile": "read", "city": "hidden"}}}}}), 201)
    importer = client_as(app, db, "importer", roles=("importer",))
    readonly = importer.post(IMPORTS, files={"file": ("c.csv", csv([["姓名", "手机"],
                                                                    ["甲", "13800000001"]]))},
                             data={"mapping": '{"columns": [{"column": 0, "header": "姓名", '
                                   '"field": "name"}, {"column": 1, "header": "手机", '
                                   '"field": "mobile"}]}'})
    assert readonly.status_code == 403 and readonly.json()["code"] == "field_read_only"
    hidden = importer.post(IMPORTS, files={"file": ("c.csv", csv([["姓名", "城市"],
                                                                  ["甲", "北京"]]))},
                           data={"mapping": '{"columns": [{"column": 1, "header": "城市", '
                                 '"field": "city"}]}'})
    assert hidden.status_code == 422 and hidden.json()["code"] == "field_not_permitted"
    owner = importer.post(IMPORTS, files={"file": ("c.csv", csv([["姓名", "owner_id"],
                                                                 ["甲", "1"]]))},
                          data={"mapping": '{"columns": [{"column": 1, "header": "owner_id",'
                                ' "field": "owner_id"}]}'})
    assert owner.status_code == 422
    upsert = importer.post(IMPORTS, files={"file": ("c.csv", csv([["姓名"], ["甲"]]))},
                           data={"mode": "upsert", "key": "name"})
    assert upsert.status_code == 403
    fine = start(importer, csv([["姓名"], ["甲"]]))
    work(db)
    assert ok(importer.get(f"{IMPORTS}/{fine['id']}"))["created"] == 1
    staff = client_as(app, db, "staff", roles=("staff",))
    assert staff.get(f"{IMPORTS}/{fine['id']}").status_code == 403
    assert importer.post(f"{IMPORTS}/{fine['id']}/revert").status_code == 200
