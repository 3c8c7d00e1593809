"""Flow and task events reach webhook subscribers: a real receiver on loopback gets
``flow.step_entered`` and ``task.completed`` once each, signed, with the step and task."""

from __future__ import annotations

import pytest

from platform_core.app import create_app
from platform_core.outbox import Dispatcher
from platform_core.settings import load_settings
from platform_core.webhooks.background import http_client, run_background
from platform_core.webhooks.events import WebhookFanOut
from platform_core.webhooks.signing import verify
from tests.engine_flows.flows_setup import APP, build_world, linear, ok
from tests.platform_core.test_webhooks import Receiver
from tests.security_setup import client_as


@pytest.fixture
def world(db, tmp_path):
    settings = load_settings(data_dir=tmp_path, background_jobs=False,
                             webhook_allow_hosts="127.0.0.1")
    app = create_app(settings, db=db)
    return build_world(app, db, client_as(app, db, "admin"))


def test_a_subscriber_gets_step_entered_and_task_completed_once_signed(world):
    receiver = Receiver()
    try:
        hook = ok(world.admin.post(f"{APP}/webhooks", json={
            "name": "CRM", "url": receiver.url,
            "event_types": ["flow.step_entered", "task.completed"]}), 201)
        world.user("alice", "sales")
        world.flow(linear("intake", [{"id": "call", "type": "user_task", "name": "电话回访",
                                      "assignee": {"strategy": "users",
                                                   "users": ["alice"]}}]))
        run = world.start("intake", world.case(title="甲"))
        world.act("alice", world.task_of("alice", run["id"])["id"], comment="已联系")
        ctx = world.app.state.qiao
        dispatcher = Dispatcher(ctx.db, [WebhookFanOut()], worker_id="tests")
        with http_client() as client:
            while run_background(ctx, dispatcher=dispatcher, client=client):
                pass
            assert run_background(ctx, dispatcher=dispatcher, client=client) == 0
    finally:
        receiver.close()
    bodies = receiver.bodies()
    entered = [b["data"]["node"] for b in bodies if b["type"] == "flow.step_entered"]
    assert entered == ["start", "call", "end"]
    [done] = [b for b in bodies if b["type"] == "task.completed"]
    assert (done["data"]["step"], done["data"]["comment"], done["data"]["run_id"]) == (
        "电话回访", "已联系", run["id"])
    assert done["record_id"] == run["record_id"]
    for request in receiver.requests:
        headers = request["headers"]
        assert verify(hook["secret"], headers["X-Qiao-Timestamp"], request["body"],
                      headers["X-Qiao-Signature"])
