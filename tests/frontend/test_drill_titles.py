"""The drill-down list shows a record's cells as the record list does: a linked customer
by name (a link to the customer), not by its id."""

from __future__ import annotations

import re

from frontend.pages_reports import drill_url
from tests.frontend.conftest import add_user
from tests.frontend.test_workspace import _create, _crm


def test_a_drill_down_shows_the_linked_customer_by_name(web, db, server_keyring):
    _crm(db)
    add_user(db, "boss")
    customer = _create(db, server_keyring, "xiao.wang", "customer",
                       {"name": "钱多多", "mobile": "13912345670"})
    _create(db, server_keyring, "xiao.wang", "loan_case",
            {"customer": customer["id"], "loan_type": "mortgage", "amount": "800000"})
    page = web.page(width=375)
    web.sign_in(page, "boss")
    page.goto(drill_url("crm", "amount_bands", [2, "mortgage"], {}))
    page.wait_for_selector("#drill")
    cell = page.locator("#drill td[data-field=customer]")
    assert cell.inner_text() == "钱多多"
    assert re.search(rf"/apps/crm/forms/customer/records/{customer['id']}$",
                     cell.locator("a").get_attribute("href"))
