"""Customer progress links over the CRM template: the customer's page shows the right
step; a tampered, expired, revoked or unknown link is the same bare 404; nothing of
another case is reachable; every open is audited; opens are rate-limited; a rule's
message carries the link."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select, update

from engine_flows.models import ProgressLink
from engine_rules.models import ActionRun, Rule
from platform_core.app import create_app
from platform_core.models import utcnow
from platform_core.security.models import AuditEntry
from platform_core.settings import load_settings
from templates_catalog.bundle import template
from templates_catalog.install import install
from tests.engine_rules.conftest import dispatch
from tests.security_setup import SYSTEM, add_user, token_for

API = "/api/v1/apps/crm"
CASES = f"{API}/forms/loan_case/records"
BASE_URL = "https://qiao.example.cn"
PER_MINUTE = 8
MATERIALS = [{"item": "身份证", "received": True}, {"item": "收入证明", "received": False},
             {"item": "银行流水"}]


@pytest.fixture(scope="module")
def crm_app(_migrated, tmp_path_factory):
    settings = load_settings(data_dir=tmp_path_factory.mktemp("progress"), base_url=BASE_URL,
                             progress_rate_per_minute=PER_MINUTE, api_rate_per_minute=10**9)
    return create_app(settings, db=_migrated)


class Crm:
    """The CRM app installed, two salespeople, a clerk, and clients signed in as each."""

    def __init__(self, app: Any, db: Any):
        self.app, self.db = app, db
        with db.write() as s:
            install(s, template("bank_intermediary_crm"), actor=SYSTEM,
                    template="bank_intermediary_crm")
        self.clients: dict[str, TestClient] = {}
        for name, roles, mobile in (("xiao.wang", ("sales",), "13700001111"),
                                    ("lao.zhao", ("sales",), "13700002222"),
                                    ("clerk", ("clerk",), None), ("boss", ("admin",), None)):
            user_id = add_user(db, name, roles=roles, mobile=mobile)
            client = TestClient(app, raise_server_exceptions=False)
            client.headers["Authorization"] = f"Bearer {token_for(db, user_id)}"
            self.clients[name] = client
        self.public = TestClient(app, raise_server_exceptions=False)  # nobody signed in

    def as_(self, name: str) -> TestClient:
        return self.clients[name]

    def case(self, who: str, customer: str, mobile: str) -> dict[str, Any]:
        client = self.as_(who)
        cust = ok(client.post(f"{API}/forms/customer/records",
                              json={"name": customer, "mobile": mobile}), 201)
        return ok(client.post(CASES, json={"customer": cust["id"], "loan_type": "mortgage",
                                           "amount": 500000, "materials": MATERIALS}), 201)

    def start(self, who: str, record_id: int) -> None:
        ok(self.as_(who).post(f"{API}/flows/loan_service/instances",
                              json={"record_id": record_id}), 201)

    def complete(self, who: str, record_id: int, outcome: str = "submit") -> None:
        """Complete the record's open task, filling what submitting it needs (a product
        to submit the match, the signing date to submit the signing)."""
        tasks = ok(self.as_(who).get("/api/v1/tasks"))["items"]
        task = next(t for t in tasks if t["record_id"] == record_id)
        data: dict[str, Any] = {}
        if outcome == "submit" and task["node"] == "matching":
            data = {"product": self.product()}
        elif outcome == "submit" and task["node"] == "signing":
            data = {"signed_date": "2026-03-02"}
        ok(self.as_(who).post(f"/api/v1/tasks/{task['id']}/complete",
                              json={"outcome": outcome, "data": data}))

    def product(self) -> int:
        if not hasattr(self, "_product"):
            self._product = ok(self.as_("clerk").post(f"{API}/forms/bank_product/records", json={
                "name": "安居贷", "bank": "icbc", "loan_type": "mortgage"}), 201)["id"]
        return self._product

    def link(self, who: str, record_id: int, **body: Any) -> dict[str, Any]:
        return ok(self.as_(who).post(f"{CASES}/{record_id}/progress-links", json=body), 201)

    def open(self, url: str) -> Any:
        assert url.startswith(BASE_URL + "/p/")
        return self.public.get(url[len(BASE_URL):])


def ok(response: Any, status: int = 200) -> Any:
    assert response.status_code == status, response.text
    return response.json()


@pytest.fixture
def crm(crm_app, db) -> Crm:
    return Crm(crm_app, db)


def _signed_case(crm: Crm) -> dict[str, Any]:
    """xiao.wang's case of 张三丰, its flow through analysis and matching (at signing)."""
    case = crm.case("xiao.wang", "张三丰", "13912345678")
    crm.start("xiao.wang", case["id"])
    crm.complete("xiao.wang", case["id"])
    crm.complete("xiao.wang", case["id"])
    return case


def test_the_customer_page_shows_the_case_and_where_it_stands(crm):
    case = _signed_case(crm)
    link = crm.link("xiao.wang", case["id"])
    assert link["status"] == "live" and link["url"].startswith(f"{BASE_URL}/p/")
    page = crm.open(link["url"])
    assert page.status_code == 200
    html = page.text
    assert case["data"]["case_no"] in html
    assert "张**" in html and "张三丰" not in html  # the customer's name, masked
    assert '<p class="step-current" id="current-step">签订服务协议</p>' in html
    assert html.index("了解您的贷款需求") < html.index("为您匹配银行和产品")
    assert "收入证明" in html and "银行流水" in html and "身份证" not in html
    assert "xiao.wang" in html and "13700001111" in html  # the owner's contact
    assert "13912345678" not in html and "500000" not in html  # nothing else of the case
    assert "<script" not in html and "/apps/" not in html and "/api/" not in html
    assert re.findall(r'<a href="([^:"]*)', html) == ["tel"]  # no link but the phone
    assert page.headers["cache-control"] == "no-store"
    assert page.headers["referrer-policy"] == "no-referrer"
    assert "noindex" in page.headers["x-robots-tag"]

    crm.complete("xiao.wang", case["id"])  # signed: the clerk collects the documents
    html = crm.open(link["url"]).text
    assert '<p class="step-current" id="current-step">收集贷款资料</p>' in html
    assert "签订服务协议" in html  # now among the steps passed


def test_tampered_expired_revoked_or_unknown_links_are_the_same_bare_404(crm):
    case = _signed_case(crm)
    good = crm.link("xiao.wang", case["id"])["url"]
    nonce, _, sig = good.rpartition("/")[2].partition(".")
    flipped = sig[:-1] + ("A" if sig[-1] != "A" else "B")
    other_nonce = nonce[:-1] + ("x" if nonce[-1] != "x" else "y")  # never the nonce itself
    site = crm.app.state.qiao
    from engine_flows.progress_links import Site

    unknown = Site(site.secret_key, BASE_URL).url("x" * 24)  # well signed, no such row
    expired = crm.link("xiao.wang", case["id"])
    with crm.db.write() as s:
        s.execute(update(ProgressLink).where(ProgressLink.id == expired["id"])
                  .values(expires_at=utcnow() - timedelta(minutes=1)))
    revoked = crm.link("xiao.wang", case["id"])
    doc = ok(crm.as_("xiao.wang").post(
        f"{CASES}/{case['id']}/progress-links/{revoked['id']}/revoke"))
    assert doc["status"] == "revoked" and doc["url"] is None
    bodies = set()
    for url in (f"{BASE_URL}/p/{nonce}.{flipped}", f"{BASE_URL}/p/{other_nonce}.{sig}",
                unknown, expired["url"], revoked["url"], f"{BASE_URL}/p/garbage"):
        answer = crm.open(url)
        assert answer.status_code == 404, url
        assert answer.headers["cache-control"] == "no-store"
        assert "张" not in answer.text and case["data"]["case_no"] not in answer.text
        bodies.add(answer.text)
    assert len(bodies) == 1  # no hint which
    assert "<script" not in bodies.pop()
    assert crm.open(good).status_code == 200  # the others still work


def test_nothing_of_another_case_is_reachable(crm):
    mine = _signed_case(crm)
    theirs = crm.case("lao.zhao", "李四", "13955556666")
    link = crm.link("xiao.wang", mine["id"])
    html = crm.open(link["url"]).text
    assert theirs["data"]["case_no"] not in html and "李" not in html
    for suffix in ("/..", f"/{theirs['id']}", "/../../api/v1/apps"):
        answer = crm.public.get(link["url"][len(BASE_URL):] + suffix)
        assert answer.status_code in (401, 404) and theirs["data"]["case_no"] not in answer.text
    # a link is managed only under its own record, by who may update that record
    zhao = crm.as_("lao.zhao")
    assert zhao.get(f"{CASES}/{mine['id']}/progress-links").status_code == 404
    assert zhao.post(f"{CASES}/{mine['id']}/progress-links", json={}).status_code == 404
    assert zhao.post(f"{CASES}/{theirs['id']}/progress-links/{link['id']}/revoke"
                     ).status_code == 404
    assert crm.public.get(f"{CASES}/{mine['id']}/progress-links").status_code == 401
    assert crm.open(link["url"]).status_code == 200  # still live


def test_every_open_is_audited_by_link_id_and_counted(crm):
    case = _signed_case(crm)
    link = crm.link("xiao.wang", case["id"], days=7)
    token = link["url"].rpartition("/")[2]
    for _ in range(2):
        assert crm.open(link["url"]).status_code == 200
    listed = ok(crm.as_("xiao.wang").get(f"{CASES}/{case['id']}/progress-links"))["items"]
    assert [(x["id"], x["open_count"]) for x in listed] == [(link["id"], 2)]
    assert listed[0]["last_opened_at"] is not None
    with crm.db.read() as s:
        entries = list(s.execute(select(AuditEntry).where(
            AuditEntry.action.like("progress_link.%")).order_by(AuditEntry.id)).scalars())
    assert [(e.action, e.target) for e in entries] == [
        ("progress_link.create", f"progress_link:{link['id']}"),
        ("progress_link.open", f"progress_link:{link['id']}"),
        ("progress_link.open", f"progress_link:{link['id']}")]
    assert all(token not in f"{e.target}{e.detail}" and link["url"] not in str(e.detail)
               for e in entries)
    assert entries[1].client == "testclient"


def test_opens_are_rate_limited_per_client(crm):
    case = _signed_case(crm)
    link = crm.link("xiao.wang", case["id"])
    codes = [crm.open(link["url"]).status_code for _ in range(PER_MINUTE)]
    assert codes == [200] * PER_MINUTE
    refused = crm.open(link["url"])
    assert refused.status_code == 429 and "张" not in refused.text
    assert refused.headers["retry-after"] == "60"
    # guessing other tokens from the same client is refused too, before any look-up
    assert crm.public.get("/p/guess").status_code == 429


def test_the_link_needs_a_flow_with_a_progress_page(crm):
    cust = ok(crm.as_("xiao.wang").post(f"{API}/forms/customer/records",
                                        json={"name": "王五", "mobile": "13911112222"}), 201)
    answer = crm.as_("xiao.wang").post(f"{API}/forms/customer/records/{cust['id']}"
                                       "/progress-links", json={})
    assert answer.status_code == 422 and "progress page" in answer.json()["detail"]
    assert crm.as_("xiao.wang").post(f"{CASES}/999999/progress-links",
                                     json={}).status_code == 404
    bad = crm.as_("boss").post(f"{API}/flows/loan_service/validate", json={
        **crm.as_("boss").get(f"{API}/flows/loan_service").json()["draft"],
        "public": {"steps": {"nowhere": "不存在"}, "name_field": "customer.nope",
                   "documents": {"field": "note"}}})
    assert bad.status_code == 422
    problems = " ".join(bad.json()["problems"])
    assert "nowhere is not a node" in problems and "nope is not a field" in problems
    assert "note is not a subtable" in problems


def test_a_rule_message_carries_the_link_and_reuses_it(crm):
    with crm.db.write() as s:
        s.execute(update(Rule).where(Rule.app == "crm", Rule.key == "sms_materials")
                  .values(enabled=True))
    case = _signed_case(crm)
    crm.complete("xiao.wang", case["id"])  # signed → 资料收集: the rule sends the SMS
    dispatch(crm)
    with crm.db.read() as s:
        sent = [r.request for r in s.execute(select(ActionRun).where(
            ActionRun.action_type == "notify")).scalars()]
        links = list(s.execute(select(ProgressLink)).scalars())
    assert len(sent) == 1 and sent[0]["to"] == ["13912345678"]
    assert len(links) == 1 and links[0].via == "rule"
    url = sent[0]["body"].rpartition(" ")[2]
    assert url.startswith(f"{BASE_URL}/p/")
    assert "收入证明" in crm.open(url).text

    from engine_rules.context import Fired, RuleContext
    from engine_rules.notify import render

    with crm.db.write() as s:  # another message about the case reuses the live link
        fired = Fired(key="again", event_type="flow.step_entered", app="crm",
                      form="loan_case", record_id=case["id"])
        ctx = RuleContext.load(s, fired, actor=SYSTEM, now=utcnow(),
                               keyring=crm.app.state.qiao.keyring)
        assert render("{{ progress_url }}", ctx.scope()) == url
        assert render("没有链接", ctx.scope()) == "没有链接"
        test_run = RuleContext.load(s, fired, actor=SYSTEM, now=utcnow(), test=True)
        assert render("{{ progress_url }}", test_run.scope()) == f"{BASE_URL}/p/…"
    with crm.db.read() as s:
        assert len(list(s.execute(select(ProgressLink)).scalars())) == 1
