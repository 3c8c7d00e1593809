"""PUT /api/v1/apps/{app}/menus on the CRM template: a whole menu saved and audited, its
items checked against the app's forms, flows, reports and dashboards and against the
roles (problem+json naming each place), and an item limited to a role shown in the
navigation to that role's holders only (administrators see everything)."""

from __future__ import annotations

import copy

import pytest
from sqlalchemy import select

from platform_core.app import create_app
from platform_core.security.models import AuditEntry
from platform_core.settings import load_settings
from templates_catalog.bundle import template
from templates_catalog.install import install
from tests.engine_forms.forms_setup import ok
from tests.security_setup import SYSTEM, client_as

MENUS = "/api/v1/apps/crm/menus"


@pytest.fixture
def app(db, tmp_path):
    with db.write() as s:
        install(s, template("bank_intermediary_crm"), actor=SYSTEM,
                template="bank_intermediary_crm")
    return create_app(load_settings(data_dir=tmp_path), db=db)


@pytest.fixture
def admin(app, db):
    return client_as(app, db, "boss")


def _stored(client) -> list[dict]:
    return ok(client.get("/api/v1/apps/crm"))["menus"]


def _problems(response) -> list[str]:
    assert response.status_code == 422, response.text
    assert response.headers["content-type"] == "application/problem+json"
    body = response.json()
    assert body["code"] == "invalid_menus"
    return body["problems"]


def test_a_whole_menu_is_saved_and_audited(admin, db):
    menus = copy.deepcopy(_stored(admin))
    funnel = menus[3]["items"].pop(0)  # 服务漏斗: into the first group, for sales only
    menus[0]["items"].insert(1, {**funnel, "roles": ["sales"]})
    menus.append({"label": "流程", "items": [
        {"label": "贷款服务", "kind": "flow", "key": "loan_service"},
        {"label": "待办", "kind": "tasks"}]})
    doc = ok(admin.put(MENUS, json=menus))
    assert doc["menus"] == menus
    assert _stored(admin) == menus
    with db.read() as s:
        entry = s.execute(select(AuditEntry).where(AuditEntry.action == "app.menus")
                          ).scalar_one()
    assert entry.target == "app:crm" and entry.detail["menus"] == menus
    assert ok(admin.put(MENUS, json=[]))["menus"] == []


def test_unknown_keys_and_roles_are_refused_by_place(admin):
    before = _stored(admin)
    menus = copy.deepcopy(before)
    menus[0]["items"].append({"label": "丢失", "kind": "report", "key": "nowhere"})
    menus[1]["items"][0]["roles"] = ["sales", "nobody"]
    menus[2]["items"].append({"label": "无键", "kind": "dashboard"})
    problems = _problems(admin.put(MENUS, json=menus))
    assert problems == ["menus[0].items[3].key: app 'crm' has no report 'nowhere'",
                        "menus[1].items[0].roles: there is no role 'nobody'",
                        "menus[2].items[3]: a dashboard item needs a key"]
    assert _stored(admin) == before  # nothing written


def test_a_bad_shape_is_refused_by_place(admin):
    problems = _problems(admin.put(MENUS, json=[
        {"label": "", "items": [{"label": "x", "kind": "page", "key": "customer"},
                                {"label": "y", "kind": "form", "key": "customer",
                                 "roles": []}]}]))
    assert any(p.startswith("menus[0].label: ") for p in problems)
    assert any(p.startswith("menus[0].items[0].kind: 'page' is not one of") for p in problems)
    assert any(p.startswith("menus[0].items[1].roles: [] should be non-empty")
               for p in problems)
    assert _problems(admin.put(MENUS, json={"label": "x"}))[0].startswith("menus: ")


def test_only_app_managers_may_save_menus(app, db):
    lead = client_as(app, db, "lao.li", roles=("team_lead",))
    response = lead.put(MENUS, json=[])
    assert response.status_code == 403, response.text
    admin = client_as(app, db, "boss")
    assert admin.put("/api/v1/apps/nope/menus", json=[]).status_code == 404


def _home_menu(client) -> str:
    page = client.get("/")
    assert page.status_code == 200, page.text
    return page.text.split('<nav class="app-menu"', 1)[1].split("</nav>", 1)[0]


def test_an_item_limited_to_a_role_shows_to_its_holders_only(app, admin, db):
    menus = copy.deepcopy(_stored(admin))
    menus[1]["items"].append({"label": "销售专用客户", "kind": "form", "key": "customer",
                              "roles": ["sales"]})
    ok(admin.put(MENUS, json=menus))
    sales = client_as(app, db, "xiao.wang", roles=("sales",))
    lead = client_as(app, db, "lao.li", roles=("team_lead",))
    assert "销售专用客户" in _home_menu(sales)
    assert "销售专用客户" not in _home_menu(lead)
    assert "跟进记录" in _home_menu(lead)  # the unlimited items stay
    assert "销售专用客户" in _home_menu(admin)
