"""Shared set-up for the form-engine API tests: an app with customers and loan cases."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient

FIXTURES = Path(__file__).parent.parent / "fixtures"

CUSTOMER: dict[str, Any] = {
    "key": "customer", "name": "客户", "title_field": "name",
    "fields": [
        {"key": "name", "label": "姓名", "type": "text", "required": True},
        {"key": "mobile", "label": "手机", "type": "phone", "unique": True,
         "sensitive": {"mask": True}},
        {"key": "city", "label": "城市", "type": "text", "indexed": True},
        {"key": "loans", "label": "贷款笔数", "type": "rollup", "source": "loan_case",
         "via": "customer", "aggregate": "count"},
        {"key": "total", "label": "贷款总额", "type": "rollup", "source": "loan_case",
         "via": "customer", "aggregate": "sum", "field": "amount"},
        {"key": "docs", "label": "资料", "type": "attachment", "max_size_mb": 0.01,
         "accept": [".pdf", "image/*"]},
    ]}


def loan_case() -> dict[str, Any]:
    spec = json.loads((FIXTURES / "loan_case.json").read_text())
    spec["fields"].append({"key": "customer_city", "label": "客户城市", "type": "lookup",
                           "relation": "customer", "field": "city"})
    return spec


def ok(response: Any, status: int = 200) -> Any:
    assert response.status_code == status, response.text
    return response.json() if response.content else None


def make_crm(client: TestClient) -> None:
    """App ``crm`` with ``customer`` and ``loan_case`` published (rollups need both)."""
    ok(client.post("/api/v1/apps", json={"key": "crm", "name": "贷款中介 CRM"}), 201)
    ok(client.post("/api/v1/apps/crm/forms", json=CUSTOMER), 201)
    ok(client.post("/api/v1/apps/crm/forms/customer/publish"))
    ok(client.post("/api/v1/apps/crm/forms", json=loan_case()), 201)
    ok(client.post("/api/v1/apps/crm/forms/loan_case/publish"))
    ok(client.post("/api/v1/apps/crm/forms/customer/publish"))
