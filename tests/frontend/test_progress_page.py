"""The customer progress link in Chromium: a salesperson creates it on the case page and
copies it; the customer opens it on a 375 px phone and sees the case number, their masked
name, the steps passed, the current one in plain words, the documents still missing and
the owner's contact; once revoked it shows only "页面不存在"."""

from __future__ import annotations

from sqlalchemy import select, update

from engine_flows import tasks
from engine_flows.instances import start_run
from engine_flows.models import Task
from engine_flows.tasks import Who
from platform_core.models import utcnow
from platform_core.security.models import User
from platform_core.security.principal import load_principal
from tests.frontend.conftest import add_user
from tests.frontend.test_workspace import _create, _crm

MATERIALS = [{"item": "身份证", "received": True}, {"item": "收入证明", "received": False},
             {"item": "近半年银行流水"}]


def _case_at_signing(db, keyring) -> dict:
    """xiao.wang's case of 张三丰, its flow through 需求分析 and 产品匹配."""
    with db.write() as s:
        s.execute(update(User).where(User.username == "xiao.wang").values(
            display_name="王小明", mobile="13700001111"))
    customer = _create(db, keyring, "xiao.wang", "customer",
                       {"name": "张三丰", "mobile": "13912345678"})
    case = _create(db, keyring, "xiao.wang", "loan_case", {
        "customer": customer["id"], "loan_type": "mortgage", "amount": 500000,
        "materials": MATERIALS})
    add_user(db, "clerk.one", roles=("clerk",))
    product = _create(db, keyring, "clerk.one", "bank_product", {
        "name": "安居贷", "bank": "icbc", "loan_type": "mortgage"})["id"]
    with db.write() as s:
        user = s.execute(select(User).where(User.username == "xiao.wang")).scalar_one()
        who = Who(load_principal(s, user, via="test"), keyring, utcnow())
        start_run(s, app="crm", flow="loan_service", record_id=case["id"],
                  actor=who.principal.actor, now=who.now, keyring=keyring)
        for data in ({}, {"product": product}):  # submitting 产品匹配 needs a product
            task = s.execute(select(Task).where(Task.record_id == case["id"],
                                                Task.status == "open")).scalar_one()
            tasks.complete(s, task.id, who, outcome="submit", data=data)
    return case


def test_staff_create_a_link_and_the_customer_sees_their_case_on_a_phone(web, db, tmp_path,
                                                                         server_keyring):
    _crm(db)
    case = _case_at_signing(db, server_keyring)
    record = f"/apps/crm/forms/loan_case/records/{case['id']}"
    staff = web.signed_in("xiao.wang")
    staff.goto(record)
    panel = staff.locator("#progress-links-panel")
    panel.wait_for()
    staff.wait_for_load_state("networkidle")  # htmx has taken the panel's forms over
    assert "还没有链接" in panel.inner_text()
    staff.select_option("#progress-days", "7")
    staff.click("#create-progress-link")
    staff.wait_for_selector("#progress-links-table code")
    assert "链接已创建" in panel.inner_text()
    url = staff.locator("#progress-links-table code").first.inner_text().strip()
    assert url.startswith(f"{web.base}/p/")

    phone = web.page(width=375, height=812)
    answer = phone.goto(url)
    assert answer.status == 200 and answer.headers["referrer-policy"] == "no-referrer"
    assert phone.inner_text("#case-no") == case["data"]["case_no"]
    assert phone.inner_text("#customer-name") == "张**"
    assert phone.inner_text("#current-step") == "签订服务协议"
    assert phone.locator("#passed-steps li").all_inner_texts() == ["了解您的贷款需求",
                                                                    "为您匹配银行和产品"]
    assert phone.locator("#missing-documents li").all_inner_texts() == ["收入证明",
                                                                         "近半年银行流水"]
    contact = phone.inner_text("#contact")
    assert "王小明" in contact and "13700001111" in contact
    text = phone.inner_text("body")
    assert "张三丰" not in text and "13912345678" not in text and "500" not in text
    assert phone.locator("a").evaluate_all("links => links.map(a => a.href)") == [
        "tel:13700001111"]  # no way anywhere else
    assert phone.locator("script, nav, header, form").count() == 0
    assert phone.evaluate("document.documentElement.scrollWidth") <= 375
    phone.screenshot(path=str(tmp_path / "progress-page-375.png"), full_page=True)

    staff.reload()
    staff.wait_for_selector("#progress-links-table")
    staff.wait_for_load_state("networkidle")
    row = staff.locator("#progress-links-table li").first
    assert row.locator(".opens").inner_text() == "1"
    assert "有效" in row.inner_text()
    panel.screenshot(path=str(tmp_path / "progress-links-panel.png"))
    row.locator("button.danger").click()  # the confirmation is accepted by the fixture
    staff.wait_for_selector("#progress-links-table .badge.bad")
    assert "已吊销" in staff.locator("#progress-links-table li").first.inner_text()
    assert staff.locator("#progress-links-table code").count() == 0

    gone = phone.goto(url)
    assert gone.status == 404
    assert phone.inner_text("main").startswith("页面不存在")
    assert "张" not in phone.inner_text("body")


def test_the_panel_is_only_for_who_may_update_the_case(web, db, server_keyring):
    _crm(db)
    case = _case_at_signing(db, server_keyring)
    panel = f"/apps/crm/forms/loan_case/records/{case['id']}/progress-links"
    mine = web.signed_in("xiao.wang")
    assert mine.goto(panel).status == 200
    assert mine.locator("#create-progress-link").count() == 1
    other = web.signed_in("lao.zhao")  # another salesperson: not their case
    assert other.goto(panel).status == 404
    assert other.locator("#create-progress-link").count() == 0
