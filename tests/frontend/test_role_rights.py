"""Per-role field rights and row scopes edited on the role page, and viewing the
workspace as a role: a field set to 脱敏 shows masked to that role (and only exact
searches reach it), a condition scope limits the rows, a bad condition is refused on the
page, and an administrator sees the pages as a sales holder would — read-only."""

from __future__ import annotations

from sqlalchemy import select

from engine_forms import service
from engine_forms.forms import published
from engine_forms.service import Caller
from platform_core.security.models import Role, User
from platform_core.security.principal import load_principal
from tests.frontend.conftest import add_user, alert, status
from tests.frontend.test_workspace import _create, _crm


def _caller(db, keyring, username: str) -> Caller:
    with db.read() as s:
        user = s.execute(select(User).where(User.username == username)).scalar_one()
        principal = load_principal(s, user, via="test")
    return Caller(principal, principal.access("crm", "customer"), keyring)


def _matrix_row(page, key: str):
    return page.locator(f".perm-row[data-target='{key}']")


def test_a_masked_field_and_a_condition_scope_set_on_the_role_page(web, db, server_keyring):
    _crm(db)
    add_user(db, "boss")
    _create(db, server_keyring, "xiao.wang", "customer",
            {"name": "北京客户", "mobile": "13800000001", "city": "北京", "wechat": "wx_bj"})
    _create(db, server_keyring, "lao.zhao", "customer",
            {"name": "上海客户", "mobile": "13800000002", "city": "上海", "wechat": "wx_sh"})
    page = web.signed_in("boss")
    page.goto("/admin/roles/team_lead")
    row = _matrix_row(page, "crm.customer")
    row.locator("input[name='act:crm.customer'][value=read]").check()
    row.locator("select[name^='scope:']").select_option("filter")
    row.locator("details.perm-filter summary").click()
    row.locator("textarea[name='filter:crm.customer']").fill(
        '{"field": "city", "op": "eq", "value": "北京"}')
    row.locator("details.perm-fields:not(.perm-filter) summary").click()
    row.locator("select[name='field:crm.customer:wechat']").select_option("masked")
    page.click("#role-form button[type=submit].primary")
    page.wait_for_load_state()
    assert "角色已保存" in status(page)

    with db.read() as s:
        perms = s.execute(select(Role).where(Role.key == "team_lead")).scalar_one().permissions
    entry = perms["forms"]["crm.customer"]
    assert entry["scope"] == {"filter": {"field": "city", "op": "eq", "value": "北京"}}
    assert entry["fields"]["wechat"] == "masked"

    add_user(db, "lead", roles=("team_lead",))
    lead = _caller(db, server_keyring, "lead")
    with db.read() as s:
        docs, _ = service.list_page(s, lead, published(s, "crm", "customer"), filter=None,
                                    sort=None, cursor=None, limit=50, fields=None,
                                    deleted="exclude")
    assert [d["data"]["name"] for d in docs] == ["北京客户"]
    assert docs[0]["data"]["wechat"] == "w****"  # wx_bj, masked

    row = _matrix_row(page, "crm.customer")
    row.locator("details.perm-filter summary").click() if not row.locator(
        "textarea[name='filter:crm.customer']").is_visible() else None
    row.locator("textarea[name='filter:crm.customer']").fill(
        '{"field": "town", "op": "eq", "value": "北京"}')
    page.click("#role-form button[type=submit].primary")
    page.wait_for_load_state()
    assert "条件有误" in alert(page) and "town" in alert(page)


def test_an_admin_views_the_workspace_as_a_sales_holder_read_only(web, db, server_keyring):
    _crm(db)
    add_user(db, "boss")
    _create(db, server_keyring, "xiao.wang", "customer",
            {"name": "小王的客户", "mobile": "13800000003"})
    _create(db, server_keyring, "lao.zhao", "customer",
            {"name": "老赵的客户", "mobile": "13800000004"})
    page = web.signed_in("boss")
    page.goto("/admin/roles/sales")
    page.select_option("#view-as-user", label="Xiao.Wang")
    page.click("#view-as button[type=submit]")
    page.wait_for_selector("#viewing-as")
    assert "sales" in page.inner_text("#viewing-as") or "销售" in page.inner_text("#viewing-as")
    page.goto("/apps/crm/forms/customer")
    listed = page.inner_text("#rows")
    assert "小王的客户" in listed and "老赵的客户" not in listed
    assert page.goto("/admin/users").status == 403  # the role's rights, not the admin's
    page.goto("/apps/crm/forms/customer/new")
    page.fill("#f-name", "不该保存")
    page.fill("#f-mobile", "13800000005")
    page.click("#save")
    page.wait_for_load_state()
    with db.read() as s:
        from platform_core.models import Record

        names = [r.data.get("name") for r in s.execute(select(Record)).scalars()]
    assert "不该保存" not in names
    page.goto("/")
    page.click("#viewing-as button[type=submit]")
    page.wait_for_load_state()
    assert page.locator("#viewing-as").count() == 0
    assert page.goto("/admin/users").status == 200
