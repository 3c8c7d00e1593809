"""Schemathesis over the flow and task operations of an app's generated document, in
process, as an admin with a running instance and open tasks: no server error, every
response as documented. Same settings as tests/engine_forms/test_schemathesis.py."""

from __future__ import annotations

import logging

import pytest
from openapi_spec_validator import validate

from platform_core.app import create_app
from platform_core.settings import load_settings
from tests.engine_flows.flows_setup import API, APP, build_world, linear, ok
from tests.engine_forms.test_schemathesis import fuzz
from tests.security_setup import client_as

FLOW_OPERATIONS = ("/flows", "/tasks", "/progress", "/calendar")


@pytest.fixture
def world(db, tmp_path):
    app = create_app(load_settings(data_dir=tmp_path, api_rate_per_minute=1_000_000,
                                   background_jobs=False), db=db)
    world = build_world(app, db, client_as(app, db, "admin"))
    world.flow(linear("review", [
        {"id": "work", "type": "user_task", "name": "处理",
         "assignee": {"strategy": "initiator"}, "fields": {"editable": ["note"]}},
        {"id": "check", "type": "approval", "name": "审核", "mode": "all",
         "assignee": {"strategy": "initiator"}}]))
    return world


def test_the_app_document_has_the_flow_operations_and_validates(world):
    doc = ok(world.admin.get(f"{APP}/openapi.json"))
    validate(doc)
    paths = doc["paths"]
    assert "/api/v1/apps/bank/flows/{flow}/instances" in paths
    assert "/api/v1/tasks/{task_id}/complete" in paths
    assert "/api/v1/apps/bank/forms/case/records/{record_id}/progress" in paths
    body = paths["/api/v1/tasks/{task_id}/complete"]["post"]["requestBody"]
    assert body["content"]["application/json"]["schema"]["$ref"].endswith("CompleteBody")


def test_an_app_without_flows_documents_no_tasks(world):
    ok(world.admin.post(f"{API}/apps", json={"key": "empty", "name": "空"}), 201)
    assert "/api/v1/tasks" not in ok(world.admin.get(f"{API}/apps/empty/openapi.json")
                                     )["paths"]


def test_flow_and_task_operations_conform_to_the_app_document(world, caplog):
    record = world.case(title="甲")
    run = world.start("review", record)
    task = ok(world.admin.get(f"{API}/tasks"))["items"][0]  # the initiator's
    seeds = {"flow": "review", "run_id": run["id"], "task_id": task["id"],
             "record_id": record, "version": 1}
    caplog.set_level(logging.CRITICAL, logger="qiao.http")
    failures = fuzz(world.app, world.admin, "bank",
                    wanted=lambda path: any(p in path for p in FLOW_OPERATIONS),
                    seeds=lambda path: {k: v for k, v in seeds.items()
                                        if "{" + k + "}" in path})
    assert not failures, "\n\n".join(failures)
