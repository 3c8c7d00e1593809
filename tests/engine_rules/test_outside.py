"""Outside calls of rules, through real loopback servers: SMS through an HTTP gateway
(signed), a WeCom group robot, e-mail through an SMTP server, webhooks. Each is written
as a pending action run by the dispatcher and sent by the action sender, which retries
with backoff (a call failing three times then succeeding reaches the receiver exactly
four times), dead-letters what keeps failing, and sends a replayed one again."""

from __future__ import annotations

import hashlib
import hmac
import json
from datetime import timedelta
from email import message_from_bytes, policy

from platform_core.models import utcnow
from tests.engine_flows.flows_setup import ok
from tests.engine_rules.conftest import dispatch
from tests.engine_rules.rules_setup import (
    DEAD,
    Receiver,
    action_runs,
    add_rule,
    bodies,
    count_records,
    patch,
    put_rule,
    runs,
    send,
    set_mobile,
    visit,
    visit_form,
)

SECRET = "sms-s3cret"


def _on_create(key, *actions, form="case", condition=None):
    spec = {"key": key, "name": key, "trigger": {"type": "record.created", "form": form},
            "actions": list(actions)}
    return spec | ({"condition": condition} if condition else {})


def _send_all(world, now=None, **settings):
    """Send until nothing more is due at ``now``; how many calls were tried."""
    total = 0
    while done := send(world, now, **settings):
        total += done
    return total


# -- SMS -------------------------------------------------------------------------------------


def test_sms_goes_through_the_gateway_signed(world, receiver):
    world.user("alice", "sales")
    set_mobile(world, "alice", "13900000001")
    add_rule(world, **_on_create("sms", {
        "type": "notify", "channel": "sms", "title": "进度",
        "to": {"field": "mobile", "users": ["alice"]},
        "template": "您好，您的贷款「{{ record.title }}」已受理。"}))
    world.case(title="甲", mobile="13800001234")
    dispatch(world)
    assert receiver.requests == []  # the dispatcher only writes the pending call
    [pending] = action_runs(world)
    assert pending.status == "pending" and pending.request["to"] == [
        "13800001234", "13900000001"]
    assert _send_all(world, sms_gateway_url=receiver.url, sms_secret=SECRET) == 1
    assert sorted(b["phone"] for b in receiver.bodies()) == ["13800001234", "13900000001"]
    for request in receiver.requests:
        body = json.loads(request["body"])
        assert body["message"] == "您好，您的贷款「甲」已受理。"
        expected = hmac.new(SECRET.encode(), request["body"], hashlib.sha256).hexdigest()
        assert request["headers"]["x-signature"] == expected
        assert request["headers"]["x-qiao-action"] == pending.key
    [done] = action_runs(world)
    assert done.status == "done" and done.attempts == 1
    assert _send_all(world, utcnow() + timedelta(hours=2), sms_gateway_url=receiver.url,
                     sms_secret=SECRET) == 0
    assert len(receiver.requests) == 2


def test_sms_to_a_number_of_the_linked_record(world, receiver):
    visit_form(world)
    add_rule(world, **_on_create("sms", {
        "type": "notify", "channel": "sms", "to": {"field": "case.mobile"},
        "template": "{{ record.subject }}"}, form="visit"))
    visit(world, subject="上门回访", case=world.case(mobile="13700000007"))
    dispatch(world)
    _send_all(world, sms_gateway_url=receiver.url, sms_secret="")
    assert receiver.bodies() == [{"phone": "13700000007", "message": "上门回访"}]
    assert "x-signature" not in receiver.requests[0]["headers"]  # no secret, no signature


def test_sms_without_a_number_fails_the_action_at_once(world):
    add_rule(world, **_on_create("sms", {"type": "notify", "channel": "sms",
                                         "to": {"field": "mobile"}, "template": "x"}))
    world.case(title="无号码")
    dispatch(world)
    [run] = runs(world, "sms")
    assert run["status"] == "failed" and "nobody to send to" in run["actions"][0]["error"]


# -- WeCom -----------------------------------------------------------------------------------


def test_wecom_robot_gets_the_message(world):
    robot = Receiver(reply=lambda _r: b'{"errcode": 0, "errmsg": "ok"}')
    try:
        add_rule(world, **_on_create("wecom", {
            "type": "notify", "channel": "wecom", "title": "新案件",
            "to": {"mobiles": ["13800000000"]},
            "template": "{{ record.title }} 金额 {{ record.amount }}"}))
        world.case(title="甲", amount="9")
        dispatch(world)
        _send_all(world, wecom_robot_url=robot.url)
        assert robot.bodies() == [{"msgtype": "text", "text": {
            "content": "新案件\n甲 金额 9.00", "mentioned_mobile_list": ["13800000000"]}}]
    finally:
        robot.close()


def test_wecom_error_code_is_a_failure_retried(world):
    answers = [b'{"errcode": 93000, "errmsg": "invalid webhook url"}',
               b'{"errcode": 0, "errmsg": "ok"}']
    robot = Receiver(reply=lambda _r: answers.pop(0))
    try:
        add_rule(world, **_on_create("wecom", {"type": "notify", "channel": "wecom",
                                               "robot": robot.url, "template": "hi"}))
        world.case()
        dispatch(world)
        now = utcnow()
        assert _send_all(world, now) == 1
        [row] = action_runs(world)
        assert row.status == "pending" and "errcode 93000" in row.last_error
        assert _send_all(world, now + timedelta(seconds=2)) == 1
        assert [r.status for r in action_runs(world)] == ["done"]
        assert len(robot.requests) == 2
    finally:
        robot.close()


# -- e-mail ----------------------------------------------------------------------------------


def test_email_reaches_the_smtp_server(world, smtp):
    visit_form(world)
    add_rule(world, **_on_create("mail", {
        "type": "notify", "channel": "email", "title": "回访：{{ record.subject }}",
        "to": {"field": "email"},
        "template": "您好，{{ record.subject }} 已安排。"}, form="visit"))
    visit(world, subject="三月回访", email="kehu@example.com")
    dispatch(world)
    assert _send_all(world, smtp_host="127.0.0.1", smtp_port=smtp.port,
                     smtp_from="qiao@bank.example") == 1
    [(sender, rcpts, raw)] = smtp.messages
    assert sender == "qiao@bank.example" and rcpts == ["kehu@example.com"]
    mail = message_from_bytes(raw, policy=policy.default)
    assert mail["Subject"] == "回访：三月回访" and mail["To"] == "kehu@example.com"
    assert mail.get_content().strip() == "您好，三月回访 已安排。"
    assert [r.status for r in action_runs(world)] == ["done"]


def test_email_without_a_server_is_retried_then_dead(world):
    visit_form(world)
    add_rule(world, **_on_create("mail", {"type": "notify", "channel": "email",
                                          "to": {"field": "email"}, "template": "x"},
                                 form="visit"))
    visit(world, email="a@example.com")
    dispatch(world)
    now = utcnow()
    for i in range(5):
        assert send(world, now + timedelta(seconds=40 * i), smtp_host="") == 1
    [row] = action_runs(world)
    assert row.status == "dead" and "no SMTP server" in row.last_error


# -- webhooks, retries, dead letters -----------------------------------------------------------


def test_call_webhook_renders_its_body(world, receiver):
    add_rule(world, **_on_create("hook", {
        "type": "call_webhook", "url": receiver.url, "method": "PUT",
        "body": '{"case": {{ record_id }}, "title": {{ record.title | tojson }}}'}))
    rec = world.case(title="甲 \"乙\"")
    dispatch(world)
    _send_all(world)
    [request] = receiver.requests
    assert request["method"] == "PUT" and request["path"] == "/hook"
    assert json.loads(request["body"]) == {"case": rec, "title": "甲 \"乙\""}
    assert request["headers"]["content-type"] == "application/json"
    assert request["headers"]["user-agent"].startswith("Qiao-Rules/")


def test_three_failures_then_success_reach_the_receiver_four_times(world, receiver):
    receiver.plan = [500, 503, 502]
    add_rule(world, **_on_create("hook", {"type": "call_webhook", "url": receiver.url,
                                          "body": "{{ record.title | tojson }}"}))
    world.case(title="甲")
    dispatch(world)
    now = utcnow()
    attempts = []
    for wait in (0, 0, 1, 1, 2, 4, 8, 3600):  # backoff: 1 s, 2 s, 4 s
        now += timedelta(seconds=wait)
        attempts.append(send(world, now))
    assert attempts == [1, 0, 1, 0, 1, 1, 0, 0]
    assert len(receiver.requests) == 4
    assert {r["headers"]["x-qiao-action"] for r in receiver.requests} == {
        action_runs(world)[0].key}
    [row] = action_runs(world)
    assert row.status == "done" and row.attempts == 4 and row.last_error is None
    assert ok(world.admin.get(DEAD))["items"] == []


def test_a_call_that_keeps_failing_is_dead_listed_and_replayed(world, receiver):
    receiver.default = 500
    add_rule(world, **_on_create("hook", {"type": "call_webhook", "url": receiver.url,
                                          "body": "{{ record.title | tojson }}"}))
    world.case(title="甲")
    dispatch(world)
    now = utcnow()
    for _ in range(8):
        now += timedelta(hours=1)
        send(world, now)
    assert len(receiver.requests) == 5  # QIAO_RULES_MAX_ATTEMPTS
    [dead] = ok(world.admin.get(DEAD))["items"]
    assert dead["status"] == "dead" and dead["attempts"] == 5 and dead["type"] == "call_webhook"
    assert dead["last_error"].startswith("SendFailed: HTTP 500")
    assert dead["request"]["url"] == receiver.url
    receiver.default = 200
    replayed = ok(world.admin.post(f"{DEAD}/{dead['id']}/replay"), 202)
    assert replayed["status"] == "pending" and replayed["attempts"] == 0
    ok(world.admin.post(f"{DEAD}/{dead['id']}/replay"), 409)  # not dead any more
    assert _send_all(world, utcnow() + timedelta(seconds=1)) == 1
    assert len(receiver.requests) == 6 and receiver.bodies()[-1] == "甲"
    assert ok(world.admin.get(DEAD))["items"] == []
    assert [r.status for r in action_runs(world)] == ["done"]


def test_a_failed_inside_action_is_replayed_after_the_rule_is_fixed(world):
    world.user("alice", "sales")
    add_rule(world, **_on_create("copy", {
        "type": "notify", "channel": "in_app", "to": {"users": ["alice"]},
        "template": "{{ record.title }}"},
        {"type": "create_record", "form": "case", "values": {"title": '""'}},
        condition='title <> "副本"'))
    world.case(title="原件")
    dispatch(world)
    [dead] = ok(world.admin.get(DEAD))["items"]
    assert dead["status"] == "failed" and dead["type"] == "create_record"
    put_rule(world, "copy", trigger={"type": "record.created", "form": "case"},
             condition='title <> "副本"',
             actions=[{"type": "notify", "channel": "in_app", "to": {"users": ["alice"]},
                       "template": "{{ record.title }}"},
                      {"type": "create_record", "form": "case",
                       "values": {"title": '"副本"'}}])
    replayed = ok(world.admin.post(f"{DEAD}/{dead['id']}/replay"), 202)
    assert replayed["status"] == "done"
    assert count_records(world, "case") == 2
    assert ok(world.admin.get(DEAD))["items"] == []
    log = runs(world, "copy")
    assert [(r["version"], r["status"]) for r in log] == [(1, "failed"), (2, "done")]
    assert log[1]["actions"][0]["status"] == "already_done"  # notified once only
    inbox = ok(world.as_("alice").get("/api/v1/notifications"))
    assert inbox["unread"] == 1
    ok(world.admin.post(f"{DEAD}/999999/replay"), 404)


def test_an_unsafe_destination_is_never_called(world):
    add_rule(world, **_on_create("hook", {"type": "call_webhook",
                                          "url": "http://169.254.169.254/latest/meta-data"}))
    world.case()
    dispatch(world)
    now = utcnow()
    for i in range(5):
        send(world, now + timedelta(hours=i))
    [row] = action_runs(world)
    assert row.status == "dead" and "refused" in row.last_error


def test_a_replay_sees_the_trigger_as_it_was(world):
    """The rerun of an update rule still has ``OLD`` and the record of its event."""
    world.user("alice", "sales")
    spec = {"trigger": {"type": "record.updated", "form": "case",
                        "fields": ["approval_result"]},
            "condition": 'OLD.approval_result = "rejected" AND approval_result = "approved"'}
    add_rule(world, key="flip", name="flip", **spec, actions=[
        {"type": "notify", "channel": "in_app", "to": {"users": ["nobody"]},
         "template": "{{ old.approval_result }}→{{ record.approval_result }} {{ 1 / 0 }}"}])
    rec = world.case(title="甲", approval_result="rejected")
    patch(world, rec, approval_result="approved")
    patch(world, rec, approval_result="rejected", note="later")
    dispatch(world)
    [dead] = ok(world.admin.get(DEAD))["items"]
    put_rule(world, "flip", **spec, actions=[
        {"type": "notify", "channel": "in_app", "to": {"users": ["alice"]},
         "template": "{{ old.approval_result }}→{{ record.approval_result }}"}])
    assert ok(world.admin.post(f"{DEAD}/{dead['id']}/replay"), 202)["status"] == "done"
    assert bodies(world) == ["rejected→approved"]
