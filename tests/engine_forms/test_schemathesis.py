"""Schemathesis against the generated OpenAPI documents, in process (ASGI), as an admin:
a small app with every field type (the CRM template's app: tests/templates_catalog). No
request may end in a server error and every response must match the document (status,
content type, headers, body).

Each operation is run with data that fits the document (positive), data that breaks it
(negative) and, for record operations, with the id of a record that exists (so updates,
deletes, restores and histories reach past "not found"). Hypothesis is derandomized and
the example counts are small: the same requests on every run, well under a minute per
database.

The three bugs this fuzzing found (ids past 64 bits, NUL characters on PostgreSQL, a
malformed ``and`` on a form with encrypted fields — all server errors) are fixed; each
keeps a plain regression test at the end.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import HealthCheck, Phase, given, settings
from schemathesis.checks import not_a_server_error
from schemathesis.generation import GenerationMode
from schemathesis.openapi import from_asgi
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from platform_core.app import create_app
from platform_core.settings import load_settings
from tests.engine_forms.forms_setup import make_crm, ok
from tests.security_setup import client_as

CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance,
          response_headers_conformance, response_schema_conformance]
# Requests per operation and mode. CI's PostgreSQL pass (QIAO_TEST_PASS=database) sends a
# third as many (still every operation, in every mode): the SQLite pass before it sent
# them all, and what differs between the databases (types, collation, JSON operators)
# shows on any request of a shape; the full CRM document took over two minutes a pass.
EXAMPLES = {mode: count // (3 if os.environ.get("QIAO_TEST_PASS") == "database" else 1)
            for mode, count in {"positive": 15, "negative": 10, "seeded": 10}.items()}
PG_URL = os.environ.get("QIAO_TEST_DATABASE_URL", "")

# A small app: every field type, required_if/visible_if/validate/default, a unique field,
# a masked one, a subtable, lookups (one of a masked field) and rollups across two forms.
ITEM: dict[str, Any] = {"key": "item", "name": "物品", "title_field": "title", "fields": [
    {"key": "title", "label": "名称", "type": "text", "required": True, "max_length": 50},
    {"key": "notes", "label": "备注", "type": "textarea", "required_if": "ok = FALSE"},
    {"key": "qty", "label": "数量", "type": "number", "min": 0, "max": 1000, "decimals": 2,
     "default": 1, "validate": [{"expression": "qty < 999", "message": "太多"}]},
    {"key": "price", "label": "单价", "type": "money"},
    {"key": "rate", "label": "税率", "type": "percent"},
    {"key": "day", "label": "日期", "type": "date", "min": "2000-01-01"},
    {"key": "at", "label": "时间", "type": "datetime"},
    {"key": "ok", "label": "合格", "type": "boolean"},
    {"key": "kind", "label": "类别", "type": "select",
     "options": [{"value": "a", "label": "甲"}, {"value": "b", "label": "乙"}]},
    {"key": "tags", "label": "标签", "type": "multiselect",
     "options": [{"value": "x", "label": "X"}, {"value": "y", "label": "Y"}]},
    {"key": "tel", "label": "电话", "type": "phone", "accept": "mobile", "unique": True},
    {"key": "mail", "label": "邮箱", "type": "email", "visible_if": "ok = TRUE"},
    {"key": "idc", "label": "身份证", "type": "id_card", "sensitive": {"mask": True}},
    {"key": "addr", "label": "地址", "type": "address"},
    {"key": "who", "label": "负责人", "type": "user"},
    {"key": "dept", "label": "部门", "type": "department"},
    {"key": "code", "label": "编号", "type": "auto_number", "pattern": "IT-{0000}"},
    {"key": "double", "label": "双倍", "type": "formula", "expression": "qty * 2"},
    {"key": "verdict", "label": "结论", "type": "formula",
     "expression": "IF(ok, \"好\", \"差\")"},
    {"key": "lines", "label": "明细", "type": "subtable", "max_rows": 5, "fields": [
        {"key": "name", "label": "名称", "type": "text", "required": True},
        {"key": "n", "label": "数", "type": "number"}]},
    {"key": "files", "label": "附件", "type": "attachment", "max_files": 2},
]}
PART: dict[str, Any] = {"key": "part", "name": "部件", "fields": [
    {"key": "item", "label": "物品", "type": "relation", "target": "item", "required": True},
    {"key": "others", "label": "其他", "type": "relation", "target": "item", "multiple": True},
    {"key": "weight", "label": "重量", "type": "money"},
    {"key": "item_title", "label": "物品名称", "type": "lookup", "relation": "item",
     "field": "title"},
    {"key": "item_idc", "label": "物品身份证", "type": "lookup", "relation": "item",
     "field": "idc"},
]}
ROLLUPS = [
    {"key": "parts", "label": "部件数", "type": "rollup", "source": "part", "via": "item",
     "aggregate": "count"},
    {"key": "weight", "label": "总重", "type": "rollup", "source": "part", "via": "item",
     "aggregate": "sum", "field": "weight"},
]


def make_kit(client: Any) -> None:
    """App ``kit``: ``item`` and ``part`` published, one record each."""
    forms = "/api/v1/apps/kit/forms"
    ok(client.post("/api/v1/apps", json={"key": "kit", "name": "测试应用"}), 201)
    ok(client.post(forms, json=ITEM), 201)
    ok(client.post(f"{forms}/item/publish"))
    ok(client.post(forms, json=PART), 201)
    ok(client.post(f"{forms}/part/publish"))
    ok(client.put(f"{forms}/item", json={**ITEM, "fields": ITEM["fields"] + ROLLUPS}))
    ok(client.post(f"{forms}/item/publish"))
    item = ok(client.post(f"{forms}/item/records", json={
        "title": "螺丝", "qty": 3, "price": "1.50", "ok": True, "tel": "13800000000",
        "mail": "a@b.cn", "idc": "11010519491231002X", "lines": [{"name": "a", "n": 1}]}),
        201)
    ok(client.post(f"{forms}/part/records", json={"item": item["id"], "weight": "2.00"}), 201)


def seed_crm(client: Any) -> None:
    make_crm(client)
    customer = ok(client.post("/api/v1/apps/crm/forms/customer/records", json={
        "name": "张三", "mobile": "13800001234", "city": "北京"}), 201)
    ok(client.post("/api/v1/apps/crm/forms/loan_case/records", json={
        "customer": customer["id"], "amount": "1200000.00", "id_no": "11010519491231002X"}),
        201)


# -- the runs ----------------------------------------------------------------------------


@pytest.fixture
def qiao(db, tmp_path):
    app = create_app(load_settings(data_dir=tmp_path, api_rate_per_minute=1_000_000,
                                   background_jobs=False), db=db)
    admin = client_as(app, db, "admin")
    return app, admin


def first_ids(admin: Any, app: str) -> dict[str, int]:
    doc = ok(admin.get(f"/api/v1/apps/{app}/openapi.json"))
    return {form: ok(admin.get(f"/api/v1/apps/{app}/forms/{form}/records"))["items"][0]["id"]
            for form in doc["info"]["x-qiao-forms"]}


def record_operations(path: str) -> bool:
    # webhooks: their URLs are resolved in DNS, which a test may not do
    return "/forms/" in path and not path.endswith("/progress")


def fuzz(app: Any, admin: Any, key: str, wanted: Callable[[str], bool] = record_operations,
         seeds: Callable[[str], dict[str, int]] | None = None) -> list[str]:
    """Run the operations of app ``key``'s document whose path is ``wanted``; the
    failures, one block each. ``seeds(path)``: path parameters of things that exist
    (default: the first record of the path's form)."""
    auth = {"Authorization": admin.headers["Authorization"]}
    schema = from_asgi(f"/api/v1/apps/{key}/openapi.json", app, headers=auth)
    ids = first_ids(admin, key)

    def first_record(path: str) -> dict[str, int]:
        form = path.split("/forms/")[1].split("/")[0] if "/forms/" in path else None
        return {"record_id": ids[form]} if form and "{record_id}" in path else {}

    failures: dict[str, str] = {}
    for result in schema.get_all_operations():
        operation = result.ok()
        if not wanted(operation.path):
            continue
        for mode, count in EXAMPLES.items():
            if mode != "seeded":
                strategy = operation.as_strategy(generation_mode=GenerationMode(mode))
            elif (params := (seeds or first_record)(operation.path)):
                strategy = operation.as_strategy(path_parameters=params)
            else:
                continue
            run(strategy, count, f"{operation.label} [{mode}]", auth, failures)
    return [f"{name}\n{detail[:2000]}" for name, detail in sorted(failures.items())]


def run(strategy: Any, count: int, label: str, auth: dict[str, str],
        failures: dict[str, str]) -> None:
    """``count`` requests from ``strategy``; each distinct failure noted once."""
    @settings(max_examples=count, derandomize=True, database=None, deadline=None,
              suppress_health_check=list(HealthCheck), phases=[Phase.explicit, Phase.generate])
    @given(case=strategy)
    def call(case: Any) -> None:
        try:
            case.call_and_validate(headers=auth, checks=CHECKS)
        except AssertionError as exc:  # schemathesis' failures (a group of them)
            found = getattr(exc, "exceptions", (exc,))
            title = "; ".join(sorted({getattr(f, "title", type(f).__name__) for f in found}))
            failures.setdefault(f"{label}: {title}", str(exc))
        except Exception as exc:  # noqa: BLE001 - the in-process server raised (a 5xx)
            failures.setdefault(f"{label}: server error {type(exc).__name__}",
                                f"{exc}\n{case.as_curl_command()}")

    call()


def test_a_small_app_with_every_field_type_conforms_to_its_document(qiao, caplog):
    app, admin = qiao
    make_kit(admin)
    caplog.set_level(logging.CRITICAL, logger="qiao.http")
    failures = fuzz(app, admin, "kit")
    assert not failures, "\n\n".join(failures)


# -- the bugs it found, kept fixed --------------------------------------------------------


def test_bug_1_an_id_past_64_bits_is_refused_not_a_server_error(qiao):
    _app, admin = qiao
    seed_crm(admin)
    too_big = 2**63
    loans = "/api/v1/apps/crm/forms/loan_case/records"
    answers = [admin.get(f"{loans}/{too_big}"),
               admin.post(loans, json={"customer": too_big}),
               admin.get(loans, params={"filter": json.dumps(
                   {"field": "id", "op": "eq", "value": too_big})})]
    assert [r.status_code < 500 for r in answers] == [True] * 3


def test_bug_2_a_nul_character_in_text_is_not_a_server_error(qiao):
    _app, admin = qiao
    seed_crm(admin)
    customers = "/api/v1/apps/crm/forms/customer/records"
    answers = [admin.post(customers, json={"name": "a\x00b"}),
               admin.get(customers, params={"filter": json.dumps(
                   {"field": "name", "op": "eq", "value": "a\x00"})})]
    assert [r.status_code < 500 for r in answers] == [True] * 2


def test_bug_3_and_with_a_number_is_a_query_error_on_a_form_with_encrypted_fields(qiao):
    _app, admin = qiao
    seed_crm(admin)
    answer = admin.get("/api/v1/apps/crm/forms/loan_case/records",
                       params={"filter": json.dumps({"and": 1.5})})
    assert answer.status_code == 422
