"""The rule pages in a real browser, on the CRM template: an admin builds "amount ≥ 1,000,000
→ tell the team lead in-app" in the editor, test-runs it on a 2,000,000 case (the message
shows, nothing is written), turns it on, and the team lead gets exactly one notification
when a case is raised to 1,500,000; a webhook rule whose receiver is down ends in the dead
letters with its error and is delivered once after a retry; turning a rule off asks for a
reason the list then shows; a bad condition is explained next to the condition box; the
pages fit a phone."""

from __future__ import annotations

import http.server
import socket
import threading
from datetime import timedelta
from types import SimpleNamespace

import httpx
from sqlalchemy import func, select

from engine_forms import service as records
from engine_forms.forms import published
from engine_forms.service import Caller
from engine_rules import service as rules
from engine_rules.models import ActionRun, Notification
from engine_rules.sender import send_due
from platform_core.models import utcnow
from platform_core.outbox import Dispatcher
from platform_core.security.models import AuditEntry, User
from platform_core.security.principal import load_principal
from platform_core.settings import load_settings
from tests.frontend.conftest import add_user, alert, path_of, status
from tests.frontend.test_workspace import _create, _crm
from tests.security_setup import SYSTEM

RULES = "/apps/crm/rules"


def _dispatch(db, keyring) -> None:
    dispatcher = Dispatcher.from_registry(db, context=SimpleNamespace(keyring=keyring),
                                          worker_id="tests")
    while dispatcher.run_once(now=utcnow()):
        pass


def _count(db, model, *where) -> int:
    with db.read() as s:
        return s.execute(select(func.count()).select_from(model).where(*where)).scalar_one()


def _case(db, keyring, amount: str) -> dict:
    customer = _create(db, keyring, "xiao.wang", "customer",
                       {"name": f"客户{amount}", "mobile": f"138{int(amount) % 10**8:08d}"})
    return _create(db, keyring, "xiao.wang", "loan_case", {
        "customer": customer["id"], "loan_type": "mortgage", "amount": amount})


def _update(db, keyring, case: dict, data: dict) -> None:
    with db.write() as s:
        user = s.execute(select(User).where(User.username == "xiao.wang")).scalar_one()
        principal = load_principal(s, user, via="test")
        pub = published(s, "crm", "loan_case")
        records.update(s, Caller(principal, principal.access("crm", "loan_case"), keyring),
                       pub, case["id"], data, expected_version=case["row_version"])


def _lead_notes(db) -> int:
    with db.read() as s:
        lead = s.execute(select(User.id).where(User.username == "lao.li")).scalar_one()
    return _count(db, Notification, Notification.user_id == lead,
                  Notification.title.startswith("金额达百万"))


def _build_rule(page) -> None:
    """The rule of the issue, through the editor's pickers."""
    page.goto(RULES)
    page.click("#new-rule")
    page.fill("#r-name", "金额达百万提醒团队经理")
    page.fill("#r-key", "amount_million")
    page.select_option("#r-trigger-type", "record.updated")
    page.select_option("#t-form", "loan_case")
    page.check("#t-field-amount")
    assert "金额" in page.inner_text("#r-trigger-words")
    page.fill("#r-condition", "amount >= 1000000")
    page.wait_for_selector("#r-cond-state:has-text('表达式正确')")
    page.select_option("#r-new-action", "notify")
    page.click("#r-add-action")
    page.select_option("#a0-channel", "in_app")
    page.select_option("#a0-to-role", "team_lead")
    page.fill("#a0-title", "金额达百万 {{ record.case_no }}")
    page.fill("#a0-template", "业务 {{ record.case_no }} 的金额是 {{ record.amount }} 元")
    page.click("#r-save")
    try:
        page.wait_for_url(f"**{RULES}/amount_million?msg=rule_saved")
    except Exception as error:  # say what the editor showed, not only that it timed out
        shown = {box: page.inner_text(box) for box in ("#r-status", "#r-problems")}
        raise AssertionError(f"the rule was not saved; the editor showed {shown}") from error


def test_what_is_typed_before_the_editor_script_runs_is_kept(web, db):
    """On a slow phone the page shows before its (deferred) script runs: a name and a
    condition typed meanwhile stay, count as unsaved, and the key is still suggested."""
    _crm(db)
    add_user(db, "boss")
    page = web.signed_in("boss")
    held = []
    page.route("**/static/rules.js*", lambda route: held.append(route))  # held back
    page.goto(f"{RULES}/new", wait_until="commit")
    page.wait_for_selector("#r-name")
    page.fill("#r-name", "金额达百万提醒团队经理")
    page.fill("#r-condition", "amount >= 1000000")
    while not held:
        page.wait_for_timeout(50)
    held[0].continue_()
    page.wait_for_selector("#r-trigger-type option", state="attached")  # the script ran
    assert page.input_value("#r-name") == "金额达百万提醒团队经理"
    assert page.input_value("#r-condition") == "amount >= 1000000"
    assert page.inner_text("#r-status") == "有未保存的修改"
    for _ in range(200):  # the key is suggested (wait_for_function would eval: CSP)
        if page.input_value("#r-key"):
            break
        page.wait_for_timeout(50)
    assert page.input_value("#r-key") != ""


def test_a_big_amount_rule_is_built_tested_enabled_and_notifies_the_lead_once(
        web, db, server_keyring):
    _crm(db)
    add_user(db, "boss")
    add_user(db, "lao.li", roles=("team_lead",))
    big = _case(db, server_keyring, "2000000")
    small = _case(db, server_keyring, "500000")
    _dispatch(db, server_keyring)  # the cases' own events (the template's rules) settle
    page = web.signed_in("boss")
    _build_rule(page)
    assert page.inner_text("#r-state") == "停用"  # a new rule starts off

    notes, runs = _count(db, Notification), _count(db, ActionRun)
    page.fill("#r-test-q", big["data"]["case_no"])
    page.click(f".pick-record[data-id='{big['id']}']")
    page.wait_for_selector("#test-condition")
    assert "条件成立" in page.inner_text("#test-condition")
    shown = page.inner_text("#test-actions")
    assert f"业务 {big['data']['case_no']} 的金额是 2000000" in shown
    assert "1 位用户" in shown
    assert (_count(db, Notification), _count(db, ActionRun)) == (notes, runs)

    page.click("#r-enable")
    page.wait_for_url(f"**{RULES}/amount_million?msg=rule_enabled")
    assert page.inner_text("#r-state") == "启用"
    _update(db, server_keyring, small, {"amount": "1500000"})
    for _ in range(2):  # a second pass finds nothing more to do
        _dispatch(db, server_keyring)
        assert _lead_notes(db) == 1
    lead = web.signed_in("lao.li")
    lead.goto("/notifications")
    assert lead.locator(f"text=金额达百万 {small['data']['case_no']}").count() == 1

    page.goto(RULES)
    row = page.locator("#rule-amount_million")
    assert row.locator(".rule-state").inner_text() == "启用"
    assert row.locator(".rule-counts").inner_text().startswith("1 / 1 / 0")


class _Receiver(http.server.BaseHTTPRequestHandler):
    bodies: list[bytes] = []

    def do_POST(self) -> None:  # noqa: N802 - the http.server name
        self.bodies.append(self.rfile.read(int(self.headers.get("Content-Length") or 0)))
        self.send_response(200)
        self.end_headers()

    def log_message(self, *_args) -> None:
        pass


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _send(db, settings, now) -> int:
    with httpx.Client(trust_env=False, follow_redirects=False) as client:
        return send_due(db, settings, client=client, worker="tests", now=now)


def test_a_webhook_whose_receiver_is_down_is_a_dead_letter_retried_once(
        web, db, server_keyring, tmp_path):
    _crm(db)
    add_user(db, "boss")
    port = _free_port()
    with db.write() as s:
        rules.save(s, app="crm", actor=SYSTEM, raw={
            "key": "erp_hook", "name": "新客户同步 ERP",
            "trigger": {"type": "record.created", "form": "customer"},
            "actions": [{"type": "call_webhook", "url": f"http://127.0.0.1:{port}/hook",
                         "body": "{\"id\": {{ record_id }}}"}]})
    customer = _create(db, server_keyring, "xiao.wang", "customer",
                       {"name": "王五", "mobile": "13800005555"})
    _dispatch(db, server_keyring)
    settings = load_settings(data_dir=tmp_path, webhook_allow_hosts="127.0.0.1")
    now = utcnow()
    for _ in range(settings.rules_max_attempts + 1):  # the receiver is down: every try fails
        now += timedelta(hours=2)
        _send(db, settings, now)
    page = web.signed_in("boss")
    page.goto(RULES)
    assert page.locator("#rule-erp_hook .rule-state").inner_text() == "异常"
    page.goto("/apps/crm/rule-dead-letters")
    [row] = page.locator("#dead-letters tbody tr").all()
    assert "erp_hook" in row.inner_text()
    assert "ConnectError" in row.locator(".dead-error").inner_text()

    _Receiver.bodies = []
    server = http.server.HTTPServer(("127.0.0.1", port), _Receiver)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        row.get_by_role("button", name="重试").click()
        page.wait_for_url("**/rule-dead-letters?msg=rule_replayed")
        assert "重新排队" in status(page)
        later = utcnow() + timedelta(seconds=1)
        assert _send(db, settings, later) == 1
        assert _send(db, settings, later + timedelta(hours=2)) == 0
    finally:
        server.shutdown()
        server.server_close()
    assert _Receiver.bodies == [f'{{"id": {customer["id"]}}}'.encode()]
    page.reload()
    assert page.locator("#no-dead").is_visible()


def test_turning_a_rule_off_asks_for_a_reason_the_list_shows(web, db):
    _crm(db)
    add_user(db, "boss")
    page = web.signed_in("boss")
    page.goto(RULES)
    row = page.locator("#rule-big_loan_alert")
    assert row.locator(".rule-state").inner_text() == "启用"
    assert "新建贷款业务时" in row.inner_text()
    row.locator("summary").click()
    row.get_by_role("button", name="确认停用").click()  # no reason: the form is not sent
    assert path_of(page) == RULES
    assert row.locator(".rule-state").inner_text() == "启用"
    row.locator("input[name=reason]").fill("银行渠道调整，暂不提醒")
    row.get_by_role("button", name="确认停用").click()
    page.wait_for_url(f"**{RULES}?msg=rule_disabled")
    row = page.locator("#rule-big_loan_alert")
    assert row.locator(".rule-state").inner_text() == "停用"
    assert "停用原因：银行渠道调整，暂不提醒" in row.inner_text()
    assert _count(db, AuditEntry, AuditEntry.action == "rule.disabled",
                  AuditEntry.target == "rule:crm.big_loan_alert") == 1
    page.goto(f"{RULES}/big_loan_alert")
    assert "银行渠道调整" in page.inner_text("#r-reason-shown")
    # the page refuses a switch-off without a reason even when the browser is bypassed
    answer = page.request.post(f"{RULES}/big_loan_alert/enable", form={
        "csrf_token": page.get_attribute("meta[name=csrf-token]", "content")})
    assert answer.ok
    answer = page.request.post(f"{RULES}/big_loan_alert/disable", form={
        "csrf_token": page.get_attribute("meta[name=csrf-token]", "content"), "reason": " "})
    assert answer.status == 422


def test_a_bad_condition_is_explained_next_to_the_condition_box(web, db):
    _crm(db)
    add_user(db, "boss")
    page = web.signed_in("boss")
    page.goto(f"{RULES}/new")
    page.select_option("#r-trigger-type", "record.updated")
    page.select_option("#t-form", "loan_case")
    page.fill("#r-condition", "amout >= 1000000")
    page.wait_for_selector("#p-condition:visible")
    assert "amout" in page.inner_text("#p-condition")
    page.fill("#r-condition", "OLD.amount < 1000000 AND amount >= 1000000")
    page.wait_for_selector("#p-condition", state="hidden")
    assert "表达式正确" in page.inner_text("#r-cond-state")
    page.fill("#r-condition", "amount + 1")
    page.wait_for_selector("#p-condition:visible")
    # saving shows the engine's own problem at the same place
    page.fill("#r-name", "坏条件")
    page.fill("#r-key", "bad_condition")
    page.select_option("#r-new-action", "set_tags")
    page.click("#r-add-action")
    page.click("#r-save")
    page.wait_for_selector("#r-status:has-text('未保存')")
    assert "condition" in page.inner_text("#p-condition")
    assert "set_tags" in page.inner_text("#p-action-0")
    assert alert(page)


def test_the_rule_pages_fit_a_phone(web, db, server_keyring):
    _crm(db)
    add_user(db, "boss")
    phone = web.signed_in("boss", width=375, height=800)
    for path in (RULES, f"{RULES}/big_loan_alert", f"{RULES}/new", "/apps/crm/rule-runs",
                 "/apps/crm/rule-dead-letters"):
        phone.goto(path)
        assert phone.evaluate("document.documentElement.scrollWidth") <= 375, path
    phone.goto(f"{RULES}/overdue_task")
    assert phone.locator("#t-flow").is_visible()
