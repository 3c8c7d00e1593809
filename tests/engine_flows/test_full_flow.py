"""A loan case through a thirteen-step flow, start to end, the way the office works it:
at every step the right people have the task, may edit only that step's fields and must
fill its required ones; a step left too long is found overdue by the SLA scan; a
working-day deadline skips the company holiday."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import pytest

from engine_flows.sla import scan
from tests.engine_flows.flows_setup import API, ok


def _task(node_id, name, assignee, editable=(), required=(), hidden=(), **extra):
    return {"id": node_id, "type": "user_task", "name": name, "assignee": assignee,
            "fields": {"editable": list(editable), "required": list(required),
                       "hidden": list(hidden)}, **extra}


def _approval(node_id, name, assignee, mode="single", editable=(), **extra):
    return {"id": node_id, "type": "approval", "name": name, "mode": mode,
            "assignee": assignee, "fields": {"editable": list(editable)}, **extra}


NODES = [
    {"id": "start", "type": "start"},
    _task("intake", "受理", {"strategy": "initiator"},
          ["title", "amount", "region", "mobile"], ["amount", "region"]),
    _task("dispatch", "分派顾问", {"strategy": "round_robin", "role": "sales",
                                   "by_field": "region"}, ["owner_user"], ["owner_user"]),
    _task("collect", "收集资料", {"strategy": "field", "field": "owner_user"}, ["note"],
          ["note"], sla={"hours": 4}),
    _task("clerk_check", "文员核对", {"strategy": "role", "role": "clerk"}, ["note"]),
    _approval("risk_review", "风控初审", {"strategy": "department_role", "role": "risk"},
              editable=["secret_note"]),
    {"id": "size", "type": "gateway"},
    _approval("manager_ok", "经理审批", {"strategy": "initiator_manager"}),
    {"id": "split", "type": "parallel"},
    _task("bank_submit", "提交银行", {"strategy": "role", "role": "bank_liaison"},
          ["maturity_date"], ["maturity_date"]),
    _task("finance_check", "财务核算", {"strategy": "least_loaded", "role": "finance"},
          sla={"working_days": 1}),
    {"id": "join", "type": "join"},
    _approval("countersign", "会签", {"strategy": "users", "users": ["rk_e", "rk_w"]},
              mode="all"),
    _approval("final_sign", "终审", {"strategy": "users", "users": ["mgr", "boss"]},
              mode="sequential"),
    {"id": "stamp", "type": "service", "actions": [
        {"type": "set_fields", "values": {"approval_result": '"approved"'}}]},
    _task("notify", "通知客户", {"strategy": "mapping", "field": "region", "map": {
        "华东": {"strategy": "users", "users": ["s_e2"]}},
        "default": {"strategy": "role", "role": "clerk"}}, ["note"], hidden=["secret_note"]),
    _task("archive", "归档", {"strategy": "users", "users": ["c2"]}),
    _task("confirm", "确认办结", {"strategy": "field", "field": "owner"}, ["note"]),
    {"id": "end", "type": "end"}, {"id": "refused", "type": "end"},
]
ORDER = ["start", "intake", "dispatch", "collect", "clerk_check", "risk_review", "size"]
EDGES = [{"from": a, "to": b} for a, b in zip(ORDER, ORDER[1:], strict=False)] + [
    {"from": "risk_review", "to": "refused", "on": "reject"},
    {"from": "size", "to": "manager_ok", "condition": "amount >= 1000000"},
    {"from": "size", "to": "split", "default": True},
    {"from": "manager_ok", "to": "split", "on": "approve"},
    {"from": "manager_ok", "to": "refused", "on": "reject"},
    {"from": "split", "to": "bank_submit"}, {"from": "split", "to": "finance_check"},
    {"from": "bank_submit", "to": "join"}, {"from": "finance_check", "to": "join"},
    {"from": "join", "to": "countersign"},
    {"from": "countersign", "to": "final_sign", "on": "approve"},
    {"from": "countersign", "to": "refused", "on": "reject"},
    {"from": "final_sign", "to": "stamp", "on": "approve"},
    {"from": "final_sign", "to": "refused", "on": "reject"},
    {"from": "stamp", "to": "notify"}, {"from": "notify", "to": "archive"},
    {"from": "archive", "to": "confirm"}, {"from": "confirm", "to": "end"}]
FLOW = {"key": "loan_case", "name": "贷款办理", "form": "case", "nodes": NODES,
        "edges": EDGES}


@dataclass
class Walk:
    """The case as it goes: its world, run and record."""

    world: Any
    run_id: int
    record_id: int
    seen: list[str] = field(default_factory=list)

    def people_at(self, node: str) -> tuple[list[str], list[str]]:
        names = {v: k for k, v in self.world.users.items()}
        [step] = [s for s in self.world.instance("loan_case", self.run_id)["current"]
                  if s["node"] == node]
        people = step["assignees"]
        return (sorted(names[p["id"]] for p in people if not p.get("candidate")),
                sorted(names[p["id"]] for p in people if p.get("candidate")))

    def task(self, who: str, node: str) -> dict[str, Any]:
        [task] = [t for t in self.world.open_tasks(who)
                  if t["run_id"] == self.run_id and t["node"] == node]
        return task

    def step(self, node: str, who: str, *, assigned: list[str] | None = None,
             candidates: list[str] | None = None, data: dict[str, Any] | None = None,
             locked: str = "title", required: bool = False, op: str = "complete") -> None:
        """At ``node``: the expected people, a refused edit of ``locked``, a refused
        completion without the required fields, then ``who`` completes it with ``data``."""
        assert self.people_at(node) == (assigned or [], candidates or []), node
        task = self.task(who, node)
        refused = self.world.act(who, task["id"], op, status=403, data={locked: "改"})
        assert refused["code"] == "field_read_only" and refused["field"] == locked, node
        if required:
            missing = self.world.act(who, task["id"], op, status=422)
            assert missing["code"] == "fields_required", node
        self.world.act(who, task["id"], op, data=data or {})
        self.seen.append(node)


@pytest.fixture
def office(world):
    """The people and departments of the flow, and the company holiday."""
    w = world
    w.role("intake", ("create", "read", "update"))
    for name in ("mgr", "boss"):
        w.user(name, "intake")
    w.department("华东", manager="mgr")
    w.department("华西")
    w.user("sam", "intake", department="华东")
    for name, dept in (("s_e1", "华东"), ("s_e2", "华东"), ("s_w1", "华西")):
        w.user(name, "sales", department=dept)
    w.user("rk_e", "risk", department="华东")
    w.user("rk_w", "risk", department="华西")
    for name, role in (("c1", "clerk"), ("c2", "clerk"), ("bl", "bank_liaison"),
                       ("f1", "finance"), ("f2", "finance")):
        w.user(name, role)
    # 2031-03-04 (a Tuesday) is a company holiday
    ok(w.admin.put(f"{API}/calendar/days", json={"days": [
        {"day": "2031-03-04", "workday": False, "name": "公司假日"}]}))
    # f1 already has work elsewhere: the least-loaded finance person is f2
    w.flow({"key": "side", "name": "其他", "form": "case", "nodes": [
        {"id": "start", "type": "start"}, _task("busy", "其他", {"strategy": "users",
                                                                  "users": ["f1"]}),
        {"id": "end", "type": "end"}], "edges": [{"from": "start", "to": "busy"},
                                                 {"from": "busy", "to": "end"}]})
    w.start("side", w.case())
    w.flow(FLOW)
    return w


def test_a_loan_case_runs_through_every_step(office, clock):
    w = office
    rec = w.case("sam", title="张三房贷")
    run = w.start("loan_case", rec, who="sam")
    walk = Walk(w, run["id"], rec)
    walk.step("intake", "sam", assigned=["sam"], locked="note", required=True,
              data={"amount": "1500000.00", "region": "华东", "mobile": "13912345678"})
    walk.step("dispatch", "s_e1", assigned=["s_e1"], required=True,
              data={"owner_user": w.users["s_e1"]})
    # collect: 4 hours allowed; five hours pass
    assert walk.people_at("collect") == (["s_e1"], [])
    clock.advance(hours=5)
    scan(w.db, clock.now)
    overdue = [p for t, p in w.events(run["id"]) if t == "task.overdue"]
    assert [p["node"] for p in overdue] == ["collect"]
    late = ok(w.as_("s_e1").get(f"{API}/tasks", params={"status": "overdue"}))["items"]
    assert [t["node"] for t in late] == ["collect"]
    walk.step("collect", "s_e1", assigned=["s_e1"], required=True, data={"note": "资料齐全"})
    assert walk.people_at("clerk_check") == ([], ["c1", "c2"])
    w.act("c2", walk.task("c2", "clerk_check")["id"], "claim")
    walk.step("clerk_check", "c2", assigned=["c2"], data={"note": "已核对"})
    walk.step("risk_review", "rk_e", assigned=["rk_e"], op="approve",
              data={"secret_note": "征信良好"})
    walk.step("manager_ok", "mgr", assigned=["mgr"], op="approve")
    # the parallel branches: finance's one working day skips Tuesday's holiday
    assert w.current("loan_case", run["id"]) == ["bank_submit", "finance_check"]
    finance = walk.task("f2", "finance_check")
    assert finance["due_at"] == "2031-03-05T07:00:00Z"  # Wednesday 15:00 in Shanghai
    walk.step("finance_check", "f2", assigned=["f2"], locked="amount")
    assert w.current("loan_case", run["id"]) == ["bank_submit", "join"]
    walk.step("bank_submit", "bl", assigned=["bl"], required=True,
              data={"maturity_date": "2036-03-01"})
    walk.step("countersign", "rk_w", assigned=["rk_e", "rk_w"], op="approve")
    walk.step("countersign", "rk_e", assigned=["rk_e"], op="approve")
    walk.step("final_sign", "mgr", assigned=["mgr"], op="approve")
    walk.step("final_sign", "boss", assigned=["boss"], op="approve")
    assert w.record(rec)["approval_result"] == "approved"
    detail = ok(w.as_("s_e2").get(f"{API}/tasks/{walk.task('s_e2', 'notify')['id']}"))
    assert "secret_note" not in detail["record"]["data"]
    assert detail["record"]["data"]["mobile"] == "139****5678"
    walk.step("notify", "s_e2", assigned=["s_e2"], locked="secret_note")
    walk.step("archive", "c2", assigned=["c2"])
    walk.step("confirm", "sam", assigned=["sam"], data={"note": "办结"})
    inst = w.instance("loan_case", run["id"])
    assert inst["status"] == "completed" and inst["current"] == []
    passed = [h["node"] for h in inst["history"] if h["action"] == "step_entered"]
    assert "refused" not in passed and passed[-1] == "end"
    assert len(set(walk.seen)) == 13
    assert w.record(rec)["note"] == "办结"
    completed_at = datetime.fromisoformat(inst["ended_at"].replace("Z", "+00:00"))
    assert completed_at == clock.now
