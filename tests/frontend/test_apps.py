"""Apps in a real browser: an administrator installs the CRM template a second time
under another key from the catalogue page (following its progress), exports it and
installs the downloaded bundle again; a new empty app leads to the form designer; a
team lead has no apps page."""

from __future__ import annotations

from engine_forms.forms import list_forms
from tests.frontend.conftest import add_user, path_of, status
from tests.frontend.test_workspace import _crm


def test_install_a_template_again_then_export_and_import_it(web, db, tmp_path):
    _crm(db)
    add_user(db, "boss")
    page = web.signed_in("boss")
    page.goto("/admin/apps")
    assert "bank_intermediary_crm" in page.inner_text("#app-crm")
    card = page.locator("#template-bank_intermediary_crm")
    card.locator("input[name=key]").fill("crm_two")
    card.locator("button[type=submit]").click()
    page.wait_for_selector("#job-done", timeout=30_000)
    assert "crm_two" in page.inner_text("#job-done")
    page.goto("/admin/apps")
    assert "1.0.0" in page.inner_text("#app-crm_two")

    with page.expect_download() as download:
        page.click("[data-export=crm_two]")
    saved = tmp_path / "crm_two.zip"
    download.value.save_as(saved)
    page.set_input_files("#import-file", str(saved))
    page.fill("#import-key", "crm_three")
    page.click("form[action='/admin/apps/import'] button[type=submit]")
    page.wait_for_selector("#app-crm_three")
    assert "应用已导入" in status(page)
    with db.read() as s:
        assert {f.key for f in list_forms(s, "crm_three")} == \
            {f.key for f in list_forms(s, "crm")}


def test_a_taken_key_is_refused_on_the_page(web, db):
    _crm(db)
    add_user(db, "boss")
    page = web.signed_in("boss")
    page.goto("/admin/apps")
    card = page.locator("#template-bank_intermediary_crm")
    card.locator("input[name=key]").fill("crm")
    card.locator("button[type=submit]").click()
    page.wait_for_selector("#job-failed", timeout=30_000)
    assert "already exists" in page.inner_text("#job-failed")


def test_a_new_empty_app_opens_the_form_designer(web, db):
    add_user(db, "boss")
    page = web.signed_in("boss")
    page.goto("/admin/apps")
    page.fill("#new-key", "leads")
    page.fill("#new-name", "线索")
    page.click("form[action='/admin/apps/new'] button[type=submit]")
    page.wait_for_selector("#p-new-name")
    assert path_of(page).startswith("/apps/leads/design/new")
    page.fill("#p-new-name", "线索登记")
    page.fill("#p-new-key", "lead")
    page.click("#p-new-create")
    page.wait_for_selector("#d-sections .d-field")
    assert path_of(page) == "/apps/leads/forms/lead/design"


def test_a_team_lead_has_no_apps_page(web, db):
    _crm(db)
    add_user(db, "lead", roles=("team_lead",))
    page = web.signed_in("lead")
    assert page.goto("/admin/apps").status == 403
    page.goto("/")
    assert page.locator("nav a[href='/admin/apps']").count() == 0
