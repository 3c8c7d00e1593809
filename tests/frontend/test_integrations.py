"""The integration pages in a real browser: channel settings (a password saved, then only
said to be set; a test message to a real local SMTP server, its result in place), webhook
subscriptions (created with their secret shown once, the delivery log, a ping, a dead
letter replayed), integration tokens (scoped, shown once, revoked), refusals for
non-administrators, and the phone layout."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from engine_forms.forms import create_app as create_form_app
from platform_core.security.models import User
from platform_core.webhooks.models import WebhookDelivery
from tests.engine_rules.rules_setup import SmtpSink
from tests.frontend.conftest import add_user, alert, path_of, status

PASSWORD = "Sm7p-pa55word!"
PAGES = ["/admin/channels", "/admin/webhooks", "/admin/tokens"]


@pytest.fixture
def smtp() -> Iterator[SmtpSink]:
    sink = SmtpSink()
    yield sink
    sink.close()


def _admin(db, email: str | None = "boss@bank.example") -> None:
    add_user(db, "boss")
    with db.write() as s:
        s.query(User).filter(User.username == "boss").one().email = email


def _crm(db) -> None:
    with db.write() as s:
        create_form_app(s, key="crm", name="客户管理")


def test_smtp_password_is_saved_write_only_and_the_test_result_shows_in_place(web, db,
                                                                               smtp):
    _admin(db)
    page = web.signed_in("boss")
    page.goto("/admin/channels")
    assert page.inner_text("#smtp-source") == "使用环境变量"
    assert "未设置" in page.inner_text("#smtp-password-state")
    page.fill("#smtp-host", "127.0.0.1")
    page.fill("#smtp-port", str(smtp.port))
    page.fill("#smtp-user", "mailer")
    page.fill("#smtp-password", PASSWORD)
    page.fill("#smtp-from", "crm@bank.example")
    page.locator("#smtp-form button[type=submit]").click()
    page.wait_for_load_state()
    assert "渠道设置已保存" in status(page)
    assert "已在此保存" in page.inner_text("#smtp-source")
    state = page.inner_text("#smtp-password-state")
    assert "已设置" in state and "保存在数据库" in state
    assert page.input_value("#smtp-password") == ""  # never sent back to the browser
    assert PASSWORD not in page.content()
    assert page.input_value("#smtp-host") == "127.0.0.1"

    # the test, with the keyboard: type an address, Enter; the result replaces nothing else
    page.focus("#smtp-to")
    page.keyboard.type("ops@bank.example")
    page.keyboard.press("Enter")
    result = page.locator("#smtp-test-result .msg.ok")
    result.wait_for()
    assert "ops@bank.example" in result.inner_text()
    assert path_of(page).startswith("/admin/channels")
    [(sender, rcpts, _raw)] = smtp.messages
    assert (sender, rcpts) == ("crm@bank.example", ["ops@bank.example"])
    assert smtp.logins == [("mailer", PASSWORD)]

    # a failure says exactly why, in place of the last result
    page.fill("#smtp-password", "wrong")
    page.locator("#smtp-form button[type=submit]").click()
    page.wait_for_load_state()
    page.locator("#smtp-test button").click()
    failed = page.locator("#smtp-test-result .msg.error")
    failed.wait_for()
    assert "SMTPAuthenticationError" in failed.inner_text()
    assert page.locator("#smtp-test-result .msg").count() == 1
    # bad input too
    page.fill("#smtp-to", "not-an-address")
    page.locator("#smtp-test button").click()
    page.locator("#smtp-test-result", has_text="not an e-mail address").wait_for()


def test_a_refused_channel_save_keeps_what_was_typed(web, db):
    _admin(db)
    page = web.signed_in("boss")
    page.goto("/admin/channels")
    page.fill("#sms-url", "ftp://sms.example/send")
    page.locator("#sms-form button[type=submit]").click()
    page.wait_for_load_state()
    assert "sms.gateway_url" in alert(page)
    assert page.input_value("#sms-url") == "ftp://sms.example/send"
    assert "使用环境变量" in page.inner_text("#sms-source")  # nothing was saved


def test_a_webhook_is_created_its_deliveries_seen_and_a_dead_letter_replayed(web, db):
    _admin(db)
    _crm(db)
    page = web.signed_in("boss")
    page.goto("/admin/channels")
    page.get_by_role("link", name="Webhook", exact=True).click()
    assert path_of(page) == "/admin/webhooks"
    page.fill("#hook-name", "财务系统")
    page.fill("#hook-url", "https://93.184.215.14/qiao-hook")
    page.check("#hook-events input[value='record.created']")
    page.click('text="创建订阅"')
    secret = page.inner_text("#webhook-secret")
    assert secret.startswith("whsec_")
    page.goto("/admin/webhooks?app=crm")
    assert secret not in page.content()  # shown once
    page.get_by_role("link", name="财务系统").click()
    hook_path = path_of(page)
    assert "record.created" in page.inner_text(".facts")
    assert page.locator("#no-deliveries").is_visible()

    page.click('text="发送 ping"')
    page.wait_for_load_state()
    assert "已排队发送 ping" in status(page)
    assert "待发送" in page.locator("#deliveries tbody tr").first.inner_text()

    with db.write() as s:  # a delivery that failed every retry
        dead = WebhookDelivery(subscription_id=int(hook_path.rsplit("/", 1)[1]),
                               event_type="record.created", body={"id": "evt_1"},
                               status="dead", attempts=8, last_status_code=500,
                               last_error="HTTP 500")
        s.add(dead)
        s.flush()
        dead_id = dead.id
    page.get_by_role("link", name="死信").click()
    row = page.locator(f"#delivery-{dead_id}")
    assert "死信" in row.inner_text() and "HTTP 500" in row.inner_text()
    assert page.locator("#deliveries tbody tr").count() == 1  # the filter
    row.get_by_role("button", name="重放").click()
    page.wait_for_load_state()
    assert "已重新排队投递" in status(page)
    assert page.locator("#deliveries", has_text=f"重放自 #{dead_id}").is_visible()


def test_a_scoped_token_for_an_integration_is_shown_once_and_revoked(web, db, server):
    _admin(db)
    add_user(db, "erp", roles=("staff",))
    page = web.signed_in("boss")
    page.goto("/admin/tokens")
    page.fill("#token-name", "ERP 对接")
    page.select_option("#token-user", label="Erp (erp)")
    page.fill("#token-limit", "crm")
    page.select_option("#token-access", "write")
    page.click('text="创建令牌"')
    secret = page.inner_text("#token-secret")
    assert secret.startswith("qiao_")
    row = page.locator("#tokens tr", has_text="ERP 对接")
    assert "erp" in row.inner_text() and "读写" in row.inner_text()
    assert "crm" in row.inner_text()
    me = httpx.get(f"{server}/api/v1/me", headers={"Authorization": f"Bearer {secret}"})
    assert me.status_code == 200 and me.json()["username"] == "erp"

    page.goto("/admin/tokens")
    assert secret not in page.content()
    row = page.locator("#tokens tr", has_text="ERP 对接")
    row.get_by_role("button", name="吊销").click()  # htmx swaps the row (confirm accepted)
    page.locator("#tokens tr", has_text="ERP 对接").locator("text=已吊销").wait_for()
    assert httpx.get(f"{server}/api/v1/me", headers={
        "Authorization": f"Bearer {secret}"}).status_code == 401


def test_non_administrators_are_refused(web, db):
    add_user(db, "li", roles=("staff",))
    add_user(db, "wang", roles=("manager",))
    for who in ("li", "wang"):
        page = web.signed_in(who)
        assert page.locator("nav.nav a", has_text="集成").count() == 0
        for path in PAGES:
            assert page.goto(path).status == 403, path


def test_the_admin_nav_leads_to_the_integration_pages(web, db):
    _admin(db)
    page = web.signed_in("boss")
    page.locator("nav.nav a", has_text="集成").click()
    assert path_of(page) == "/admin/channels"
    for name, path in (("API 令牌", "/admin/tokens"), ("Webhook", "/admin/webhooks")):
        page.locator("nav.tabs a", has_text=name).click()
        assert path_of(page) == path
        assert page.locator("nav.nav a[aria-current=page]").inner_text() == "集成"


def test_the_integration_pages_fit_a_phone(web, db):
    _admin(db)
    _crm(db)
    page = web.signed_in("boss", width=375, height=740)
    page.goto("/admin/webhooks?app=crm")
    page.fill("#hook-name", "一个名字很长很长的外部系统")
    page.fill("#hook-url", "https://93.184.215.14/" + "very-long-path/" * 8)
    page.check("#hook-events input[value='*']")
    page.click('text="创建订阅"')
    page.goto("/admin/channels")
    page.fill("#smtp-host", "127.0.0.1")
    page.fill("#smtp-port", "1")
    page.locator("#smtp-form button[type=submit]").click()
    page.wait_for_load_state()
    page.locator("#smtp-test button").click()
    page.locator("#smtp-test-result .msg").wait_for()
    assert page.evaluate("document.documentElement.scrollWidth") <= 375
    for path in [*PAGES, "/admin/webhooks?app=crm"]:
        page.goto(path)
        width = page.evaluate("document.documentElement.scrollWidth")
        assert width <= 375, f"{path} is {width}px wide on a phone"
    page.get_by_role("link", name="一个名字很长很长的外部系统").click()
    assert page.evaluate("document.documentElement.scrollWidth") <= 375
