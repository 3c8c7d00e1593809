"""The template catalogue over the API: list, install under a chosen key (all or
nothing), export an app as a bundle zip and install that zip again; unsafe zips refused."""

from __future__ import annotations

import io
import zipfile

import pytest
from sqlalchemy import func, select

from engine_forms.forms import get_app, list_forms
from engine_forms.models import App
from platform_core.app import create_app
from platform_core.settings import load_settings
from tests.security_setup import client_as

CRM = "bank_intermediary_crm"


@pytest.fixture
def admin(db, tmp_path):
    app = create_app(load_settings(data_dir=tmp_path), db=db)
    with client_as(app, db, "boss") as client:
        yield client


def test_templates_are_listed_with_what_they_hold(admin):
    items = admin.get("/api/v1/templates").json()["items"]
    crm = next(t for t in items if t["name"] == CRM)
    assert crm["key"] == "crm" and crm["demo"] is True and crm["counts"]["forms"] == 4


def test_install_under_a_key_twice_is_refused_the_second_time(admin, db):
    done = admin.post(f"/api/v1/templates/{CRM}/install", json={"key": "crm_b"})
    assert done.status_code == 201, done.text
    assert done.json()["app"] == "crm_b" and done.json()["demo"] is None
    again = admin.post(f"/api/v1/templates/{CRM}/install", json={"key": "crm_b"})
    assert again.status_code == 409
    assert again.headers["content-type"].startswith("application/problem+json")
    with db.read() as s:
        row = get_app(s, "crm_b")
        assert (row.template, row.template_version) == (CRM, "1.0.0")
        assert s.execute(select(func.count()).select_from(App)).scalar_one() == 1


def test_an_exported_bundle_installs_again_as_the_same_app(admin, db):
    assert admin.post(f"/api/v1/templates/{CRM}/install", json={}).status_code == 201
    zipped = admin.get("/api/v1/apps/crm/bundle")
    assert zipped.status_code == 200 and zipped.headers["content-type"] == "application/zip"
    names = zipfile.ZipFile(io.BytesIO(zipped.content)).namelist()
    assert "crm/app.json" in names and "crm/forms/customer.json" in names
    back = admin.post("/api/v1/apps/import", data={"key": "crm_copy"},
                      files={"file": ("crm.zip", zipped.content, "application/zip")})
    assert back.status_code == 201, back.text
    with db.read() as s:
        original = {f.key: f.draft for f in list_forms(s, "crm")}
        copy = {f.key: f.draft for f in list_forms(s, "crm_copy")}
    assert copy == original
    again = admin.get("/api/v1/apps/crm_copy/bundle").content
    first = zipfile.ZipFile(io.BytesIO(zipped.content))
    second = zipfile.ZipFile(io.BytesIO(again))
    assert first.read("crm/forms/loan_case.json") == second.read("crm_copy/forms/loan_case.json")


@pytest.mark.parametrize("name", ["../evil/app.json", "/abs/app.json"])
def test_a_zip_reaching_outside_its_folder_is_refused(admin, db, name):
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr(name, "{}")
    refused = admin.post("/api/v1/apps/import",
                         files={"file": ("x.zip", buffer.getvalue(), "application/zip")})
    assert refused.status_code == 422 and "unsafe path" in refused.json()["detail"]


def test_a_file_that_is_not_a_zip_is_refused_clearly(admin):
    refused = admin.post("/api/v1/apps/import",
                         files={"file": ("x.zip", b"not a zip", "application/zip")})
    assert refused.status_code == 422 and "not a zip" in refused.json()["detail"]
