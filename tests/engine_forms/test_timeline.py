"""One timeline per record (issue 18), through the API on the CRM template: newest first,
a customer's timeline holding their cases' flow steps and their follow-ups, each entry
only for a viewer who may read its source (form, row scope, field), masked fields and
notification recipients masked, kinds filtered, keyset pages with no repeat and no gap,
and a bounded number of SQL statements however long the history."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import event, insert, select, update

from engine_flows.models import Task
from engine_rules.models import Rule
from platform_core.app import create_app
from platform_core.models import Record, RecordHistory, RecordLink
from platform_core.outbox import Dispatcher
from platform_core.security.directory import save_role
from platform_core.settings import load_settings
from templates_catalog.bundle import template
from templates_catalog.install import install
from tests.security_setup import SYSTEM, client_as

API = "/api/v1"
FORMS = f"{API}/apps/crm/forms"
READ_ALL = {"actions": ["read"], "scope": "all"}
OWN = {"actions": ["create", "read", "update"], "scope": "own"}
ROLES = {
    # may read customers and cases, not follow-ups
    "no_follow": {"forms": {"crm.customer": READ_ALL | {"fields": {"monthly_income": "hidden"}},
                            "crm.loan_case": READ_ALL}},
    # every customer, but only their own cases and follow-ups
    "shared_sales": {"forms": {"crm.customer": {"actions": ["create", "read", "update"],
                                                "scope": "all"},
                               "crm.loan_case": OWN, "crm.follow_up": OWN}},
}


MOBILES = itertools.count(1)
FOLLOW = {"method": "phone", "follow_date": "2031-03-03"}


def ok(response: Any, status: int = 200) -> Any:
    assert response.status_code == status, response.text
    return response.json()


@pytest.fixture
def crm(db, tmp_path) -> dict[str, Any]:
    app = create_app(load_settings(data_dir=tmp_path, api_rate_per_minute=1_000_000,
                                   background_jobs=False), db=db)
    with db.write() as s:
        install(s, template("bank_intermediary_crm"), actor=SYSTEM,
                template="bank_intermediary_crm")
        for key, permissions in ROLES.items():
            save_role(s, key=key, name=key, description=None, permissions=permissions,
                      actor=SYSTEM, principal=None, create=True)
    clients = {"admin": client_as(app, db, "admin")}
    for name, role in (("xiao.wang", "sales"), ("lao.zhao", "sales"), ("risk.li", "risk"),
                       ("clerk.chen", "clerk"), ("nofollow", "no_follow"),
                       ("ann", "shared_sales"), ("bob", "shared_sales")):
        clients[name] = client_as(app, db, name, roles=(role,))
    return {"app": app, "db": db, **clients}


def create(client, form: str, data: dict[str, Any]) -> dict[str, Any]:
    return ok(client.post(f"{FORMS}/{form}/records", json=data), 201)


def timeline(client, form: str, record_id: int, **params: Any) -> dict[str, Any]:
    return ok(client.get(f"{FORMS}/{form}/records/{record_id}/timeline", params=params))


def open_task(client, record_id: int) -> dict[str, Any]:
    doc = ok(client.get(f"{FORMS}/loan_case/records/{record_id}/progress"))
    return {"id": doc["flows"][0]["current"][0]["tasks"][0]}


def _case(crm, owner: str = "xiao.wang") -> tuple[dict[str, Any], dict[str, Any]]:
    customer = create(crm[owner], "customer", {"name": "张三", "mobile": "13800001234"})
    case = create(crm[owner], "loan_case", {"customer": customer["id"],
                                             "loan_type": "mortgage", "amount": "800000"})
    ok(crm["admin"].post(f"{API}/apps/crm/flows/loan_service/instances",
                         json={"record_id": case["id"]}), 201)
    return customer, case


def test_a_customers_timeline_holds_the_case_steps_and_follow_ups_newest_first(crm):
    sales = crm["xiao.wang"]
    customer, case = _case(crm)
    for comment, data in (("客户需要 80 万", {}), (None, {"product": product(crm)})):
        task = open_task(sales, case["id"])
        ok(sales.post(f"{API}/tasks/{task['id']}/complete",
                      json={"outcome": "submit", "comment": comment, "data": data}))
    create(sales, "follow_up", FOLLOW | {"customer": customer["id"],
                                         "summary": "电话沟通, 周五面谈",
                                         "next_date": "2031-03-07"})
    items = timeline(sales, "customer", customer["id"])["items"]
    times = [i["at"] for i in items]
    assert times == sorted(times, reverse=True)
    flow = [(i["action"], i["name"]) for i in items if i["kind"] == "flow"]
    assert ("task_completed", "需求分析") in flow and ("task_completed", "产品匹配") in flow
    assert ("step_entered", "签约") in flow and ("flow_started", None) in flow
    assert not any(name in ("开始", "start") for _a, name in flow)  # no pass-through nodes
    done = next(i for i in items if i["action"] == "task_completed" and i["name"] == "需求分析")
    assert done["detail"]["comment"] == "客户需要 80 万" and done["detail"]["outcome"] == "submit"
    assert done["record"] == {"app": "crm", "form": "loan_case", "id": case["id"],
                              "related": True, "title": case["data"]["case_no"]}
    assert done["actor"]["name"] == "xiao.wang"
    follow = next(i for i in items if i["kind"] == "follow_ups" and i["record"]["form"]
                  == "follow_up")
    assert follow["name"] == "电话沟通, 周五面谈"
    facts = {f["field"]: f["value"] for f in follow["detail"]["facts"]}
    assert facts["next_date"] == "2031-03-07" and facts["method"] == "phone"
    assert items[-1]["action"] == "create" and items[-1]["record"]["id"] == customer["id"]

    only_flow = timeline(sales, "customer", customer["id"], kinds="flow")["items"]
    assert only_flow and {i["kind"] for i in only_flow} == {"flow"}
    both = timeline(sales, "customer", customer["id"], kinds="flow,follow_ups")["items"]
    assert {i["kind"] for i in both} == {"flow", "follow_ups"}


def test_without_rights_on_follow_ups_none_of_them_shows(crm):
    customer, _case_doc = _case(crm)
    follow = create(crm["xiao.wang"], "follow_up", FOLLOW | {"customer": customer["id"],
                                                             "summary": "上门拜访"})
    ok(crm["xiao.wang"].patch(f"{FORMS}/follow_up/records/{follow['id']}",
                              json={"summary": "上门拜访 (改)"},
                              headers={"If-Match": f'"{follow["row_version"]}"'}))
    mine = timeline(crm["xiao.wang"], "customer", customer["id"])["items"]
    assert any(i["record"]["form"] == "follow_up" for i in mine)
    theirs = timeline(crm["nofollow"], "customer", customer["id"])["items"]
    assert theirs and not any(i["record"]["form"] == "follow_up" for i in theirs)
    assert any(i["record"]["form"] == "loan_case" for i in theirs)  # cases: readable


def test_own_scope_hides_a_colleagues_case_on_a_shared_customer(crm):
    customer = create(crm["ann"], "customer", {"name": "共享客户", "mobile": "13900002222"})
    mine = create(crm["ann"], "loan_case", {"customer": customer["id"],
                                            "loan_type": "mortgage", "amount": "100000"})
    theirs = create(crm["bob"], "loan_case", {"customer": customer["id"],
                                              "loan_type": "mortgage", "amount": "200000"})
    ann = {i["record"]["id"] for i in timeline(crm["ann"], "customer", customer["id"])["items"]}
    bob = {i["record"]["id"] for i in timeline(crm["bob"], "customer", customer["id"])["items"]}
    assert mine["id"] in ann and theirs["id"] not in ann
    assert theirs["id"] in bob and mine["id"] not in bob
    # nor through the case itself
    assert crm["ann"].get(f"{FORMS}/loan_case/records/{theirs['id']}/timeline"
                          ).status_code == 404


def test_masked_fields_stay_masked_and_hidden_ones_absent_in_change_entries(crm):
    sales = crm["nofollow"]  # reads every customer; mobile masked, income hidden
    customer = create(crm["admin"], "customer", {"name": "王五", "mobile": "13800001234",
                                                 "monthly_income": "30000"})
    ok(crm["admin"].patch(f"{FORMS}/customer/records/{customer['id']}",
                          json={"mobile": "13911112222", "monthly_income": "45000",
                                "name": "王五一"},
                          headers={"If-Match": f'"{customer["row_version"]}"'}))
    changes = [c for i in timeline(sales, "customer", customer["id"],
                                   kinds="changes")["items"] for c in i["changes"]]
    by_field = {c["field"]: c for c in changes}
    assert by_field["mobile"]["from"] == "138****1234"
    assert by_field["mobile"]["to"] == "139****2222"
    assert by_field["name"]["to"] == "王五一"
    assert "monthly_income" not in by_field  # hidden for this role
    raw = str(timeline(sales, "customer", customer["id"]))
    assert "13911112222" not in raw and "45000" not in raw
    # who may unmask sees the numbers
    risk_changes = [c for i in timeline(crm["admin"], "customer", customer["id"],
                                        kinds="changes")["items"] for c in i["changes"]]
    assert {"from": "13800001234", "to": "13911112222"}.items() <= next(
        c for c in risk_changes if c["field"] == "mobile").items()


def product(crm) -> int:
    """A bank product (the clerk keeps them): submitting 产品匹配 needs one."""
    return create(crm["clerk.chen"], "bank_product",
                  {"name": "安居贷", "bank": "icbc", "loan_type": "mortgage"})["id"]


def _walk_to_risk(crm, case_id: int) -> None:
    """analysis → matching → signing (the salesperson), materials (the clerk), each with
    what submitting it needs."""
    needs = [{}, {"product": product(crm)}, {"signed_date": "2026-03-02"}, {}]
    for who, data in zip(("xiao.wang", "xiao.wang", "xiao.wang", "clerk.chen"), needs,
                         strict=True):
        task = open_task(crm[who], case_id)
        ok(crm[who].post(f"{API}/tasks/{task['id']}/complete",
                         json={"outcome": "submit", "data": data}))


def test_a_reject_back_and_the_notification_sent_show_with_the_recipient_masked(crm):
    customer, case = _case(crm)
    with crm["db"].write() as s:
        s.execute(update(Rule).where(Rule.key == "sms_bank_review").values(enabled=True))
    _walk_to_risk(crm, case["id"])
    risk = open_task(crm["risk.li"], case["id"])
    ok(crm["risk.li"].post(f"{API}/tasks/{risk['id']}/reject",
                           json={"to": "materials", "comment": "收入证明缺失"}))
    items = timeline(crm["xiao.wang"], "customer", customer["id"], kinds="flow")["items"]
    back = next(i for i in items if i["action"] == "went_back")
    assert back["name"] == "资料收集" and back["detail"]["from_step"] == "风控审核"
    rejected = next(i for i in items if i["action"] == "task_completed")
    assert rejected["name"] == "风控审核" and rejected["detail"]["comment"] == "收入证明缺失"
    assert rejected["actor"]["name"] == "risk.li"

    clerk = open_task(crm["clerk.chen"], case["id"])
    ok(crm["clerk.chen"].post(f"{API}/tasks/{clerk['id']}/complete", json={}))
    risk = open_task(crm["risk.li"], case["id"])
    ok(crm["risk.li"].post(f"{API}/tasks/{risk['id']}/approve", json={}))
    ctx = crm["app"].state.qiao
    dispatcher = Dispatcher.from_registry(ctx.db, context=ctx, worker_id="tests")
    while dispatcher.run_once(now=datetime.now(UTC)):
        pass
    auto = timeline(crm["xiao.wang"], "loan_case", case["id"], kinds="automation")["items"]
    sms = next(i for i in auto if i["action"] == "notified")
    assert sms["detail"]["channel"] == "sms" and sms["detail"]["recipients"] == ["138****1234"]
    assert sms["detail"]["status"] in ("pending", "delivered", "dead")
    assert any(i["action"] == "rule_fired" and i["name"] == "短信通知客户: 已提交银行"
               for i in auto)
    assert "13800001234" not in str(auto)


def test_bad_cursor_kind_and_limit_are_problems(crm):
    customer = create(crm["xiao.wang"], "customer", {"name": "赵六", "mobile": "13700003333"})
    url = f"{FORMS}/customer/records/{customer['id']}/timeline"
    for params, code in (({"cursor": "nonsense"}, "bad_cursor"),
                         ({"kinds": "changes,gossip"}, "unknown_kind")):
        r = crm["xiao.wang"].get(url, params=params)
        assert r.status_code in (400, 422), r.text
        assert r.headers["content-type"].startswith("application/problem+json")
        assert r.json()["code"] == code and r.json()["detail"]
    assert crm["xiao.wang"].get(url, params={"limit": 0}).status_code == 422
    assert crm["lao.zhao"].get(url).status_code == 404  # another's customer


# -- paging and cost, over histories written straight into the tables ----------------------


def _bulk(db, record_id: int, times: list[datetime], *, tasks: int = 0) -> None:
    with db.write() as s:
        s.execute(insert(RecordHistory), [
            {"record_id": record_id, "row_version": n + 2, "action": "update",
             "diff": {"city": [f"c{n}", f"c{n + 1}"]}, "at": at}
            for n, at in enumerate(times)])
        if tasks:
            s.execute(insert(Task), [
                {"app": "crm", "form": "customer", "node_id": "todo", "kind": "todo",
                 "record_id": record_id, "title": f"回访 {n}", "status": "open",
                 "created_at": times[n % len(times)]} for n in range(tasks)])


def _all_pages(client, record_id: int, limit: int) -> list[str]:
    seen, cursor = [], None
    while True:
        params = {"limit": limit} | ({"cursor": cursor} if cursor else {})
        doc = timeline(client, "customer", record_id, **params)
        seen += [i["position"] for i in doc["items"]]
        cursor = doc["next_cursor"]
        if not cursor:
            return seen


@settings(max_examples=12, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(offsets=st.lists(st.integers(min_value=0, max_value=5), min_size=1, max_size=40),
       tasks=st.integers(min_value=0, max_value=10), limit=st.integers(min_value=1, max_value=9))
def test_pages_neither_repeat_nor_skip_an_entry(crm, offsets, tasks, limit):
    """Many entries share a time (ties between and within sources): the keyset cursor
    (time, source, id) still walks each exactly once, in the one-page order."""
    customer = create(crm["xiao.wang"], "customer",
                      {"name": "分页客户", "mobile": f"136{next(MOBILES):08d}"})
    base = datetime(2031, 3, 3, 2, 0, tzinfo=UTC)
    _bulk(crm["db"], customer["id"], [base + timedelta(seconds=o) for o in offsets],
          tasks=tasks)
    whole = timeline(crm["xiao.wang"], "customer", customer["id"], limit=100)["items"]
    assert len(whole) == len(offsets) + tasks + 1
    assert _all_pages(crm["xiao.wang"], customer["id"], limit) == [i["position"]
                                                                  for i in whole]


def test_the_first_page_costs_the_same_statements_for_a_long_history(crm):
    """A customer with cases, follow-ups and thousands of entries: the first page is a
    fixed number of statements (one per source, not one per entry or record)."""
    db, sales = crm["db"], crm["xiao.wang"]

    def cost(record_id: int) -> tuple[int, int]:
        statements = []

        def count(*_args: Any) -> None:
            statements.append(1)

        event.listen(db.engine, "before_cursor_execute", count)
        try:
            items = timeline(sales, "customer", record_id)["items"]
        finally:
            event.remove(db.engine, "before_cursor_execute", count)
        return len(statements), len(items)

    def customer_with(cases: int, follow_ups: int, changes: int) -> int:
        customer = create(sales, "customer", {"name": f"客户{cases}",
                                                 "mobile": f"135000{cases:05d}"})
        for n in range(cases):
            create(sales, "loan_case", {"customer": customer["id"], "loan_type": "mortgage",
                                        "amount": str(10000 * (n + 1))})
        for n in range(follow_ups):
            create(sales, "follow_up", FOLLOW | {"customer": customer["id"],
                                                 "summary": f"跟进{n}"})
        start = datetime(2030, 1, 1, tzinfo=UTC)
        _bulk(db, customer["id"], [start + timedelta(minutes=n) for n in range(changes)],
              tasks=changes // 10)
        return customer["id"]

    small = cost(customer_with(1, 1, 5))
    big_id = customer_with(20, 40, 2000)
    big = cost(big_id)
    assert big[1] == 30 and big[0] <= small[0] + 2, (small, big)
    assert big[0] <= 40
    with db.read() as s:
        links = s.execute(select(RecordLink).where(RecordLink.target_id == big_id)).all()
        assert len(links) == 60
        assert s.get(Record, big_id) is not None
