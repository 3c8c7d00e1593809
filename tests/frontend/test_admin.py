"""Administration pages in a real browser: users, the permission matrix, departments,
the audit log, refusals, and the phone layout."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from engine_forms.forms import create_app as create_form_app
from engine_forms.forms import create_form
from engine_forms.publishing import publish
from platform_core.security.directory import save_role
from platform_core.security.models import User
from platform_core.security.principal import load_principal
from platform_core.security.users import get_user
from tests.frontend.conftest import add_user, alert, path_of, status, user_row
from tests.security_setup import SYSTEM

CUSTOMER = {"key": "customer", "name": "客户", "fields": [
    {"key": "name", "label": "姓名", "type": "text"},
    {"key": "mobile", "label": "手机", "type": "phone"}]}
PAGES = ["/", "/me/security", "/password", "/admin/users", "/admin/users/1", "/admin/roles",
         "/admin/roles/staff", "/admin/departments", "/admin/audit"]


def _crm(db) -> None:
    with db.write() as s:
        create_form_app(s, key="crm", name="客户管理")
        create_form(s, app="crm", raw=CUSTOMER)
        publish(s, app="crm", key="customer", actor=SYSTEM)


def _access(db, username: str):
    with db.read() as s:
        return load_principal(s, get_user(s, username), via="session").access("crm",
                                                                               "customer")


def test_creating_a_user_shows_the_one_time_password_once(web, db):
    add_user(db, "boss")
    page = web.signed_in("boss")
    page.goto("/admin/users")
    page.fill("#username", "zhang.san")
    page.fill("#display_name", "张三")
    page.check("input[name=roles][value=staff]")
    page.click('text="创建"')
    one_time = page.inner_text("#one-time-password")
    assert len(one_time) == 16
    assert "张三" in page.locator("tr", has_text="zhang.san").inner_text()
    page.goto("/admin/users")
    assert page.locator("#one-time-password").count() == 0
    assert one_time not in page.content()

    newcomer = web.page()
    web.sign_in(newcomer, "zhang.san", one_time)
    assert path_of(newcomer).startswith("/password")


def test_a_refused_user_form_keeps_what_was_typed(web, db):
    add_user(db, "boss")
    page = web.signed_in("boss")
    page.goto("/admin/users")
    page.fill("#username", "boss")
    page.fill("#display_name", "Another")
    page.click('text="创建"')
    assert "already exists" in alert(page)
    assert page.input_value("#display_name") == "Another"


def test_editing_a_user(web, db):
    add_user(db, "boss")
    add_user(db, "li", roles=("staff",))
    page = web.signed_in("boss")
    page.goto("/admin/users")
    user_row(page, "li").locator('text="编辑"').click()
    page.fill("#display_name", "李四")
    page.fill("#mobile", "13800001234")
    page.fill("#email", "li@bank.example")  # where scheduled reports go
    page.check("input[name=roles][value=viewer]")
    page.check("input[name=status][value=disabled]")
    page.click('text="保存"')
    assert "用户已保存" in status(page)
    row = page.locator("tr", has_text="李四").inner_text()
    assert "viewer" in row and "staff" in row and "已停用" in row
    with db.read() as s:
        assert s.execute(select(User.email).where(User.username == "li")).scalar_one() == \
            "li@bank.example"
    page.locator("tr", has_text="李四").locator('text="重置密码"').click()
    assert len(page.inner_text("#one-time-password")) == 16
    assert "待改密" in page.locator("tr", has_text="李四").inner_text()


def test_the_permission_matrix_changes_what_a_role_can_do(web, db):
    _crm(db)
    add_user(db, "boss")
    with db.write() as s:
        save_role(s, key="clerk", name="文员", description=None, permissions={},
                  principal=None, actor=SYSTEM, create=True)
    add_user(db, "zhao", roles=("clerk",))
    clerk = web.signed_in("zhao")
    records = "/api/v1/apps/crm/forms/customer/records"
    assert clerk.request.get(records).status == 403

    page = web.signed_in("boss")
    page.goto("/admin/roles")
    page.click("text=文员")
    row = page.locator(".perm-row[data-target='crm.customer']")
    row.locator("input[value=read]").check()
    row.locator("input[value=create]").check()
    page.click('text="保存"')  # no scope chosen yet: refused, the matrix kept
    assert "勾选了操作但未选择范围" in alert(page)
    assert row.locator("input[value=read]").is_checked()
    row.locator("select[name='scope:crm.customer']").select_option("all")
    row.locator("details.perm-fields:not(.perm-filter) summary").click()
    row.locator("select[name='field:crm.customer:mobile']").select_option("hidden")
    page.click('text="保存"')
    assert "角色已保存" in status(page)

    access = _access(db, "zhao")
    assert access.allows("read") and access.allows("create") and not access.allows("delete")
    assert access.level("mobile") == "hidden" and access.level("name") == "write"
    assert clerk.request.get(records).status == 200
    page.goto("/admin/roles/clerk")  # what was saved is what the matrix shows again
    row = page.locator(".perm-row[data-target='crm.customer']")
    assert row.locator("input[value=read]").is_checked()
    assert not row.locator("input[value=delete]").is_checked()
    assert row.locator("select[name='field:crm.customer:mobile']").input_value() == "hidden"


def test_audit_lists_sign_ins_and_filters_by_action(web, db):
    add_user(db, "boss")
    web.sign_in(web.page(), "boss", "wrong-password-1")
    page = web.signed_in("boss")
    page.goto("/admin/audit")
    actions = page.locator("#audit-rows tr td:nth-child(3)").all_inner_texts()
    assert actions[0] == "auth.login" and "auth.login_failed" in actions
    page.fill("#action", "auth.login_failed")
    page.click('text="筛选"')
    assert set(page.locator("#audit-rows tr td:nth-child(3)").all_inner_texts()) == {
        "auth.login_failed"}
    page.fill("#action", "user.")
    page.click('text="筛选"')
    assert set(page.locator("#audit-rows tr td:nth-child(3)").all_inner_texts()) == {
        "user.create"}

    today = datetime.now(UTC).date()
    page.goto(f"/admin/audit?actor=boss&until={today - timedelta(days=1)}")
    assert page.locator("#audit-rows tr").count() == 0 and "没有符合条件" in page.content()
    page.goto(f"/admin/audit?actor=boss&since={today}&until={today}&target=user:1")
    assert set(page.locator("#audit-rows tr td:nth-child(2)").all_inner_texts()) == {"boss"}
    page.goto("/admin/audit?since=yesterday")
    assert "YYYY-MM-DD" in alert(page)

    page.goto("/admin/audit?limit=2")  # "older" appends the next page in place (htmx)
    assert page.locator("#audit-rows tr").count() == 2
    page.click('text="更早"')
    page.locator("#audit-rows tr").nth(2).wait_for()  # (wait_for_function would eval: CSP)
    ids = [int(i) for i in page.locator("#audit-rows tr").evaluate_all(
        "rows => rows.map(r => r.dataset.id)")]
    assert ids == sorted(ids, reverse=True) and len(set(ids)) == len(ids)
    assert path_of(page) == "/admin/audit?limit=2"


def test_staff_gets_a_readable_403_page(web, db):
    add_user(db, "li", roles=("staff",))
    page = web.signed_in("li")
    response = page.goto("/admin/roles")
    assert response.status == 403 and "text/html" in response.headers["content-type"]
    assert "无权访问" in page.inner_text("h1")
    assert "user managers only" in alert(page)
    assert "Traceback" not in page.content()
    nav = page.locator("nav").inner_text()
    assert "角色" not in nav and "审计" not in nav
    refused = page.request.post("/admin/roles/staff", form={"csrf_token": page.get_attribute(
        "meta[name=csrf-token]", "content"), "name": "x"})
    assert refused.status == 403


def test_departments_tree_add_and_rename(web, db):
    add_user(db, "boss")
    page = web.signed_in("boss")
    page.goto("/admin/departments")
    page.fill("#new-name", "总部")
    page.click('text="添加"')
    page.fill("#new-name", "信贷部")
    page.select_option("#parent_id", label="总部")
    page.click('text="添加"')
    child = page.locator("#departments ul input[name=name]")
    assert child.input_value() == "信贷部"
    child.fill("信贷一部")
    page.locator("#departments ul button").click()
    assert page.locator("#departments ul input[name=name]").input_value() == "信贷一部"


@pytest.mark.parametrize("who", ["boss", "li"])
def test_every_page_fits_a_phone_without_csp_reports(web, db, who):
    add_user(db, "boss")
    add_user(db, "li", roles=("staff",))
    page = web.signed_in(who, width=375, height=740)
    for path in PAGES:
        page.goto(path)
        width = page.evaluate("document.documentElement.scrollWidth")
        assert width <= 375, f"{path} is {width}px wide on a phone"
    page.goto("/login")
    assert page.evaluate("document.documentElement.scrollWidth") <= 375
    assert web.reports == []
    # The watch works: an inline style is refused by the CSP and reported.
    page.evaluate("document.body.insertAdjacentHTML('beforeend', '<p style=\"color:red\">x</p>')")
    page.wait_for_timeout(100)
    assert any("Content Security Policy" in r for r in web.reports)
    web.reports.clear()
