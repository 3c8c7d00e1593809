"""Scheduled reports e-mailed to a role each Monday (each reader their own numbers, once
per week) and customer segmentation (高价值 / 潜力 / 沉睡) recomputed from metadata."""

from __future__ import annotations

import email
from datetime import UTC, datetime, timedelta
from email import policy
from types import SimpleNamespace

import pytest

from engine_reports import schedule
from platform_core.security.directory import save_role
from platform_core.settings import load_settings
from tests.engine_flows.flows_setup import API, APP, ok
from tests.engine_rules.rules_setup import SmtpSink
from tests.security_setup import SYSTEM

# Monday 2026-11-30 09:05 in Asia/Shanghai
MONDAY_0905 = datetime(2026, 11, 30, 1, 5, tzinfo=UTC)
WEEKLY = {"key": "weekly", "name": "上周放款", "source": {"form": "case"},
          "dimensions": [{"field": "region"}],
          "measures": [{"agg": "sum", "field": "amount", "label": "放款金额"},
                       {"agg": "count", "label": "笔数"}],
          "parameters": [{"key": "period", "type": "date_range", "field": "maturity_date"}],
          "schedule": {"every": "monday", "at": "09:00", "roles": ["seller"],
                       "period": "last_week"}}


@pytest.fixture
def smtp():
    sink = SmtpSink()
    yield sink
    sink.close()


def saved_a_week_before(world) -> None:
    """The weekly report as if it had been saved the week before MONDAY_0905 (a report
    is only sent for slots after it was saved; the test's Monday is a fixed date)."""
    from sqlalchemy import update

    from engine_reports.models import Report

    with world.db.write() as s:
        s.execute(update(Report).where(Report.key == "weekly").values(
            updated_at=MONDAY_0905 - timedelta(days=7)))


def worker(world, smtp, name="w1"):
    settings = load_settings(data_dir=world.app.state.qiao.settings.data_dir,
                             smtp_host="127.0.0.1", smtp_port=smtp.port,
                             smtp_from="reports@bank.example")
    ctx = SimpleNamespace(db=world.db, settings=settings, keyring=None)
    return lambda now: schedule.send_due(ctx, None, now, name)


def mails(smtp):
    out = {}
    for _sender, rcpts, raw in smtp.messages:
        message = email.message_from_bytes(raw, policy=policy.default)
        out[rcpts[0]] = (message["Subject"],
                         message.get_body(("plain",)).get_content())
    return out


def test_a_weekly_report_is_mailed_to_the_role_each_with_their_numbers_once(world, smtp):
    world.role("seller", ("create", "read"), scope="own")
    for name in ("li", "wang", "nomail"):
        world.user(name, "seller")
    for name in ("li", "wang"):
        ok(world.admin.patch(f"{API}/users/{world.users[name]}",
                             json={"email": f"{name}@bank.example"}))
    world.case("li", region="华东", amount="100.10", maturity_date="2026-11-23")
    world.case("li", region="华东", amount="0.20", maturity_date="2026-11-29")
    world.case("li", region="华东", amount="9.99", maturity_date="2026-11-30")  # this week
    world.case("wang", region="华北", amount="5000.00", maturity_date="2026-11-25")
    ok(world.admin.post(f"{APP}/reports", json=WEEKLY), 201)
    saved_a_week_before(world)
    tick = worker(world, smtp)

    assert tick(MONDAY_0905 - timedelta(minutes=10)) == 0  # 08:55: not yet
    assert smtp.messages == []
    assert tick(MONDAY_0905) == 1
    sent = mails(smtp)
    assert set(sent) == {"li@bank.example", "wang@bank.example"}
    subject, text = sent["li@bank.example"]
    assert subject == "【报表】上周放款"
    assert "2026-11-23 ~ 2026-11-29" in text
    assert "¥100.30" in text and "5,000" not in text
    assert "¥5,000.00" in sent["wang@bank.example"][1]

    # a second worker, a restart, a later tick: the week is sent once
    assert worker(world, smtp, "w2")(MONDAY_0905 + timedelta(minutes=1)) == 0
    assert tick(MONDAY_0905 + timedelta(hours=3)) == 0
    assert len(smtp.messages) == 2
    assert tick(MONDAY_0905 + timedelta(days=7)) == 1
    assert len(smtp.messages) == 4


def test_a_failed_sending_is_retried_later(world, smtp):
    world.role("seller", ("read",))
    world.user("li", "seller")
    ok(world.admin.patch(f"{API}/users/{world.users['li']}", json={"email": "li@bank.example"}))
    ok(world.admin.post(f"{APP}/reports", json=WEEKLY), 201)
    saved_a_week_before(world)
    port = smtp.port
    smtp.close()  # the mail server is down
    settings = load_settings(data_dir=world.app.state.qiao.settings.data_dir,
                             smtp_host="127.0.0.1", smtp_port=port)
    ctx = SimpleNamespace(db=world.db, settings=settings, keyring=None)
    assert schedule.send_due(ctx, None, MONDAY_0905, "w1") == 0
    again = SmtpSink()
    try:
        ctx.settings = load_settings(data_dir=settings.data_dir, smtp_host="127.0.0.1",
                                     smtp_port=again.port)
        assert schedule.send_due(ctx, None, MONDAY_0905 + timedelta(minutes=1), "w1") == 0
        assert schedule.send_due(ctx, None, MONDAY_0905 + timedelta(minutes=6), "w1") == 1
        assert len(again.messages) == 1
    finally:
        again.close()


CUSTOMER = {"key": "customer", "name": "客户", "title_field": "name", "fields": [
    {"key": "name", "label": "姓名", "type": "text", "required": True},
    {"key": "last_contact", "label": "最近联系", "type": "date"},
    {"key": "tier", "label": "客户分层", "type": "select", "options": [
        {"value": "high_value", "label": "高价值"}, {"value": "potential", "label": "潜力"},
        {"value": "dormant", "label": "沉睡"}]},
    {"key": "tags", "label": "标签", "type": "multiselect", "options": [
        {"value": "high_value", "label": "高价值"}, {"value": "dormant", "label": "沉睡"},
        {"value": "vip_manual", "label": "手工VIP"}]}]}
LOAN = {"key": "loan", "name": "贷款", "title_field": "no", "fields": [
    {"key": "no", "label": "编号", "type": "text", "required": True},
    {"key": "customer", "label": "客户", "type": "relation", "target": "customer"},
    {"key": "amount", "label": "金额", "type": "money"},
    {"key": "fee", "label": "服务费", "type": "money"}]}


def segmentation(field="tier"):
    return {"key": "tiers", "name": "客户分层", "source": {"form": "loan"},
            "dimensions": [{"field": "customer"}],
            "measures": [{"key": "total", "agg": "sum", "field": "amount"},
                         {"key": "loans", "agg": "count"},
                         {"key": "profit", "agg": "sum", "field": "fee"}],
            "segment": {"field": field, "rules": [
                {"value": "high_value", "when": "total >= 1000000 OR profit >= 30000"},
                {"value": "dormant",
                 "when": "ISBLANK(last_contact) OR DAYS_BETWEEN(last_contact, TODAY()) > 180"},
                {"value": "potential", "when": "loans >= 1"}]}}


@pytest.fixture
def crm(world):
    for form in (CUSTOMER, LOAN):
        ok(world.admin.post(f"{APP}/forms", json=form), 201)
        ok(world.admin.post(f"{APP}/forms/{form['key']}/publish"))
    recent = datetime.now(UTC).date().isoformat()
    ids = {}
    for name, contact in (("大户", recent), ("小户", recent), ("老户", "2020-01-01"),
                          ("新户", recent)):
        ids[name] = ok(world.admin.post(f"{APP}/forms/customer/records", json={
            "name": name, "last_contact": contact}), 201)["id"]
    for customer, amount, fee in (("大户", "800000.00", "8000.00"),
                                  ("大户", "300000.00", "3000.00"),
                                  ("小户", "50000.00", "500.00"),
                                  ("老户", "20000.00", "200.00")):
        ok(world.admin.post(f"{APP}/forms/loan/records", json={
            "no": customer + amount, "customer": ids[customer], "amount": amount,
            "fee": fee}), 201)
    world.ids = ids
    return world


def tiers(world):
    items = ok(world.admin.get(f"{APP}/forms/customer/records", params={"limit": 100}))
    return {i["data"]["name"]: (i["data"].get("tier"), i["data"].get("tags"))
            for i in items["items"]}


def test_customers_are_tagged_from_loan_amounts_profit_and_last_contact(crm):
    ok(crm.admin.post(f"{APP}/reports", json=segmentation()), 201)
    done = ok(crm.admin.post(f"{APP}/reports/tiers/segments/run"))
    assert done == {"records": 4, "changed": 3,  # 新户 has no loan and no tier: unchanged
                    "counts": {"high_value": 1, "dormant": 1, "potential": 3}}
    assert {k: v[0] for k, v in tiers(crm).items()} == {
        "大户": "high_value", "小户": "potential", "老户": "dormant", "新户": None}
    # nothing changed: nothing is written again
    assert ok(crm.admin.post(f"{APP}/reports/tiers/segments/run"))["changed"] == 0
    # a big new loan makes 小户 high-value
    ok(crm.admin.post(f"{APP}/forms/loan/records", json={
        "no": "L9", "customer": crm.ids["小户"], "amount": "2000000.00"}), 201)
    assert ok(crm.admin.post(f"{APP}/reports/tiers/segments/run"))["changed"] == 1
    assert tiers(crm)["小户"][0] == "high_value"
    history = ok(crm.admin.get(f"{APP}/forms/customer/records/{crm.ids['小户']}/history"))
    assert any("tier" in (h.get("diff") or {}) for h in history["items"])


def test_multiselect_tags_keep_the_tags_no_rule_manages(crm):
    ok(crm.admin.patch(f"{APP}/forms/customer/records/{crm.ids['老户']}",
                       json={"tags": ["vip_manual"]},
                       headers={"If-Match": '"1"'}))
    spec = segmentation("tags")
    spec["segment"]["rules"] = spec["segment"]["rules"][:2]  # potential is no tag option
    ok(crm.admin.post(f"{APP}/reports", json=spec), 201)
    ok(crm.admin.post(f"{APP}/reports/tiers/segments/run"))
    got = {k: sorted(v[1] or []) for k, v in tiers(crm).items()}
    assert got == {"大户": ["high_value"], "小户": [], "老户": ["dormant", "vip_manual"],
                   "新户": []}


def test_a_segmentation_runs_on_its_schedule_once_a_day(crm, smtp):
    spec = segmentation()
    spec["segment"] |= {"every": "day", "at": "02:00"}
    ok(crm.admin.post(f"{APP}/reports", json=spec), 201)
    tick = worker(crm, smtp)
    # a day later, the latest 02:00 slot is after the report was saved
    later = datetime.now(UTC) + timedelta(days=1)
    assert tick(later) == 1
    assert tiers(crm)["大户"][0] == "high_value"
    assert tick(later + timedelta(minutes=1)) == 0


@pytest.mark.parametrize(("change", "needle"), [
    ({"field": "name"}, "select or multiselect"),
    ({"rules": [{"value": "gold", "when": "total > 1"}]}, "not an option"),
    ({"rules": [{"value": "dormant", "when": "total +"}]}, "rules[0].when"),
    ({"rules": [{"value": "dormant", "when": "total"}]}, "TRUE or FALSE"),
])
def test_a_bad_segmentation_is_refused(crm, change, needle):
    spec = segmentation()
    spec["segment"] |= change
    r = crm.admin.post(f"{APP}/reports", json=spec)
    assert r.status_code == 422, r.text
    assert needle in " ".join(r.json()["problems"])


def test_a_relation_dimension_shows_titles_only_of_customers_the_viewer_may_read(crm):
    ok(crm.admin.post(f"{APP}/reports", json={
        "key": "by_customer", "name": "客户贷款", "source": {"form": "loan"},
        "dimensions": [{"field": "customer"}],
        "measures": [{"agg": "sum", "field": "amount"}],
        "sort": [{"measure": 0, "desc": True}]}), 201)
    rows = ok(crm.admin.get(f"{APP}/reports/by_customer/data"))["rows"]
    assert rows == [["大户", "1100000.00"], ["小户", "50000.00"], ["老户", "20000.00"]]
    with crm.db.write() as s:
        save_role(s, key="loans_only", name="loans", description=None, permissions={
            "forms": {"bank.loan": {"actions": ["read"], "scope": "all"}}},
            actor=SYSTEM, principal=None, create=True)
    crm.user("ma", "loans_only")
    rows = ok(crm.as_("ma").get(f"{APP}/reports/by_customer/data"))["rows"]
    assert [r[0] for r in rows] == [f"#{crm.ids[n]}" for n in ("大户", "小户", "老户")]
