"""The record timeline fragment in a real browser (issue 18): a customer's timeline shows
their case's flow steps with their times, a kind chip narrows it, "更早的记录" loads the
next page in place, masked values stay masked, follow-ups stay away from a viewer
without rights on them, and it fits a phone."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

from sqlalchemy import insert, select

from engine_flows.instances import progress, start_run
from engine_flows.tasks import Who, complete
from engine_forms import service
from engine_forms.forms import published
from engine_forms.service import Caller
from platform_core.models import RecordHistory, utcnow
from platform_core.security.directory import save_role
from platform_core.security.models import User
from platform_core.security.principal import load_principal
from tests.frontend.conftest import add_user
from tests.frontend.test_workspace import _create, _crm
from tests.security_setup import SYSTEM

FORMS = "/apps/crm/forms"
TIME = re.compile(r"\d{4}-\d{2}-\d{2} \d{2}:\d{2}")


def _who(s, username: str, keyring) -> Who:
    user = s.execute(select(User).where(User.username == username)).scalar_one()
    return Who(load_principal(s, user, via="test"), keyring, utcnow())


def _case_two_steps_done(db, keyring) -> tuple[dict, dict]:
    customer = _create(db, keyring, "xiao.wang", "customer",
                       {"name": "时间线客户", "mobile": "13800001234"})
    case = _create(db, keyring, "xiao.wang", "loan_case",
                   {"customer": customer["id"], "loan_type": "mortgage", "amount": "800000"})
    with db.write() as s:
        start_run(s, app="crm", flow="loan_service", record_id=case["id"], actor=SYSTEM,
                  now=utcnow())
    add_user(db, "clerk.one", roles=("clerk",))
    product = _create(db, keyring, "clerk.one", "bank_product", {
        "name": "安居贷", "bank": "icbc", "loan_type": "mortgage"})["id"]
    for comment, data in (("客户要 80 万", {}), ("匹配了两个产品", {"product": product})):
        with db.write() as s:
            task = progress(s, case["id"], utcnow())[0]["current"][0]["tasks"][0]
            complete(s, task, _who(s, "xiao.wang", keyring), outcome="submit",
                     comment=comment, data=data)
    return customer, case


def _fragment(page, form: str, record_id: int) -> None:
    """The record page, its timeline loaded into ``#timeline`` (htmx)."""
    page.goto(f"{FORMS}/{form}/records/{record_id}")
    page.wait_for_selector("#timeline #timeline-card")


def test_the_customers_timeline_shows_the_cases_steps_with_their_times(web, db, server_keyring,
                                                                       tmp_path):
    _crm(db)
    customer, case = _case_two_steps_done(db, server_keyring)
    page = web.signed_in("xiao.wang")
    _fragment(page, "customer", customer["id"])
    done = page.locator("li[data-action=task_completed]")
    assert done.count() == 2
    texts = done.all_inner_texts()
    assert "产品匹配" in texts[0] and "需求分析" in texts[1]  # newest first
    for text in texts:
        assert TIME.search(text) and case["data"]["case_no"] in text
    assert "客户要 80 万" in texts[1]
    link = done.first.locator("a.tl-record")
    assert link.get_attribute("href") == f"{FORMS}/loan_case/records/{case['id']}"
    page.screenshot(path=str(tmp_path / "timeline-1280.png"), full_page=True)

    page.click(".tl-chips a[data-kind=flow]")
    page.wait_for_selector(".tl-chips a[data-kind=flow][aria-current]")
    kinds = set(page.eval_on_selector_all("#timeline-items li[data-kind]",
                                          "els => els.map(e => e.dataset.kind)"))
    assert kinds == {"flow"}


def test_older_entries_load_in_place_without_repeats(web, db, server_keyring):
    _crm(db)
    customer = _create(db, server_keyring, "xiao.wang", "customer",
                       {"name": "长历史", "mobile": "13800005678"})
    start = datetime(2030, 1, 1, tzinfo=UTC)
    with db.write() as s:
        s.execute(insert(RecordHistory), [
            {"record_id": customer["id"], "row_version": n + 2, "action": "update",
             "diff": {"name": [f"名{n}", f"名{n + 1}"]}, "at": start + timedelta(hours=n)}
            for n in range(45)])
    page = web.signed_in("xiao.wang")
    _fragment(page, "customer", customer["id"])
    assert page.locator("#timeline-items li[data-kind]").count() == 30
    page.click("#timeline-more button")
    page.wait_for_selector("#timeline-items li[data-kind] >> nth=45")
    texts = page.locator("#timeline-items li[data-kind]").all_inner_texts()
    assert len(texts) == 46 and len(set(texts)) == 46  # 45 changes + created, once each
    assert "创建了记录" in texts[-1]
    assert page.locator("#timeline-more").count() == 0


def test_masked_values_stay_masked_and_follow_ups_need_rights(web, db, server_keyring):
    _crm(db)
    with db.write() as s:
        save_role(s, key="no_follow", name="no_follow", description=None, actor=SYSTEM,
                  principal=None, create=True,
                  permissions={"forms": {"crm.customer": {"actions": ["read"], "scope": "all"},
                                         "crm.loan_case": {"actions": ["read"],
                                                           "scope": "all"}}})
    add_user(db, "kan.kan", roles=("no_follow",))
    customer = _create(db, server_keyring, "xiao.wang", "customer",
                       {"name": "脱敏客户", "mobile": "13800001234"})
    _create(db, server_keyring, "xiao.wang", "follow_up",
            {"customer": customer["id"], "summary": "电话回访", "method": "phone",
             "follow_date": "2031-03-03"})
    with db.write() as s:
        user = s.execute(select(User).where(User.username == "xiao.wang")).scalar_one()
        principal = load_principal(s, user, via="test")
        caller = Caller(principal, principal.access("crm", "customer"), server_keyring)
        service.update(s, caller, published(s, "crm", "customer"), customer["id"],
                       {"mobile": "13911112222"}, expected_version=customer["row_version"])

    sales = web.signed_in("xiao.wang")
    _fragment(sales, "customer", customer["id"])
    text = sales.inner_text("#timeline-card")
    assert "138****1234" in text and "139****2222" in text
    assert "13911112222" not in text and "13800001234" not in text
    assert "电话回访" in text

    other = web.signed_in("kan.kan")
    _fragment(other, "customer", customer["id"])
    text = other.inner_text("#timeline-card")
    assert "电话回访" not in text and "跟进记录" not in text
    assert "139****2222" in text


def test_the_timeline_fits_a_phone(web, db, server_keyring, tmp_path):
    _crm(db)
    customer, _case = _case_two_steps_done(db, server_keyring)
    page = web.signed_in("xiao.wang", width=375, height=740)
    _fragment(page, "customer", customer["id"])
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= 375, width
    assert page.locator(".tl-chips").bounding_box()["width"] <= 375
    page.screenshot(path=str(tmp_path / "timeline-375.png"), full_page=True)
