"""To-dos are handed on like a flow's tasks: the assignee transfers one for good or
delegates it (the delegate's completion hands it back), a manager reassigns one; each
writes ``task.reassigned`` — through the API and on the task page."""

from __future__ import annotations

from fastapi.testclient import TestClient
from sqlalchemy import select

from platform_core.models import OutboxEvent
from platform_core.security.auth import SESSION_COOKIE, start_session
from tests.engine_flows.flows_setup import API, ok
from tests.engine_flows.test_todo import _todo


def _reassigned(world):
    with world.db.read() as s:
        return [(p["how"], p["previous_assignee_id"], p["assignee_id"]) for p in s.execute(
            select(OutboxEvent.payload).where(OutboxEvent.event_type == "task.reassigned")
            .order_by(OutboxEvent.id)).scalars()]


def test_a_todo_is_transferred_for_good(world):
    alice, bob = world.user("alice", "sales"), world.user("bob", "sales")
    task_id = _todo(world, world.case(), strategy="users", users=["alice"])
    ok(world.as_("bob").post(f"{API}/tasks/{task_id}/transfer", json={"to": bob}), 404)
    done = ok(world.as_("alice").post(f"{API}/tasks/{task_id}/transfer", json={"to": bob}))
    assert done["task"]["assignee_id"] == bob
    assert world.open_tasks("alice") == [] and [t["id"] for t in world.open_tasks("bob")] \
        == [task_id]
    # alice is no longer part of it; bob completes it and it is done for good
    ok(world.as_("alice").post(f"{API}/tasks/{task_id}/complete", json={}), 404)
    world.act("bob", task_id)
    assert _reassigned(world) == [("transferred", alice, bob)]


def test_a_delegated_todo_comes_back_to_its_owner(world):
    alice, carol = world.user("alice", "sales"), world.user("carol", "sales")
    task_id = _todo(world, world.case(), strategy="users", users=["alice"])
    self_delegation = world.as_("alice").post(f"{API}/tasks/{task_id}/delegate",
                                              json={"to": alice})
    assert self_delegation.status_code == 422
    ok(world.as_("alice").post(f"{API}/tasks/{task_id}/delegate", json={"to": carol}))
    again = world.as_("carol").post(f"{API}/tasks/{task_id}/transfer", json={"to": alice})
    assert again.status_code == 409  # a delegated to-do goes back, not onwards
    world.act("carol", task_id, comment="已电话回访")  # the delegate's part is done
    assert [t["id"] for t in world.open_tasks("alice")] == [task_id]  # back, still open
    world.act("alice", task_id)
    assert world.open_tasks("alice") == []
    assert _reassigned(world) == [("delegated", alice, carol),
                                  ("delegation_resolved", carol, alice)]


def test_a_manager_reassigns_an_unassigned_todo_and_bad_targets_are_refused(world):
    rita = world.user("rita", "risk")
    task_id = _todo(world, world.case(), strategy="field", field="owner_user")  # nobody
    refused = world.admin.post(f"{API}/tasks/{task_id}/reassign", json={"to": 999_999})
    assert refused.status_code == 422 and "does not exist" in refused.json()["detail"]
    ok(world.admin.post(f"{API}/tasks/{task_id}/reassign", json={"to": rita}))
    assert [t["id"] for t in world.open_tasks("rita")] == [task_id]
    assert _reassigned(world) == [("reassigned", None, rita)]


def _pages_of(world, name):
    """A signed-in browser session of ``name`` (cookie) and its CSRF token."""
    ctx = world.app.state.qiao
    with world.db.write() as s:
        cookie, csrf = start_session(s, ctx.settings, ctx.secret_key,
                                     user_id=world.users[name], client="testclient")
    client = TestClient(world.app, raise_server_exceptions=False, follow_redirects=False)
    client.cookies.set(SESSION_COOKIE, cookie)
    return client, csrf


def test_the_task_page_transfers_and_delegates_a_todo(world):
    alice, bob = world.user("alice", "sales"), world.user("bob", "sales")
    first = _todo(world, world.case(), strategy="users", users=["alice"])
    second = _todo(world, world.case(), strategy="users", users=["alice"])
    page, csrf = _pages_of(world, "alice")
    shown = page.get(f"/tasks/{first}")
    assert shown.status_code == 200
    assert 'value="transfer"' in shown.text and 'value="delegate"' in shown.text
    assert f'<option value="{bob}">' in shown.text and f'<option value="{alice}">' \
        not in shown.text  # colleagues, not oneself
    moved = page.post(f"/tasks/{first}", data={"action": "transfer", "to_user": str(bob),
                                               "csrf_token": csrf})
    assert moved.status_code == 303
    blank = page.post(f"/tasks/{second}", data={"action": "delegate", "to_user": "",
                                                "csrf_token": csrf})
    assert blank.status_code == 422 and "请选择一位同事" in blank.text
    assert page.post(f"/tasks/{second}", data={"action": "delegate", "to_user": str(bob),
                                               "csrf_token": csrf}).status_code == 303
    assert sorted(t["id"] for t in world.open_tasks("bob")) == [first, second]
    bobs, _ = _pages_of(world, "bob")
    delegated = bobs.get(f"/tasks/{second}").text
    assert 'value="transfer"' not in delegated  # it goes back to alice, not onwards
    assert 'value="transfer"' in bobs.get(f"/tasks/{first}").text  # bob's for good
    assert _reassigned(world) == [("transferred", alice, bob), ("delegated", alice, bob)]
