"""Signing in and out in a real browser: messages, lock-out, one-time passwords, CSRF,
TOTP, and what the session cookie looks like."""

from __future__ import annotations

import pyotp

from tests.frontend.conftest import add_user, alert, path_of, status, user_row
from tests.security_setup import PASSWORD

NEW_PASSWORD = "Brand-new-Pass9"


def test_sign_in_lands_on_the_page_asked_for(web, db):
    add_user(db, "boss")
    page = web.page()
    page.goto("/admin/users")
    assert path_of(page) == "/login?next=%2Fadmin%2Fusers"
    web.sign_in(page, "boss", path=path_of(page))
    assert path_of(page) == "/admin/users"
    assert page.locator("h1").inner_text() == "用户"
    page.click('nav >> text="首页"')
    assert "你好，Boss" in page.locator("h1").inner_text()
    cookie = next(c for c in page.context.cookies() if c["name"] == "qiao_session")
    assert cookie["httpOnly"] and cookie["sameSite"] == "Lax" and cookie["path"] == "/"


def test_next_never_leaves_the_site(web, db):
    add_user(db, "boss")
    page = web.page()
    page.goto("/login?next=//evil.example/x")
    web.sign_in(page, "boss", path=path_of(page))
    assert page.url == web.base + "/"


def test_a_wrong_password_is_told_plainly(web, db):
    add_user(db, "boss")
    page = web.page()
    web.sign_in(page, "boss", "not-the-password")
    assert "用户名或密码错误 / wrong username or password" in alert(page)
    assert page.input_value("#username") == "boss"


def test_five_wrong_passwords_lock_until_an_admin_unlocks(web, db):
    add_user(db, "boss")
    add_user(db, "li", roles=("staff",))
    page = web.page()
    for _ in range(5):
        web.sign_in(page, "li", "wrong-password-1")
    web.sign_in(page, "li")  # the right password no longer helps
    assert "已锁定" in alert(page)

    admin = web.signed_in("boss")
    admin.goto("/admin/users")
    row = user_row(admin, "li")
    assert "已锁定" in row.inner_text()
    row.locator('text="解锁"').click()
    assert "用户已解锁" in status(admin)
    assert "已锁定" not in user_row(admin, "li").inner_text()

    web.sign_in(page, "li")
    assert page.url == web.base + "/"


def test_a_one_time_password_must_be_changed_first(web, db):
    one_time = add_user(db, "wang", roles=("staff",), one_time=True)
    page = web.page()
    web.sign_in(page, "wang", one_time)
    assert path_of(page).startswith("/password")
    page.goto("/me/security")  # every other page sends them back
    assert path_of(page) == "/password"
    page.fill("#current_password", one_time)
    page.fill("#new_password", NEW_PASSWORD)
    page.fill("#confirm_password", NEW_PASSWORD + "x")
    page.click("button.primary")
    assert "两次输入的新密码不一致" in alert(page)
    page.fill("#current_password", one_time)
    page.fill("#new_password", NEW_PASSWORD)
    page.fill("#confirm_password", NEW_PASSWORD)
    page.click("button.primary")
    assert page.url == web.base + "/?msg=password_changed"
    assert "密码已修改" in status(page)
    page.goto("/me/security")
    assert path_of(page) == "/me/security"


def test_a_post_without_the_csrf_token_is_refused_while_the_form_works(web, db):
    add_user(db, "boss")
    page = web.signed_in("boss")
    page.goto("/admin/departments")
    refused = page.request.post("/admin/departments", form={"name": "伪造 Forged"})
    assert refused.status == 403
    fetched = page.evaluate("""() => fetch('/admin/departments', {method: 'POST',
        headers: {'Content-Type': 'application/x-www-form-urlencoded'},
        body: 'name=Forged'}).then(r => r.status)""")
    assert fetched == 403
    wrong = page.request.post("/admin/departments",
                              form={"name": "Forged", "csrf_token": "not-the-token"})
    assert wrong.status == 403 and "csrf_failed" in wrong.text()

    page.fill("#new-name", "销售部 Sales")
    page.click('text="添加"')
    assert "部门已保存" in status(page)
    names = page.locator("#departments input[name=name]")
    assert [names.nth(i).input_value() for i in range(names.count())] == ["销售部 Sales"]


def test_after_sign_out_back_and_reload_show_the_sign_in_page(web, db):
    add_user(db, "boss")
    page = web.signed_in("boss")
    page.goto("/admin/users")
    old_cookie = [c for c in page.context.cookies() if c["name"] == "qiao_session"]
    page.click("button:has-text('退出')")
    assert path_of(page) == "/login?msg=signed_out"
    assert "已退出" in status(page)
    page.go_back()
    assert path_of(page).startswith("/login") and page.locator("#password").count() == 1
    page.reload()
    assert path_of(page).startswith("/login")
    # The session is dead on the server, not just forgotten by this browser.
    replay = web.page()
    replay.context.add_cookies(old_cookie)
    replay.goto("/admin/users")
    assert path_of(replay).startswith("/login")


def test_two_step_sign_in_with_an_authenticator_code(web, db):
    add_user(db, "boss")
    page = web.signed_in("boss")
    page.goto("/me/security")
    page.click('text="开启"')
    secret = page.inner_text("#totp-secret")
    assert page.locator("[data-qr] img.qr").count() == 1  # the vendored QR library drew it
    totp = pyotp.TOTP(secret)
    page.fill("#code", next(c for c in ("000000", "111111", "222222")
                            if not totp.verify(c, valid_window=1)))
    page.click('text="确认启用"')
    assert "wrong code" in alert(page)
    page.click('text="开启"')
    secret = page.inner_text("#totp-secret")
    page.fill("#code", pyotp.TOTP(secret).now())
    page.click('text="确认启用"')
    assert "动态验证码已启用" in status(page)
    page.click("button:has-text('退出')")

    web.sign_in(page, "boss")
    assert "请输入动态验证码" in alert(page)
    page.fill("#password", PASSWORD)
    page.fill("#totp", pyotp.TOTP(secret).now())
    page.click("button[type=submit].primary")
    assert page.url == web.base + "/"


def test_personal_token_shown_once_then_revoked_in_place(web, db):
    add_user(db, "boss")
    page = web.signed_in("boss")
    page.goto("/me/security")
    page.fill("#token-name", "财务对接")
    page.fill("#token-limit", "crm")
    page.click('text="创建令牌"')
    secret = page.inner_text("#token-secret")
    assert secret.startswith("qiao_")
    me = page.request.get("/api/v1/me", headers={"Authorization": f"Bearer {secret}"})
    assert me.status == 200 and me.json()["username"] == "boss"
    page.goto("/me/security")
    assert page.locator("#token-secret").count() == 0
    row = page.locator("#tokens tbody tr", has_text="财务对接")
    assert secret[:12] in row.inner_text() and "有效" in row.inner_text()
    row.locator('text="吊销"').click()  # htmx, with the CSRF header from qiao.js
    page.wait_for_selector('#tokens tbody tr >> text="已吊销"')
    assert path_of(page) == "/me/security"
    revoked = page.request.get("/api/v1/me", headers={"Authorization": f"Bearer {secret}"})
    assert revoked.status == 401
