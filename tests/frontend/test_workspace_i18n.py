"""The workspace pages in one language at a time: in English no Chinese UI text is left
(the CRM's own metadata — form, field, option, section, menu, flow and report names —
is shown as typed), in Chinese no English UI words. No browser: the test client."""

from __future__ import annotations

import re

import pytest

from engine_flows.instances import progress, start_run
from engine_forms import service
from engine_forms.forms import published
from engine_forms.service import Caller
from platform_core.app import create_app
from platform_core.models import utcnow
from platform_core.settings import load_settings
from templates_catalog.bundle import template
from templates_catalog.install import install
from tests.frontend.test_i18n import CJK, ENGLISH_UI, NOT_UI, _get, _metadata, _text
from tests.security_setup import SYSTEM, client_as


@pytest.fixture
def app(db, tmp_path):
    return create_app(load_settings(data_dir=tmp_path), db=db)


def _crm_names(db) -> set[str]:
    """The names the CRM template typed that have no English of their own (menus, flow
    steps, reports, formula results): shown as typed in every language. Forms, sections,
    fields and options carry English labels (``labels.en``) and must show them."""
    bundle = template("bank_intermediary_crm")
    names: set[str] = set()

    def walk(node):
        if isinstance(node, dict):
            for key, value in node.items():
                if key in ("name", "label", "section", "tab", "title", "description",
                           "message") and isinstance(value, str) \
                        and "en" not in (node.get("labels") or {}):
                    names.add(value)
                if key == "expression" and isinstance(value, str):
                    names.update(re.findall(r'"([^"]*)"', value))
                walk(value)
        elif isinstance(node, list):
            for item in node:
                walk(item)

    walk(bundle if isinstance(bundle, dict) else vars(bundle))
    return names


def _pages(db, app) -> list[str]:
    with db.write() as s:
        install(s, template("bank_intermediary_crm"), actor=SYSTEM,
                template="bank_intermediary_crm")
    admin = client_as(app, db, "boss")
    from platform_core.security.models import User
    from platform_core.security.principal import load_principal

    with db.write() as s:
        user = s.query(User).filter(User.username == "boss").one()
        principal = load_principal(s, user, via="test")
        customer = service.create(s, Caller(principal, principal.access("crm", "customer"),
                                            app.state.qiao.keyring),
                                  published(s, "crm", "customer"),
                                  {"name": "Li Si", "mobile": "13800138000"})
        case = service.create(s, Caller(principal, principal.access("crm", "loan_case"),
                                        app.state.qiao.keyring),
                              published(s, "crm", "loan_case"),
                              {"customer": customer["id"], "loan_type": "car",
                               "amount": "100000"})
        start_run(s, app="crm", flow="loan_service", record_id=case["id"], actor=SYSTEM,
                  now=utcnow())
        task = progress(s, case["id"], utcnow())[0]["current"][0]["tasks"][0]
    forms = "/apps/crm/forms"
    return admin, ["/", "/tasks", f"/tasks/{task}", f"{forms}/customer",
                   f"{forms}/customer/new", f"{forms}/loan_case/new",
                   f"{forms}/customer/records/{customer['id']}",
                   f"{forms}/customer/records/{customer['id']}/edit",
                   f"{forms}/loan_case/records/{case['id']}",
                   f"{forms}/loan_case/records/{case['id']}/timeline",
                   f"{forms}/loan_case/records/{case['id']}/stands",
                   f"{forms}/customer/import", f"{forms}/customer/quick"]


def test_english_workspace_pages_show_no_chinese_ui_text(db, app):
    admin, pages = _pages(db, app)
    names = sorted(_crm_names(db) | _metadata(db), key=len, reverse=True)
    for path in pages:
        text = _text(_get(admin, path, "en-US,en;q=0.9"))
        for name in names:
            text = text.replace(name, " ")
        left = set(CJK.findall(text)) - NOT_UI
        assert not left, f"{path} in English still shows {sorted(left)}"


def test_field_labels_come_from_the_metadata_in_each_language(db, app):
    admin, _pages_ = _pages(db, app)
    english = _text(_get(admin, "/apps/crm/forms/customer/new", "en"))
    assert "Mobile" in english and "Monthly income" in english and "手机" not in english
    chinese = _text(_get(admin, "/apps/crm/forms/customer/new", "zh-CN"))
    assert "手机" in chinese and "Mobile" not in chinese


def test_chinese_workspace_pages_show_no_english_ui_words(db, app):
    admin, pages = _pages(db, app)
    for path in pages:
        text = _text(_get(admin, path, "zh-CN,zh;q=0.9"))
        shown = [w for w in ENGLISH_UI if re.search(rf"\b{w}\b", text)]
        assert not shown, f"{path} in Chinese still shows {shown}"
