"""Where the case stands, on the CRM's case page, in a real browser: a salesperson starts
the loan flow and works its first two steps right there (a required field left empty is
named beside the field and what was typed stays; 匹配产品 is marked as needed to submit the
match and named when it is missing), a risk officer rejects a case back to
资料收集 with a comment and the salesperson is notified; the strip of steps marks what is
done and what is current, and fits a phone."""

from __future__ import annotations

import re
from pathlib import Path
from types import SimpleNamespace

from sqlalchemy import select

from engine_flows.instances import start_run
from engine_flows.models import Task
from engine_flows.tasks import Who, complete
from platform_core.models import utcnow
from platform_core.outbox import Dispatcher
from platform_core.security.models import User
from platform_core.security.principal import load_principal
from tests.frontend.conftest import add_user, alert, path_of, status
from tests.frontend.test_widgets import pick
from tests.frontend.test_workspace import _create, _crm
from tests.security_setup import SYSTEM

APP = "/apps/crm/forms"
TIME = re.compile(r"\d{4}-\d{2}-\d{2} \d{2}:\d{2}")
SHOTS = Path("/tmp/stands-shots")


def _case(db, keyring, owner: str = "xiao.wang") -> int:
    customer = _create(db, keyring, owner, "customer", {"name": "王五", "mobile": "13700001234"})
    case = _create(db, keyring, owner, "loan_case", {
        "customer": customer["id"], "loan_type": "mortgage", "amount": "1200000"})
    return case["id"]


def _product(db, keyring) -> int:
    """A bank product to match a case with (the clerk keeps them)."""
    return _create(db, keyring, "clerk.one", "bank_product", {
        "name": "安居贷", "bank": "icbc", "loan_type": "mortgage"})["id"]


def _mark(page, node: str) -> str:
    return page.get_attribute(f"#stands .strip-step[data-node={node}]", "data-mark")


def _open_case(page, case_id: int) -> None:
    page.goto(f"{APP}/loan_case/records/{case_id}")
    page.wait_for_selector("#stands-panel")


def test_a_salesperson_starts_the_flow_and_works_two_steps_from_the_case_page(
        web, db, server_keyring):
    _crm(db)
    add_user(db, "clerk.one", roles=("clerk",))
    _product(db, server_keyring)
    case_id = _case(db, server_keyring)
    page = web.signed_in("xiao.wang")
    _open_case(page, case_id)
    assert page.locator("#stands .stand").count() == 0  # no run yet: only the button
    page.click("#stands button[data-flow=loan_service]")
    assert "流程已发起" in status(page)
    page.wait_for_selector("#stands .stand-step")
    assert _mark(page, "analysis") == "current"
    assert _mark(page, "matching") == "todo"
    assert "需求分析" in page.inner_text("#stands .step-name")
    assert "Xiao.Wang" in page.inner_text("#stands .step-who")
    assert page.inner_text("#stands [data-sla]") in ("按时", "即将到期", "已超时")
    assert page.locator("#stands button[data-flow]").count() == 0  # running: no 2nd start

    # a required field emptied: named beside the field, what was typed is kept
    page.fill("#f-amount", "")
    page.fill("#f-term_months", "24")
    page.click("#stands button[value='outcome:submit']")
    assert "/stands/" in path_of(page)
    assert "申请金额" in page.inner_text("#st-f-amount") or \
        page.inner_text("#st-f-amount").strip()
    assert alert(page)
    assert page.input_value("#f-term_months") == "24"

    page.fill("#f-amount", "80万")
    page.click("#stands button[value='outcome:submit']")
    assert path_of(page).startswith(f"{APP}/loan_case/records/{case_id}?msg=")
    assert "任务已完成" in status(page)
    page.wait_for_selector("#stands .stand-step[data-node=matching]")
    assert _mark(page, "analysis") == "done"
    # 匹配产品 is needed to submit the match, not to mark the customer lost: the field
    # and the buttons say so, and submitting without it names it
    assert "「提交」时必填" in page.inner_text("#stands #row-product [data-required-on]")
    assert "匹配产品" in page.inner_text("#stands [data-needs=submit]")
    page.fill("#f-rate", "3.5")
    page.click("#stands button[value='outcome:submit']")
    assert "「提交」前必须填写：匹配产品" in alert(page)
    assert "「提交」时必填" in page.inner_text("#stands #st-f-product")
    assert page.input_value("#f-rate") == "3.5"
    pick(page, "product", "安居贷")
    page.fill("#comment-" + page.get_attribute("#stands form.stand-form", "id")
              .removeprefix("stand-form-"), "已匹配产品")
    page.click("#stands button[value='outcome:submit']")
    assert "任务已完成" in status(page)
    page.wait_for_selector("#stands .stand-step[data-node=signing]")
    for node in ("analysis", "matching"):
        assert _mark(page, node) == "done"
        note = page.inner_text(f"#stands .strip-step[data-node={node}] .strip-note")
        assert TIME.search(note), note  # done, with the time it was done
    assert _mark(page, "signing") == "current"
    assert _mark(page, "bank") == "todo"
    SHOTS.mkdir(exist_ok=True)
    page.screenshot(path=str(SHOTS / "stands-1280.png"), full_page=True)
    page.locator("#stands-panel").screenshot(path=str(SHOTS / "stands-1280-panel.png"))


def _to_risk(db, keyring, case_id: int) -> None:
    """Run the case's flow to 风控审核 as its people would (through the flow services)."""
    with db.write() as s:
        start_run(s, app="crm", flow="loan_service", record_id=case_id, actor=SYSTEM,
                  now=utcnow())
    needs = {"matching": {"product": _product(db, keyring)},
             "signing": {"signed_date": "2026-03-02"}}  # what submitting them needs
    for node in ("analysis", "matching", "signing", "materials"):
        with db.write() as s:
            task = s.execute(select(Task).where(Task.record_id == case_id,
                                                Task.node_id == node,
                                                Task.status == "open")).scalar_one()
            user = s.get(User, task.assignee_id)
            who = Who(load_principal(s, user, via="test"), keyring, utcnow())
            complete(s, task.id, who, data=needs.get(node))


def _dispatch(db, keyring) -> None:
    dispatcher = Dispatcher.from_registry(db, context=SimpleNamespace(keyring=keyring),
                                          worker_id="tests")
    while dispatcher.run_once(now=utcnow()):
        pass


def test_a_risk_officer_rejects_back_to_materials_and_the_salesperson_is_told(
        web, db, server_keyring):
    _crm(db)
    add_user(db, "risk.one", roles=("risk",))
    add_user(db, "clerk.one", roles=("clerk",))
    case_id = _case(db, server_keyring)
    _to_risk(db, server_keyring, case_id)
    _dispatch(db, server_keyring)  # what the earlier steps fired, out of the way

    risk = web.signed_in("risk.one")
    _open_case(risk, case_id)
    assert _mark(risk, "risk") == "current"
    assert risk.locator("#stands button[data-flow]").count() == 0
    target = risk.locator("#stands select[name=reject_to]")
    assert target.locator("option:checked").inner_text() == "资料收集"
    assert "需求分析" in target.inner_text()  # an earlier step the run passed through
    risk.locator("#stands textarea[name=comment]").fill("缺少近 6 个月银行流水")
    risk.click("#stands button[value=reject]")
    assert "已驳回" in status(risk)
    risk.wait_for_selector("#stands .stand-step[data-node=materials]")
    assert _mark(risk, "risk") == "back"
    assert _mark(risk, "materials") == "current"
    assert "×2" in risk.inner_text("#stands .strip-step[data-node=materials]")
    assert risk.locator("#stands form.stand-form").count() == 0  # the clerk's now

    _dispatch(db, server_keyring)
    sales = web.signed_in("xiao.wang")
    sales.goto("/notifications")
    notes = sales.inner_text("#notifications")
    assert "风控驳回" in notes and "缺少近 6 个月银行流水" in notes
    _open_case(sales, case_id)
    assert _mark(sales, "materials") == "current"
    assert _mark(sales, "signing") == "done"


def test_the_panel_fits_a_phone_and_stays_empty_without_flows(web, db, server_keyring):
    _crm(db)
    add_user(db, "risk.one", roles=("risk",))
    add_user(db, "clerk.one", roles=("clerk",))
    case_id = _case(db, server_keyring)
    _to_risk(db, server_keyring, case_id)
    phone = web.signed_in("xiao.wang", width=375, height=740)
    _open_case(phone, case_id)
    assert _mark(phone, "risk") == "current"
    assert phone.evaluate("document.documentElement.scrollWidth") <= 375
    strip = phone.locator("#stands .flow-strip").first
    assert strip.evaluate("e => e.scrollWidth > e.clientWidth")  # scrolls sideways itself
    current = phone.locator("#stands .strip-step[aria-current=step]").bounding_box()
    assert 0 <= current["x"] and current["x"] + current["width"] <= 375  # shown, not hidden
    SHOTS.mkdir(exist_ok=True)
    phone.screenshot(path=str(SHOTS / "stands-375-page.png"), full_page=True)
    phone.locator("#stands-panel").screenshot(path=str(SHOTS / "stands-375.png"))

    # a customer has no flow: the panel is empty (the form has no published flow)
    customer = _create(db, server_keyring, "xiao.wang", "customer",
                       {"name": "赵六", "mobile": "13600001234"})
    phone.goto(f"{APP}/customer/records/{customer['id']}")
    phone.wait_for_load_state("networkidle")
    assert phone.locator("#stands-panel").count() == 0
    assert phone.inner_html("#stands").strip() == ""
