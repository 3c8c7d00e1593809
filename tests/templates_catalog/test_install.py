"""Installing a template: every part goes through its engine's checks, in one
transaction; exporting the installed app gives the same bundle back."""

from __future__ import annotations

import json
import shutil

import pytest
from sqlalchemy import func, select
from typer.testing import CliRunner

from engine_forms.models import App, Form
from platform_core.errors import Conflict
from platform_core.security.models import Role
from templates_catalog.bundle import BundleError, catalog, load_bundle, write_bundle
from templates_catalog.install import export
from tests.templates_catalog.conftest import CRM, install_crm


def _files(folder) -> dict[str, str]:
    return {str(p.relative_to(folder)): p.read_text(encoding="utf-8")
            for p in sorted(folder.rglob("*.json")) if "demo" not in p.parts}


def test_install_then_export_gives_the_same_bundle_file_for_file(db, crm, tmp_path):
    install_crm(db, crm)
    with db.read() as s:
        exported = export(s, "crm")
    write_bundle(exported, tmp_path / "out")
    assert _files(tmp_path / "out") == _files(catalog()[CRM])


def test_menus_limited_to_roles_survive_an_export(qiao, db, crm, tmp_path):
    """A role the menus name goes into the bundle even without rights in the app, so the
    exported bundle passes the menus check and installs again."""
    install_crm(db, crm)
    _app, admin = qiao
    assert admin.post("/api/v1/roles", json={
        "key": "auditor", "name": "审计员", "permissions": {}}).status_code == 201
    menus = [{**group, "items": [{**item, "roles": ["auditor", "sales"]}
                                 for item in group["items"]]} for group in crm.menus]
    assert admin.put("/api/v1/apps/crm/menus", json=menus).status_code == 200
    with db.read() as s:
        write_bundle(export(s, "crm"), tmp_path / "out")
    again = load_bundle(tmp_path / "out")
    assert again.menus == menus
    auditor = next(r for r in again.roles if r["key"] == "auditor")
    assert auditor["permissions"] == {"forms": {}}
    install_crm(db, again, key="crm_copy")
    assert admin.get("/api/v1/apps/crm_copy").json()["menus"] == menus


def test_the_installed_app_is_what_the_bundle_says(qiao, db, crm):
    install_crm(db, crm)
    _app, admin = qiao
    app = admin.get("/api/v1/apps/crm").json()
    assert app["template"] == CRM and app["template_version"] == "1.0.0"
    assert app["menus"] == crm.menus
    assert {f["key"]: f["published_version"] for f in app["forms"]} == dict.fromkeys(
        crm.forms, 1)
    flows = admin.get("/api/v1/apps/crm/flows").json()["items"]
    assert [(f["key"], f["published_version"]) for f in flows] == [("loan_service", 1)]
    rules = {r["key"]: r["enabled"] for r in admin.get("/api/v1/apps/crm/rules").json()["items"]}
    assert rules == {key: spec["enabled"] for key, spec in crm.rules.items()}
    assert not rules["sms_disbursed"]  # needs an SMS gateway first
    reports = admin.get("/api/v1/apps/crm/reports").json()["items"]
    assert {r["key"] for r in reports} == set(crm.reports)
    sales = admin.get("/api/v1/roles").json()["items"]
    assert {r["key"] for r in sales} >= {"sales", "team_lead", "risk", "clerk"}


def test_a_second_install_of_the_same_key_is_refused_and_changes_nothing(db, crm):
    install_crm(db, crm)
    with pytest.raises(Conflict, match="already exists"):
        install_crm(db, crm)
    with db.read() as s:
        assert s.execute(select(func.count()).select_from(App)).scalar() == 1


def test_under_another_key_the_roles_gain_that_apps_rights(db, crm):
    install_crm(db, crm)
    install_crm(db, crm, key="crm_sh")
    with db.read() as s:
        sales = s.execute(select(Role).where(Role.key == "sales")).scalar_one()
        assert {"crm.customer", "crm_sh.customer"} <= set(sales.permissions["forms"])
        second = export(s, "crm_sh")
    assert second.key == "crm_sh" and second.forms == crm.forms
    assert [r["permissions"] for r in second.roles] == [
        {**r["permissions"], "forms": {k.replace("crm.", "crm_sh."): v
                                      for k, v in r["permissions"]["forms"].items()}}
        for r in crm.roles]


def test_a_bundle_with_one_bad_part_installs_nothing(db, tmp_path):
    broken = tmp_path / "broken"
    shutil.copytree(catalog()[CRM], broken)
    spec = json.loads((broken / "reports" / "by_bank.json").read_text(encoding="utf-8"))
    spec["dimensions"][0]["field"] = "no_such_field"
    (broken / "reports" / "by_bank.json").write_text(json.dumps(spec), encoding="utf-8")
    bundle = load_bundle(broken)
    with pytest.raises(BundleError) as caught:
        install_crm(db, bundle)
    assert any(p.startswith("reports/by_bank.json: ") and "no_such_field" in p
               for p in caught.value.problems), caught.value.problems
    with db.read() as s:  # the report was the last but two parts: all of it rolled back
        assert s.execute(select(func.count()).select_from(App)).scalar() == 0
        assert s.execute(select(func.count()).select_from(Form)).scalar() == 0
        assert s.execute(select(Role).where(Role.key == "sales")).first() is None


def test_the_template_commands(db, database_url, tmp_path, monkeypatch):
    """``qiao template list | install | export`` on the configured database."""
    from platform_core.cli import app as cli
    from templates_catalog.cli import register

    if "template" not in {g.name for g in cli.registered_groups}:
        register(cli)
    monkeypatch.setenv("QIAO_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("QIAO_DATABASE_URL", database_url)
    runner = CliRunner()
    listed = runner.invoke(cli, ["template", "list"])
    assert listed.exit_code == 0 and f"{CRM}  app 'crm' 1.0.0  贷款中介 CRM" in listed.output
    done = runner.invoke(cli, ["template", "install", CRM, "--key", "crm_cli"])
    assert done.exit_code == 0, done.output
    assert f"installed app 'crm_cli' from {CRM} 1.0.0" in done.output
    again = runner.invoke(cli, ["template", "install", CRM, "--key", "crm_cli"])
    assert again.exit_code == 2 and "already exists" in again.output
    out = tmp_path / "exported"
    assert runner.invoke(cli, ["template", "export", "crm_cli", str(out)]).exit_code == 0
    assert load_bundle(out).forms == load_bundle(catalog()[CRM]).forms
    missing = runner.invoke(cli, ["template", "install", "no_such_template"])
    assert missing.exit_code == 2 and "no template 'no_such_template'" in missing.output
