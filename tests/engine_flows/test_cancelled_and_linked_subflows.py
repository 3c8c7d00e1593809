"""``task.cancelled``: every open task a run stops waiting for says so (an instance
cancelled, withdrawn, a step sent back, another signer deciding), so a rule or a
webhook can tell the person whose inbox lost it. And sub-flows on a linked record
(``record_field``): run over the record the relation names, checked when published."""

from __future__ import annotations

from tests.engine_flows.flows_setup import APP, CASE_FORM, linear, ok

RITA = {"strategy": "users", "users": ["rita"]}
ALICE = {"strategy": "users", "users": ["alice"]}


def _cancelled(world, run_id):
    return [p for t, p in world.events(run_id) if t == "task.cancelled"]


def test_cancelling_an_instance_cancels_its_tasks_with_an_event_each(world):
    world.user("alice", "sales")
    world.user("rita", "risk")
    world.flow(linear("two", [
        {"id": "split", "type": "parallel"},
        {"id": "a", "type": "user_task", "name": "甲", "assignee": ALICE},
        {"id": "b", "type": "user_task", "name": "乙", "assignee": RITA},
        {"id": "join", "type": "join"}],
        edges=[{"from": "start", "to": "split"}, {"from": "split", "to": "a"},
               {"from": "split", "to": "b"}, {"from": "a", "to": "join"},
               {"from": "b", "to": "join"}, {"from": "join", "to": "end"}]))
    run = world.start("two", world.case(), who="alice")
    tasks = {t["node"]: t["id"] for t in world.instance("two", run["id"])["tasks"]}
    ok(world.as_("alice").post(f"{APP}/flows/two/instances/{run['id']}/cancel",
                               json={"reason": "客户放弃"}))
    events = _cancelled(world, run["id"])
    assert sorted((e["task_id"], e["node"], e["assignee_id"]) for e in events) == sorted([
        (tasks["a"], "a", world.users["alice"]), (tasks["b"], "b", world.users["rita"])])
    assert {e["reason"] for e in events} == {"flow cancelled"}
    assert world.event_types(run["id"])[-1] == "flow.cancelled"
    assert world.open_tasks("rita") == []


def test_withdrawing_and_another_signer_deciding_cancel_tasks_too(world):
    world.user("alice", "sales")
    for name in ("r1", "r2"):
        world.user(name, "risk")
    world.flow(linear("vote", [
        {"id": "apply", "type": "user_task", "assignee": ALICE},
        {"id": "vote", "type": "approval", "mode": "any",
         "assignee": {"strategy": "users", "users": ["r1", "r2"]}},
        {"id": "sign", "type": "user_task", "assignee": ALICE}]))
    run = world.start("vote", world.case(), who="alice")
    world.act("alice", world.task_of("alice", run["id"])["id"])
    r1_task = world.task_of("r1", run["id"])["id"]
    ok(world.as_("alice").post(f"{APP}/flows/vote/instances/{run['id']}/withdraw"))
    withdrawn = _cancelled(world, run["id"])
    assert {e["task_id"] for e in withdrawn} >= {r1_task}
    assert all(e["node"] == "vote" and e["reason"].startswith("withdrawn") for e in withdrawn)
    assert len(withdrawn) == 2  # both signers' tasks
    world.act("alice", world.task_of("alice", run["id"])["id"])
    r2_task = world.task_of("r2", run["id"])["id"]
    world.act("r1", world.task_of("r1", run["id"])["id"], "approve")  # any one decides
    (sibling,) = _cancelled(world, run["id"])[2:]
    assert (sibling["task_id"], sibling["assignee_id"], sibling["reason"]) == (
        r2_task, world.users["r2"], "decided by another signer")


def test_a_completed_task_is_never_reported_cancelled(world):
    world.user("alice", "sales")
    world.flow(linear("one", [{"id": "work", "type": "user_task", "assignee": ALICE}]))
    run = world.start("one", world.case(), who="alice")
    world.act("alice", world.task_of("alice", run["id"])["id"])
    assert world.instance("one", run["id"])["status"] == "completed"
    assert _cancelled(world, run["id"]) == []


CUSTOMER_FORM = {"key": "customer", "name": "客户", "title_field": "name", "fields": [
    {"key": "name", "label": "姓名", "type": "text", "required": True}]}


def _linked_forms(world):
    """A customer form, and the case form with a ``customer`` relation to it."""
    ok(world.admin.post(f"{APP}/forms", json=CUSTOMER_FORM), 201)
    ok(world.admin.post(f"{APP}/forms/customer/publish"))
    case = {**CASE_FORM, "fields": [*CASE_FORM["fields"], {
        "key": "customer", "label": "客户", "type": "relation", "target": "customer"}]}
    ok(world.admin.put(f"{APP}/forms/case", json=case))
    ok(world.admin.post(f"{APP}/forms/case/publish"))


def test_a_subflow_on_the_linked_record_runs_over_it_and_resumes_the_parent(world):
    world.user("alice", "sales")
    world.user("rita", "risk")
    _linked_forms(world)
    world.flow({**linear("kyc", [{"id": "verify", "type": "user_task", "assignee": RITA}]),
                "form": "customer"})
    world.flow(linear("loan", [
        {"id": "check", "type": "subflow", "flow": "kyc", "record_field": "customer"},
        {"id": "after", "type": "user_task", "assignee": ALICE}]))
    customer = ok(world.admin.post(f"{APP}/forms/customer/records",
                                   json={"name": "王五"}), 201)["id"]
    case = world.case(customer=customer)
    run = world.start("loan", case)
    assert world.current("loan", run["id"]) == ["check"]
    (task,) = world.open_tasks("rita")
    child = world.instance("kyc", task["run_id"])
    assert (child["record_id"], task["record_id"]) == (customer, customer)
    assert child["parent_step_id"] is not None
    world.act("rita", task["id"])
    assert world.instance("kyc", child["id"])["status"] == "completed"
    assert world.current("loan", run["id"]) == ["after"]


def test_a_case_linking_no_record_stops_the_start_with_nothing_written(world):
    world.user("rita", "risk")
    _linked_forms(world)
    world.flow({**linear("kyc", [{"id": "verify", "type": "user_task", "assignee": RITA}]),
                "form": "customer"})
    world.flow(linear("loan", [
        {"id": "check", "type": "subflow", "flow": "kyc", "record_field": "customer"}]))
    case = world.case()
    refused = world.admin.post(f"{APP}/flows/loan/instances", json={"record_id": case})
    assert refused.status_code == 409 and refused.json()["code"] == "flow_stuck"
    assert "customer links no record" in refused.json()["detail"]
    assert ok(world.admin.get(f"{APP}/flows/loan/instances"))["items"] == []
    assert ok(world.admin.get(f"{APP}/flows/kyc/instances"))["items"] == []


def test_record_field_is_checked_when_the_flow_is_published(world):
    _linked_forms(world)
    world.flow({**linear("kyc", [{"id": "verify", "type": "user_task",
                                  "assignee": {"strategy": "initiator"}}]),
                "form": "customer"})
    for record_field, problem in (
            ("title", "record_field 'title' is not a relation field"),
            ("nothing", "record_field 'nothing' is not a relation field")):
        spec = linear("bad", [{"id": "check", "type": "subflow", "flow": "kyc",
                               "record_field": record_field}])
        if record_field == "title":
            ok(world.admin.post(f"{APP}/flows", json=spec), 201)
        else:
            ok(world.admin.put(f"{APP}/flows/bad", json=spec))
        refused = world.admin.post(f"{APP}/flows/bad/publish")
        assert refused.status_code == 422 and problem in refused.text
    # without record_field the sub-flow would run over a case: the wrong form
    spec = linear("bad", [{"id": "check", "type": "subflow", "flow": "kyc"}])
    ok(world.admin.put(f"{APP}/flows/bad", json=spec))
    refused = world.admin.post(f"{APP}/flows/bad/publish")
    assert refused.status_code == 422 and "runs over customer, not case" in refused.text
