"""The flow designer (``/apps/{app}/flows/{flow}/design``): the CRM's loan flow drawn on
the canvas, a new approval step dragged in from the palette and wired by drawing edges
from ports, published (the case already running stays on its version until the dialog
migrates it) and a new case passing through it to a risk officer; a gateway without a
default marked with the engine's message before publishing; the page under the CSP and
on a phone.
"""

from __future__ import annotations

import json
from pathlib import Path

from sqlalchemy import select

from engine_flows.instances import start_run
from engine_flows.models import FlowRun, FlowVersion, Task
from engine_flows.tasks import Who, complete
from platform_core.models import utcnow
from platform_core.security.models import User
from platform_core.security.principal import load_principal
from tests.frontend.conftest import add_user
from tests.frontend.test_workspace import _create, _crm
from tests.security_setup import SYSTEM

DESIGN = "/apps/crm/flows/loan_service/design"
SHOTS = Path("/tmp/flowshots")
TEMPLATE = Path(__file__).parents[2] / "templates_catalog/bank_intermediary_crm/flows" \
    / "loan_service.json"


def _people(db) -> None:
    _crm(db)
    add_user(db, "admin.li")
    add_user(db, "clerk.one", roles=("clerk",))
    add_user(db, "risk.one", roles=("risk",))
    add_user(db, "risk.two", roles=("risk",))


def _ready(page) -> None:
    page.wait_for_selector("body[data-flow-ready='1']", state="attached")


def _center(page, selector: str) -> tuple[float, float]:
    box = page.locator(selector).first.bounding_box()
    assert box, selector
    return box["x"] + box["width"] / 2, box["y"] + box["height"] / 2


def _drag(page, start: tuple[float, float], end: tuple[float, float]) -> None:
    page.mouse.move(*start)
    page.mouse.down()
    page.mouse.move(*end, steps=15)
    page.mouse.up()


def _node(cell: str) -> str:
    return f'#f-canvas .x6-node[data-cell-id="{cell}"]'


def _connect(page, source: str, target: str, side: str = "bottom") -> None:
    """Draw an edge as an admin does: hover the source (its ports show), drag from a
    port onto the target node."""
    page.mouse.move(*_center(page, _node(source)))
    port = f'{_node(source)} .x6-port-body[port="{side}"]'
    _drag(page, _center(page, port), _center(page, _node(target)))
    page.wait_for_selector(f'[data-edge="{source}>{target}"]', state="attached")


def _drop(page, node_type: str, at: tuple[float, float]) -> str:
    """Drag a node type from the palette onto the canvas; the new node's id."""
    before = set(_ids(page))
    _drag(page, _center(page, f'.f-type[data-type="{node_type}"]'), at)
    for _ in range(50):
        added = set(_ids(page)) - before
        if added:
            return added.pop()
        page.wait_for_timeout(100)
    raise AssertionError(f"no {node_type} node was dropped")


def _ids(page) -> list[str]:
    return page.eval_on_selector_all("#f-canvas .x6-node", "els => els.map(e => e.dataset.cellId)")


def _case(db, keyring, mobile: str = "13700001234") -> int:
    customer = _create(db, keyring, "xiao.wang", "customer",
                       {"name": "王五", "mobile": mobile})
    return _create(db, keyring, "xiao.wang", "loan_case", {
        "customer": customer["id"], "loan_type": "mortgage", "amount": "1200000"})["id"]


def _start(db, case_id: int) -> None:
    with db.write() as s:
        start_run(s, app="crm", flow="loan_service", record_id=case_id, actor=SYSTEM,
                  now=utcnow())


def _work(db, keyring, case_id: int, node: str, **kwargs) -> None:
    """The open task of ``node`` on the case, done by its assignee."""
    with db.write() as s:
        task = s.execute(select(Task).where(Task.record_id == case_id, Task.node_id == node,
                                            Task.status == "open")).scalars().first()
        assert task is not None, node
        user = s.get(User, task.assignee_id)
        complete(s, task.id, Who(load_principal(s, user, via="test"), keyring, utcnow()),
                 **kwargs)


def _to_risk(db, keyring, case_id: int) -> None:
    product = _create(db, keyring, "clerk.one", "bank_product", {
        "name": "安居贷", "bank": "icbc", "loan_type": "mortgage"})["id"]
    needs = {"matching": {"product": product}, "signing": {"signed_date": "2026-03-02"}}
    for node in ("analysis", "matching", "signing", "materials"):
        _work(db, keyring, case_id, node, data=needs.get(node))


def _version(db, case_id: int) -> int:
    with db.read() as s:
        return s.execute(select(FlowRun.version).where(FlowRun.record_id == case_id)
                         ).scalar_one()


def test_an_admin_drags_in_a_compliance_review_wires_it_and_publishes(
        web, db, server_keyring):
    _people(db)
    waiting = _case(db, server_keyring)
    _start(db, waiting)  # a case already running on version 1, waiting at 需求分析
    page = web.signed_in("admin.li", height=1800)
    page.goto(DESIGN)
    _ready(page)
    risk = page.locator(_node("risk")).bounding_box()
    canvas = page.locator("#f-canvas").bounding_box()
    new = _drop(page, "approval", (canvas["x"] + canvas["width"] * 0.8,
                                   risk["y"] + risk["height"] * 2))
    assert new.startswith("approval")

    page.click(_node(new))
    page.fill("#fp-name", "合规复核")
    page.press("#fp-name", "Tab")
    page.select_option("#fp-mode", "any")
    page.select_option("#fp-strategy", "role")
    page.select_option("#fp-role", "risk")
    assert "合规复核" in page.text_content(_node(new))

    # risk(approve) → mark_review is re-pointed through the new step
    page.click('[data-edge="risk>mark_review"]')
    page.keyboard.press("Delete")
    page.wait_for_selector('[data-edge="risk>mark_review"]', state="detached")
    _connect(page, "risk", new, side="right")
    assert page.input_value("#fp-on") == "approve"  # the free outcome of 风控审核
    _connect(page, new, "mark_review", side="bottom")
    assert page.input_value("#fp-on") == "approve"
    _connect(page, new, "materials", side="top")
    assert page.input_value("#fp-on") == "reject"

    page.click("#f-publish")
    page.wait_for_selector("#f-confirm:enabled")
    report = page.inner_text("#f-report")
    assert "合规复核" in report and "1" in page.inner_text("#f-running")
    page.click("#f-confirm")
    page.wait_for_selector("#f-published")
    assert _version(db, waiting) == 1  # not moved by publishing

    page.click("#f-migrate-dry")
    page.wait_for_selector("#f-migrate-go:enabled")
    page.click("#f-migrate-go")
    page.wait_for_selector("#f-migrate-report >> text=已迁移 1")
    assert _version(db, waiting) == 2
    SHOTS.mkdir(exist_ok=True)
    page.screenshot(path=str(SHOTS / "published-1280.png"), full_page=True)

    with db.read() as s:
        spec = s.execute(select(FlowVersion.spec).where(FlowVersion.flow == "loan_service",
                                                        FlowVersion.version == 2)).scalar_one()
    original = json.loads(TEMPLATE.read_text(encoding="utf-8"))
    kept = [n for n in spec["nodes"] if n["id"] != new]
    assert kept == original["nodes"]  # what was not edited is as it was
    step = next(n for n in spec["nodes"] if n["id"] == new)
    assert step == {"id": new, "type": "approval", "name": "合规复核", "mode": "any",
                    "assignee": {"strategy": "role", "role": "risk"}}
    assert set(spec["layout"]) == {n["id"] for n in spec["nodes"]}

    fresh = _case(db, server_keyring, mobile="13700005678")
    _start(db, fresh)
    _to_risk(db, server_keyring, fresh)
    _work(db, server_keyring, fresh, "risk", outcome="approve", operation="approve")
    with db.read() as s:
        tasks = s.execute(select(Task).where(Task.record_id == fresh, Task.node_id == new,
                                             Task.status == "open")).scalars().all()
        people = {s.get(User, t.assignee_id).username for t in tasks}
    assert people == {"risk.one", "risk.two"}
    assert {t.title for t in tasks} == {"合规复核"}


def test_a_gateway_without_a_default_is_marked_before_publishing(web, db):
    _people(db)
    page = web.signed_in("admin.li", height=1800)
    page.goto(DESIGN)
    _ready(page)
    canvas = page.locator("#f-canvas").bounding_box()
    bank = page.locator(_node("bank")).bounding_box()
    gate = _drop(page, "gateway", (canvas["x"] + canvas["width"] * 0.85, bank["y"]))
    _connect(page, "bank", gate, side="right")
    _connect(page, gate, "disburse", side="bottom")
    page.fill("#fp-condition", "amount >")
    page.wait_for_selector("#fp-cond-check.f-err")
    page.fill("#fp-condition", "amount > 1000000")
    page.press("#fp-condition", "Tab")
    page.wait_for_selector("#fp-cond-check.f-ok")
    label = page.text_content(f'[data-edge="{gate}>disburse"]').replace("\xa0", " ")
    assert "amount > 1000000" in label

    page.click("#f-check")
    page.wait_for_selector(f"{_node(gate)}.f-bad")
    message = page.get_attribute(_node(gate), "data-problem")
    assert "default" in message
    assert "default" in page.inner_text("#f-problems")
    page.click(_node(gate))
    assert "default" in page.inner_text("#f-props")


def test_the_crm_flow_is_drawn_with_every_node_and_fits_a_phone(web, db):
    _people(db)
    page = web.signed_in("admin.li")
    page.goto(DESIGN)
    _ready(page)
    original = json.loads(TEMPLATE.read_text(encoding="utf-8"))
    assert sorted(_ids(page)) == sorted(n["id"] for n in original["nodes"])
    assert page.locator("#f-canvas .x6-edge").count() == len(original["edges"])
    assert page.text_content('[data-edge="decision>mark_lost"] text') == "默认"
    page.click(_node("matching"))  # 产品匹配: product required for 提交 only
    matrix = "#f-props .f-matrix"
    assert "按“提交 (submit)”时必填" in page.inner_text(f"{matrix} thead")
    assert page.is_checked(f'{matrix} tr[data-field="product"] input[data-col="on:submit"]')
    assert not page.is_checked(f'{matrix} tr[data-field="product"] input[data-col="on:lost"]')
    assert page.is_checked(f'{matrix} tr[data-field="product"] input[data-col="editable"]')
    SHOTS.mkdir(exist_ok=True)
    page.screenshot(path=str(SHOTS / "design-1280.png"), full_page=True)

    phone = web.signed_in("admin.li", width=375, height=740)
    phone.goto(DESIGN)
    _ready(phone)
    assert phone.evaluate("document.documentElement.scrollWidth") <= 375
    assert len(_ids(phone)) == len(original["nodes"])
    phone.screenshot(path=str(SHOTS / "design-375.png"), full_page=True)


def test_an_admin_finds_the_flows_and_starts_a_new_one_over_a_form(web, db):
    _people(db)
    page = web.signed_in("admin.li")
    page.goto("/admin/apps")
    page.click("#flows-crm")
    page.click("#flow-loan_service a:has-text('设计流程')")
    _ready(page)
    assert page.input_value("#f-key") == "loan_service"

    page.goto("/apps/crm/forms/loan_case")
    page.click("#new-flow")
    _ready(page)
    assert page.input_value("#f-form") == "loan_case"
    assert sorted(_ids(page)) == ["end", "start"]
    page.fill("#f-name", "贷后回访")
    page.fill("#f-key", "after_care")
    page.click("#f-save")
    page.wait_for_url("**/apps/crm/flows/after_care/design*")
    _ready(page)
    with db.read() as s:
        from engine_flows.definitions import get_flow

        draft = get_flow(s, "crm", "after_care").draft
    assert draft["form"] == "loan_case" and draft["name"] == "贷后回访"
    assert [e["from"] + ">" + e["to"] for e in draft["edges"]] == ["start>end"]
    page.click("#f-check")
    page.wait_for_selector("#f-status >> text=检查通过")


def test_a_reject_is_limited_to_chosen_earlier_steps(web, db):
    _people(db)
    page = web.signed_in("admin.li", height=1800)
    page.goto(DESIGN)
    _ready(page)
    page.click(_node("risk"))  # 风控审核: by default back to any earlier step
    assert "任一前面步骤" in page.inner_text("#f-props")
    page.check("#f-props [data-reject-limit]")
    offered = page.locator("#f-props [data-reject-to]")
    steps = [offered.nth(i).get_attribute("value") for i in range(offered.count())]
    assert steps[:4] == ["analysis", "matching", "signing", "materials"], steps
    assert "bank" not in steps and "risk" not in steps  # later steps and itself: not offered
    page.check('#f-props [data-reject-to="materials"]')
    page.click("#f-save")
    page.wait_for_selector("#f-status >> text=草稿已保存")
    with db.read() as s:
        from engine_flows.models import Flow

        draft = s.execute(select(Flow).where(Flow.key == "loan_service")).scalar_one().draft
    risk = next(n for n in draft["nodes"] if n["id"] == "risk")
    assert risk["reject_to"] == ["materials"]
