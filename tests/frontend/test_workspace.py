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
from tests.security_setup import SYSTEM

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
    _create(db, server_keyring, "lao.zhao", "customer", {"name": "别人的客户", "mobile": "13900001111"})
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


def test_a_loan_case_shows_collateral_only_when_there_is_one(web, db, server_keyring):
    _crm(db)
    customer = _create(db, server_keyring, "xiao.wang", "customer", {"name": "王五", "mobile": "13700001234"})
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
    doc = _create(db, server_keyring, "xiao.wang", "customer", {"name": "赵六", "mobile": "13600001234"})
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


def test_the_first_loan_step_is_completed_on_the_task_page(web, db, server_keyring):
    _crm(db)
    customer = _create(db, server_keyring, "xiao.wang", "customer", {"name": "钱七", "mobile": "13500001234"})
    case = _create(db, server_keyring, "xiao.wang", "loan_case", {"customer": customer["id"],
                                                   "loan_type": "mortgage",
                                                   "amount": "800000"})
    with db.write() as s:
        start_run(s, app="crm", flow="loan_service", record_id=case["id"], actor=SYSTEM,
                  now=utcnow())
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
    doc = _create(db, server_keyring, "xiao.wang", "customer", {"name": "孙八", "mobile": "13400001234"})
    page = web.signed_in("xiao.wang", width=375, height=740)
    for url in (f"{APP}/customer", f"{APP}/customer/new", f"{APP}/loan_case/new",
                f"{APP}/customer/records/{doc['id']}",
                f"{APP}/customer/records/{doc['id']}/edit"):
        page.goto(url)
        page.wait_for_load_state("networkidle")
        width = page.evaluate("document.documentElement.scrollWidth")
        assert width <= 375, f"{url} is {width} px wide"
