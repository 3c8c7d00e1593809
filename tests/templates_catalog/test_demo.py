"""The CRM template's demo data, loaded through the engines as the demo users: the
numbers in its reports are the numbers of its records, and every role sees what its
permissions say. One load (the slow part) is checked from many sides."""

from __future__ import annotations

import json
import re
from datetime import date, timedelta
from decimal import Decimal

from sqlalchemy import func, select

from engine_flows.models import FlowRun, Task
from platform_core.models import OutboxEvent, Record
from platform_core.security.models import User
from templates_catalog.demo import load_demo
from tests.security_setup import token_for
from tests.templates_catalog.conftest import INSTALLER, install_crm

APP = "/api/v1/apps/crm"
SHIFT = 3  # installed three days after the demo's as_of date


def _as(app, db, username):
    from fastapi.testclient import TestClient

    with db.read() as s:
        user_id = s.execute(select(User.id).where(User.username == username)).scalar_one()
    client = TestClient(app, raise_server_exceptions=False)
    client.headers["Authorization"] = f"Bearer {token_for(db, user_id)}"
    return client, user_id


def _all(client, form, **params):
    items, url = [], f"{APP}/forms/{form}/records"
    params = {"limit": 1000, **params}
    while url:
        page = client.get(url, params=params)
        assert page.status_code == 200, page.text
        items += page.json()["items"]
        url, params = page.json()["next"], None
    return items


def assert_widgets_equal_their_reports(client, dashboard):
    """A dashboard's widgets share their scans (engine_reports/fusion.py): each widget's
    rows are its report's rows run alone, as this viewer, with the widget's parameters."""
    dash = client.get(f"{APP}/dashboards/{dashboard}/data")
    assert dash.status_code == 200, dash.text
    assert len(dash.json()["widgets"]) > 2
    for w in dash.json()["widgets"]:
        assert "error" not in w, w
        alone = client.get(f"{APP}/reports/{w['report']}/data", params=w["params"])
        assert alone.status_code == 200, alone.text
        assert w["data"]["rows"] == alone.json()["rows"], w["report"]


def test_the_demo_loads_and_tells_a_consistent_story(qiao, db, crm):
    app, admin = qiao
    source = json.loads((crm.demo / "records.json").read_text(encoding="utf-8"))
    as_of = date.fromisoformat(json.loads((crm.demo / "directory.json").read_text(
        encoding="utf-8"))["as_of"])
    install_crm(db, crm)
    with db.write() as s:
        result = load_demo(s, crm, app="crm", keyring=app.state.qiao.keyring,
                           actor=INSTALLER, today=as_of + timedelta(days=SHIFT))
    assert result.records == {form: len(items) for form, items in source.items()}
    assert len(result.users) == 16 and re.fullmatch(r"Demo-[\w-]{12}", result.password)

    with db.read() as s:
        runs = dict(s.execute(select(FlowRun.status, func.count()).group_by(FlowRun.status)
                              ).all())
        overdue = s.execute(select(func.count()).select_from(Task).where(
            Task.status == "open", Task.overdue_at.is_not(None))).scalar()
        oldest = s.execute(select(func.min(Record.created_at))).scalar()
    assert runs["completed"] > 20 and runs["running"] > 20 and sum(runs.values()) == len(
        source["loan_case"])
    assert overdue > 0  # old cases left open are late, as they would be
    with db.read() as s:  # each record made by its demo owner, who its event names
        users = dict(s.execute(select(User.username, User.id)).all())
        made = {r.id: r for r in s.execute(select(Record)).scalars()}
        events = dict(s.execute(select(OutboxEvent.record_id, OutboxEvent.payload).where(
            OutboxEvent.event_type == "record.created")).all())
    owners = [users[item["owner"]] for form in source for item in source[form]]
    assert [(r.owner_id, r.created_by) for _, r in sorted(made.items())] == [
        (o, o) for o in owners]
    assert [events[rid]["actor_id"] for rid in sorted(made)] == owners
    assert (date.today() - oldest.date()).days > 100  # records carry their demo dates

    # dates move with the install day
    cases = _all(admin, "loan_case", sort="id")
    first = source["loan_case"][0]["data"]["apply_date"]
    assert cases[0]["data"]["apply_date"] == (date.fromisoformat(first)
                                              + timedelta(days=SHIFT)).isoformat()

    # the reports' numbers are the records' numbers
    paid = [c for c in cases if c["data"].get("stage") in ("disbursed", "closed")]
    total = sum(Decimal(c["data"]["approved_amount"]) for c in paid)
    kpi = admin.get(f"{APP}/reports/disbursed_kpi/data").json()
    assert Decimal(kpi["rows"][0][0]) == total > 0
    board = admin.get(f"{APP}/reports/leaderboard/data").json()
    assert sum(Decimal(r[1]) for r in board["rows"]) <= total
    assert sum(r[2] for r in board["rows"]) <= len(paid) and len(board["rows"]) == 8
    funnel = admin.get(f"{APP}/reports/service_funnel/data").json()
    reached = {row[0]: row[1] for row in funnel["rows"]}
    assert reached["需求分析"] == len(cases) > reached["签约"] > reached["放款确认"] > 0
    assert "标记已签约" not in reached and "审批结果" not in reached  # service, gateway
    dash = admin.get(f"{APP}/dashboards/sales_overview/data").json()
    assert all("error" not in w for w in dash["widgets"]), dash["widgets"]
    assert_widgets_equal_their_reports(admin, "sales_overview")
    assert_widgets_equal_their_reports(admin, "management")

    # a salesperson: only their own customers, ID numbers and mobiles masked, no income
    sales, sales_id = _as(app, db, "zhang.wei")
    mine = _all(sales, "customer")
    assert {c["owner_id"] for c in mine} == {sales_id}
    assert len(mine) == sum(1 for c in source["customer"] if c["owner"] == "zhang.wei")
    assert all("monthly_income" not in c["data"] for c in mine)
    assert all(re.fullmatch(r"\d{4}\*{10}[\dX]{4}", c["data"]["id_no"]) for c in mine
               if "id_no" in c["data"])
    assert all(re.fullmatch(r"1\d\d\*{4}\d{4}", c["data"]["mobile"]) for c in mine)
    assert sales.get(f"{APP}/dashboards/management/data").status_code == 403
    assert sales.get(f"{APP}/dashboards/sales_overview/data").status_code == 200
    his = sales.get(f"{APP}/reports/leaderboard/data").json()["rows"]
    assert [r[0] for r in his] in ([], ["张伟"])
    assert_widgets_equal_their_reports(sales, "sales_overview")

    # a team lead of 北京销售一部: the team's customers (three salespeople)
    lead, _ = _as(app, db, "wang.fang")
    assert_widgets_equal_their_reports(lead, "management")
    team = {"zhang.wei", "li.na", "chen.jie"}
    assert len(_all(lead, "customer")) == sum(1 for c in source["customer"]
                                             if c["owner"] in team)

    # risk (may unmask): every customer with ID number and income; cannot add customers
    risk, _ = _as(app, db, "ma.jun")
    every = _all(risk, "customer")
    assert len(every) == len(source["customer"])
    assert all(re.fullmatch(r"\d{17}[\dX]", c["data"]["id_no"]) for c in every)
    assert all("monthly_income" in c["data"] for c in every)
    assert risk.post(f"{APP}/forms/customer/records", json={"name": "x"}).status_code == 403

    # a clerk: every customer, read only, ID numbers hidden, mobiles masked
    clerk, _ = _as(app, db, "guo.xin")
    seen = _all(clerk, "customer")
    assert len(seen) == len(source["customer"])
    assert all("id_no" not in c["data"] and "*" in c["data"]["mobile"] for c in seen)

    # the demo users' open tasks are in their inboxes
    inbox = sales.get("/api/v1/tasks", params={"assignee": "me", "status": "open"}).json()
    assert inbox["items"], "the salesperson has open steps of their cases"
