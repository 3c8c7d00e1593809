"""The flow funnel lists its stages in flow order with the success end (完成) last; an
end that leaves early (未成交) is an exit named under the funnel, not a stage drawn after
完成 — and the stage labels are drawn at a readable size."""

from __future__ import annotations

from engine_reports.charts import FUNNEL_TEXT, build_figure
from tests.engine_flows.flows_setup import APP, ok

ALICE = {"strategy": "users", "users": ["alice"]}
FLOW = {"key": "deal", "name": "成交流程", "form": "case", "nodes": [
    {"id": "start", "type": "start"},
    {"id": "a", "type": "user_task", "name": "初审", "assignee": ALICE,
     "outcomes": ["submit", "lose"]},
    {"id": "lost", "type": "end", "name": "未成交"},  # listed before 完成 on purpose
    {"id": "b", "type": "user_task", "name": "复审", "assignee": ALICE},
    {"id": "end", "type": "end", "name": "完成"}],
    "edges": [{"from": "start", "to": "a"}, {"from": "a", "to": "b", "on": "submit"},
              {"from": "a", "to": "lost", "on": "lose"}, {"from": "b", "to": "end"}]}
FUNNEL = {"key": "deal_funnel", "name": "成交漏斗", "source": {"flow": "deal", "of": "funnel"},
          "chart": {"type": "funnel"}}


def test_an_early_exit_is_not_a_stage_after_the_success_end(world, clock):
    world.user("alice")
    world.flow(FLOW)
    runs = [world.start("deal", world.case(title=f"案{i}"))["id"] for i in range(3)]
    clock.advance(hours=1)
    world.act("alice", world.task_of("alice", runs[0])["id"], outcome="submit")
    world.act("alice", world.task_of("alice", runs[1])["id"], outcome="lose")
    world.act("alice", world.task_of("alice", runs[2])["id"], outcome="submit")
    world.act("alice", world.task_of("alice", runs[0])["id"])  # 复审 → 完成
    ok(world.admin.post(f"{APP}/reports", json=FUNNEL), 201)
    body = ok(world.admin.get(f"{APP}/reports/deal_funnel/data"))
    assert [r[0] for r in body["rows"]] == ["start", "初审", "复审", "完成", "未成交"]
    assert body["columns"][0]["exits"] == 1
    rows = {r[0]: r[1:] for r in body["rows"]}
    assert rows["完成"][:3] == [1, 0.5, 1 / 3]
    assert rows["未成交"][:3] == [1, None, 1 / 3]  # no "conversion from 完成"
    [trace] = body["figure"]["data"]
    assert trace["type"] == "funnel" and trace["y"] == ["start", "初审", "复审", "完成"]
    [note] = body["figure"]["layout"]["annotations"]
    assert note["text"] == "未成交：1（占首层 33.3%）"


def test_funnel_labels_are_readable_and_carry_value_and_share():
    columns = [{"key": "d0", "label": "步骤", "role": "dimension", "exits": 1},
               {"key": "n", "label": "到达数", "role": "measure", "format": "integer"}]
    rows = [["咨询", 100], ["签约", 40], ["放款", 12], ["完成", 1], ["未成交", 55]]
    figure = build_figure({"type": "funnel"}, columns, rows)
    [trace] = figure["data"]
    assert trace["y"] == ["咨询", "签约", "放款", "完成"]
    assert trace["textfont"]["size"] >= 12 and FUNNEL_TEXT >= 12
    assert figure["layout"]["uniformtext"]["minsize"] >= 12
    assert trace["constraintext"] == "none"
    assert "customdata" in trace["texttemplate"] and "percentInitial" in trace["texttemplate"]
    assert figure["layout"]["annotations"][0]["text"] == "未成交：55（占首层 55.0%）"
    plain = build_figure({"type": "funnel"}, [dict(columns[0], exits=0), columns[1]], rows)
    assert plain["data"][0]["y"][-1] == "未成交" and "annotations" not in plain["layout"]


def test_the_pdf_funnel_names_the_exits_under_the_stages():
    from engine_reports.export_pdf import drawing

    columns = [{"key": "d0", "label": "步骤", "role": "dimension", "exits": 1},
               {"key": "n", "label": "到达数", "role": "measure", "format": "integer"}]
    chart = drawing("funnel", columns, [["咨询", 10], ["完成", 3], ["未成交", 5]])
    texts = [c.text for c in chart.contents if hasattr(c, "text")]
    assert texts[0] == "未成交：5" and "未成交" not in texts[1:]
    assert [t for t in texts[1:] if not t.isdigit()] == ["咨询", "完成"]
