"""A flow's live overlay in a real browser, on the CRM template's demo data: each step's
numbers on the drawing and in the table are the numbers of the service funnel report
(reached) and of the records really waiting there (the list a number opens); the
drawing downloads as an SVG file that parses; the page fits a phone; a salesperson's
list of a step holds only their own cases."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from datetime import date, timedelta

import pytest
from sqlalchemy import func, select

from engine_flows.models import FlowRun, FlowStep
from engine_reports import service as reports
from engine_reports.running import Viewer
from platform_core.models import Record
from platform_core.security.models import User
from platform_core.security.principal import load_principal
from platform_core.store import Actor
from templates_catalog.bundle import template
from templates_catalog.demo import load_demo
from templates_catalog.install import install
from tests.frontend.conftest import add_user

FLOW = "/apps/crm/flows/loan_service"
SVG = "{http://www.w3.org/2000/svg}"


@pytest.fixture
def demo(db, server_keyring):
    """The CRM template with its demo data loaded, and an admin ``boss``; the demo's
    salespeople, as (username, password)."""
    bundle = template("bank_intermediary_crm")
    with db.write() as s:
        install(s, bundle, actor=Actor(user_id=None, name="tests"),
                template="bank_intermediary_crm")
        result = load_demo(s, bundle, app="crm", keyring=server_keyring,
                           actor=Actor(user_id=None, name="tests"),
                           today=date.today() - timedelta(days=1))
    add_user(db, "boss", roles=("admin",))
    return result


def _funnel(db, username: str) -> dict[str, int]:
    """The service funnel report as ``username`` sees it: node id → reached."""
    with db.read() as s:
        user = s.execute(select(User).where(User.username == username)).scalar_one()
        principal = load_principal(s, user, via="test")
        _spec, res = reports.result(s, "crm", "service_funnel", Viewer(principal))
    return {key[0]: row[1] for key, row in zip(res.keys, res.rows, strict=True)}


def _table(page) -> dict[str, dict[str, int]]:
    out = {}
    for row in page.locator("#overlay-table tbody tr").all():
        node = row.get_attribute("data-node")
        out[node] = {k: int(row.locator(f".n-{k}").inner_text())
                     for k in ("waiting", "overdue", "reached", "completed")}
    return out


def test_overlay_shows_the_funnels_counts_and_the_lists_behind_them(web, db, demo):
    funnel = _funnel(db, "boss")
    page = web.signed_in("boss")
    page.goto(FLOW + "/overlay")
    assert page.locator("h1").inner_text() == "运行概况：贷款服务流程"
    table = _table(page)
    # the same "reached" as the funnel report, for every step the funnel shows
    assert funnel and set(funnel) <= set(table)
    assert {node: table[node]["reached"] for node in funnel} == funnel
    assert funnel["analysis"] > funnel["signing"] > 0
    # waiting now: the running instances standing at each step, as the database has it
    with db.read() as s:
        waiting = dict(s.execute(
            select(FlowStep.node_id, func.count(func.distinct(FlowStep.run_id)))
            .join(FlowRun, FlowRun.id == FlowStep.run_id)
            .join(Record, Record.id == FlowRun.record_id)
            .where(FlowRun.app == "crm", FlowRun.flow == "loan_service",
                   FlowRun.status == "running", FlowStep.status == "active",
                   Record.deleted_at.is_(None))
            .group_by(FlowStep.node_id)).all())
    assert {n: t["waiting"] for n, t in table.items() if t["waiting"]} == waiting
    assert sum(t["overdue"] for t in table.values()) > 0  # the demo leaves late cases

    # the drawing carries the same numbers as its badges
    for node, counts in table.items():
        badge = page.locator(f"#overlay-drawing a[href*='/at/{node}?overdue=0']")
        if counts["waiting"] or node not in ("start", "end", "end_lost", "decision"):
            assert badge.text_content().strip() == f"等待 {counts['waiting']}", node
        late = page.locator(f"#overlay-drawing a[href*='/at/{node}?overdue=1']")
        assert late.count() == (1 if counts["overdue"] else 0), node
        if counts["overdue"]:
            assert late.text_content().strip() == f"超时 {counts['overdue']}"
    busiest = max(waiting, key=lambda n: waiting[n])

    # a number opens the list of exactly that many records
    page.click(f"#step-{busiest} a.n-waiting")
    assert page.locator("#at-total").inner_text() == f"共 {waiting[busiest]} 条"
    assert page.locator("#at-node tbody tr").count() == min(waiting[busiest], 50)
    late = next(n for n, t in table.items() if t["overdue"])
    page.goto(FLOW + "/overlay")
    page.click(f"#step-{late} a.n-overdue")
    assert page.locator("#at-total").inner_text() == f"共 {table[late]['overdue']} 条"
    rows = page.locator("#at-node tbody tr")
    assert rows.count() == min(table[late]["overdue"], 50)
    assert all(r.locator(".badge.bad").count() == 1 for r in rows.all())
    first = rows.first.locator("a").first
    title = first.inner_text()
    first.click()
    assert re.search(r"/apps/crm/forms/loan_case/records/\d+$", page.url)
    assert title in page.locator("h1").inner_text()


def test_the_drawing_downloads_as_svg_and_the_page_fits_a_phone(web, db, demo):
    page = web.signed_in("boss")
    page.goto(FLOW + "/design")  # the designer links to the overlay
    page.click("#f-overlay")
    assert page.url.endswith(FLOW + "/overlay")
    with page.expect_download() as info:
        page.click("#overlay-export")
    download = info.value
    assert download.suggested_filename in ("贷款服务流程.svg", "loan_service.svg")
    root = ET.parse(download.path()).getroot()
    assert root.tag == SVG + "svg"
    assert root.find(SVG + "title").text == "贷款服务流程"
    names = {t.text for t in root.iter(SVG + "text")}
    assert {"需求分析", "风控审核", "提交", "驳回", "默认"} <= names
    response = page.request.get(FLOW + "/diagram.svg?draft=1")
    assert response.status == 200 and response.headers["content-type"].startswith(
        "image/svg+xml")
    assert response.headers["content-disposition"].startswith("attachment;")
    assert "filename*=UTF-8''%E8%B4%B7" in response.headers["content-disposition"]

    phone = web.signed_in("boss", width=375, height=740)
    phone.goto(FLOW + "/overlay")
    assert phone.evaluate("document.documentElement.scrollWidth") <= 375
    box = phone.locator("#overlay-drawing svg").bounding_box()
    assert box["width"] <= 375 and box["height"] > 300
    assert phone.locator("#overlay-table tbody tr").count() > 10


def test_a_salesperson_sees_only_their_own_cases_and_no_overlay(web, db, demo):
    with db.read() as s:
        sales_id, name = s.execute(
            select(Record.owner_id, User.username)
            .join(FlowRun, FlowRun.record_id == Record.id)
            .join(FlowStep, FlowStep.run_id == FlowRun.id)
            .join(User, User.id == Record.owner_id)
            .where(FlowRun.status == "running", FlowStep.status == "active",
                   FlowStep.node_id == "analysis")).first()
        everyone = s.execute(select(func.count(func.distinct(FlowRun.id)))
                             .join(FlowStep, FlowStep.run_id == FlowRun.id)
                             .where(FlowRun.status == "running",
                                    FlowStep.status == "active",
                                    FlowStep.node_id == "analysis")).scalar_one()
        mine = s.execute(select(func.count(func.distinct(FlowRun.id)))
                         .join(FlowStep, FlowStep.run_id == FlowRun.id)
                         .join(Record, Record.id == FlowRun.record_id)
                         .where(FlowRun.status == "running", FlowStep.status == "active",
                                FlowStep.node_id == "analysis",
                                Record.owner_id == sales_id)).scalar_one()
    page = web.page()
    web.sign_in(page, name, password=demo.password)
    page.goto(FLOW + "/at/analysis")
    assert page.locator("#at-total").inner_text() == f"共 {mine} 条"
    assert mine >= 1
    if everyone > mine:
        assert page.locator("#at-node tbody tr").count() == mine
    answer = page.goto(FLOW + "/overlay")
    assert answer.status == 403
    assert page.goto(FLOW + "/at/nowhere").status == 404
