"""The staff workspace in a real browser, on the CRM template: a salesperson creates a
customer (the ID number checked as it is typed, shown masked once saved), finds them
by mobile, never sees a colleague's customers; a loan case shows its collateral only
when there is one, requires it then, and computes its size as the amount is typed; two
people editing one record are told about the conflict without losing anything; the
first step of the loan flow is completed from the task page; every page fits a phone."""

from __future__ import annotations

import re

from sqlalchemy import select

from engine_flows.instances import progress, start_run
from engine_forms import service
from engine_forms.forms import published
from engine_forms.service import Caller
from platform_core.models import utcnow
from platform_core.security.models import User
from platform_core.security.principal import load_principal
from templates_catalog.bundle import template
from templates_catalog.install import install
from tests.frontend.conftest import add_user, path_of
from tests.security_setup import SYSTEM, add_department
from tests.security_setup import add_user as add_team_member

APP = "/apps/crm/forms"
GOOD_ID = "11010519491231002X"
BAD_ID = "110105194912310021"  # wrong check digit


def _crm(db) -> None:
    with db.write() as s:
        install(s, template("bank_intermediary_crm"), actor=SYSTEM,
                template="bank_intermediary_crm")
    add_user(db, "xiao.wang", roles=("sales",))
    add_user(db, "lao.zhao", roles=("sales",))


def _create(db, keyring, username: str, form: str, data: dict) -> dict:
    """A record made by ``username`` through the records service (as the API would)."""
    with db.write() as s:
        user = s.execute(select(User).where(User.username == username)).scalar_one()
        principal = load_principal(s, user, via="test")
        caller = Caller(principal, principal.access("crm", form), keyring)
        return service.create(s, caller, published(s, "crm", form), data)


def _state(page, key: str) -> str:
    return page.inner_text(f"#st-f-{key}")


def test_a_salesperson_adds_a_customer_and_finds_them_by_mobile(web, db, server_keyring):
    _crm(db)
    _create(db, server_keyring, "lao.zhao", "customer",
            {"name": "别人的客户", "mobile": "13900001111"})
    page = web.signed_in("xiao.wang")
    page.goto(f"{APP}/customer/new")
    page.fill("#f-name", "李四")
    page.fill("#f-mobile", "138 0013 8000")
    page.fill("#f-id_no", BAD_ID)
    page.wait_for_selector("#st-f-id_no .error")  # at once, before saving
    assert "身份证" in _state(page, "id_no")
    page.fill("#f-id_no", GOOD_ID)
    page.wait_for_selector("#st-f-id_no .error", state="detached")
    page.click("#save")
    page.wait_for_selector("[data-field=id_no]")
    assert re.fullmatch(r"/apps/crm/forms/customer/records/\d+\?msg=record_saved", path_of(page))
    assert page.inner_text("[data-field=id_no]") == "1101**********002X"
    assert page.inner_text("[data-field=mobile]") == "138****8000"

    page.goto(f"{APP}/customer")
    assert "别人的客户" not in page.inner_text("main")
    page.fill("#q", "13800138000")
    page.press("#q", "Enter")
    page.wait_for_load_state()
    rows = page.locator("#rows tr[id^=r-]")
    assert rows.count() == 1 and "李四" in rows.first.inner_text()
    page.wait_for_selector("#count:not([hx-get])")
    assert "1" in page.inner_text("#count")
    page.fill("#q", GOOD_ID.lower())  # an encrypted field: matched through its blind index
    page.press("#q", "Enter")
    page.wait_for_load_state()
    assert page.locator("#rows a.open").all_inner_texts() == ["李四"]


def test_a_loan_case_shows_collateral_only_when_there_is_one(web, db, server_keyring):
    _crm(db)
    customer = _create(db, server_keyring, "xiao.wang", "customer",
                       {"name": "王五", "mobile": "13700001234"})
    page = web.signed_in("xiao.wang")
    page.goto(f"{APP}/loan_case/new?customer={customer['id']}")
    assert "王五" in page.inner_text("#row-customer")  # pre-linked, shown by its title
    page.select_option("#f-loan_type", index=1)
    assert page.is_hidden("#row-collateral_value")
    page.fill("#f-amount", "150万")
    page.wait_for_selector("#out-size:text-is('大额')")
    assert "150 万元" in _state(page, "amount")
    page.select_option("#f-has_collateral", "true")
    page.wait_for_selector("#row-collateral_value", state="visible")
    page.click("#save")
    page.wait_for_selector("#st-f-collateral_value .error")
    assert "必填" in _state(page, "collateral_value")
    assert page.input_value("#f-amount") == "1500000"  # what was typed is kept
    page.fill("#f-collateral_value", "2000000")
    page.click("#save")
    page.wait_for_load_state()
    page.wait_for_selector("#edit-record")
    assert page.inner_text("[data-field=size]") == "大额"
    assert "¥1,500,000.00" in page.inner_text("[data-field=amount]")


def test_two_people_editing_one_record_lose_nothing(web, db, server_keyring):
    _crm(db)
    doc = _create(db, server_keyring, "xiao.wang", "customer",
                  {"name": "赵六", "mobile": "13600001234"})
    url = f"{APP}/customer/records/{doc['id']}/edit"
    first = web.signed_in("xiao.wang")
    second = web.signed_in("xiao.wang")
    first.goto(url)
    second.goto(url)
    first.fill("#f-city", "上海")
    first.click("#save")
    first.wait_for_selector("[data-field=city]")
    second.fill("#f-note", "周五再联系")
    second.click("#save")
    second.wait_for_selector("#conflict")
    assert "城市" in second.inner_text("#conflict") and "上海" in second.inner_text("#conflict")
    assert second.input_value("#f-note") == "周五再联系"
    second.click("#keep-mine")
    second.wait_for_selector("[data-field=note]")
    assert second.inner_text("[data-field=note]") == "周五再联系"
    assert second.inner_text("[data-field=city]") == "上海"


def _case_in_flow(db, keyring, name: str, mobile: str) -> tuple[dict, dict, int]:
    """xiao.wang's customer and loan case, its loan flow started: (customer, case, the
    first step's task id)."""
    customer = _create(db, keyring, "xiao.wang", "customer", {"name": name, "mobile": mobile})
    case = _create(db, keyring, "xiao.wang", "loan_case",
                   {"customer": customer["id"], "loan_type": "mortgage", "amount": "800000"})
    with db.write() as s:
        start_run(s, app="crm", flow="loan_service", record_id=case["id"], actor=SYSTEM,
                  now=utcnow())
        task = progress(s, case["id"], utcnow())[0]["current"][0]["tasks"][0]
    return customer, case, task


def test_the_first_loan_step_is_completed_on_the_task_page(web, db, server_keyring):
    _crm(db)
    _customer, case, _task = _case_in_flow(db, server_keyring, "钱七", "13500001234")
    page = web.signed_in("xiao.wang")
    page.goto("/tasks")
    assert "LN-" in page.inner_text("#tasks")  # the inbox names the record (its title)
    page.click("#tasks a >> text=需求分析")
    assert page.inner_text("#task-record").startswith("LN-")
    assert "钱七" in page.inner_text("main")  # the relation by its title, not "客户 45"
    assert page.input_value("#f-has_collateral") == ""
    page.select_option("#f-has_collateral", "false")
    page.select_option("#f-loan_type", "credit")
    assert page.inner_text("button[data-outcome=lost]") == "未成交"
    page.click("button[data-outcome=submit]")
    page.wait_for_url("**/tasks?msg=task_done")
    with db.read() as s:
        steps = [c["name"] for r in progress(s, case["id"], utcnow()) for c in r["current"]]
    assert steps == ["产品匹配"]


def test_the_workspace_pages_fit_a_phone(web, db, server_keyring):
    _crm(db)
    doc, case, task = _case_in_flow(db, server_keyring, "孙八", "13400001234")
    page = web.signed_in("xiao.wang", width=375, height=740)
    for url in ("/", "/tasks", f"/tasks/{task}", f"{APP}/customer", f"{APP}/customer/new",
                f"{APP}/loan_case/new", f"{APP}/customer/records/{doc['id']}",
                f"{APP}/customer/records/{doc['id']}/edit",
                f"{APP}/loan_case/records/{case['id']}/edit"):
        page.goto(url)
        page.wait_for_load_state("networkidle")
        width = page.evaluate("document.documentElement.scrollWidth")
        assert width <= 375, f"{url} is {width} px wide"


def _lead(db) -> None:
    """A team lead of their own department (the team lead's row scope)."""
    team = add_department(db, "销售一部")
    add_team_member(db, "lao.li", roles=("team_lead",), department_id=team)


def test_a_filtered_list_is_saved_as_a_view_and_the_chosen_records_handed_over(
        web, db, server_keyring):
    _crm(db)
    _lead(db)
    for name, city in (("甲", "北京"), ("乙", "上海"), ("丙", "北京")):
        _create(db, server_keyring, "lao.li", "customer",
                {"name": name, "mobile": f"1380000000{len(city) + ord(name) % 7}",
                 "city": city})
    page = web.signed_in("lao.li")
    page.goto(f"{APP}/customer")
    page.click("details.filters summary")
    page.click("[data-add-condition]")
    page.select_option("select[name='c0.f']", "city")
    page.select_option("select[name='c0.o']:not([disabled])", "eq")
    page.fill("[data-ops-for=city] input[name='c0.v']", "北京")
    page.click("details.filters button[type=submit]")
    page.wait_for_load_state()
    names = page.locator("#rows a.open").all_inner_texts()
    assert sorted(names) == ["丙", "甲"]

    page.click("details.save-view summary")
    page.fill("#view-name", "北京客户")
    page.click("#save-view button[type=submit]")
    page.wait_for_load_state()
    page.goto(f"{APP}/customer")
    page.click("#views >> text=北京客户")
    assert sorted(page.locator("#rows a.open").all_inner_texts()) == ["丙", "甲"]

    page.check("#pick-all")
    page.select_option("#bulk-action", "owner")
    # the people to hand over to load when the picker opens (not with every list page)
    wrapper = "[data-bulk-for=owner] .ts-wrapper"
    page.click(f"{wrapper} .ts-control")
    page.locator(f"{wrapper}.dropdown-active.preloaded:not(.loading)").wait_for()
    with page.expect_response(lambda r: "/owners?q=Xiao" in r.url):
        page.keyboard.type("Xiao")
    page.locator(f"{wrapper}:not(.loading)").wait_for()
    page.locator(f"{wrapper} .ts-dropdown").get_by_role("option", name="Xiao.Wang").click()
    assert page.input_value("#bulk-owner") != ""
    page.click("#bulk button[type=submit]")
    page.wait_for_load_state()
    assert "已完成批量操作" in page.inner_text("main")
    mine = web.signed_in("xiao.wang")
    mine.goto(f"{APP}/customer")
    assert sorted(mine.locator("#rows a.open").all_inner_texts()) == ["丙", "甲"]
    mine.click("#rows >> text=甲")
    mine.wait_for_selector("#timeline li")
    assert "负责人" in mine.inner_text("#timeline")  # the handover is in the record's timeline


def test_the_home_page_shows_my_day(web, db, server_keyring):
    _crm(db)
    doc = _create(db, server_keyring, "xiao.wang", "customer",
                  {"name": "周九", "mobile": "13300001234"})
    page = web.signed_in("xiao.wang")
    page.goto(f"{APP}/customer/records/{doc['id']}")
    page.goto("/")
    assert page.inner_text("#tile-open").split()[0] == "0"
    assert "周九" in page.inner_text("#home-recent")
    page.click("nav.app-menu a:text-is('客户')")
    assert path_of(page) == f"{APP}/customer"


def test_a_spreadsheet_is_checked_then_imported(web, db, tmp_path, server_keyring):
    """The short way through the import page (``test_import_page`` has the long one)."""
    from tests.frontend.test_import_page import Worker

    _crm(db)
    _lead(db)
    bad = tmp_path / "bad.csv"
    bad.write_text("姓名,手机\n吴十,123\n", encoding="utf-8")
    good = tmp_path / "good.csv"
    good.write_text("姓名,手机\n吴十,13200001234\n郑十一,13200005678\n", encoding="utf-8")
    page = web.signed_in("lao.li")
    page.goto(f"{APP}/customer")
    page.click("#import")
    with Worker(db, server_keyring):
        page.set_input_files("#file", str(bad))
        page.wait_for_url("**/import/map?*")
        page.click("#check")
        page.wait_for_selector("#counts")
        assert "2" in page.inner_text("#problem-list")  # the row, as in the spreadsheet
        page.goto(f"{APP}/customer/import")
        page.set_input_files("#file", str(good))
        page.wait_for_url("**/import/map?*")
        page.click("#import-now")
        page.wait_for_selector("#counts")
        assert page.inner_text("#n-created") == "2"
    page.goto(f"{APP}/customer")
    assert {"吴十", "郑十一"} <= set(page.locator("#rows a.open").all_inner_texts())


def test_a_new_customer_is_made_from_the_loan_case_form_without_leaving_it(web, db):
    _crm(db)
    page = web.signed_in("xiao.wang")
    page.goto(f"{APP}/loan_case/new")
    page.fill("#f-amount", "300000")
    page.click("#row-customer button[data-open-dialog]")
    page.wait_for_selector("#quick-dialog #f-name")
    page.click("#quick-dialog button[type=submit]")
    page.wait_for_selector("#quick-dialog .field-state .error")  # name and mobile required
    page.fill("#quick-dialog #f-name", "冯十二")
    page.fill("#quick-dialog #f-mobile", "13100001234")
    page.click("#quick-dialog button[type=submit]")
    page.wait_for_selector("#quick-dialog", state="hidden")
    assert "冯十二" in page.inner_text("#row-customer")
    assert page.input_value("#f-amount") == "300000"  # nothing typed was lost
    page.keyboard.press("Escape")


def test_leaving_a_form_with_unsaved_changes_asks_first(web, db):
    _crm(db)
    page = web.signed_in("xiao.wang")
    page.goto(f"{APP}/customer/new")
    asked = []
    page.on("dialog", lambda dialog: asked.append(dialog.type))
    page.click("#f-name")
    page.keyboard.type("未保存的客户")
    page.click("a[data-leave]")
    page.wait_for_load_state()
    assert asked == ["beforeunload"]

    page.goto(f"{APP}/customer/new")  # nothing typed: leaves without asking
    asked.clear()
    page.click("a[data-leave]")
    page.wait_for_load_state()
    assert asked == []
