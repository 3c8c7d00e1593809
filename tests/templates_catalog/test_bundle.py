"""Reading bundles: the shipped CRM template reads cleanly; a broken bundle is refused
with every problem named by its file."""

from __future__ import annotations

import json
import shutil

import pytest

from templates_catalog.bundle import BundleError, catalog, load_bundle
from templates_catalog.install import form_order
from tests.templates_catalog.conftest import CRM


def test_the_catalog_has_the_crm_template_with_its_parts(crm):
    assert CRM in catalog()
    assert crm.key == "crm" and crm.app["version"] == "1.0.0"
    assert set(crm.forms) == {"customer", "loan_case", "follow_up", "bank_product"}
    assert set(crm.flows) == {"loan_service"}
    assert {r["key"] for r in crm.roles} == {"sales", "team_lead", "risk", "clerk"}
    assert len(crm.rules) >= 6 and len(crm.reports) >= 8 and len(crm.dashboards) == 2
    assert crm.demo is not None and (crm.demo / "records.json").is_file()


def test_forms_are_published_after_the_forms_their_relations_point_at(crm):
    order = form_order(crm.forms)
    assert order.index("customer") < order.index("loan_case") < order.index("follow_up")
    assert order.index("bank_product") < order.index("loan_case")


def test_relations_in_a_circle_are_refused():
    forms = {"a": {"key": "a", "fields": [{"key": "b", "type": "relation", "target": "b"}]},
             "b": {"key": "b", "fields": [{"key": "a", "type": "relation", "target": "a"}]}}
    with pytest.raises(BundleError, match="circle"):
        form_order(forms)


def test_a_broken_bundle_names_each_problem(tmp_path):
    broken = tmp_path / "broken"
    shutil.copytree(catalog()[CRM], broken)
    (broken / "reports" / "leaderboard.json").write_text("{not json", encoding="utf-8")
    spec = json.loads((broken / "rules" / "customer_won.json").read_text(encoding="utf-8"))
    (broken / "rules" / "renamed.json").write_text(json.dumps(spec), encoding="utf-8")
    menus = json.loads((broken / "menus.json").read_text(encoding="utf-8"))
    menus[0]["items"].append({"label": "丢失", "kind": "report", "key": "nowhere"})
    (broken / "menus.json").write_text(json.dumps(menus), encoding="utf-8")
    app = json.loads((broken / "app.json").read_text(encoding="utf-8"))
    (broken / "app.json").write_text(json.dumps({**app, "version": "one"}), encoding="utf-8")
    with pytest.raises(BundleError) as caught:
        load_bundle(broken)
    problems = "\n".join(caught.value.problems)
    assert "leaderboard.json" in problems
    assert "rules/renamed.json: its key must be 'renamed'" in problems
    assert "the bundle has no report 'nowhere'" in problems
    assert "app.json/version" in problems


def test_a_folder_without_app_json_is_not_a_bundle(tmp_path):
    with pytest.raises(BundleError, match="not an app bundle"):
        load_bundle(tmp_path)
