"""Each node type, run through the API: what a user sees the flow do at that node."""

from __future__ import annotations

from datetime import timedelta

from engine_flows.sla import scan
from tests.engine_flows.flows_setup import API, linear, ok

ALICE = {"strategy": "users", "users": ["alice"]}


def _people(world, *names, role="risk"):
    for name in names:
        world.user(name, role)


def _outcomes_flow():
    return {"key": "triage", "name": "分流", "form": "case", "nodes": [
        {"id": "start", "type": "start"},
        {"id": "sort", "type": "user_task", "assignee": ALICE,
         "outcomes": ["accept", "decline"]},
        {"id": "accepted", "type": "end"}, {"id": "declined", "type": "end"}],
        "edges": [{"from": "start", "to": "sort"},
                  {"from": "sort", "to": "accepted", "on": "accept"},
                  {"from": "sort", "to": "declined", "on": "decline"}]}


def _ended_at(world, run_id):
    inst = world.instance("triage", run_id)
    return inst["status"], [h["node"] for h in inst["history"] if h["action"] == "step_entered"
                            and h["node"] in ("accepted", "declined")]


def test_user_task_outcomes_take_different_edges(world):
    world.user("alice", "sales")
    world.flow(_outcomes_flow())
    first = world.start("triage", world.case())
    second = world.start("triage", world.case())
    world.act("alice", world.task_of("alice", first["id"])["id"], outcome="accept")
    world.act("alice", world.task_of("alice", second["id"])["id"], outcome="decline")
    assert _ended_at(world, first["id"]) == ("completed", ["accepted"])
    assert _ended_at(world, second["id"]) == ("completed", ["declined"])


def test_an_unknown_outcome_is_refused(world):
    world.user("alice", "sales")
    world.flow(_outcomes_flow())
    run = world.start("triage", world.case())
    task = world.task_of("alice", run["id"])
    body = world.act("alice", task["id"], outcome="maybe", status=422)
    assert "accept" in body["detail"]
    assert world.current("triage", run["id"]) == ["sort"]


def test_start_and_end_bracket_the_history_and_events(world):
    world.user("alice", "sales")
    world.flow(linear("plain", [{"id": "work", "type": "user_task", "assignee": ALICE}]))
    run = world.start("plain", world.case())
    assert run["status"] == "running" and run["version"] == 1
    world.act("alice", world.task_of("alice", run["id"])["id"])
    inst = world.instance("plain", run["id"])
    assert inst["status"] == "completed" and inst["ended_at"] and inst["current"] == []
    entered = [h["node"] for h in inst["history"] if h["action"] == "step_entered"]
    assert entered == ["start", "work", "end"]
    types = world.event_types(run["id"])
    assert types[0] == "flow.started" and types[-1] == "flow.completed"
    assert world.open_tasks("alice") == []


def _approval(world, mode, signers=("r1", "r2", "r3")):
    _people(world, *signers)
    world.flow({"key": "sign", "name": "审批", "form": "case", "nodes": [
        {"id": "start", "type": "start"},
        {"id": "vote", "type": "approval", "mode": mode,
         "assignee": {"strategy": "users", "users": list(signers)}},
        {"id": "yes", "type": "end"}, {"id": "no", "type": "end"}],
        "edges": [{"from": "start", "to": "vote"}, {"from": "vote", "to": "yes", "on": "approve"},
                  {"from": "vote", "to": "no", "on": "reject"}]})
    return world.start("sign", world.case())


def _finished_at(world, run_id):
    inst = world.instance("sign", run_id)
    return inst["status"], [h["node"] for h in inst["history"]
                            if h["action"] == "step_entered" and h["node"] in ("yes", "no")]


def _statuses(world, run_id):
    return {t["assignee_id"]: t["status"] for t in world.instance("sign", run_id)["tasks"]}


def test_single_approval_by_one_person(world):
    world.user("boss", "risk")
    world.flow(linear("one", [{"id": "ok", "type": "approval", "mode": "single",
                               "assignee": {"strategy": "users", "users": ["boss"]}}]))
    run = world.start("one", world.case())
    task = world.task_of("boss", run["id"])
    assert task["kind"] == "approval"
    world.act("boss", task["id"], "approve", comment="同意")
    assert world.instance("one", run["id"])["status"] == "completed"


def test_any_approval_first_decision_wins_and_cancels_the_others(world):
    run = _approval(world, "any")
    assert len(world.instance("sign", run["id"])["current"][0]["tasks"]) == 3
    world.act("r2", world.task_of("r2", run["id"])["id"], "reject")
    assert _finished_at(world, run["id"]) == ("completed", ["no"])
    statuses = _statuses(world, run["id"])
    assert statuses[world.users["r2"]] == "done"
    assert statuses[world.users["r1"]] == statuses[world.users["r3"]] == "cancelled"
    assert world.open_tasks("r1") == [] and world.open_tasks("r3") == []


def test_all_approval_waits_for_every_signer(world):
    run = _approval(world, "all")
    world.act("r1", world.task_of("r1", run["id"])["id"], "approve")
    world.act("r3", world.task_of("r3", run["id"])["id"], "approve")
    assert world.current("sign", run["id"]) == ["vote"]
    world.act("r2", world.task_of("r2", run["id"])["id"], "approve")
    assert _finished_at(world, run["id"]) == ("completed", ["yes"])


def test_all_approval_one_rejection_decides(world):
    run = _approval(world, "all")
    world.act("r1", world.task_of("r1", run["id"])["id"], "approve")
    world.act("r3", world.task_of("r3", run["id"])["id"], "reject", comment="资料不全")
    assert _finished_at(world, run["id"]) == ("completed", ["no"])
    assert _statuses(world, run["id"])[world.users["r2"]] == "cancelled"


def test_sequential_approval_goes_in_order(world):
    run = _approval(world, "sequential")
    assert world.open_tasks("r2") == [] and world.open_tasks("r3") == []
    world.act("r1", world.task_of("r1", run["id"])["id"], "approve")
    assert world.open_tasks("r1") == [] and world.open_tasks("r3") == []
    world.act("r2", world.task_of("r2", run["id"])["id"], "approve")
    assert world.current("sign", run["id"]) == ["vote"]
    world.act("r3", world.task_of("r3", run["id"])["id"], "approve")
    assert _finished_at(world, run["id"]) == ("completed", ["yes"])
    done = [t for t in world.instance("sign", run["id"])["tasks"] if t["status"] == "done"]
    assert [t["completed_by"] for t in done] == [world.users[n] for n in ("r1", "r2", "r3")]


def test_sequential_rejection_stops_the_line(world):
    run = _approval(world, "sequential")
    world.act("r1", world.task_of("r1", run["id"])["id"], "reject")
    assert _finished_at(world, run["id"]) == ("completed", ["no"])
    assert world.open_tasks("r2") == []


def _gateway_flow():
    return {"key": "route", "name": "金额分流", "form": "case", "nodes": [
        {"id": "start", "type": "start"},
        {"id": "size", "type": "gateway"},
        {"id": "big", "type": "user_task", "assignee": ALICE},
        {"id": "small", "type": "user_task", "assignee": ALICE},
        {"id": "end", "type": "end"}],
        "edges": [{"from": "start", "to": "size"},
                  {"from": "size", "to": "big", "condition": "amount >= 1000000"},
                  {"from": "size", "to": "small", "default": True},
                  {"from": "big", "to": "end"}, {"from": "small", "to": "end"}]}


def test_gateway_takes_the_true_condition_else_the_default(world):
    world.user("alice", "sales")
    world.flow(_gateway_flow())
    big = world.start("route", world.case(amount="2000000.00"))
    small = world.start("route", world.case(amount="999999.99"))
    empty = world.start("route", world.case())
    assert world.current("route", big["id"]) == ["big"]
    assert world.current("route", small["id"]) == ["small"]
    assert world.current("route", empty["id"]) == ["small"]


def _parallel_flow():
    return {"key": "both", "name": "会签", "form": "case", "nodes": [
        {"id": "start", "type": "start"}, {"id": "split", "type": "parallel"},
        {"id": "risk", "type": "user_task", "assignee": {"strategy": "users", "users": ["rita"]}},
        {"id": "docs", "type": "user_task", "assignee": ALICE},
        {"id": "join", "type": "join"},
        {"id": "after", "type": "user_task", "assignee": ALICE},
        {"id": "end", "type": "end"}],
        "edges": [{"from": "start", "to": "split"}, {"from": "split", "to": "risk"},
                  {"from": "split", "to": "docs"}, {"from": "risk", "to": "join"},
                  {"from": "docs", "to": "join"}, {"from": "join", "to": "after"},
                  {"from": "after", "to": "end"}]}


def test_parallel_split_runs_both_branches_and_the_join_waits_for_both(world):
    world.user("alice", "sales")
    world.user("rita", "risk")
    world.flow(_parallel_flow())
    run = world.start("both", world.case())
    assert world.current("both", run["id"]) == ["docs", "risk"]
    world.act("alice", world.task_of("alice", run["id"])["id"])
    assert world.current("both", run["id"]) == ["join", "risk"]
    assert world.open_tasks("alice") == []
    world.act("rita", world.task_of("rita", run["id"])["id"])
    assert world.current("both", run["id"]) == ["after"]
    world.act("alice", world.task_of("alice", run["id"])["id"])
    inst = world.instance("both", run["id"])
    assert inst["status"] == "completed"
    assert [h["node"] for h in inst["history"] if h["action"] == "step_entered"].count("end") == 1


def test_service_step_sets_fields_from_expressions(world):
    world.user("alice", "sales")
    world.flow(linear("calc", [
        {"id": "decide", "type": "service", "actions": [{"type": "set_fields", "values": {
            "approval_result": 'IF(amount >= 100, "approved", "rejected")',
            "note": 'CONCAT(title, "-已核")'}}]},
        {"id": "look", "type": "user_task", "assignee": ALICE}]))
    rich = world.case(title="甲", amount="500")
    poor = world.case(title="乙", amount="5")
    world.start("calc", rich)
    world.start("calc", poor)
    assert world.record(rich)["approval_result"] == "approved"
    assert world.record(rich)["note"] == "甲-已核"
    assert world.record(poor)["approval_result"] == "rejected"


def test_timer_waits_a_duration_and_the_scan_moves_it_on(world, clock):
    world.user("alice", "sales")
    world.flow(linear("pause", [{"id": "cool", "type": "timer", "wait": {"hours": 2}},
                                {"id": "call", "type": "user_task", "assignee": ALICE}]))
    run = world.start("pause", world.case())
    assert world.current("pause", run["id"]) == ["cool"]
    wake = world.instance("pause", run["id"])["current"][0]["wake_at"]
    assert wake.startswith("2031-03-03T04:00")
    scan(world.db, clock.now + timedelta(hours=1, minutes=59))
    assert world.current("pause", run["id"]) == ["cool"]
    scan(world.db, clock.now + timedelta(hours=2))
    assert world.current("pause", run["id"]) == ["call"]
    assert "flow.step_left" in world.event_types(run["id"])


def test_timer_until_a_date_field(world, clock):
    world.user("alice", "sales")
    world.flow(linear("remind", [
        {"id": "wait", "type": "timer", "wait": {"until_field": "maturity_date",
                                                 "offset_days": -1, "at": "09:30"}},
        {"id": "call", "type": "user_task", "assignee": ALICE}]))
    run = world.start("remind", world.case(maturity_date="2031-03-10"))
    undated = world.start("remind", world.case())
    assert world.current("remind", undated["id"]) == ["call"]  # no date: at once
    # 2031-03-09 09:30 in Shanghai is 01:30 UTC
    scan(world.db, clock.now.replace(day=9, hour=1, minute=29))
    assert world.current("remind", run["id"]) == ["wait"]
    scan(world.db, clock.now.replace(day=9, hour=1, minute=30))
    assert world.current("remind", run["id"]) == ["call"]


def _subflows(world, child_steps):
    world.flow(linear("check", child_steps))
    world.flow(linear("main", [
        {"id": "sub", "type": "subflow", "flow": "check"},
        {"id": "after", "type": "user_task", "assignee": ALICE}]))


def test_subflow_parent_continues_when_the_child_completes(world):
    world.user("alice", "sales")
    world.user("rita", "risk")
    _subflows(world, [{"id": "verify", "type": "user_task",
                       "assignee": {"strategy": "users", "users": ["rita"]}}])
    rec = world.case()
    run = world.start("main", rec)
    assert world.current("main", run["id"]) == ["sub"]
    [child_run] = ok(world.admin.get(f"{API}/apps/bank/flows/check/instances"))["items"]
    child = world.task_of("rita", child_run["id"])
    assert child["record_id"] == rec
    world.act("rita", child["id"])
    assert world.current("main", run["id"]) == ["after"]
    child_run = world.instance("check", child["run_id"])
    assert child_run["status"] == "completed" and child_run["parent_step_id"]


def test_subflow_that_completes_at_once_moves_the_parent_on_once(world):
    world.user("alice", "sales")
    _subflows(world, [{"id": "mark", "type": "service", "actions": [
        {"type": "set_fields", "values": {"note": '"checked"'}}]}])
    rec = world.case()
    run = world.start("main", rec)
    assert world.current("main", run["id"]) == ["after"]
    assert len(world.open_tasks("alice")) == 1
    assert world.record(rec)["note"] == "checked"


def test_cancelling_the_parent_cancels_the_running_child(world):
    world.user("alice", "sales")
    world.user("rita", "risk")
    _subflows(world, [{"id": "verify", "type": "user_task",
                       "assignee": {"strategy": "users", "users": ["rita"]}}])
    run = world.start("main", world.case())
    ok(world.admin.post(f"{API}/apps/bank/flows/main/instances/{run['id']}/cancel", json={}))
    children = ok(world.admin.get(f"{API}/apps/bank/flows/check/instances"))["items"]
    assert [c["status"] for c in children] == ["cancelled"]
    assert world.open_tasks("rita") == []


def test_a_child_is_cancelled_through_its_parent_and_keeps_the_parents_initiator(world):
    world.user("alice", "sales")
    world.user("rita", "risk")
    _subflows(world, [{"id": "verify", "type": "user_task",
                       "assignee": {"strategy": "users", "users": ["rita"]}}])
    run = world.start("main", world.case(), who="alice")
    [child] = ok(world.admin.get(f"{API}/apps/bank/flows/check/instances"))["items"]
    assert child["initiator_id"] == run["initiator_id"] == world.users["alice"]
    refused = world.admin.post(f"{API}/apps/bank/flows/check/instances/{child['id']}/cancel",
                               json={})
    assert refused.status_code == 409 and refused.json()["parent_run_id"] == run["id"]
    assert world.current("main", run["id"]) == ["sub"]  # nothing was stopped


def test_whoever_reads_a_record_lists_every_instance_over_it(world):
    world.user("alice", "sales")
    world.user("rita", "risk")
    _subflows(world, [{"id": "verify", "type": "user_task",
                       "assignee": {"strategy": "users", "users": ["rita"]}}])
    rec = world.case()
    run = world.start("main", rec)  # started by the admin; alice takes no part
    mine = ok(world.as_("alice").get(f"{API}/apps/bank/flows/main/instances"))["items"]
    assert mine == []
    listed = ok(world.as_("alice").get(f"{API}/apps/bank/flows/main/instances",
                                       params={"record_id": rec}))["items"]
    assert [r["id"] for r in listed] == [run["id"]]  # sales may read every case
