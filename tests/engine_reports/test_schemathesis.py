"""Schemathesis over the report and dashboard operations of an app's generated document,
in process, as an admin with a saved report and dashboard: no server error, every
response as documented. Same settings as tests/engine_forms/test_schemathesis.py."""

from __future__ import annotations

import logging

import pytest
from openapi_spec_validator import validate

from platform_core.app import create_app
from platform_core.settings import load_settings
from tests.engine_flows.flows_setup import APP, build_world, ok
from tests.engine_forms.test_schemathesis import fuzz
from tests.security_setup import client_as

REPORT = {"key": "by_region", "name": "区域", "source": {"form": "case"},
          "dimensions": [{"field": "region"}, {"field": "maturity_date", "bucket": "month"}],
          "measures": [{"agg": "sum", "field": "amount"}, {"agg": "count"}],
          "parameters": [{"key": "period", "type": "date_range", "field": "maturity_date"}],
          "chart": {"type": "stacked_bar"}}


@pytest.fixture
def world(db, tmp_path):
    app = create_app(load_settings(data_dir=tmp_path, api_rate_per_minute=1_000_000,
                                   background_jobs=False), db=db)
    world = build_world(app, db, client_as(app, db, "admin"))
    world.case(region="华东", amount="12.30", maturity_date="2026-12-31")
    ok(world.admin.post(f"{APP}/reports", json=REPORT), 201)
    ok(world.admin.post(f"{APP}/dashboards", json={
        "key": "board", "name": "看板", "widgets": [{"report": "by_region"}]}), 201)
    return world


def test_the_app_document_has_the_report_operations_and_validates(world):
    doc = ok(world.admin.get(f"{APP}/openapi.json"))
    validate(doc)
    for path in ("/api/v1/apps/bank/reports/{report}/data",
                 "/api/v1/apps/bank/dashboards/{dashboard}/data",
                 "/api/v1/reports/meta-schema"):
        assert path in doc["paths"], path


def test_report_operations_conform_to_the_app_document(world, caplog):
    seeds = {"report": "by_region", "dashboard": "board"}
    caplog.set_level(logging.CRITICAL, logger="qiao.http")
    failures = fuzz(world.app, world.admin, "bank",
                    wanted=lambda path: "/reports" in path or "/dashboards" in path,
                    seeds=lambda path: {k: v for k, v in seeds.items()
                                        if "{" + k + "}" in path})
    assert not failures, "\n\n".join(failures)
