"""Sign-in, lock-out, TOTP, sessions with CSRF, tokens, and who may grant what."""

from __future__ import annotations

from datetime import timedelta

import pyotp
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from platform_core.app import create_app
from platform_core.models import utcnow
from platform_core.security.auth import SESSION_COOKIE, start_session
from platform_core.security.models import ApiToken, AuditEntry, User
from platform_core.settings import load_settings
from tests.engine_forms.forms_setup import make_crm, ok
from tests.security_setup import (
    PASSWORD,
    add_department,
    add_user,
    client_as,
    token_for,
    within_one_rate_window,
)

TOKEN = "/api/v1/auth/token"


@pytest.fixture
def app(db, tmp_path):
    return create_app(load_settings(data_dir=tmp_path, lockout_threshold=3,
                                    lockout_client_threshold=6, login_rate_per_minute=50,
                                    base_url="https://crm.example.cn"), db=db)


@pytest.fixture
def anon(app):
    return TestClient(app, raise_server_exceptions=False)


def sign_in(anon, username, password=PASSWORD, **extra):
    return anon.post(TOKEN, json={"username": username, "password": password} | extra)


def actions(db, prefix):
    with db.read() as s:
        return [(e.action, e.detail.get("reason")) for e in s.execute(
            select(AuditEntry).where(AuditEntry.action.startswith(prefix))
            .order_by(AuditEntry.id)).scalars()]


def test_token_exchange_gives_a_short_lived_bearer_token(db, anon):
    add_user(db, "zhang", roles=("staff",))
    body = ok(sign_in(anon, "zhang"))
    assert body["token_type"] == "bearer" and body["expires_in"] == 3600
    me = ok(anon.get("/api/v1/me", headers={"Authorization": f"Bearer {body['access_token']}"}))
    assert me["username"] == "zhang" and me["via"] == "token" and "password_hash" not in me
    with db.read() as s:
        stored = s.execute(select(ApiToken)).scalar_one()
    assert body["access_token"] not in (stored.token_hash, stored.prefix)  # only a hash kept
    assert actions(db, "auth.") == [("auth.login", None)]


def test_lock_out_per_user_with_a_clear_message_and_an_admin_unlock(db, app, anon):
    user_id = add_user(db, "li", roles=("staff",))
    for _ in range(3):
        wrong = sign_in(anon, "li", "Wrong-passw0rd")
        assert wrong.status_code == 401 and wrong.json()["code"] == "invalid_credentials"
    locked = sign_in(anon, "li")  # even the right password
    assert locked.status_code == 423 and "locked" in locked.json()["detail"]
    assert "15 分钟" in locked.json()["detail"]
    admin = client_as(app, db, "boss")
    assert ok(admin.get("/api/v1/auth/lockouts"))["users"][0]["username"] == "li"
    ok(admin.post(f"/api/v1/users/{user_id}/unlock"))
    assert sign_in(anon, "li").status_code == 200
    assert [a for a in actions(db, "auth.login") if a[1]] == [
        ("auth.login_failed", "wrong_password")] * 3 + [("auth.login_failed", "user_locked")]


def test_lock_out_per_client_address_across_usernames(db, app, anon):
    add_user(db, "wang", roles=("staff",))
    for i in range(6):
        assert sign_in(anon, f"guess{i}", "x").status_code == 401
    refused = sign_in(anon, "wang")
    assert refused.status_code == 423
    admin = client_as(app, db, "boss")
    clients = ok(admin.get("/api/v1/auth/lockouts"))["clients"]
    assert [c["client"] for c in clients] == ["testclient"]
    ok(admin.post("/api/v1/auth/lockouts/unlock", json={"client": "testclient"}), 204)
    assert sign_in(anon, "wang").status_code == 200


def test_sign_in_attempts_are_rate_limited_with_retry_after(db, tmp_path):
    app = create_app(load_settings(data_dir=tmp_path, login_rate_per_minute=3), db=db)
    anon = TestClient(app, raise_server_exceptions=False)
    within_one_rate_window()
    for _ in range(3):
        sign_in(anon, "nobody", "x")
    limited = sign_in(anon, "nobody", "x")
    assert limited.status_code == 429 and int(limited.headers["Retry-After"]) >= 1


def test_totp_second_factor(db, app, anon):
    add_user(db, "zhao", roles=("staff",))
    bearer = {"Authorization": f"Bearer {ok(sign_in(anon, 'zhao'))['access_token']}"}
    enrol = ok(anon.post("/api/v1/me/totp", headers=bearer))
    assert enrol["otpauth_uri"].startswith("otpauth://totp/Qiao:zhao")
    bad = anon.post("/api/v1/me/totp/confirm", json={"code": "000000"}, headers=bearer)
    assert bad.status_code == 422
    code = pyotp.TOTP(enrol["secret"]).now()
    ok(anon.post("/api/v1/me/totp/confirm", json={"code": code}, headers=bearer), 204)
    with db.read() as s:
        stored = s.execute(select(User).where(User.username == "zhao")).scalar_one()
    assert enrol["secret"] not in stored.totp_secret  # sealed, not in clear
    need = sign_in(anon, "zhao")
    assert need.status_code == 401 and need.json()["code"] == "totp_required"
    assert sign_in(anon, "zhao", totp="123456").json()["code"] == "invalid_credentials"
    assert sign_in(anon, "zhao", totp=pyotp.TOTP(enrol["secret"]).now()).status_code == 200


def test_expired_revoked_and_disabled_are_refused_on_the_next_request(db, app, anon):
    user_id = add_user(db, "qian", roles=("staff",))
    expired = token_for(db, user_id, expires_at=utcnow() - timedelta(seconds=1))
    assert anon.get("/api/v1/me", headers={"Authorization": f"Bearer {expired}"}
                    ).status_code == 401
    live = {"Authorization": f"Bearer {token_for(db, user_id)}"}
    assert anon.get("/api/v1/me", headers=live).status_code == 200
    mine = ok(anon.get("/api/v1/me/tokens", headers=live))["items"]
    assert mine[0]["last_used_at"] is not None
    ok(anon.delete(f"/api/v1/me/tokens/{mine[0]['id']}", headers=live), 204)
    refused = anon.get("/api/v1/me", headers=live)
    assert refused.status_code == 401 and refused.headers["WWW-Authenticate"].startswith("Bearer")
    other = {"Authorization": f"Bearer {token_for(db, user_id)}"}
    admin = client_as(app, db, "boss")
    ok(admin.patch(f"/api/v1/users/{user_id}", json={"status": "disabled"}))
    assert anon.get("/api/v1/me", headers=other).status_code == 401
    assert sign_in(anon, "qian").status_code == 401


def test_token_scopes_narrow_apps_and_writes(db, app):
    admin = client_as(app, db, "boss")
    make_crm(admin)
    user_id = add_user(db, "sun", roles=("manager",))
    reader = TestClient(app, raise_server_exceptions=False)
    reader.headers["Authorization"] = "Bearer " + token_for(
        db, user_id, {"apps": ["crm"], "access": "read"})
    url = "/api/v1/apps/crm/forms/customer/records"
    assert reader.get(url).status_code == 200
    assert reader.post(url, json={"name": "x"}).status_code == 403
    assert reader.get("/api/v1/users").status_code == 403  # a narrowed token: no user admin
    elsewhere = TestClient(app, raise_server_exceptions=False)
    elsewhere.headers["Authorization"] = "Bearer " + token_for(
        db, user_id, {"forms": ["crm.loan_case"], "access": "write"})
    assert elsewhere.get(url).status_code == 403


def _session_client(db, app, username):
    user_id = add_user(db, username, roles=("staff",))
    ctx = app.state.qiao
    with db.write() as s:
        cookie, csrf = start_session(s, ctx.settings, ctx.secret_key, user_id=user_id,
                                     client="testclient")
    client = TestClient(app, raise_server_exceptions=False)
    client.cookies.set(SESSION_COOKIE, cookie)
    return client, cookie, csrf


def test_session_cookie_needs_the_csrf_token_to_change_anything(db, app):
    client, _cookie, csrf = _session_client(db, app, "zhou")
    assert client.get("/api/v1/me").status_code == 200
    body = {"name": "deploy", "scopes": {"access": "read"}}
    forged = client.post("/api/v1/me/tokens", json=body)
    assert forged.status_code == 403 and forged.json()["code"] == "csrf_failed"
    wrong = client.post("/api/v1/me/tokens", json=body, headers={"X-CSRF-Token": "x" * 43})
    assert wrong.status_code == 403
    assert client.post("/api/v1/me/tokens", json=body,
                       headers={"X-CSRF-Token": csrf}).status_code == 201
    with db.read() as s:
        assert len(s.execute(select(ApiToken)).all()) == 1  # the refused ones wrote nothing


def test_a_forged_or_ended_session_is_refused(db, app):
    client, cookie, csrf = _session_client(db, app, "wu")
    raw, _, signature = cookie.rpartition(".")
    forged = TestClient(app, raise_server_exceptions=False)
    flipped = raw[:-1] + ("B" if raw[-1] == "A" else "A")  # another id, the old signature
    forged.cookies.set(SESSION_COOKIE, f"{flipped}.{signature}")
    assert forged.get("/api/v1/me").status_code == 401
    again, cookie2, _ = _session_client(db, app, "wu2")
    assert cookie2 != cookie  # every sign-in gets a new session id
    ok(client.post("/api/v1/auth/logout", headers={"X-CSRF-Token": csrf}), 204)
    replay = TestClient(app, raise_server_exceptions=False)
    replay.cookies.set(SESSION_COOKIE, cookie)
    assert replay.get("/api/v1/me").status_code == 401
    assert again.get("/api/v1/me").status_code == 200


def test_idle_session_expires(db, app):
    client, cookie, _ = _session_client(db, app, "zheng")
    from platform_core.security.models import UserSession

    with db.write() as s:
        row = s.execute(select(UserSession)).scalar_one()
        row.last_seen_at = utcnow() - timedelta(minutes=31)
    assert client.get("/api/v1/me").status_code == 401


def test_nobody_grants_what_they_do_not_hold(db, app):
    a = add_department(db, "一部")
    b = add_department(db, "二部")
    manager = client_as(app, db, "feng", roles=("manager",), department_id=a)
    admin = client_as(app, db, "boss")
    made = manager.post("/api/v1/users", json={"username": "new1", "display_name": "新人",
                                               "department_id": a, "roles": ["staff"]})
    assert ok(made, 201)["one_time_password"]
    assert made.json()["sign_in_url"] == "https://crm.example.cn/login"
    escalate = manager.post("/api/v1/users", json={"username": "new2", "display_name": "x",
                                                   "department_id": a, "roles": ["admin"]})
    assert escalate.status_code == 403
    elsewhere = manager.post("/api/v1/users", json={"username": "new3", "display_name": "x",
                                                    "department_id": b, "roles": ["staff"]})
    assert elsewhere.status_code == 403
    new1 = made.json()["id"]
    sneaky = manager.patch(f"/api/v1/users/{new1}", json={"password_hash": "x"})
    assert sneaky.status_code == 422
    assert manager.patch(f"/api/v1/users/{new1}", json={"roles": ["manager", "admin"]}
                         ).status_code == 403
    assert manager.post("/api/v1/roles", json={"key": "x", "name": "x", "permissions": {
        "admin": True}}).status_code == 403
    boss_id = admin.user_id
    assert manager.get(f"/api/v1/users/{boss_id}").status_code == 404
    bad = admin.post("/api/v1/roles", json={"key": "y", "name": "y", "permissions": {
        "forms": {"crm.customer": {"actions": ["fly"]}}}})
    assert bad.status_code == 422 and "permissions/forms/crm.customer/actions/0" in \
        bad.json()["detail"]
    with db.read() as s:
        assert {u.username for u in s.execute(select(User)).scalars()} == {
            "feng", "boss", "new1"}


def test_links_are_built_from_the_base_url_never_from_request_headers(db, app):
    admin = client_as(app, db, "boss")
    user_id = add_user(db, "he", roles=("staff",))
    reset = ok(admin.post(f"/api/v1/users/{user_id}/reset-password", headers={
        "Host": "evil.example", "X-Forwarded-Host": "evil.example", "Origin": "https://evil"}))
    assert reset["sign_in_url"] == "https://crm.example.cn/login"


def test_a_one_time_password_must_be_changed_first(db, app, anon):
    admin = client_as(app, db, "boss")
    made = ok(admin.post("/api/v1/users", json={"username": "lv", "display_name": "吕"}), 201)
    bearer = {"Authorization": "Bearer " + ok(sign_in(anon, "lv", made["one_time_password"])
                                              )["access_token"]}
    blocked = anon.get("/api/v1/apps", headers=bearer)
    assert blocked.status_code == 403 and blocked.json()["code"] == "password_change_required"
    weak = anon.post("/api/v1/me/password", headers=bearer, json={
        "current_password": made["one_time_password"], "new_password": "short"})
    assert weak.status_code == 422 and weak.json()["code"] == "weak_password"
    ok(anon.post("/api/v1/me/password", headers=bearer, json={
        "current_password": made["one_time_password"], "new_password": "Qiao-Strong-2026"}), 204)
    assert anon.get("/api/v1/apps", headers=bearer).status_code == 200


def test_csrf_and_cookie_checks_refuse_any_text_cleanly(db, app):
    client, cookie, _csrf = _session_client(db, app, "xu")
    odd = client.post("/api/v1/auth/logout", data={"csrf_token": "é"})
    assert odd.status_code == 403 and odd.json()["code"] == "csrf_failed"
    forged = TestClient(app, raise_server_exceptions=False)
    raw = f"{SESSION_COOKIE}={cookie.rpartition('.')[0]}.签名".encode()
    assert forged.get("/api/v1/me", headers={"Cookie": raw}).status_code == 401


def test_changing_the_password_ends_the_other_sessions(db, app):
    first, _c1, csrf1 = _session_client(db, app, "yan")
    ctx = app.state.qiao
    with db.write() as s:
        user_id = s.execute(select(User.id).where(User.username == "yan")).scalar_one()
        other_cookie, _ = start_session(s, ctx.settings, ctx.secret_key, user_id=user_id,
                                        client="phone")
    other = TestClient(app, raise_server_exceptions=False)
    other.cookies.set(SESSION_COOKIE, other_cookie)
    assert other.get("/api/v1/me").status_code == 200
    ok(first.post("/api/v1/me/password", headers={"X-CSRF-Token": csrf1}, json={
        "current_password": PASSWORD, "new_password": "Another-Passw0rd"}), 204)
    assert first.get("/api/v1/me").status_code == 200
    assert other.get("/api/v1/me").status_code == 401


def test_each_token_is_rate_limited_with_retry_after(db, tmp_path):
    app = create_app(load_settings(data_dir=tmp_path, api_rate_per_minute=5), db=db)
    busy = client_as(app, db, "busy", roles=("staff",))
    calm = client_as(app, db, "calm", roles=("staff",))
    assert [busy.get("/api/v1/me").status_code for _ in range(5)] == [200] * 5
    limited = busy.get("/api/v1/me")
    assert limited.status_code == 429 and limited.json()["code"] == "rate_limited"
    assert 1 <= int(limited.headers["Retry-After"]) <= 60
    assert calm.get("/api/v1/me").status_code == 200  # another token is not affected
