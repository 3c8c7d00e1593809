"""The menu editor in a real browser, on the CRM template: an administrator drags a report
into another group, limits it to salespeople and saves — a salesperson then sees it on
the home page and a team lead does not; the same moves work from the keyboard alone;
items are added from the pickers; the API's problems show beside the group they name;
the editor fits a phone; a team lead cannot open it."""

from __future__ import annotations

from engine_forms.forms import get_app
from tests.frontend.conftest import add_user, path_of
from tests.frontend.test_crm_home import _crm, _menu
from tests.frontend.test_designer import _drag

EDITOR = "/apps/crm/menus"


def _editor(web, db, **kwargs):
    _crm(db)
    add_user(db, "boss")
    page = web.signed_in("boss", **kwargs)
    page.click("#edit-menus-crm")
    page.wait_for_selector("#m-groups .m-item")
    assert path_of(page) == EDITOR
    return page


def _groups(page) -> list[str]:
    return page.eval_on_selector_all("#m-groups .m-group-label", "l => l.map(i => i.value)")


def _group(page, label: str):
    return page.locator("#m-groups .m-group").nth(_groups(page).index(label))


def _labels(page, group: str) -> list[str]:
    return _group(page, group).locator(".m-item-label").all_inner_texts()


def _stored(db) -> dict[str, list[dict]]:
    with db.read() as s:
        return {g["label"]: g["items"] for g in get_app(s, "crm").menus}


def _save(page) -> None:
    page.click("#m-save")
    page.wait_for_selector("#m-status:text-is('已保存')")


def test_drag_an_item_to_another_group_limit_it_to_sales_and_save(web, db):
    page = _editor(web, db, height=1400)  # both groups on the screen: a drag never scrolls
    assert _labels(page, "工作台") == ["我的待办", "销售驾驶舱", "管理驾驶舱"]
    funnel = _group(page, "报表").locator(".m-item[data-key=service_funnel] .m-item-row")
    _drag(page, funnel, _group(page, "工作台").locator(".m-item").last)
    assert _labels(page, "工作台") == ["我的待办", "销售驾驶舱", "管理驾驶舱", "服务漏斗"]
    assert "服务漏斗" not in _labels(page, "报表")
    page.click("#m-groups .m-item[data-key=service_funnel] .m-item-btn")
    page.check("#m-groups .m-item.open input[value=sales]")
    assert "销售顾问" in page.inner_text("#m-groups .m-item[data-key=service_funnel]")
    page.select_option("#m-role", "team_lead")
    page.wait_for_selector("#m-preview :text('“团队经理”在首页看到')")
    assert "服务漏斗" not in page.inner_text("#m-preview")  # what a team lead would see
    _save(page)
    assert _stored(db)["工作台"][-1] == {"label": "服务漏斗", "kind": "report",
                                          "key": "service_funnel", "roles": ["sales"]}
    assert [i["key"] for i in _stored(db)["报表"]] == [
        "leaderboard", "monthly_disbursed", "overdue_tasks"]

    sales = web.signed_in("xiao.wang")
    assert _menu(sales)["工作台"] == ["我的待办", "销售驾驶舱", "服务漏斗"]
    lead = web.signed_in("lao.li")
    assert _menu(lead)["工作台"] == ["我的待办", "销售驾驶舱", "管理驾驶舱"]
    assert "服务漏斗" not in _menu(lead)["报表"]


def test_the_keyboard_alone_moves_items_and_groups(web, db):
    page = _editor(web, db)
    page.focus("#m-groups .m-item[data-key=customer] .m-item-btn")
    page.keyboard.press("Alt+ArrowUp")  # the first of 客户: to the end of 工作台
    assert _labels(page, "工作台")[-1] == "客户"
    assert _labels(page, "客户") == ["跟进记录"]
    focused = page.evaluate("document.activeElement.closest('.m-item').dataset.key")
    assert focused == "customer"  # the focus moves with the item
    page.keyboard.press("Alt+ArrowDown")
    page.keyboard.press("Alt+ArrowDown")  # back into 客户, then below 跟进记录
    assert _labels(page, "客户") == ["跟进记录", "客户"]
    _group(page, "报表").locator(".m-group-label").focus()
    page.keyboard.press("Alt+ArrowUp")
    assert _groups(page) == ["工作台", "客户", "报表", "业务"]
    page.focus("#m-save")
    page.keyboard.press("Enter")
    page.wait_for_selector("#m-status:text-is('已保存')")
    stored = _stored(db)
    assert list(stored) == ["工作台", "客户", "报表", "业务"]
    assert [i["key"] for i in stored["客户"]] == ["follow_up", "customer"]


def test_add_items_from_the_pickers_and_see_the_apis_problems(web, db):
    page = _editor(web, db)
    page.click("#m-add-group")
    page.keyboard.type("常用")
    page.select_option("#m-new-kind", "report")
    page.select_option("#m-new-key", "by_bank")
    assert page.input_value("#m-new-label") == "各产品放款"  # the report's name
    page.select_option("#m-new-group", label="常用")
    page.click("#m-new-add")
    page.select_option("#m-new-kind", "tasks")
    assert page.is_hidden("#m-new-key-row")
    page.click("#m-new-add")
    assert _labels(page, "常用") == ["各产品放款", "我的待办"]
    _group(page, "业务").locator(".m-group-label").fill("")
    page.click("#m-save")
    problem = page.locator("#m-groups .m-group").nth(2).locator(".m-problem")
    problem.wait_for()
    assert "should be non-empty" in problem.inner_text()
    assert "第 3 组" in page.inner_text("#m-problems")
    assert "业务" in _stored(db)  # nothing saved
    page.locator("#m-groups .m-group").nth(2).locator(".m-group-label").fill("业务办理")
    _save(page)
    stored = _stored(db)
    assert stored["常用"] == [{"label": "各产品放款", "kind": "report", "key": "by_bank"},
                            {"label": "我的待办", "kind": "tasks"}]
    assert "业务办理" in stored


def test_the_editor_fits_a_phone_and_is_for_app_managers_only(web, db):
    page = _editor(web, db, width=375, height=740)
    page.click("#m-groups .m-item[data-key=customer] .m-item-btn")
    assert page.evaluate("document.documentElement.scrollWidth") <= 375
    lead = web.signed_in("lao.li")
    assert lead.locator("#edit-menus-crm").count() == 0
    response = lead.goto(EDITOR)
    assert response.status == 403
