"""The task inbox (open / overdue / done, cursor pages), one task as its step shows the
record, and a record's progress: which step, since when, who."""

from __future__ import annotations

from tests.engine_flows.flows_setup import API, APP, linear, ok

ALICE = {"strategy": "users", "users": ["alice"]}


def _inbox(world, who, **params):
    return ok(world.as_(who).get(f"{API}/tasks", params={"assignee": "me", **params}))


def _all_pages(world, who, **params):
    page, ids, pages = _inbox(world, who, **params), [], 0
    while True:
        ids += [t["id"] for t in page["items"]]
        pages += 1
        if not page["next"]:
            return ids, pages
        page = ok(world.as_(who).get(page["next"]))


def test_open_and_done_tasks_page_by_cursor(world):
    world.user("alice", "sales")
    world.user("bob", "sales")
    world.flow(linear("todo", [{"id": "work", "type": "user_task", "assignee": ALICE}]))
    runs = [world.start("todo", world.case(title=f"第{i}件")) for i in range(5)]
    ids, pages = _all_pages(world, "alice", status="open", limit=2)
    assert pages == 3 and len(ids) == 5 == len(set(ids))
    assert ids == sorted(ids, reverse=True)  # newest first
    assert _inbox(world, "bob", status="open")["items"] == []
    for run in runs[:2]:
        world.act("alice", world.task_of("alice", run["id"])["id"])
    done, _ = _all_pages(world, "alice", status="done", limit=1)
    assert len(done) == 2
    assert len(_inbox(world, "alice", status="open")["items"]) == 3
    everything = _inbox(world, "alice", status="all")["items"]
    assert sorted(t["status"] for t in everything) == ["done", "done", "open", "open", "open"]
    filtered = _inbox(world, "alice", status="open", flow="other")["items"]
    assert filtered == []


def test_overdue_tasks_are_those_open_past_due(world, clock):
    world.user("alice", "sales")
    world.flow(linear("quick", [{"id": "work", "type": "user_task", "assignee": ALICE,
                                 "sla": {"hours": 2}}]))
    late = world.start("quick", world.case())
    clock.advance(hours=1)
    world.start("quick", world.case())
    clock.advance(hours=1, seconds=30)  # the first is 30 s past due, the second is not
    overdue = _inbox(world, "alice", status="overdue")["items"]
    assert [t["run_id"] for t in overdue] == [late["id"]] and overdue[0]["overdue"]
    assert len(_inbox(world, "alice", status="open")["items"]) == 2


def _detail_flow(world):
    # this role may not read the amount nor the region anywhere
    world.role("hides_amount", ("read", "update"), fields={"amount": "hidden",
                                                           "region": "hidden"})
    world.user("alice", "hides_amount")
    world.flow(linear("detail", [{"id": "work", "type": "user_task", "name": "核对",
                                  "assignee": ALICE, "fields": {
                                      "editable": ["note"], "readonly": ["amount"],
                                      "hidden": ["secret_note"], "required": ["note"]}}]))


def test_task_detail_hides_step_hidden_fields_and_masks_masked_ones(world):
    _detail_flow(world)
    rec = world.case(title="王五", amount="88.00", region="east", secret_note="内部",
                     mobile="13812345678")
    run = world.start("detail", rec)
    task = world.task_of("alice", run["id"])
    detail = ok(world.as_("alice").get(f"{API}/tasks/{task['id']}"))
    data = detail["record"]["data"]
    assert "secret_note" not in data  # hidden at this step
    assert data["mobile"] == "138****5678"  # masked: the role may not unmask
    assert data["amount"] == "88.00"  # the role hides it, the step shows it read-only
    assert "region" not in data  # hidden by the role, not shown by the step
    assert data["title"] == "王五"
    assert detail["step"]["fields"]["editable"] == ["note"]
    assert detail["step"]["outcomes"] == ["submit"] and detail["step"]["name"] == "核对"
    # the administrator (may unmask) sees the clear number, still not the hidden field
    admin_view = ok(world.admin.get(f"{API}/tasks/{task['id']}"))["record"]["data"]
    assert admin_view["mobile"] == "13812345678" and "secret_note" not in admin_view


def test_progress_shows_the_step_since_when_and_who(world, clock):
    world.user("alice", "sales")
    world.flow(linear("prog", [{"id": "work", "type": "user_task", "name": "资料收集",
                                "assignee": ALICE, "sla": {"hours": 8}}]))
    rec = world.case()
    run = world.start("prog", rec)
    progress = ok(world.admin.get(f"{APP}/forms/case/records/{rec}/progress"))
    assert progress["record_id"] == rec
    [flow] = progress["flows"]
    assert flow["flow"] == "prog" and flow["status"] == "running"
    [step] = flow["current"]
    assert step["node"] == "work" and step["name"] == "资料收集"
    assert step["since"] == "2031-03-03T02:00:00Z"
    assert step["due_at"] == "2031-03-03T10:00:00Z" and not step["overdue"]
    assert step["assignees"] == [{"id": world.users["alice"], "name": "alice"}]
    clock.advance(hours=1)
    world.act("alice", world.task_of("alice", run["id"])["id"])
    [flow] = ok(world.admin.get(f"{APP}/forms/case/records/{rec}/progress"))["flows"]
    assert flow["status"] == "completed" and flow["current"] == []
    assert flow["ended_at"] == "2031-03-03T03:00:00Z"
