"""The designer's record-page tab in a real browser, on the CRM template: an admin gives
the bank product (which has no view) a head of two key facts, a renamed figure card, the
list of the loan cases matched to the product with two columns and a "new" button, and a
"new loan case" quick action; after publishing, a product's record page shows all of it
and the buttons pre-link the product. A field added to the head follows a change of its
key and leaves the view when it is deleted; emptying the view removes the ``view`` key."""

from __future__ import annotations

from urllib.parse import parse_qs, urlparse

from engine_forms.forms import get_form, published
from tests.frontend.conftest import add_user
from tests.frontend.test_workspace import _create, _crm

DESIGN = "/apps/crm/forms/bank_product/design"


def _open(web, db):
    _crm(db)
    add_user(db, "boss")
    page = web.signed_in("boss")
    page.goto(DESIGN)
    page.wait_for_selector("#d-sections .d-field")
    page.click("#d-tab-view")
    page.wait_for_selector("#v-head")
    return page


def _add(page, picker: str, key: str) -> None:
    page.select_option(f"#{picker}-add", key)
    page.click(f"#{picker}-add-button")
    page.wait_for_selector(f"#{picker}-list li[data-key={key}]")


def _picked(page, picker: str) -> list[str]:
    return page.locator(f"#{picker}-list li").evaluate_all(
        "els => els.map(e => e.dataset.key)")


def _checked(page) -> None:
    page.wait_for_timeout(700)  # the live check runs 350 ms after the last change


def _draft_view(db) -> dict | None:
    with db.read() as s:
        return get_form(s, "crm", "bank_product").draft.get("view")


def test_an_admin_gives_the_bank_product_a_record_page(web, db, server_keyring, tmp_path):
    page = _open(web, db)
    assert page.is_hidden("#d-sections")
    _add(page, "v-head-fields", "max_amount")
    _add(page, "v-head-fields", "bank")
    page.click("#v-head-fields-list li[data-key=bank] button[aria-label^='上移']")
    assert _picked(page, "v-head-fields") == ["bank", "max_amount"]
    _add(page, "v-card-fields", "rate_min")
    page.fill("#v-card-label-rate_min", "起步利率")
    assert page.locator("#v-rel-loan_case-product").count() == 1  # loan_case.product → here
    assert page.locator("[data-related^='customer.']").count() == 0
    page.check("#v-rel-loan_case-product")
    page.wait_for_selector("#v-rel-loan_case-product-cols")
    _add(page, "v-rel-loan_case-product-cols", "case_no")
    _add(page, "v-rel-loan_case-product-cols", "amount")
    page.fill("#v-rel-loan_case-product-label", "匹配的贷款")
    page.fill("#v-rel-loan_case-product-limit", "10")
    page.select_option("#v-rel-loan_case-product-sort", "amount")
    page.check("#v-act-create-loan_case-product")
    page.wait_for_selector("#v-act-create-loan_case-product-flow")
    page.select_option("#v-act-create-loan_case-product-flow", "loan_service")
    page.fill("#v-act-create-loan_case-product-label", "为此产品建贷款")
    _checked(page)
    assert page.is_hidden("#v-problems")
    for width, name in ((1280, "designer-record-page.png"),
                        (375, "designer-record-page-phone.png")):
        page.set_viewport_size({"width": width, "height": 900})
        page.locator("#d-view").screenshot(path=str(tmp_path / name))  # docs/screenshots
    page.screenshot(path=str(tmp_path / "designer-375-full.png"), full_page=True)
    assert page.evaluate("document.documentElement.scrollWidth") <= 375  # nothing sideways
    page.set_viewport_size({"width": 1280, "height": 900})

    page.click("#d-publish")
    page.wait_for_selector("#d-confirm:not([disabled])")
    page.click("#d-confirm")
    page.wait_for_selector("#d-published")
    with db.read() as s:
        view = published(s, "crm", "bank_product").spec.dump()["view"]
    assert view["header"] == {"fields": ["bank", "max_amount"]}
    assert view["cards"] == [{"field": "rate_min", "label": "起步利率"}]
    assert view["related"] == [{"form": "loan_case", "via": "product", "label": "匹配的贷款",
                                "columns": ["case_no", "amount"], "sort": "-amount",
                                "limit": 10}]  # "new" is on: the default, left out
    assert view["actions"] == [{"type": "create", "form": "loan_case", "via": "product",
                                "start_flow": "loan_service", "label": "为此产品建贷款"}]

    product = _create(db, server_keyring, "boss", "bank_product", {
        "name": "经营贷A", "bank": "icbc", "loan_type": "business", "rate_min": 3.5,
        "max_amount": "5000000"})
    customer = _create(db, server_keyring, "boss", "customer",
                       {"name": "产品客户", "mobile": "13800000021"})
    case = _create(db, server_keyring, "boss", "loan_case", {
        "customer": customer["id"], "loan_type": "business", "amount": "800000",
        "product": product["id"]})
    page.goto(f"/apps/crm/forms/bank_product/records/{product['id']}")
    facts = page.inner_text("#record-facts")
    assert "银行" in facts and "工商银行" in facts and "最高额度" in facts
    assert facts.index("银行") < facts.index("最高额度")
    cards = page.inner_text("#record-cards")
    assert "起步利率" in cards and "3.5" in cards
    related = page.locator("#related-loan_case-product")
    assert "匹配的贷款" in related.inner_text()
    assert case["data"]["case_no"] in related.inner_text()
    assert [t.strip() for t in related.locator("th").all_inner_texts()] == ["业务编号", "申请金额"]
    new = parse_qs(urlparse(related.locator("a.button", has_text="新建").get_attribute(
        "href")).query)
    assert new["product"] == [str(product["id"])]
    quick = parse_qs(urlparse(page.locator("#quick-actions a", has_text="为此产品建贷款")
                              .get_attribute("href")).query)
    assert quick["product"] == [str(product["id"])] and quick["flow"] == ["loan_service"]
    page.locator("#quick-actions a", has_text="为此产品建贷款").click()
    page.wait_for_selector("#row-product")
    assert "经营贷A" in page.inner_text("#row-product")  # pre-linked, shown by its title


def test_the_view_follows_a_renamed_field_and_forgets_a_deleted_one(web, db):
    page = _open(web, db)
    page.click("#d-tab-layout")
    page.click("#d-sections [data-field=requirements]")  # its section becomes current
    page.click(".d-type[data-type=text]")
    page.wait_for_selector("#p-key")
    page.fill("#p-label", "渠道")
    page.wait_for_selector("#d-sections [data-field=qu_dao]")  # the key, by pinyin
    page.click("#d-tab-view")
    _add(page, "v-head-fields", "name")
    _add(page, "v-head-fields", "qu_dao")
    page.select_option("#v-status", "bank")

    page.click("#d-tab-layout")
    page.click("#d-sections [data-field=qu_dao]")
    page.fill("#p-key", "channel")
    page.dispatch_event("#p-key", "change")
    page.wait_for_selector("#d-sections [data-field=channel]")
    page.click("#d-tab-view")
    assert _picked(page, "v-head-fields") == ["name", "channel"]
    _checked(page)
    assert page.is_hidden("#v-problems") and page.is_hidden("#d-problems")
    page.click("#d-save")
    page.wait_for_selector("#d-status:has-text('草稿已保存')")
    assert _draft_view(db) == {"header": {"fields": ["name", "channel"], "status": "bank"}}

    page.click("#d-tab-layout")
    page.click("#d-sections [data-field=channel]")
    page.click("#d-props button.danger:has-text('删除字段')")
    page.click("#d-tab-view")
    assert _picked(page, "v-head-fields") == ["name"]
    _checked(page)
    assert page.is_hidden("#d-problems")
    page.click("#d-save")
    page.wait_for_selector("#d-status:has-text('草稿已保存')")
    assert _draft_view(db) == {"header": {"fields": ["name"], "status": "bank"}}

    # emptying it takes the view away: the plain record page again
    page.click("#v-head-fields-list li[data-key=name] button.danger")
    page.select_option("#v-status", "")
    page.click("#d-save")
    page.wait_for_selector("#d-status:has-text('草稿已保存')")
    assert _draft_view(db) is None


def test_a_wrong_reference_is_shown_in_the_panel(web, db):
    """A status that is not a select (as a hand-written or imported spec may carry) is
    named by the live check inside the record-page tab, and the tab is marked."""
    _crm(db)
    with db.write() as s:
        row = get_form(s, "crm", "bank_product")
        row.draft = {**row.draft, "view": {"header": {"status": "name"}}}
    add_user(db, "boss")
    page = web.signed_in("boss")
    page.goto(DESIGN)
    page.wait_for_selector("#d-tab-view.bad")
    page.click("#d-tab-view")
    page.wait_for_selector("#v-problems:not([hidden])")
    assert "view.header.status" in page.inner_text("#v-problems")
    page.select_option("#v-status", "bank")
    page.wait_for_selector("#v-problems", state="hidden")
    assert "bad" not in (page.get_attribute("#d-tab-view", "class") or "")
