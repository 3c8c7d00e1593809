"""The flow designer (``/apps/{app}/flows/{flow}/design``): the CRM's loan flow drawn on
the canvas, a new approval step dragged in and wired by drawing edges, published, and a
new case passing through it; a gateway without a default marked before publishing; the
page under the CSP and on a phone.
"""

from __future__ import annotations

from pathlib import Path

from tests.frontend.conftest import add_user
from tests.frontend.test_workspace import _crm

DESIGN = "/apps/crm/flows/loan_service/design"
SHOTS = Path("/tmp/flowshots")


def _ready(page) -> None:
    page.wait_for_selector("body[data-flow-ready='1']")


def test_the_crm_flow_is_drawn_with_every_node_and_fits_a_phone(web, db):
    _crm(db)
    add_user(db, "admin.li")
    page = web.signed_in("admin.li")
    page.goto(DESIGN)
    _ready(page)
    SHOTS.mkdir(exist_ok=True)
    page.screenshot(path=str(SHOTS / "design-1280.png"), full_page=True)
    ids = page.eval_on_selector_all("#f-canvas .x6-node", "els => els.map(e => e.dataset.cellId)")
    assert "risk" in ids and "bank" in ids and "start" in ids
