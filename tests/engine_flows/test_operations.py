"""Each operation on a task or an instance, as the people involved do it through the API:
what happens to the flow, who has the work next, and the history and outbox events each
operation leaves behind."""

from __future__ import annotations

import pytest

from tests.engine_flows.flows_setup import APP, linear, ok

ALICE = {"strategy": "users", "users": ["alice"]}
BOB = {"strategy": "users", "users": ["bob"]}
CAROL = {"strategy": "users", "users": ["carol"]}


def _review_flow():
    """apply (alice) → review (bob) → sign (carol) → end; review's reject → fix (alice)."""
    return {"key": "loan", "name": "放款", "form": "case", "nodes": [
        {"id": "start", "type": "start"},
        {"id": "apply", "type": "user_task", "name": "申请", "assignee": ALICE,
         "fields": {"editable": ["note", "amount"], "required": ["note"]}},
        {"id": "review", "type": "approval", "name": "风控审核", "assignee": BOB},
        {"id": "fix", "type": "user_task", "name": "补件", "assignee": ALICE,
         "fields": {"editable": ["note"]}},
        {"id": "sign", "type": "approval", "name": "签批", "assignee": CAROL},
        {"id": "end", "type": "end"}],
        "edges": [{"from": "start", "to": "apply"}, {"from": "apply", "to": "review"},
                  {"from": "review", "to": "sign", "on": "approve"},
                  {"from": "review", "to": "fix", "on": "reject"},
                  {"from": "fix", "to": "review"}, {"from": "sign", "to": "end"}]}


@pytest.fixture
def loan(world):
    """The review flow published, its people, and one instance started by alice."""
    world.user("alice", "sales")
    world.user("bob", "risk")
    world.user("carol", "risk")
    world.user("dave", "sales")
    world.flow(_review_flow())
    return world.start("loan", world.case(title="贷款", amount="100.00"), who="alice")


def _apply(world, run, note="材料齐全"):
    task = world.task_of("alice", run["id"])
    world.act("alice", task["id"], data={"note": note})
    return task


def _types_after(world, run_id, mark):
    """The run's outbox event types after the first ``mark`` counted events."""
    return world.event_types(run_id)[mark:]


def test_complete_with_outcome_comment_and_data(world, loan):
    rec = loan["record_id"]
    task = world.task_of("alice", loan["id"])
    mark = len(world.event_types(loan["id"]))
    done = world.act("alice", task["id"], outcome="submit", comment="请审核",
                     data={"note": "齐了", "amount": "120.50"})
    assert done["task"]["status"] == "done" and done["task"]["comment"] == "请审核"
    assert [s["node"] for s in done["instance"]["current"]] == ["review"]
    assert world.record(rec)["note"] == "齐了" and world.record(rec)["amount"] == "120.50"
    assert _types_after(world, loan["id"], mark) == [
        "task.completed", "flow.step_left", "flow.step_entered", "task.created"]
    completed = [p for t, p in world.events(loan["id"]) if t == "task.completed"][0]
    assert completed["outcome"] == "submit" and completed["comment"] == "请审核"
    assert {"task_completed", "step_left"} <= set(world.history(loan["id"]))


def test_approve_moves_on_and_reject_takes_the_reject_edge(world, loan):
    _apply(world, loan)
    world.act("bob", world.task_of("bob", loan["id"])["id"], "reject", comment="缺流水")
    assert world.current("loan", loan["id"]) == ["fix"]
    left = [p for t, p in world.events(loan["id"]) if t == "flow.step_left"
            and p["node"] == "review"]
    assert left[-1]["outcome"] == "reject"
    world.act("alice", world.task_of("alice", loan["id"])["id"])
    world.act("bob", world.task_of("bob", loan["id"])["id"], "approve")
    assert world.current("loan", loan["id"]) == ["sign"]
    world.act("carol", world.task_of("carol", loan["id"])["id"], "approve")
    assert world.instance("loan", loan["id"])["status"] == "completed"
    assert world.event_types(loan["id"])[-1] == "flow.completed"


def test_reject_to_a_chosen_earlier_step(world, loan):
    _apply(world, loan)
    world.act("bob", world.task_of("bob", loan["id"])["id"], "approve")
    sign = world.task_of("carol", loan["id"])
    # a step this instance never passed, a pass-through node and nonsense are refused
    for bad in ("fix", "start", "nowhere"):
        world.act("carol", sign["id"], "reject", status=422, to=bad)
    mark = len(world.event_types(loan["id"]))
    world.act("carol", sign["id"], "reject", to="apply", comment="重新申请")
    assert world.current("loan", loan["id"]) == ["apply"]
    assert world.task_of("alice", loan["id"])["node"] == "apply"
    assert world.open_tasks("carol") == []
    assert _types_after(world, loan["id"], mark) == [
        "task.completed", "flow.step_entered", "task.created"]
    assert "went_back" in world.history(loan["id"])


def test_return_to_the_previous_step(world, loan):
    _apply(world, loan)
    world.act("bob", world.task_of("bob", loan["id"])["id"], "approve")
    mark = len(world.event_types(loan["id"]))
    world.act("carol", world.task_of("carol", loan["id"])["id"], "return", comment="请复核")
    assert world.current("loan", loan["id"]) == ["review"]
    assert _types_after(world, loan["id"], mark) == [
        "task.completed", "flow.step_entered", "task.created"]
    assert "went_back" in world.history(loan["id"])
    assert world.task_of("bob", loan["id"])["node"] == "review"
    returned = world.instance("loan", loan["id"])["tasks"]
    assert [t["outcome"] for t in returned if t["node"] == "sign"] == ["return"]
    # the first user step has nothing before it
    world2 = world.start("loan", world.case(), who="alice")
    world.act("alice", world.task_of("alice", world2["id"])["id"], "return", status=422)


def test_transfer_hands_the_task_over_for_good(world, loan):
    task = world.task_of("alice", loan["id"])
    world.act("alice", task["id"], "transfer", to=world.users["dave"])
    assert world.open_tasks("alice") == []
    assert world.task_of("dave", loan["id"])["id"] == task["id"]
    world.act("alice", task["id"], status=404, data={"note": "x"})
    world.act("dave", task["id"], data={"note": "接手"})
    assert world.current("loan", loan["id"]) == ["review"]
    moved = [p for t, p in world.events(loan["id"]) if t == "task.reassigned"]
    assert moved == [moved[0]] and moved[0]["how"] == "transferred"
    assert moved[0]["assignee_id"] == world.users["dave"]
    assert "transferred" in world.history(loan["id"])
    # to a user that does not exist
    other = world.start("loan", world.case(), who="alice")
    world.act("alice", world.task_of("alice", other["id"])["id"], "transfer", status=422,
              to=999999)


def test_delegate_works_the_task_and_hands_it_back_to_the_owner(world, loan):
    task = world.task_of("alice", loan["id"])
    world.act("alice", task["id"], "delegate", to=world.users["dave"])
    # still in alice's inbox, as delegated: with dave, hers again when he is done
    [waiting] = world.open_tasks("alice")
    assert (waiting["assignee_id"], waiting["owner_id"]) == (world.users["dave"],
                                                             world.users["alice"])
    delegated = world.task_of("dave", loan["id"])
    assert delegated["owner_id"] == world.users["alice"]
    world.act("alice", task["id"], status=403, data={"note": "x"})  # it is with dave now
    world.act("dave", task["id"], data={"note": "代办完成"}, comment="请过目")
    # back with alice, the step has not moved
    assert world.current("loan", loan["id"]) == ["apply"]
    back = world.task_of("alice", loan["id"])
    assert back["id"] == task["id"] and back["owner_id"] is None
    assert world.open_tasks("dave") == []
    assert world.record(loan["record_id"])["note"] == "代办完成"
    world.act("alice", task["id"])
    assert world.current("loan", loan["id"]) == ["review"]
    hows = [p["how"] for t, p in world.events(loan["id"]) if t == "task.reassigned"]
    assert hows == ["delegated", "delegation_resolved"]
    assert {"delegated", "delegation_resolved"} <= set(world.history(loan["id"]))


def _signing(world, mode, signers):
    world.flow(linear("board", [{"id": "vote", "type": "approval", "mode": mode,
                                 "assignee": {"strategy": "users", "users": signers}}]))
    return world.start("board", world.case())


def test_add_signer_to_an_all_approval(world, loan):  # noqa: ARG001 - the people
    run = _signing(world, "all", ["bob"])
    bob = world.task_of("bob", run["id"])
    world.act("bob", bob["id"], "add-signer", user=world.users["carol"])
    world.act("bob", bob["id"], "add-signer", status=409, user=world.users["carol"])
    world.act("bob", bob["id"], "approve")
    assert world.current("board", run["id"]) == ["vote"]  # carol still has to sign
    world.act("carol", world.task_of("carol", run["id"])["id"], "approve")
    assert world.instance("board", run["id"])["status"] == "completed"
    assert "task.signer_added" in world.event_types(run["id"])
    assert "signer_added" in world.history(run["id"])


def test_add_signer_to_an_any_approval(world, loan):  # noqa: ARG001
    run = _signing(world, "any", ["bob"])
    world.act("bob", world.task_of("bob", run["id"])["id"], "add-signer",
              user=world.users["carol"])
    world.act("carol", world.task_of("carol", run["id"])["id"], "approve")
    assert world.instance("board", run["id"])["status"] == "completed"
    assert world.open_tasks("bob") == []


def test_add_signer_to_a_sequential_approval_signs_next(world, loan):  # noqa: ARG001
    run = _signing(world, "sequential", ["bob", "carol"])
    bob = world.task_of("bob", run["id"])
    world.act("bob", bob["id"], "add-signer", user=world.users["dave"])
    assert "task.signer_added" in world.event_types(run["id"])
    world.act("bob", bob["id"], "approve")
    assert world.open_tasks("carol") == []
    world.act("dave", world.task_of("dave", run["id"])["id"], "approve")
    world.act("carol", world.task_of("carol", run["id"])["id"], "approve")
    done = [t["completed_by"] for t in world.instance("board", run["id"])["tasks"]]
    assert done == [world.users[n] for n in ("bob", "dave", "carol")]


def test_add_signer_is_refused_on_a_single_approval(world, loan):
    _apply(world, loan)
    task = world.task_of("bob", loan["id"])
    body = world.act("bob", task["id"], "add-signer", status=403, user=world.users["carol"])
    assert body["code"] == "operation_not_allowed"


def test_claim_by_a_candidate_of_a_role(world):
    for name in ("r1", "r2"):
        world.user(name, "risk")
    world.user("s1", "sales")
    world.flow(linear("pool", [{"id": "check", "type": "user_task",
                                "assignee": {"strategy": "role", "role": "risk"}}]))
    run = world.start("pool", world.case())
    offered = world.task_of("r1", run["id"])
    assert offered["assignee_id"] is None
    assert offered["candidates"] == [world.users["r1"], world.users["r2"]]
    assert world.task_of("r2", run["id"])["id"] == offered["id"]
    assert world.open_tasks("s1") == []
    world.act("s1", offered["id"], "claim", status=404)
    world.act("r1", offered["id"], "claim")
    assert world.open_tasks("r2") == []
    world.act("r2", offered["id"], "claim", status=404)
    world.act("r2", offered["id"], status=404)
    world.act("r1", offered["id"])
    assert world.instance("pool", run["id"])["status"] == "completed"
    claimed = [p for t, p in world.events(run["id"]) if t == "task.reassigned"]
    assert claimed[0]["how"] == "claimed" and claimed[0]["assignee_id"] == world.users["r1"]


def _withdraw(world, who, run_id, status=200):
    return ok(world.as_(who).post(f"{APP}/flows/loan/instances/{run_id}/withdraw"), status)


def test_withdraw_by_who_completed_the_previous_step(world, loan):
    _apply(world, loan)
    _withdraw(world, "bob", loan["id"], 403)  # bob did not submit it
    mark = len(world.event_types(loan["id"]))
    _withdraw(world, "alice", loan["id"])
    assert world.current("loan", loan["id"]) == ["apply"]
    assert world.open_tasks("bob") == []
    assert world.task_of("alice", loan["id"])["node"] == "apply"
    assert "withdrawn" in world.history(loan["id"])
    assert _types_after(world, loan["id"], mark) == [
        "task.cancelled", "flow.withdrawn", "flow.step_entered", "task.created"]


def test_withdraw_is_refused_once_the_next_step_was_acted_on(world, loan):
    _apply(world, loan)
    world.act("bob", world.task_of("bob", loan["id"])["id"], "approve")
    # alice submitted apply, but bob has already decided: the current step is carol's
    _withdraw(world, "alice", loan["id"], 403)
    _withdraw(world, "bob", loan["id"])  # bob may still take back his approval
    world.act("bob", world.task_of("bob", loan["id"])["id"], "approve")
    world.act("carol", world.task_of("carol", loan["id"])["id"], "return")
    # carol returned the work to bob: nothing for bob to withdraw now
    _withdraw(world, "bob", loan["id"], 403)


def test_withdraw_is_refused_when_the_next_step_has_started(world):
    world.user("alice", "sales")
    for name in ("r1", "r2"):
        world.user(name, "risk")
    world.flow(linear("loan", [
        {"id": "apply", "type": "user_task", "assignee": ALICE},
        {"id": "vote", "type": "approval", "mode": "all",
         "assignee": {"strategy": "users", "users": ["r1", "r2"]}}]))
    run = world.start("loan", world.case(), who="alice")
    world.act("alice", world.task_of("alice", run["id"])["id"])
    world.act("r1", world.task_of("r1", run["id"])["id"], "approve")
    body = _withdraw(world, "alice", run["id"], 409)
    assert "withdrawn" in body["detail"]
    assert world.current("loan", run["id"]) == ["vote"]


def _cancel(world, who, run_id, status=200):
    return ok(world.as_(who).post(f"{APP}/flows/loan/instances/{run_id}/cancel",
                                  json={"reason": "客户放弃"}), status)


def test_cancel_by_the_initiator(world, loan):
    _cancel(world, "dave", loan["id"], 403)  # may read the case, but did not start it
    _cancel(world, "bob", loan["id"], 403)
    body = _cancel(world, "alice", loan["id"])
    assert body["status"] == "cancelled" and body["current"] == []
    assert world.open_tasks("alice") == []
    assert world.event_types(loan["id"])[-1] == "flow.cancelled"
    assert world.history(loan["id"])[-1] == "flow_cancelled"
    _cancel(world, "alice", loan["id"], 409)  # already over
    # the record can run the flow again
    again = world.start("loan", loan["record_id"], who="alice")
    assert again["status"] == "running"


def test_cancel_by_a_flow_manager(world, loan):
    world.role("flow_admin", ("read", "update", "manage"))
    world.user("boss", "flow_admin")
    _cancel(world, "boss", loan["id"])
    assert world.instance("loan", loan["id"])["status"] == "cancelled"


def test_reassign_by_an_administrator_only(world, loan):
    task = world.task_of("alice", loan["id"])
    body = world.act("alice", task["id"], "reassign", status=403, to=world.users["dave"])
    assert "manage" in body["detail"]
    world.act("dave", task["id"], "reassign", status=404, to=world.users["dave"])
    ok(world.admin.post(f"/api/v1/tasks/{task['id']}/reassign", json={"to": world.users["dave"]}))
    assert world.open_tasks("alice") == []
    assert world.task_of("dave", loan["id"])["id"] == task["id"]
    moved = [p for t, p in world.events(loan["id"]) if t == "task.reassigned"]
    assert [p["how"] for p in moved] == ["reassigned"]
    assert "reassigned" in world.history(loan["id"])


def test_allowed_actions_limit_what_a_step_offers(world):
    world.user("alice", "sales")
    world.user("dave", "sales")
    world.flow(linear("strict", [{"id": "only", "type": "user_task", "assignee": ALICE,
                                  "allowed_actions": ["complete"]}]))
    run = world.start("strict", world.case())
    task = world.task_of("alice", run["id"])
    for operation, body in (("transfer", {"to": world.users["dave"]}),
                            ("delegate", {"to": world.users["dave"]})):
        refused = world.act("alice", task["id"], operation, status=403, **body)
        assert refused["code"] == "operation_not_allowed"
    world.act("alice", task["id"])


def _branches_flow(world):
    """split → (a1 → a2) and (b1) → join → after."""
    for name in ("alice", "bob"):
        world.user(name, "sales")

    def task(node_id, who):
        return {"id": node_id, "type": "user_task",
                "assignee": {"strategy": "users", "users": [who]}}

    world.flow({"key": "branches", "name": "并行", "form": "case", "nodes": [
        {"id": "start", "type": "start"}, task("prep", "alice"),
        {"id": "split", "type": "parallel"}, task("a1", "alice"), task("a2", "alice"),
        task("b1", "bob"), {"id": "join", "type": "join"}, task("after", "alice"),
        {"id": "end", "type": "end"}], "edges": [
        {"from": "start", "to": "prep"}, {"from": "prep", "to": "split"},
        {"from": "split", "to": "a1"}, {"from": "a1", "to": "a2"},
        {"from": "split", "to": "b1"}, {"from": "a2", "to": "join"},
        {"from": "b1", "to": "join"}, {"from": "join", "to": "after"},
        {"from": "after", "to": "end"}]})
    run = world.start("branches", world.case())
    world.act("alice", world.task_of("alice", run["id"])["id"])  # prep
    return run


def _task_at(world, who, run_id, node):
    [task] = [t for t in world.open_tasks(who) if t["run_id"] == run_id and t["node"] == node]
    return task


def test_return_inside_a_parallel_branch_leaves_the_other_branch_alone(world):
    run = _branches_flow(world)
    world.act("alice", _task_at(world, "alice", run["id"], "a1")["id"])
    world.act("alice", _task_at(world, "alice", run["id"], "a2")["id"], "return")
    assert world.current("branches", run["id"]) == ["a1", "b1"]  # bob's work is still there
    world.act("bob", world.task_of("bob", run["id"])["id"])
    world.act("alice", _task_at(world, "alice", run["id"], "a1")["id"])
    world.act("alice", _task_at(world, "alice", run["id"], "a2")["id"])
    assert world.current("branches", run["id"]) == ["after"]


def test_return_after_the_other_branch_reached_the_join(world):
    run = _branches_flow(world)
    world.act("bob", world.task_of("bob", run["id"])["id"])
    world.act("alice", _task_at(world, "alice", run["id"], "a1")["id"])
    world.act("alice", _task_at(world, "alice", run["id"], "a2")["id"], "reject", to="a1")
    assert world.current("branches", run["id"]) == ["a1", "join"]
    world.act("alice", _task_at(world, "alice", run["id"], "a1")["id"])
    world.act("alice", _task_at(world, "alice", run["id"], "a2")["id"])
    assert world.current("branches", run["id"]) == ["after"]  # bob's arrival still counts


def test_going_back_before_the_split_restarts_both_branches(world):
    run = _branches_flow(world)
    world.act("bob", world.task_of("bob", run["id"])["id"])
    a1 = _task_at(world, "alice", run["id"], "a1")
    world.act("alice", a1["id"], "reject", to="b1", status=422)  # not upstream of a1
    world.act("alice", a1["id"], "reject", to="prep")
    assert world.current("branches", run["id"]) == ["prep"]
    world.act("alice", world.task_of("alice", run["id"])["id"])
    assert world.current("branches", run["id"]) == ["a1", "b1"]
    world.act("bob", world.task_of("bob", run["id"])["id"])
    world.act("alice", _task_at(world, "alice", run["id"], "a1")["id"])
    assert world.current("branches", run["id"]) == ["a2", "join"]
    world.act("alice", _task_at(world, "alice", run["id"], "a2")["id"])
    assert world.current("branches", run["id"]) == ["after"]


def test_withdraw_inside_a_parallel_branch_keeps_the_join(world):
    run = _branches_flow(world)
    world.act("bob", world.task_of("bob", run["id"])["id"])
    world.act("alice", _task_at(world, "alice", run["id"], "a1")["id"])
    ok(world.as_("alice").post(f"{APP}/flows/branches/instances/{run['id']}/withdraw"))
    assert world.current("branches", run["id"]) == ["a1", "join"]
    world.act("alice", _task_at(world, "alice", run["id"], "a1")["id"])
    world.act("alice", _task_at(world, "alice", run["id"], "a2")["id"])
    assert world.current("branches", run["id"]) == ["after"]
