"""Channel settings saved by administrators (``/api/v1/channels``): secrets stored sealed
and never handed back, the database over the environment, real test messages through
loopback servers (SMTP with a login, an SMS gateway, a WeCom robot), the rules' sender
and key rotation reading them, and integration tokens made by an administrator."""

from __future__ import annotations

import hashlib
import hmac
import json
import socket
from email import message_from_bytes, policy

import pytest
from sqlalchemy import text

import engine_rules.sender as sender
from platform_core.app import create_app
from platform_core.channels.store import effective_settings
from platform_core.security.crypto import Keyring
from platform_core.security.models import User
from platform_core.security.rotation import rotate
from platform_core.settings import load_settings
from tests.engine_flows.flows_setup import ok
from tests.engine_rules.conftest import dispatch
from tests.engine_rules.rules_setup import Receiver, action_runs, add_rule, send, visit, visit_form
from tests.security_setup import client_as

API = "/api/v1/channels"
PASSWORD = "Sm7p-pa55word!"
SMS_SECRET = "sms-signing-s3cret"
ROBOT_KEY = "693a91f6-7xxx-4bc4-97a0-0ec2sifa5aaa"


@pytest.fixture
def admin(app, db):
    with client_as(app, db, "boss") as client:
        yield client


def _raw_rows(db) -> str:
    with db.engine.connect() as conn:
        return "\n".join(" | ".join(map(str, r)) for r in conn.execute(
            text("SELECT channel, config, secrets FROM channel_settings")))


def _set_email(db, username: str, email: str | None, mobile: str | None = None) -> None:
    with db.write() as s:
        user = s.query(User).filter(User.username == username).one()
        user.email, user.mobile = email, mobile


# -- secrets: sealed, write-only ----------------------------------------------------------


def test_secrets_are_stored_sealed_and_never_returned(admin, db):
    saved = ok(admin.put(API, json={
        "smtp": {"host": "mail.bank.example", "port": 587, "user": "mailer",
                 "password": PASSWORD, "from_address": "qiao@bank.example"},
        "sms": {"gateway_url": "https://93.184.215.14/sms", "secret": SMS_SECRET},
        "wecom": {"robot_url": f"https://93.184.215.14/cgi-bin/webhook/send?key={ROBOT_KEY}"}}))
    read = admin.get(API)
    for answer in (json.dumps(saved), read.text):
        assert PASSWORD not in answer and SMS_SECRET not in answer and ROBOT_KEY not in answer
    doc = read.json()
    assert doc["smtp"] | {"updated_at": None, "updated_by": None} == {
        "channel": "smtp", "source": "database", "host": "mail.bank.example", "port": 587,
        "user": "mailer", "from_address": "qiao@bank.example", "starttls": False,
        "password_set": True, "password_from": "database", "updated_at": None,
        "updated_by": None}
    assert doc["sms"]["secret_set"] and doc["wecom"]["robot_url_set"]
    assert doc["wecom"]["robot_url_hint"] == "https://93.184.215.14/cgi-bin/webhook/send?…"

    raw = _raw_rows(db)  # the database holds ciphertext only
    assert PASSWORD not in raw and SMS_SECRET not in raw and ROBOT_KEY not in raw
    assert raw.count('"$enc"') == 3 and "mail.bank.example" in raw


def test_a_secret_is_kept_cleared_or_replaced(app, admin, db):
    ok(admin.put(API, json={"smtp": {"host": "mail.bank.example", "user": "u",
                                     "password": PASSWORD}}))
    settings = app.state.qiao.settings
    # left out: kept (the other fields are replaced)
    ok(admin.put(API, json={"smtp": {"host": "smtp2.bank.example", "user": "u"}}))
    mail = effective_settings(db, settings)
    assert (mail.smtp_host, mail.smtp_password, mail.smtp_port) == (
        "smtp2.bank.example", PASSWORD, 25)
    ok(admin.put(API, json={"smtp": {"host": "smtp2.bank.example", "password": "n3w"}}))
    assert effective_settings(db, settings).smtp_password == "n3w"
    doc = ok(admin.put(API, json={"smtp": {"host": "smtp2.bank.example", "password": ""}}))
    assert doc["smtp"]["password_set"] is False and doc["smtp"]["password_from"] is None
    assert effective_settings(db, settings).smtp_password == ""


def test_saving_is_audited_without_the_secret(admin, db):
    ok(admin.put(API, json={"smtp": {"host": "mail.bank.example", "password": PASSWORD}}))
    entries = ok(admin.get("/api/v1/audit", params={"action": "channel."}))["items"]
    [entry] = entries
    assert entry["target"] == "channel:smtp" and entry["detail"]["secrets"] == {
        "password": "changed"}
    assert PASSWORD not in json.dumps(entries)


# -- the database over the environment ------------------------------------------------------


@pytest.fixture
def env_app(db, tmp_path):
    return create_app(load_settings(
        data_dir=tmp_path, webhook_allow_hosts="127.0.0.1", smtp_host="env.bank.example",
        smtp_user="env-user", smtp_password="env-pass", smtp_from="env@bank.example",
        sms_gateway_url="https://93.184.215.14/env-sms", api_rate_per_minute=10**9), db=db)


def test_the_database_overrides_the_environment(env_app, db, smtp):
    with client_as(env_app, db, "boss") as admin:
        doc = ok(admin.get(API))
        assert doc["smtp"]["source"] == "environment" and doc["smtp"]["host"] == \
            "env.bank.example"
        assert doc["smtp"]["password_set"] and doc["smtp"]["password_from"] == "environment"
        assert "env-pass" not in json.dumps(doc)

        ok(admin.put(API, json={"smtp": {"host": "127.0.0.1", "port": smtp.port,
                                         "user": "db-user",
                                         "from_address": "db@bank.example"}}))
        env = env_app.state.qiao.settings
        mail = effective_settings(db, env, env_app.state.qiao.keyring)
        assert (mail.smtp_host, mail.smtp_user, mail.smtp_from) == (
            "127.0.0.1", "db-user", "db@bank.example")
        assert mail.smtp_password == "env-pass"  # never saved here: still the environment's
        assert mail.sms_gateway_url == "https://93.184.215.14/env-sms"  # not saved: env

        ok(admin.put(API, json={"smtp": {"host": "127.0.0.1", "port": smtp.port,
                                         "user": "db-user", "password": "db-pass"}}))
        assert effective_settings(db, env).smtp_password == "db-pass"
        answer = ok(admin.post(f"{API}/smtp/test", json={"to": "ops@bank.example"}))
        assert answer["ok"] is True, answer
        assert smtp.logins == [("db-user", "db-pass")]

        back = ok(admin.put(API, json={"smtp": None}))["smtp"]  # forget: the env's again
        assert back["source"] == "environment" and back["host"] == "env.bank.example"
        assert effective_settings(db, env).smtp_password == "env-pass"


def test_nothing_saved_leaves_the_settings_as_they_are(app, db):
    settings = app.state.qiao.settings
    assert effective_settings(db, settings) is settings


# -- test messages ------------------------------------------------------------------------


def test_the_smtp_test_sends_a_real_message(admin, db, smtp):
    ok(admin.put(API, json={"smtp": {"host": "127.0.0.1", "port": smtp.port,
                                     "user": "mailer", "password": PASSWORD,
                                     "from_address": "qiao@bank.example"}}))
    _set_email(db, "boss", "boss@bank.example")
    answer = ok(admin.post(f"{API}/smtp/test"))  # no body: to the caller's own address
    assert answer["ok"] is True and answer["error"] is None
    assert answer["to"] == ["boss@bank.example"]
    [(sender, rcpts, raw)] = smtp.messages
    assert (sender, rcpts) == ("qiao@bank.example", ["boss@bank.example"])
    mail = message_from_bytes(raw, policy=policy.default)
    assert mail["Subject"] == "Qiao 测试消息" and "测试消息" in mail.get_content()
    assert smtp.logins == [("mailer", PASSWORD)]

    ok(admin.post(f"{API}/smtp/test", json={"to": "ops@bank.example"}))
    assert smtp.messages[-1][1] == ["ops@bank.example"]


def test_a_failed_test_says_exactly_why(admin, smtp):
    ok(admin.put(API, json={"smtp": {"host": "127.0.0.1", "port": smtp.port,
                                     "user": "mailer", "password": "wrong"}}))
    answer = ok(admin.post(f"{API}/smtp/test", json={"to": "ops@bank.example"}))
    assert answer["ok"] is False
    assert answer["error"].startswith("SMTPAuthenticationError: (535")
    assert smtp.messages == []

    with socket.socket() as closed:  # a port nobody listens on
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    ok(admin.put(API, json={"smtp": {"host": "127.0.0.1", "port": port}}))
    answer = ok(admin.post(f"{API}/smtp/test", json={"to": "ops@bank.example"}))
    assert answer["ok"] is False and "ConnectionRefusedError" in answer["error"]

    ok(admin.put(API, json={"smtp": {"host": ""}}))
    answer = ok(admin.post(f"{API}/smtp/test", json={"to": "ops@bank.example"}))
    assert answer["error"] == "SendFailed: no SMTP server: set one on /admin/channels (or " \
        "QIAO_SMTP_HOST)"


def test_bad_test_input_is_a_problem(admin, db):
    refused = admin.post(f"{API}/smtp/test", json={"to": "not-an-address"})
    assert refused.status_code == 422
    assert refused.headers["content-type"] == "application/problem+json"
    assert "not an e-mail address" in refused.json()["detail"]
    _set_email(db, "boss", None)
    refused = admin.post(f"{API}/smtp/test")
    assert refused.status_code == 422 and "your own has none" in refused.json()["detail"]
    assert admin.post(f"{API}/sms/test", json={"to": "abc"}).status_code == 422
    assert admin.post(f"{API}/fax/test").status_code == 422
    assert admin.post(f"{API}/smtp/test", json={"to": "a@b.example", "cc": "x"}
                      ).status_code == 422


def test_the_sms_test_goes_through_the_gateway_signed(admin, receiver):
    ok(admin.put(API, json={"sms": {"gateway_url": receiver.url, "secret": SMS_SECRET}}))
    answer = ok(admin.post(f"{API}/sms/test", json={"to": "13800001234"}))
    assert answer["ok"] is True, answer
    [request] = receiver.requests
    body = json.loads(request["body"])
    assert body["phone"] == "13800001234" and "测试消息" in body["message"]
    assert request["headers"]["x-signature"] == hmac.new(
        SMS_SECRET.encode(), request["body"], hashlib.sha256).hexdigest()

    receiver.default = 503
    answer = ok(admin.post(f"{API}/sms/test", json={"to": "13800001234"}))
    assert answer == answer | {"ok": False, "error": "SendFailed: HTTP 503: down"}


def test_the_wecom_test_reaches_the_robot(admin, db):
    robot = Receiver(reply=lambda _r: b'{"errcode": 0, "errmsg": "ok"}')
    try:
        url = robot.url + f"?key={ROBOT_KEY}"
        doc = ok(admin.put(API, json={"wecom": {"robot_url": url}}))["wecom"]
        assert doc["robot_url_hint"] == robot.url + "?…"
        assert ok(admin.post(f"{API}/wecom/test"))["ok"] is True
        [request] = robot.requests
        assert request["path"] == f"/hook?key={ROBOT_KEY}"
        assert json.loads(request["body"])["msgtype"] == "text"
        assert ROBOT_KEY not in _raw_rows(db)
        robot.reply = lambda _r: b'{"errcode": 93000, "errmsg": "invalid webhook url"}'
        answer = ok(admin.post(f"{API}/wecom/test"))
        assert answer["ok"] is False and "errcode 93000" in answer["error"]
    finally:
        robot.close()


# -- checks at save time ----------------------------------------------------------------


@pytest.mark.parametrize(("body", "detail"), [
    ({"sms": {"gateway_url": "ftp://93.184.215.14/x"}}, "sms.gateway_url"),
    ({"sms": {"gateway_url": "https://10.0.0.8/x"}}, "sms.gateway_url: webhook URL refused"),
    ({"sms": {"gateway_url": "https://93.184.215.14/x", "body_template": "{{ phone"}},
     "sms.body_template"),
    ({"wecom": {"robot_url": "http://169.254.169.254/latest"}}, "wecom.robot_url"),
    ({"smtp": {"host": "a b"}}, "smtp.host"),
    ({"smtp": {"from_address": "x@y\r\nBcc: z@evil"}}, "smtp.from_address"),
    ({"smtp": {"port": 0}}, "smtp.port"),
    ({"smtp": {"host": "x", "password_hash": "x"}}, "smtp.password_hash"),
    ({"fax": {}}, "fax"),
])
def test_bad_settings_are_refused_and_nothing_is_saved(admin, db, body, detail):
    refused = admin.put(API, json={"smtp": {"host": "ok.example"}, **body})
    assert refused.status_code == 422, refused.text
    assert detail in refused.json()["detail"]
    assert _raw_rows(db) == ""


def test_only_administrators_reach_the_channels(app, db):
    with client_as(app, db, "li", roles=("staff",)) as staff, \
            client_as(app, db, "wang", roles=("manager",)) as manager:
        for client in (staff, manager):
            assert client.get(API).status_code == 403
            assert client.put(API, json={"smtp": {"host": "x"}}).status_code == 403
            assert client.post(f"{API}/smtp/test").status_code == 403
    assert _raw_rows(db) == ""


# -- who reads them -------------------------------------------------------------------------


def test_rule_emails_go_through_the_saved_server_read_once_per_batch(world, smtp,
                                                                     monkeypatch):
    ok(world.admin.put(API, json={"smtp": {"host": "127.0.0.1", "port": smtp.port,
                                           "user": "mailer", "password": PASSWORD,
                                           "from_address": "crm@bank.example"}}))
    visit_form(world)
    add_rule(world, key="mail", name="mail", trigger={"type": "record.created",
                                                      "form": "visit"},
             actions=[{"type": "notify", "channel": "email", "to": {"field": "email"},
                       "title": "回访", "template": "{{ record.subject }}"}])
    visit(world, subject="三月回访", email="kehu@example.com")
    visit(world, subject="四月回访", email="laoke@example.com")
    dispatch(world)
    reads = []
    monkeypatch.setattr(sender, "effective_settings",
                        lambda *a, **k: reads.append(1) or effective_settings(*a, **k))
    assert send(world, smtp_host="") == 2  # the environment has none: the saved one wins
    assert len(reads) == 1  # one read for the batch, none per message
    assert sorted(rcpts for _sender, rcpts, _raw in smtp.messages) == [
        ["kehu@example.com"], ["laoke@example.com"]]
    assert {m[0] for m in smtp.messages} == {"crm@bank.example"}
    assert smtp.logins == [("mailer", PASSWORD)] * 2
    assert [r.status for r in action_runs(world)] == ["done", "done"]
    assert send(world) == 0 and len(reads) == 1  # nothing due: not even one read


def test_rotation_reencrypts_the_channel_secrets(app, admin, db):
    ok(admin.put(API, json={"smtp": {"host": "x.example", "password": PASSWORD}}))
    settings = app.state.qiao.settings
    keyring = Keyring.load(settings)
    new = keyring.add_key(settings)
    newer = Keyring.load(settings)
    result = rotate(db, newer)
    assert result.reencrypted["secrets"] == 1
    assert f'"{new}:' in _raw_rows(db)
    assert effective_settings(db, settings, newer).smtp_password == PASSWORD


# -- integration tokens made by an administrator ------------------------------------------


def test_an_administrator_makes_a_scoped_token_for_an_integration(app, db, admin):
    with client_as(app, db, "erp", roles=("staff",)) as erp:
        erp_id = erp.user_id
    made = ok(admin.post("/api/v1/tokens", json={
        "name": "ERP 对接", "user_id": erp_id,
        "scopes": {"apps": ["crm"], "access": "read"}, "expires_in_days": 30}), 201)
    assert made["token"].startswith("qiao_") and made["user_id"] == erp_id
    assert made["scopes"] == {"apps": ["crm"], "forms": [], "access": "read"}
    listed = ok(admin.get("/api/v1/tokens"))["items"]
    assert made["id"] in [t["id"] for t in listed]
    assert all("token" not in t for t in listed)
    refused = admin.post("/api/v1/tokens", json={"name": "x", "user_id": 10**6})
    assert refused.status_code == 422 and "user_id" in refused.json()["detail"]
    mine = ok(admin.post("/api/v1/tokens", json={"name": "mine"}), 201)
    assert mine["user_id"] == admin.user_id and mine["scopes"]["access"] == "read"
