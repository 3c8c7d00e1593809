"""The task inbox in a real browser: a salesperson sees their task, a required field is
enforced with a message, completing moves the flow on to the risk officer's approval,
which they approve; the pages fit a phone."""

from __future__ import annotations

import pytest

from engine_flows.definitions import create_flow
from engine_flows.definitions import publish as publish_flow
from engine_flows.instances import start_run
from engine_forms.forms import create_app as create_form_app
from engine_forms.forms import create_form, published
from engine_forms.publishing import publish
from engine_forms.records import create as create_record
from platform_core.models import utcnow
from tests.frontend.conftest import add_user, alert, path_of, status
from tests.security_setup import SYSTEM

# CI runs these pages on PostgreSQL too: their own queries go beyond the API's.
pytestmark = pytest.mark.database_pass

CASE = {"key": "case", "name": "案件", "fields": [
    {"key": "title", "label": "标题", "type": "text"},
    {"key": "note", "label": "跟进记录", "type": "text"},
    {"key": "secret", "label": "内部备注", "type": "text"}]}
FLOW = {"key": "review", "name": "审核流程", "form": "case", "nodes": [
    {"id": "start", "type": "start"},
    {"id": "follow", "type": "user_task", "name": "电话跟进",
     "assignee": {"strategy": "users", "users": ["xiao.li"]},
     "fields": {"readonly": ["title"], "editable": ["note"], "required": ["note"]}},
    {"id": "risk", "type": "approval", "name": "风控审核",
     "assignee": {"strategy": "users", "users": ["wang.risk"]},
     "fields": {"readonly": ["title", "note"]}},
    {"id": "end", "type": "end"}],
    "edges": [{"from": "start", "to": "follow"}, {"from": "follow", "to": "risk"},
              {"from": "risk", "to": "end", "on": "approve"},
              {"from": "risk", "to": "follow", "on": "reject"}]}


def _world(db) -> int:
    add_user(db, "xiao.li", roles=("viewer",))
    add_user(db, "wang.risk", roles=("viewer",))
    with db.write() as s:
        create_form_app(s, key="bank", name="银行业务")
        create_form(s, app="bank", raw=CASE)
        publish(s, app="bank", key="case", actor=SYSTEM)
        create_flow(s, app="bank", raw=FLOW)
        publish_flow(s, app="bank", key="review", actor=SYSTEM)
        rec = create_record(s, published(s, "bank", "case"),
                            {"title": "张三 房贷", "secret": "勿外传"}, actor=SYSTEM)
        return start_run(s, app="bank", flow="review", record_id=rec.id, actor=SYSTEM,
                         now=utcnow()).id


def test_a_task_is_worked_from_the_inbox_to_approval(web, db):
    _world(db)
    page = web.signed_in("xiao.li")
    page.click('nav.nav >> text="待办"')
    page.click("#tasks >> text=电话跟进")
    assert "张三 房贷" in page.inner_text("[data-field=title]")
    assert "勿外传" not in page.content()  # not shown at this step, not readable by role
    page.click("button[value='outcome:submit']")
    assert "跟进记录" in alert(page)  # the required field, named
    page.fill("#f-note", "客户同意提交资料")
    page.fill("#comment", "已电话沟通")
    page.click("button[value='outcome:submit']")
    assert path_of(page).startswith("/tasks")
    assert "任务已完成" in status(page)
    assert page.locator("#no-tasks").is_visible()
    page.click('nav.tabs >> text="已办"')
    assert page.locator("#tasks").inner_text().count("电话跟进") == 1

    risk = web.signed_in("wang.risk")
    risk.goto("/tasks")
    risk.click("#tasks >> text=风控审核")
    assert "客户同意提交资料" in risk.inner_text("[data-field=note]")
    risk.click("button[value='outcome:approve']")
    assert "任务已完成" in status(risk)


def test_someone_elses_task_is_not_found_and_the_inbox_fits_a_phone(web, db):
    _world(db)
    add_user(db, "stranger", roles=("viewer",))
    page = web.signed_in("stranger", width=375, height=740)
    page.goto("/tasks/1")
    assert page.locator("text=404").count() or "不存在" in page.content() \
        or "does not exist" in page.content()
    phone = web.signed_in("xiao.li", width=375, height=740)
    for path in ("/tasks", "/tasks/1", "/tasks?status=done"):
        phone.goto(path)
        assert phone.evaluate("document.documentElement.scrollWidth") <= 375, path
