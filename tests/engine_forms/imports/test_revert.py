"""Revert: the created records go (to the recycle bin), the updated ones get their
previous values back, a record edited after the import is listed and left alone; one
audit entry; a second revert is refused."""

from __future__ import annotations

from sqlalchemy import select

from platform_core.security.models import AuditEntry
from tests.engine_forms.forms_setup import ok
from tests.engine_forms.imports.conftest import BASE, IMPORTS, csv, customers, start, work


def test_revert_restores_updated_removes_created_and_leaves_edited_ones(db, crm):
    _app, admin = crm
    for name, mobile in (("张三", "13800000001"), ("李四", "13800000002")):
        ok(admin.post(BASE + "/records", json={"name": name, "mobile": mobile,
                                                 "city": "北京"}), 201)
    file = csv([["姓名", "手机", "城市"], ["张三", "13800000001", "杭州"],
                ["李四", "13800000002", "南京"], ["王五", "13800000003", "深圳"],
                ["赵六", "13800000004", "广州"]])
    batch = start(admin, file, mode="upsert", key="mobile", atomic=False)
    work(db)
    now = customers(db)
    ok(admin.patch(f"{BASE}/records/{now['李四']['id']}", json={"city": "苏州"},
                   headers={"If-Match": str(now["李四"]["row_version"])}))
    ok(admin.patch(f"{BASE}/records/{now['赵六']['id']}", json={"city": "珠海"},
                   headers={"If-Match": str(now["赵六"]["row_version"])}))
    report = ok(admin.post(f"{IMPORTS}/{batch['id']}/revert"))
    assert (report["removed"], report["restored"]) == (1, 1)
    assert sorted((s["row"], s["action"]) for s in report["skipped"]) == [
        (3, "updated"), (5, "created")]
    after = customers(db)
    assert after["张三"]["city"] == "北京"            # restored
    assert after["李四"]["city"] == "苏州"            # edited since: left alone
    assert "王五" not in after and after["赵六"]["city"] == "珠海"
    deleted = ok(admin.get(BASE + "/records", params={"deleted": "only"}))
    assert [r["data"]["name"] for r in deleted["items"]] == ["王五"]  # the recycle bin
    state = ok(admin.get(f"{IMPORTS}/{batch['id']}"))
    assert state["status"] == "reverted" and state["revert_report"]["removed"] == 1
    assert not state["can_revert"]
    assert admin.post(f"{IMPORTS}/{batch['id']}/revert").status_code == 409
    with db.read() as s:
        entry = s.execute(select(AuditEntry).where(AuditEntry.action == "import.revert")
                          ).scalar_one()
    assert entry.detail["removed"] == 1 and entry.detail["skipped"] == 2
