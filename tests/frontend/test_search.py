"""The top bar's global search in Chromium: '/' focuses it, a mobile number finds the
customer (masked as the salesperson sees it), the keyboard opens the record; the full
results page without JavaScript; a 375 px phone."""

from __future__ import annotations

import pytest

from tests.frontend.conftest import path_of
from tests.frontend.test_workspace import _create, _crm

# CI runs these pages on PostgreSQL too: their own queries go beyond the API's.
pytestmark = pytest.mark.database_pass

ID_NO = "11010519491231002X"


def test_slash_then_a_mobile_then_enter_opens_the_customer(web, db, server_keyring):
    _crm(db)
    mine = _create(db, server_keyring, "xiao.wang", "customer",
                   {"name": "李四", "mobile": "13800001234", "id_no": ID_NO})
    _create(db, server_keyring, "lao.zhao", "customer",
            {"name": "李五", "mobile": "13900001111"})
    page = web.signed_in("xiao.wang")
    page.goto("/")
    page.keyboard.press("/")
    assert page.evaluate("document.activeElement.id") == "topsearch-q"
    page.keyboard.type("138 0000 1234")
    hit = page.wait_for_selector("#topsearch-results .search-hit")
    assert "李四" in hit.inner_text() and "138****1234" in hit.inner_text()
    assert "13800001234" not in page.inner_text("#topsearch-results")
    page.keyboard.press("ArrowDown")
    assert page.get_attribute("#topsearch-q", "aria-activedescendant") == hit.get_attribute("id")
    page.keyboard.press("Enter")
    page.wait_for_url(f"**/apps/crm/forms/customer/records/{mine['id']}")

    # another salesperson's customer is not found; Esc closes the list
    page.keyboard.press("/")
    page.keyboard.type("李")
    page.wait_for_selector("#topsearch-results .search-hit")
    assert "李五" not in page.inner_text("#topsearch-results")
    page.keyboard.press("Escape")
    assert page.is_hidden("#topsearch-results")

    # '/' typed into another input is just a character
    page.goto("/search")
    page.click("#search-q")
    page.keyboard.type("a/b")
    assert page.input_value("#search-q") == "a/b"
    assert page.input_value("#topsearch-q") == ""


def test_the_full_results_page_is_a_plain_get(web, db, server_keyring):
    _crm(db)
    for i in range(3):
        _create(db, server_keyring, "xiao.wang", "customer",
                {"name": f"周{i}", "mobile": f"1370000123{i}"})
    page = web.signed_in("xiao.wang")
    page.goto("/search?q=周")
    section = page.inner_text("#results-crm-customer")
    assert "周2" in section and "周0" in section
    assert section.index("周2") < section.index("周0")  # newest first
    page.goto("/search?q=13700001231")
    assert "周1" in page.inner_text("#results-crm-customer")
    page.goto("/search?q=没有这个人")
    assert page.is_visible("#no-results")


def test_on_a_phone_the_icon_opens_a_full_width_box(web, db, server_keyring):
    _crm(db)
    _create(db, server_keyring, "xiao.wang", "customer",
            {"name": "吴九", "mobile": "13500009999"})
    page = web.signed_in("xiao.wang", width=375, height=740)
    page.goto("/")
    assert page.is_hidden("#topsearch-q")
    page.click("#search-toggle")
    assert page.evaluate("document.activeElement.id") == "topsearch-q"
    box = page.locator("#topsearch-q").bounding_box()
    assert box["width"] > 300
    page.keyboard.type("吴")
    page.wait_for_selector("#topsearch-results .search-hit")
    results = page.locator("#topsearch-results").bounding_box()
    assert results["x"] >= 0 and results["x"] + results["width"] <= 375
    assert page.evaluate("document.documentElement.scrollWidth") <= 375
    page.click("#topsearch-results .search-hit")
    page.wait_for_url("**/apps/crm/forms/customer/records/*")
    assert path_of(page).startswith("/apps/crm/forms/customer/records/")
