"""The form designer in a real browser, on the CRM template: an admin drags a money field
into the customer form, makes it required for customers who own a house, publishes it
after seeing how many customers it touches, and the record page then shows and
requires it; removing a select option still in use is reported before anything is
published; a bad expression is shown under its box while typing and refused by the
publish with the same words; the whole thing works from the keyboard; a team lead
cannot open it."""

from __future__ import annotations

import re

from engine_forms.forms import get_form, published
from tests.frontend.conftest import add_user, alert, path_of
from tests.frontend.test_workspace import _create, _crm

DESIGN = "/apps/crm/forms/customer/design"


def _designer(web, db):
    _crm(db)
    add_user(db, "boss")
    page = web.signed_in("boss")
    page.goto(DESIGN)
    page.wait_for_selector("#d-sections .d-field")
    return page


def _section(page, title: str):
    return page.locator("#d-sections .d-section", has=page.locator(
        ".d-section-title", has_text=title))


def _drag(page, source, target) -> None:
    """A mouse drag in small steps (SortableJS follows the pointer as a person's would);
    the drop place is scrolled into view first."""
    page.wait_for_load_state("networkidle")  # the designer redraws once its checks return
    target.evaluate("e => e.scrollIntoView({block: 'center'})")
    a, b = source.bounding_box(), target.bounding_box()
    x0, y0 = a["x"] + 10, a["y"] + 10
    x1, y1 = b["x"] + 20, b["y"] + b["height"] - 5
    page.mouse.move(x0, y0)
    page.mouse.down()
    for i in range(1, 21):
        page.mouse.move(x0 + (x1 - x0) * i / 20, y0 + (y1 - y0) * i / 20)
        page.wait_for_timeout(15)
    page.mouse.up()


def _wait_saved_check(page) -> None:
    page.wait_for_timeout(600)  # the check runs 350 ms after the last keystroke


def test_add_a_required_when_field_and_publish_it(web, db, server_keyring):
    page = _designer(web, db)
    owner = _create(db, server_keyring, "xiao.wang", "customer",
                    {"name": "有房客户", "mobile": "13800000001", "has_house": True})
    _create(db, server_keyring, "xiao.wang", "customer",
            {"name": "无房客户", "mobile": "13800000002", "has_house": False})
    target = _section(page, "客户画像").locator(".d-fields")
    _drag(page, page.locator(".d-type[data-type=money]"), target.locator("li").last)
    page.wait_for_selector("#p-label")
    page.fill("#p-label", "房产估值")
    for _ in range(50):  # the key comes from the server (pinyin) once the label is typed
        if page.input_value("#p-key") == "fang_chan_gu_zhi":
            break
        page.wait_for_timeout(100)
    assert page.input_value("#p-key") == "fang_chan_gu_zhi"
    assert "房产估值" in target.inner_text()
    page.fill("#x-required_if", "has_house = TRUE")
    page.fill("#x-visible_if", "has_house = TRUE")
    _wait_saved_check(page)
    assert page.inner_text("#x-required_if-err") == ""
    page.click("#d-publish")
    page.wait_for_selector("#d-confirm:not([disabled])")
    report = page.inner_text("#d-report")
    assert "新增" in report and "房产估值" in report
    assert re.search(r"1 条现有记录需要补填“房产估值", report), report
    page.click("#d-confirm")
    page.wait_for_selector("#d-published")
    with db.read() as s:
        pub = published(s, "crm", "customer")
        field = pub.spec.field("fang_chan_gu_zhi")
    assert field is not None and field.type == "money" and field.required_if
    assert "fang_chan_gu_zhi" in pub.spec.layout[1].fields  # 客户画像, where it was dropped

    sales = web.signed_in("xiao.wang")
    sales.goto(f"/apps/crm/forms/customer/records/{owner['id']}/edit")
    sales.wait_for_selector("#row-fang_chan_gu_zhi", state="attached")
    assert sales.is_visible("#f-fang_chan_gu_zhi")
    sales.click("#save")
    sales.wait_for_selector("#st-f-fang_chan_gu_zhi .error")
    assert "/edit" in path_of(sales) or "records" in path_of(sales)
    sales.fill("#f-fang_chan_gu_zhi", "300万")
    sales.click("#save")
    sales.wait_for_selector("[data-field=fang_chan_gu_zhi]")
    assert "300" in sales.inner_text("[data-field=fang_chan_gu_zhi]")
    sales.goto("/apps/crm/forms/customer/new")
    sales.wait_for_selector("#f-name")
    assert not sales.is_visible("#f-fang_chan_gu_zhi")  # no house chosen: not shown


def test_removing_an_option_in_use_is_reported_and_cancel_publishes_nothing(web, db,
                                                                           server_keyring):
    page = _designer(web, db)
    lost = _create(db, server_keyring, "xiao.wang", "customer",
                   {"name": "流失客户", "mobile": "13800000003", "status": "lost"})
    page.click("#d-sections [data-field=status]")
    page.wait_for_selector(".d-options li")
    option = page.locator(".d-options li[data-value=lost]")
    option.locator("button.danger").click()
    page.click("#d-publish")
    page.wait_for_selector("#d-confirm:not([disabled])")
    report = page.inner_text("#d-report")
    assert "改选项" in report and "lost" in report
    assert re.search(r"1 条记录的“客户状态.*”选了被删除的选项 lost", report), report
    assert page.locator(f"#d-report a[href$='/records/{lost['id']}']").count() >= 1
    page.click("#d-cancel")
    with db.read() as s:
        assert get_form(s, "crm", "customer").published_version == 1
        options = [o["value"] for o in published(s, "crm", "customer").spec.field(
            "status").config["options"]]
    assert "lost" in options


def test_an_unknown_field_is_shown_while_typing_and_refused_by_publish(web, db):
    page = _designer(web, db)
    page.click("#d-sections [data-field=wechat]")
    page.fill("#x-visible_if", "has_hose = TRUE")
    page.wait_for_selector("#x-visible_if-err:has-text('has_hose')")
    shown = page.inner_text("#x-visible_if-err")
    assert "第 1 列" in shown and "未知字段 has_hose" in shown
    assert page.locator("#d-sections [data-field=wechat].bad").count() == 1
    page.click("#d-publish")
    page.wait_for_selector("#d-problems:not([hidden])")
    assert "未知字段 has_hose" in alert(page)
    page.click("#d-cancel")
    with db.read() as s:
        assert get_form(s, "crm", "customer").published_version == 1
        assert "visible_if" not in {k for f in get_form(s, "crm", "customer").draft["fields"]
                                    if f["key"] == "wechat" for k in f}


def test_completion_offers_field_keys_and_functions(web, db):
    page = _designer(web, db)
    page.click("#d-sections [data-field=wechat]")
    page.focus("#x-visible_if")
    page.keyboard.type("has_h")
    page.wait_for_selector("#x-visible_if-list li")
    assert "has_house" in page.inner_text("#x-visible_if-list")
    page.keyboard.press("Enter")
    assert page.input_value("#x-visible_if") == "has_house"
    page.keyboard.type(" = TRUE AND LE")
    page.wait_for_selector("#x-visible_if-list li:has-text('LEN')")


def test_adding_and_moving_a_field_with_the_keyboard_alone(web, db):
    page = _designer(web, db)
    notes = _section(page, "备注")
    before = notes.locator("[data-field]").evaluate_all("els => els.map(e => e.dataset.field)")
    assert before[-1] == "note"  # the template's 备注 holds its attachments, then the note
    page.focus("#d-sections [data-field=note]")  # the 备注 section becomes current
    page.keyboard.press("Enter")
    page.focus(".d-type[data-type=date]")
    page.keyboard.press("Enter")  # added to the current section, its label box focused
    page.keyboard.type("回访日期")
    page.wait_for_selector("#d-sections [data-field=hui_fang_ri_qi]")  # its key, by pinyin
    keys = notes.locator("[data-field]").evaluate_all("els => els.map(e => e.dataset.field)")
    assert keys[:-1] == before
    added = keys[-1]
    page.focus(f"#d-sections [data-field={added}]")
    page.keyboard.press("Alt+ArrowUp")
    keys = notes.locator("[data-field]").evaluate_all("els => els.map(e => e.dataset.field)")
    assert keys == [*before[:-1], added, "note"]
    for _ in before[:-1]:
        page.keyboard.press("Alt+ArrowUp")
    assert notes.locator("[data-field]").evaluate_all(
        "els => els.map(e => e.dataset.field)") == [added, *before]
    page.keyboard.press("Alt+ArrowUp")  # past the top: into the section above
    assert added in _section(page, "360° 汇总").inner_text() or added in \
        _section(page, "360° 汇总").locator("[data-field]").evaluate_all(
            "els => els.map(e => e.dataset.field)")
    for _ in range(len(before) + 1):  # one step per move
        page.keyboard.press("Control+z")
    keys = notes.locator("[data-field]").evaluate_all("els => els.map(e => e.dataset.field)")
    assert keys == [*before, added]


def test_a_team_lead_cannot_open_the_designer(web, db):
    _crm(db)
    add_user(db, "lead", roles=("team_lead",))
    page = web.signed_in("lead")
    response = page.goto(DESIGN)
    assert response.status == 403
    page.goto("/apps/crm/forms/customer")
    assert page.locator("#design").count() == 0
    assert page.goto("/apps/crm/design/new").status == 403


def test_try_an_expression_on_a_record_and_preview_as_a_role(web, db, server_keyring):
    page = _designer(web, db)
    customer = _create(db, server_keyring, "xiao.wang", "customer",
                       {"name": "试算客户", "mobile": "13800000009", "city": "北京"})
    page.click("#d-sections [data-field=wechat]")
    page.fill("#x-visible_if", 'city = "北京"')
    box = page.locator(".d-expr[data-expr-attr=visible_if]")
    box.locator(".d-try-id").fill(str(customer["id"]))
    box.locator(".d-try button").click()
    page.wait_for_selector(".d-expr[data-expr-attr=visible_if] .d-try-out:has-text('=')")
    assert box.locator(".d-try-out").inner_text() == "= 是"

    page.select_option("#d-role", "sales")
    page.wait_for_selector("#d-preview .d-legend")
    legend = page.inner_text("#d-preview .d-legend")
    assert "月收入" in legend.split("只读")[0]  # hidden from sales
    assert page.locator("#d-preview #f-monthly_income").count() == 0
    assert page.locator("#d-preview #f-name").count() == 1
    page.select_option("#d-role", "clerk")
    page.wait_for_selector("#d-preview [data-field=name]")  # read-only rows for a clerk
    assert page.locator("#d-preview #f-name").count() == 0
