"""The generated OpenAPI document of an app: valid OpenAPI 3.1, typed per form, and held
to the caller's rights (forms, fields, operations); a publish shows on the next request."""

from __future__ import annotations

import copy
import re

import pytest
from fastapi import APIRouter
from fastapi.testclient import TestClient
from openapi_spec_validator import validate
from pydantic import BaseModel

from engine_forms import openapi
from platform_core.app import create_app
from platform_core.registry import Registry
from platform_core.security.guard import api_routes, rule
from platform_core.settings import load_settings
from tests.engine_forms.forms_setup import CUSTOMER, make_crm, ok
from tests.security_setup import client_as

DOC = "/api/v1/apps/crm/openapi.json"
FORMS = "/api/v1/apps/crm/forms"
CUSTOMERS = f"{FORMS}/customer/records"
# customer: create/read/update, mobile hidden, city read-only; loan_case: not at all
CLERK = {"forms": {"crm.customer": {"actions": ["create", "read", "update"], "scope": "all",
                                    "fields": {"mobile": "hidden", "city": "read"}}}}


class Widget(BaseModel):
    """The body of an app route outside the forms (test_other_app_routes_…)."""

    name: str


@pytest.fixture
def world(db, tmp_path):
    app = create_app(load_settings(data_dir=tmp_path), db=db)
    admin = client_as(app, db, "admin")
    make_crm(admin)
    ok(admin.post("/api/v1/roles", json={"key": "clerk", "name": "录入员",
                                         "permissions": CLERK}), 201)
    users = {role: client_as(app, db, role, roles=(role,))
             for role in ("clerk", "staff", "viewer")}
    return app, {"admin": admin, **users}


def document(client) -> dict:
    doc = ok(client.get(DOC))
    validate(copy.deepcopy(doc))  # OpenAPI 3.1 (schemas: JSON Schema 2020-12)
    return doc


def schema(doc: dict, name: str) -> dict:
    return doc["components"]["schemas"][name]


def operations(doc: dict, form: str) -> set[str]:
    return {f"{method.upper()} {path.removeprefix(f'{FORMS}/{form}')}"
            for path, ops in doc["paths"].items() if path.startswith(f"{FORMS}/{form}/")
            for method in ops}


def test_the_admins_document_is_valid_and_typed_per_form(world):
    _app, u = world
    doc = document(u["admin"])
    assert doc["openapi"] == "3.1.0" and doc["info"]["x-qiao-forms"] == {
        "customer": 2, "loan_case": 1}
    create = schema(doc, "loan_case.Create")
    assert create["required"] == ["customer"] and create["additionalProperties"] is False
    assert create["properties"]["channel"]["enum"] == ["web", "referral", None]
    assert create["properties"]["amount"]["pattern"] == r"^-?\d+(\.\d{1,2})?$"
    computed = {"case_no", "size", "customer_city"}
    assert not computed & set(create["properties"])  # computed: never written
    data = schema(doc, "loan_case.Data")["properties"]
    assert all(data[k]["readOnly"] is True for k in computed)
    assert data["size"]["type"] == ["string", "null"]  # the formula's result kind
    assert data["customer_city"]["maxLength"] == 200  # customer.city, looked up
    customer = schema(doc, "customer.Data")["properties"]
    assert customer["loans"]["type"] == ["integer", "null"]  # a count rollup
    assert customer["mobile"]["pattern"]  # the admin may unmask: the real value
    record = schema(doc, "customer.Record")
    assert record["properties"]["data"] == {"$ref": "#/components/schemas/customer.Data"}
    assert record["properties"]["form"]["const"] == "customer"
    assert {"PATCH /records/{record_id}", "POST /records/bulk", "GET /export",
            "PUT /records/by/mobile/{value}", "POST /records/{record_id}/unmask",
            "POST /attachments"} <= operations(doc, "customer")
    bearer = doc["components"]["securitySchemes"]["bearer"]
    assert (bearer["type"], bearer["scheme"]) == ("http", "bearer")


def test_a_restricted_role_sees_only_what_it_may(world):
    _app, u = world
    doc = document(u["clerk"])
    assert not [p for p in doc["paths"] if "/loan_case/" in p]  # a form it cannot read
    assert not [n for n in doc["components"]["schemas"] if n.startswith("loan_case.")]
    assert [t["name"] for t in doc["tags"]] == ["customer"]
    data = schema(doc, "customer.Data")["properties"]
    assert "mobile" not in data  # hidden: absent everywhere
    assert "mobile" not in schema(doc, "customer.Create")["properties"]
    assert "PUT /records/by/mobile/{value}" not in operations(doc, "customer")
    assert data["city"]["readOnly"] is True and "readOnly" not in data["name"]
    assert "city" not in schema(doc, "customer.Update")["properties"]
    sort = doc["components"]["parameters"]["customer.sort"]["schema"]["items"]["enum"]
    assert "mobile" not in sort and "-city" in sort
    assert operations(doc, "customer") == {
        "GET /records", "GET /records/count", "POST /records", "POST /records/bulk",
        "GET /records/{record_id}",
        "PATCH /records/{record_id}", "GET /records/{record_id}/history",
        "POST /attachments", "GET /attachments/{attachment_id}"}


def test_operations_follow_each_roles_rights(world):
    _app, u = world
    viewer = document(u["viewer"])
    assert operations(viewer, "customer") == {
        "GET /records", "GET /records/count", "GET /records/{record_id}",
        "GET /records/{record_id}/history",
        "GET /attachments/{attachment_id}"}
    # a viewer may not unmask: the masked field is plain text, with no pattern to match
    mobile = schema(viewer, "customer.Data")["properties"]["mobile"]
    assert mobile["type"] == ["string", "null"] and "pattern" not in mobile
    assert "Masked" in mobile["description"]
    staff = operations(document(u["staff"]), "customer")
    assert "PATCH /records/{record_id}" in staff and "POST /records" in staff
    assert not {"DELETE /records/{record_id}", "GET /export", "POST /import",
                "POST /records/{record_id}/unmask"} & staff
    for doc in (viewer, document(u["admin"])):  # each operation names the rule it needs
        assert all(op["x-permission"] for ops in doc["paths"].values()
                   for op in ops.values())


def test_every_operation_is_a_real_route_with_its_rule(world):
    app, u = world
    routes = {(method, r.path): r.openapi_extra["x-permission"]
              for r in api_routes(app) for method in r.methods}
    doc = document(u["admin"])
    for path, ops in doc["paths"].items():
        template = path.replace("/crm/", "/{app}/", 1)
        for form in ("customer", "loan_case"):
            template = re.sub(f"/forms/{form}(?=/|$)", "/forms/{form}", template)
        template = template.replace("/by/mobile/", "/by/{field}/")
        for method, op in ops.items():
            assert routes[(method.upper(), template)] == op["x-permission"], (method, path)


def test_the_form_definition_endpoints_are_in_the_document_as_rights_allow(world):
    _app, u = world
    admin, viewer = document(u["admin"]), document(u["viewer"])

    def definition(doc: dict) -> set[str]:
        return {f"{method.upper()} {path.removeprefix(FORMS)}"
                for path, ops in doc["paths"].items()
                if path == FORMS or path == f"{FORMS}/customer"
                or path.startswith(f"{FORMS}/customer/") and "/records" not in path
                and "/attachments" not in path and "/import" not in path
                and "/export" not in path for method in ops}

    assert definition(admin) == {
        "GET ", "POST ", "GET /customer", "PUT /customer", "POST /customer/check",
        "POST /customer/publish", "GET /customer/versions",
        "GET /customer/migrations/{job_id}"}
    assert definition(viewer) == {"GET ", "GET /customer"}
    publish = admin["paths"][f"{FORMS}/customer/publish"]["post"]
    assert publish["operationId"] == "customer_publish_form"
    assert publish["x-permission"] == "form:manage" and publish["tags"] == ["customer"]
    assert [p["name"] for p in publish["parameters"]] == ["dry_run"]  # not app nor form
    assert admin["paths"][FORMS]["post"]["x-permission"] == "app:manage"


def test_a_publish_shows_on_the_very_next_request(world):
    _app, u = world
    before = document(u["clerk"])
    assert "vip" not in schema(before, "customer.Data")["properties"]
    spec = copy.deepcopy(CUSTOMER)
    spec["fields"].append({"key": "vip", "label": "VIP", "type": "boolean"})
    ok(u["admin"].put(f"{FORMS}/customer", json=spec))
    assert "vip" not in schema(document(u["clerk"]), "customer.Data")["properties"]  # draft
    ok(u["admin"].post(f"{FORMS}/customer/publish"))
    after = document(u["clerk"])
    assert schema(after, "customer.Data")["properties"]["vip"]["type"] == ["boolean", "null"]
    assert "vip" in schema(after, "customer.Create")["properties"]
    assert after["info"]["x-qiao-forms"] == {"customer": 3}


def test_refusals(world):
    app, u = world
    refused = TestClient(app).get(DOC)
    assert refused.status_code == 401
    assert refused.headers["content-type"] == "application/problem+json"
    assert u["admin"].get("/api/v1/apps/nope/openapi.json").status_code == 404
    assert u["clerk"].get("/api/v1/apps/other/openapi.json").status_code == 403


def test_later_engines_add_their_paths_through_the_registry(world, monkeypatch):
    _app, u = world
    contributors = Registry("OpenAPI path contributor")
    monkeypatch.setattr(openapi, "PATH_CONTRIBUTORS", contributors)

    def gadgets(doc: openapi.AppDoc) -> None:
        if doc.principal.is_admin:
            doc.add(f"/api/v1/apps/{doc.app}/gadgets", "get", {
                "operationId": "gadgets_list", "responses": {"200": {"description": "ok"}}})

    contributors.register("gadgets", gadgets)
    assert "/api/v1/apps/crm/gadgets" in document(u["admin"])["paths"]
    assert "/api/v1/apps/crm/gadgets" not in document(u["viewer"])["paths"]


def test_other_app_routes_come_as_fastapi_describes_them_with_their_rule(world):
    app, u = world
    router = APIRouter()
    @router.post("/api/v1/apps/{app}/widgets", status_code=201,
                 openapi_extra=rule("app:manage"))
    def add_widget(app: str, body: Widget) -> dict:
        return {"app": app, "name": body.name}

    app.include_router(router)
    app.openapi_schema = None  # FastAPI's cached document predates the route
    widgets = document(u["admin"])["paths"]["/api/v1/apps/crm/widgets"]["post"]
    assert widgets["x-permission"] == "app:manage" and widgets["parameters"] == []
    assert set(widgets["responses"]) == {"201", "400", "401", "403", "404", "409", "413",
                                         "422", "429"}
    body = widgets["requestBody"]["content"]["application/json"]["schema"]
    assert document(u["admin"])["components"]["schemas"][body["$ref"].rsplit("/")[-1]][
        "required"] == ["name"]
    assert "/api/v1/apps/crm/widgets" not in document(u["viewer"])["paths"]


def test_the_docs_page_offers_the_apps_the_user_can_read(world):
    app, u = world
    ok(u["admin"].post("/api/v1/apps", json={"key": "hr", "name": "人事"}), 201)
    page = u["clerk"].get("/docs")
    assert page.status_code == 200 and 'data-spec-url="/api/v1/apps/crm/openapi.json"' \
        in page.text
    assert 'value="hr"' not in page.text  # an app the clerk cannot read is not offered
    assert "script-src 'self';" in page.headers["content-security-policy"]
    assert "<script>" not in page.text  # Swagger UI starts from qiao-init.js
    assert 'value="hr"' in u["admin"].get("/docs").text
    platform = u["admin"].get("/docs", params={"app": ""})
    assert 'data-spec-url="/openapi.json"' in platform.text
    for asset in ("swagger-ui-bundle.js", "swagger-ui.css", "qiao-init.js"):
        assert TestClient(app).get(f"/static/vendor/swagger-ui/{asset}").status_code == 200
    assert TestClient(app).get("/docs", follow_redirects=False).status_code in (303, 401)


def test_a_document_names_only_the_schemas_it_uses(world):
    _app, u = world
    names = set(document(u["viewer"])["components"]["schemas"])
    assert {"customer.Record", "customer.Data", "customer.Filter", "Problem"} <= names
    assert not {"customer.Create", "customer.Update", "customer.BulkResult",
                "ImportResult", "Unmasked"} & names
