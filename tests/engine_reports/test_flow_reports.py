"""Flow reports: the funnel of a loan flow over hand-built instances (reached, step and
overall conversion, median hours in each step), instances and tasks as sources."""

from __future__ import annotations

import json

import pytest

from tests.engine_flows.flows_setup import APP, linear, ok

ALICE = {"strategy": "users", "users": ["alice"]}
FUNNEL = {"key": "loan_funnel", "name": "贷款漏斗", "source": {"flow": "loan", "of": "funnel"},
          "parameters": [{"key": "period", "type": "date_range", "field": "flow_started_at"}],
          "chart": {"type": "funnel"}}


@pytest.fixture
def runs(world, clock):
    """Four loans: one through every step, one at 放款, one at 复审, one at 初审."""
    world.user("alice")
    world.flow(linear("loan", [
        {"id": "a", "type": "user_task", "name": "初审", "assignee": ALICE},
        {"id": "b", "type": "user_task", "name": "复审", "assignee": ALICE},
        {"id": "c", "type": "user_task", "name": "放款", "assignee": ALICE}]))
    run = [world.start("loan", world.case(title=f"贷款{i}"))["id"] for i in range(4)]

    def done(i):
        world.act("alice", world.task_of("alice", run[i])["id"])

    clock.advance(hours=1)
    done(0)  # a: 1 h
    clock.advance(hours=1)
    done(1)  # a: 2 h
    clock.advance(hours=2)
    done(0)  # b: 3 h
    done(2)  # a: 4 h
    clock.advance(hours=2)
    done(0)  # c: 2 h → end
    clock.advance(hours=1)
    done(1)  # b: 5 h
    return world


def test_the_funnel_counts_conversion_and_median_time_per_step(runs):
    ok(runs.admin.post(f"{APP}/reports", json=FUNNEL), 201)
    body = ok(runs.admin.get(f"{APP}/reports/loan_funnel/data"))
    assert [c["label"] for c in body["columns"]] == [
        "步骤", "到达数", "环节转化率", "总转化率", "中位停留（小时）"]
    rows = {r[0]: r[1:] for r in body["rows"]}
    assert [r[0] for r in body["rows"]] == ["start", "初审", "复审", "放款", "end"]
    assert rows["start"] == [4, None, 1.0, 0.0]
    assert rows["初审"] == [4, 1.0, 1.0, 2.0]
    assert rows["复审"] == [3, 0.75, 0.75, 4.0]
    assert rows["放款"][:3] == [2, pytest.approx(2 / 3), 0.5]
    assert rows["放款"][3] == 2.0
    assert rows["end"][:3] == [1, 0.5, 0.25]
    assert body["figure"]["data"][0]["type"] == "funnel"


def test_the_funnel_period_and_row_scope(runs):
    ok(runs.admin.post(f"{APP}/reports", json=FUNNEL), 201)
    later = ok(runs.admin.get(f"{APP}/reports/loan_funnel/data", params={
        "params": json.dumps({"period": ["2031-03-04", "2031-03-31"]})}))
    assert [r[1] for r in later["rows"]] == [0, 0, 0, 0, 0]
    same_day = ok(runs.admin.get(f"{APP}/reports/loan_funnel/data", params={
        "params": json.dumps({"period": ["2031-03-03", "2031-03-03"]})}))
    assert [r[1] for r in same_day["rows"]] == [4, 4, 3, 2, 1]
    runs.role("mine_only", ("read",), scope="own")
    runs.user("zhou", "mine_only")
    assert [r[1] for r in ok(runs.as_("zhou").get(
        f"{APP}/reports/loan_funnel/data"))["rows"]] == [0, 0, 0, 0, 0]


def test_instances_and_tasks_are_sources_with_the_records_fields(runs):
    ok(runs.admin.post(f"{APP}/reports", json={
        "key": "by_status", "name": "实例", "source": {"flow": "loan", "of": "instances"},
        "dimensions": [{"field": "flow_status"}], "measures": [{"agg": "count"}]}), 201)
    assert ok(runs.admin.get(f"{APP}/reports/by_status/data"))["rows"] == [
        ["completed", 1], ["running", 3]]
    ok(runs.admin.post(f"{APP}/reports", json={
        "key": "workload", "name": "工作量", "source": {"flow": "loan", "of": "tasks"},
        "dimensions": [{"field": "task_assignee"}, {"field": "task_status"}],
        "measures": [{"agg": "count"}]}), 201)
    assert ok(runs.admin.get(f"{APP}/reports/workload/data"))["rows"] == [
        ["alice", "done", 6], ["alice", "open", 3]]
    ok(runs.admin.post(f"{APP}/reports", json={
        "key": "open_steps", "name": "在办", "source": {"flow": "loan", "of": "tasks"},
        "filters": {"field": "task_status", "op": "eq", "value": "open"},
        "dimensions": [{"field": "task_node"}], "measures": [{"agg": "count"}]}), 201)
    body = ok(runs.admin.get(f"{APP}/reports/open_steps/data"))
    assert body["rows"] == [["初审", 1], ["复审", 1], ["放款", 1]]  # by name, not node id
    assert body["keys"] == [["a"], ["b"], ["c"]]


def test_drill_down_from_a_funnel_step_and_an_instances_bar(runs):
    ok(runs.admin.post(f"{APP}/reports", json=FUNNEL), 201)
    titles = lambda body: sorted(i["data"]["title"] for i in body["items"])  # noqa: E731
    reached_c = ok(runs.admin.get(f"{APP}/reports/loan_funnel/drill",
                                  params={"keys": json.dumps(["c"])}))
    assert titles(reached_c) == ["贷款0", "贷款1"]
    assert titles(ok(runs.admin.get(f"{APP}/reports/loan_funnel/drill",
                                    params={"keys": json.dumps(["end"])}))) == ["贷款0"]
    ok(runs.admin.post(f"{APP}/reports", json={
        "key": "by_status", "name": "实例", "source": {"flow": "loan", "of": "instances"},
        "dimensions": [{"field": "flow_status"}], "measures": [{"agg": "count"}]}), 201)
    running = ok(runs.admin.get(f"{APP}/reports/by_status/drill",
                                params={"keys": json.dumps(["running"])}))
    assert titles(running) == ["贷款1", "贷款2", "贷款3"]
    runs.role("mine_only", ("read",), scope="own")
    runs.user("zhou", "mine_only")
    assert ok(runs.as_("zhou").get(f"{APP}/reports/loan_funnel/drill",
                                   params={"keys": json.dumps(["c"])}))["items"] == []
