"""Schemathesis against the generated OpenAPI document of the CRM template's app, in
process, as an admin: every operation of its forms, flow, tasks, reports and dashboards
(webhooks aside: their URLs are resolved in DNS, which a test may not do). No request may
end in a server error and every response must match the document. Same settings as
tests/engine_forms/test_schemathesis.py (which fuzzes a small app with every field type)."""

from __future__ import annotations

import logging

from openapi_spec_validator import validate

from tests.engine_forms.test_schemathesis import fuzz
from tests.templates_catalog.conftest import install_crm

APP = "/api/v1/apps/crm"


def ok(response, status=200):
    assert response.status_code == status, response.text
    return response.json()


def seed(admin) -> dict[str, object]:
    """One record of each form, the loan flow started on the case; the path values."""
    forms = f"{APP}/forms"
    product = ok(admin.post(f"{forms}/bank_product/records", json={
        "name": "招行闪电贷", "bank": "cmb", "loan_type": "credit"}), 201)
    customer = ok(admin.post(f"{forms}/customer/records", json={
        "name": "张三", "mobile": "13812341234", "id_no": "11010519491231002X"}), 201)
    case = ok(admin.post(f"{forms}/loan_case/records", json={
        "customer": customer["id"], "loan_type": "credit", "amount": "200000.00",
        "product": product["id"]}), 201)
    follow = ok(admin.post(f"{forms}/follow_up/records", json={
        "customer": customer["id"], "method": "phone", "summary": "首次沟通",
        "follow_date": "2026-11-01"}), 201)
    run = ok(admin.post(f"{APP}/flows/loan_service/instances",
                        json={"record_id": case["id"]}), 201)
    task = ok(admin.get("/api/v1/tasks", params={"assignee": "me"}))["items"][0]
    return {"records": {"bank_product": product["id"], "customer": customer["id"],
                        "loan_case": case["id"], "follow_up": follow["id"]},
            "flow": "loan_service", "run_id": run["id"], "task_id": task["id"],
            "version": 1, "report": "leaderboard", "dashboard": "sales_overview"}


def test_the_crm_apps_document_validates_and_names_every_part(qiao, db, crm):
    _app, admin = qiao
    install_crm(db, crm)
    doc = ok(admin.get(f"{APP}/openapi.json"))
    validate(doc)
    assert set(doc["info"]["x-qiao-forms"]) == set(crm.forms)
    for path in (f"{APP}/forms/loan_case/records/bulk", f"{APP}/flows/{{flow}}/instances",
                 f"{APP}/reports/{{report}}/data", "/api/v1/tasks/{task_id}/complete"):
        assert path in doc["paths"], path


def test_the_crm_app_conforms_to_its_document(qiao, db, crm, caplog):
    app, admin = qiao
    install_crm(db, crm)
    values = seed(admin)
    records = values.pop("records")

    def seeds(path: str) -> dict[str, object]:
        out = {k: v for k, v in values.items() if "{" + k + "}" in path}
        if "{record_id}" in path and "/forms/" in path:
            out["record_id"] = records[path.split("/forms/")[1].split("/")[0]]
        return out

    caplog.set_level(logging.CRITICAL, logger="qiao.http")  # 5xx are reported below
    failures = fuzz(app, admin, "crm", wanted=lambda path: "/webhooks" not in path,
                    seeds=seeds)
    assert not failures, "\n\n".join(failures)
