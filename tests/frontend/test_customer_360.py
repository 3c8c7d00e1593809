"""The customer's 360° view (issue 18) in a real browser, on the CRM template, as the
salesperson sees it: the head with key facts (masked), status and tags, the figure
cards, their loan cases and follow-ups, and a timeline holding the case's flow steps; the
quick actions — log a follow-up whose next date becomes a to-do, start a loan case with
its flow, upload a document, send a templated SMS once its gateway is set (audited) —
each bringing them back where they were; and all of it on a phone."""

from __future__ import annotations

import re
from datetime import datetime, time
from types import SimpleNamespace
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select

from engine_flows.instances import start_run
from engine_rules.models import ActionRun
from engine_rules.scans import scan_dates
from platform_core.channels.store import save as save_channel
from platform_core.models import utcnow
from platform_core.outbox import Dispatcher
from platform_core.security.models import AuditEntry
from tests.frontend.conftest import add_user, alert, path_of, status
from tests.frontend.test_widgets import pick
from tests.frontend.test_workspace import _create, _crm
from tests.security_setup import SYSTEM

# CI runs these pages on PostgreSQL too: their own queries go beyond the API's.
pytestmark = pytest.mark.database_pass

APP = "/apps/crm/forms"
CHINA = ZoneInfo("Asia/Shanghai")


def _customer(db, keyring) -> tuple[int, int]:
    """张三 of xiao.wang with one loan case in its flow and one follow-up."""
    customer = _create(db, keyring, "xiao.wang", "customer", {
        "name": "张三", "mobile": "13800001234", "status": "following", "level": "a",
        "tags": ["urgent"], "city": "北京"})
    case = _create(db, keyring, "xiao.wang", "loan_case", {
        "customer": customer["id"], "loan_type": "mortgage", "amount": "800000"})
    with db.write() as s:
        start_run(s, app="crm", flow="loan_service", record_id=case["id"], actor=SYSTEM,
                  now=utcnow(), keyring=keyring)
    _create(db, keyring, "xiao.wang", "follow_up", {
        "customer": customer["id"], "method": "phone", "summary": "初次电话沟通",
        "follow_date": "2026-11-01"})
    _create(db, keyring, "lao.zhao", "customer", {"name": "别人的客户",
                                                  "mobile": "13900001111"})
    return customer["id"], case["id"]


def _signed_in_on_customer(web, db, keyring) -> tuple[object, int]:
    """The CRM with 张三 (``_customer``), xiao.wang on 张三's page."""
    _crm(db)
    customer_id, _case_id = _customer(db, keyring)
    page = web.signed_in("xiao.wang")
    _open(page, customer_id)
    return page, customer_id


def _open(page, customer_id: int) -> None:
    page.goto(f"{APP}/customer/records/{customer_id}")
    page.wait_for_selector("#timeline .timeline, #timeline [data-kind], #timeline li")


def test_the_salesperson_sees_the_whole_customer_on_one_page(web, db, server_keyring):
    _crm(db)
    customer_id, case_id = _customer(db, server_keyring)
    page = web.signed_in("xiao.wang")
    _open(page, customer_id)
    facts = page.inner_text("#record-facts")
    assert "138****1234" in facts and "13800001234" not in facts  # masked as everywhere
    assert "北京" in facts and "负责人" in facts
    badges = page.inner_text("#record-badges")
    assert "跟进中" in badges and "急用款" in badges
    cards = page.inner_text("#record-cards")
    assert "业务笔数" in cards and "800,000.00" in cards
    cases = page.locator("#related-loan_case-customer tbody tr")
    assert cases.count() == 1 and "审批" not in cases.first.inner_text()
    cases.first.locator("a.open").click()
    assert path_of(page) == f"{APP}/loan_case/records/{case_id}"
    page.go_back()
    page.wait_for_selector("#timeline li")
    assert "初次电话沟通" in page.inner_text("#related-follow_up-customer")
    assert "需求分析" in page.inner_text("#timeline")  # the case's flow step, on the customer
    assert "别人的客户" not in page.inner_text("main")


def test_a_long_related_list_shows_its_newest_rows_and_links_to_all(web, db, server_keyring):
    _crm(db)
    customer_id, _case_id = _customer(db, server_keyring)
    for i in range(6):
        _create(db, server_keyring, "xiao.wang", "follow_up", {
            "customer": customer_id, "method": "sms", "summary": f"提醒第{i}次",
            "follow_date": "2026-11-02"})
    page = web.signed_in("xiao.wang")
    _open(page, customer_id)
    follow_ups = page.locator("#related-follow_up-customer")
    assert follow_ups.locator("tbody tr").count() == 5
    assert "提醒第5次" in follow_ups.inner_text() and "初次电话沟通" not in follow_ups.inner_text()
    follow_ups.locator("a:has-text('查看全部 7 条')").click()
    page.wait_for_selector("#rows")
    assert page.locator("#rows tr[id^=r-]").count() == 7


def test_a_follow_up_logged_from_the_customer_comes_back_as_a_to_do(web, db, server_keyring):
    page, customer_id = _signed_in_on_customer(web, db, server_keyring)
    today = datetime.now(CHINA).date()
    page.click("#quick-actions a:has-text('记跟进')")
    assert "张三" in page.inner_text("#row-customer")  # pre-linked
    page.select_option("#f-method", "wechat")
    page.fill("#f-summary", "约周五面谈")
    page.fill("#f-follow_date", today.isoformat())
    page.fill("#f-next_date", today.isoformat())
    page.click("#save")
    page.wait_for_selector("#related-follow_up-customer")
    assert path_of(page) == f"{APP}/customer/records/{customer_id}?msg=record_saved"
    follow_ups = page.inner_text("#related-follow_up-customer")
    assert "约周五面谈" in follow_ups and "初次电话沟通" in follow_ups

    # the template's rule makes the next contact date a to-do on that day, at 09:00
    due = max(datetime.combine(today, time(9, 30), CHINA), datetime.now(CHINA))
    with db.write() as s:
        assert scan_dates(s, due.astimezone(ZoneInfo("UTC")), server_keyring) >= 1
    page.goto("/tasks")
    assert "今日跟进: 约周五面谈" in page.inner_text("main")


def test_a_loan_case_started_from_the_customer_opens_at_its_first_step(
        web, db, server_keyring):
    page, customer_id = _signed_in_on_customer(web, db, server_keyring)
    add_user(db, "clerk.one", roles=("clerk",))
    _create(db, server_keyring, "clerk.one", "bank_product", {
        "name": "经营贷", "bank": "icbc", "loan_type": "business"})
    page.click("#quick-actions a:has-text('新建贷款业务')")
    assert "贷款服务流程" in page.inner_text("#starts-flow")
    page.click("#save")  # the amount and type are missing: nothing is saved or started
    assert "未能保存" in alert(page)
    assert "贷款服务流程" in page.inner_text("#starts-flow")
    page.select_option("#f-loan_type", "business")
    page.fill("#f-amount", "50万")
    page.click("#save")
    page.wait_for_selector("#stands .stand-step")
    assert re.fullmatch(rf"{APP}/loan_case/records/\d+\?msg=record_saved", path_of(page))
    assert "需求分析" in page.inner_text("#stands .step-name")
    case_url = path_of(page).split("?")[0]
    page.click("#stands button[value='outcome:submit']")  # 需求分析: type and amount set
    page.wait_for_selector("#stands .stand-step[data-node=matching]")
    page.fill("#f-rate", "3.5")
    pick(page, "product", "经营贷")  # needed to submit the match
    page.click("#stands button[value='outcome:submit']")  # 产品匹配
    page.wait_for_selector("#stands .stand-step[data-node=signing]")
    page.wait_for_selector("#timeline li")
    timeline = page.inner_text("#timeline")
    for step in ("需求分析", "产品匹配"):  # each completed, with its time
        assert re.search(rf"\d{{4}}-\d{{2}}-\d{{2}} \d{{2}}:\d{{2}}\s+\S+ 完成了步骤「{step}」",
                         timeline), timeline
    page.goto(f"{APP}/customer/records/{customer_id}")
    assert page.locator("#related-loan_case-customer tbody tr").count() == 2
    page.wait_for_selector("#timeline li")
    assert "产品匹配" in page.inner_text("#timeline")  # the customer's timeline has it too
    assert case_url.startswith(f"{APP}/loan_case/records/")


def test_a_document_uploaded_from_the_customer_is_kept_with_the_ones_before(
        web, db, server_keyring, tmp_path):
    page, customer_id = _signed_in_on_customer(web, db, server_keyring)
    for name in ("身份证.pdf", "收入证明.pdf"):
        scan = tmp_path / name
        scan.write_bytes(b"%PDF-1.4\n%%EOF\n")
        _open(page, customer_id)
        page.set_input_files("#qa-documents", str(scan))
        page.wait_for_url(re.compile(r"msg=files_uploaded"))
        assert "文件已上传" in status(page)
    files = page.inner_text("[data-field=documents]")
    assert "身份证.pdf" in files and "收入证明.pdf" in files
    wrong = tmp_path / "notes.exe"
    wrong.write_bytes(b"MZ")
    _open(page, customer_id)
    page.set_input_files("#qa-documents", str(wrong))
    page.wait_for_selector("#record-error")
    assert "not accepted" in alert(page) or "不" in alert(page)
    assert "notes.exe" not in page.inner_text("[data-field=documents]")


def test_a_templated_sms_goes_out_only_through_a_configured_gateway_and_is_audited(
        web, db, server_keyring):
    page, customer_id = _signed_in_on_customer(web, db, server_keyring)
    page.click("#quick-actions a:has-text('发送消息')")
    assert {"短信：首次联系问候", "短信：请客户补充资料"} <= set(
        page.locator("#message-choices a").all_inner_texts())
    assert "还没有配置" in page.inner_text("#channel-missing")
    assert page.is_disabled("#send-message button[type=submit]")

    with db.write() as s:
        _save_sms(s, server_keyring)
    page.reload()
    page.click("#message-choices a:has-text('首次联系问候')")
    # The greeting is also the first choice, shown before the click: wait for the page
    # the click loads, or the send below races that navigation.
    # (``commit``: the page's own load event can lag on a busy machine; the reads below
    # wait for their elements)
    page.wait_for_url(re.compile(r"pick=sms_greeting"), wait_until="commit")
    page.wait_for_selector("#send-message button[type=submit]")
    body = page.inner_text("#message-body")
    assert body.startswith("张三您好")
    assert "138****1234" in page.inner_text("main")  # the recipient, masked
    page.click("#send-message button[type=submit]")
    try:
        page.wait_for_url(re.compile(r"msg=message_sent"))
    except Exception as error:  # say where the browser got to, not only that it timed out
        raise AssertionError(f"not sent: at {page.url}, alert {alert(page)!r}") from error
    assert path_of(page).startswith(f"{APP}/customer/records/{customer_id}")
    with db.read() as s:
        queued = list(s.execute(select(ActionRun)).scalars())
        audited = list(s.execute(select(AuditEntry).where(
            AuditEntry.action == "rule.manual_run")).scalars())
    assert [r.request["to"] for r in queued if r.status == "pending"] == [["13800001234"]]
    assert len(audited) == 1 and audited[0].detail["rule"] == "sms_greeting"
    _dispatch(db, server_keyring)


def _save_sms(s, keyring) -> None:
    config = {"gateway_url": "http://127.0.0.1:9/sms", "method": "POST",
              "body_template": '{"phone": "{{ phone }}", "text": "{{ message }}"}',
              "signature_header": "X-Signature"}
    save_channel(s, keyring, channel="sms", config=config, secrets={}, actor=SYSTEM)


def _dispatch(db, keyring) -> None:
    dispatcher = Dispatcher.from_registry(db, context=SimpleNamespace(keyring=keyring),
                                          worker_id="tests")
    while dispatcher.run_once(now=utcnow()):
        pass


def test_the_customer_page_fits_a_phone(web, db, server_keyring):
    _crm(db)
    customer_id, _case_id = _customer(db, server_keyring)
    phone = web.signed_in("xiao.wang", width=375, height=800)
    _open(phone, customer_id)
    assert phone.evaluate("document.documentElement.scrollWidth") <= 375
    head = phone.locator(".record-head").bounding_box()
    related = phone.locator("#related-loan_case-customer").bounding_box()
    timeline = phone.locator("#timeline").bounding_box()
    assert head["y"] < related["y"] < timeline["y"]  # the head first, the history last
    actions = phone.locator("#quick-actions > *")
    assert actions.count() == 4
    assert all(actions.nth(i).bounding_box()["width"] >= 120 for i in range(4))
    phone.screenshot(path="/tmp/customer-360-375.png", full_page=True)
