"""The server-side drawing of a flow: layout (every node placed, none overlapping,
forward edges go down, the same spec gives the same drawing) and the SVG."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest

from frontend import flowchart

CRM_FLOW = (Path(__file__).parents[2] / "templates_catalog" / "bank_intermediary_crm"
            / "flows" / "loan_service.json")


@pytest.fixture
def crm() -> dict:
    return json.loads(CRM_FLOW.read_text(encoding="utf-8"))


def _boxes_overlap(spec: dict, pos: dict) -> list[tuple[str, str]]:
    nodes = spec["nodes"]
    bad = []
    for i, a in enumerate(nodes):
        for b in nodes[i + 1:]:
            (wa, ha), (wb, hb) = flowchart.size(a), flowchart.size(b)
            pa, pb = pos[a["id"]], pos[b["id"]]
            if (pa["x"] < pb["x"] + wb and pb["x"] < pa["x"] + wa
                    and pa["y"] < pb["y"] + hb and pb["y"] < pa["y"] + ha):
                bad.append((a["id"], b["id"]))
    return bad


def test_every_node_gets_a_position_and_none_overlap(crm):
    pos = flowchart.layout(crm)
    assert set(pos) == {n["id"] for n in crm["nodes"]}
    assert all(isinstance(p["x"], float) and isinstance(p["y"], float) for p in pos.values())
    assert _boxes_overlap(crm, pos) == []


def test_forward_edges_go_down_and_the_back_edge_is_the_reject(crm):
    back = flowchart.back_edges(crm)
    assert back == {("risk", "materials")}  # 风控 reject → 材料: closes the loop
    pos = flowchart.layout(crm)
    for e in crm["edges"]:
        if (e["from"], e["to"]) in back:
            continue
        assert pos[e["to"]]["y"] > pos[e["from"]]["y"], e
    rank = flowchart.ranks(crm)
    assert rank["start"] == 0 and rank["analysis"] == 1
    assert rank["mark_lost"] > rank["decision"]  # longest path: after the bank's decision


def test_deterministic_and_independent_of_dict_copies(crm):
    assert flowchart.layout(crm) == flowchart.layout(copy.deepcopy(crm))


def test_own_positions_are_kept_and_new_nodes_avoid_them(crm):
    auto = flowchart.layout(crm)
    crm["layout"] = {nid: p for nid, p in auto.items() if nid != "matching"}
    crm["layout"]["analysis"] = {"x": 900, "y": 40}
    # put signing exactly where matching would go, so matching must move away
    crm["layout"]["signing"] = dict(auto["matching"])
    pos = flowchart.layout(crm)
    assert pos["analysis"] == {"x": 900.0, "y": 40.0}
    assert pos["signing"] == auto["matching"]
    assert _boxes_overlap(crm, pos) == []


def test_sizes_by_type_and_broken_drafts_still_draw():
    spec = {"nodes": [{"id": "s", "type": "start"}, {"id": "g", "type": "gateway"},
                      {"id": "t", "type": "user_task"}, {"id": "x", "type": "nonsense"},
                      {"id": "t", "type": "end"}, "junk"],
            "edges": [{"from": "s", "to": "g"}, {"from": "g", "to": "nowhere"},
                      {"from": "t", "to": "t"}, {"from": "g", "to": "t"}, 7],
            "layout": {"x": {"x": "bad"}}}
    pos = flowchart.layout(spec)
    assert set(pos) == {"s", "g", "t", "x"}
    assert flowchart.size({"type": "start"})[0] < flowchart.size({"type": "approval"})[0]
    assert flowchart.shape({"type": "gateway"}) == "diamond"
    assert pos["g"]["y"] > pos["s"]["y"] and pos["t"]["y"] > pos["g"]["y"]


def test_parallel_branches_sit_side_by_side():
    spec = {"nodes": [{"id": "s", "type": "start"}, {"id": "p", "type": "parallel"},
                      {"id": "a", "type": "user_task"}, {"id": "b", "type": "user_task"},
                      {"id": "j", "type": "join"}, {"id": "e", "type": "end"}],
            "edges": [{"from": "s", "to": "p"}, {"from": "p", "to": "a"},
                      {"from": "p", "to": "b"}, {"from": "a", "to": "j"},
                      {"from": "b", "to": "j"}, {"from": "j", "to": "e"}]}
    pos = flowchart.layout(spec)
    assert pos["a"]["y"] == pos["b"]["y"] and pos["a"]["x"] != pos["b"]["x"]
    assert _boxes_overlap(spec, pos) == []


SVG = "{http://www.w3.org/2000/svg}"


def _parse(text: str):
    from xml.etree import ElementTree

    return ElementTree.fromstring(text)


def test_svg_is_a_standalone_document_with_names_kinds_and_edge_words(crm):
    crm["nodes"][1]["name"] = '需求<分析> & "核对"'
    root = _parse(flowchart.svg(crm))
    assert root.tag == SVG + "svg"
    left, top, width, height = map(float, root.get("viewBox").split())
    assert width > 300 and height > 1000
    assert "Noto Sans CJK SC" in root.find(SVG + "style").text
    texts = [t.text for t in root.iter(SVG + "text")]
    assert '需求<分析> & "核对"' in texts  # escaped in the file, intact when parsed
    assert {"提交", "未成交", "同意", "驳回", "默认"} <= set(texts)
    assert 'approval_result = "approved"' in [t.text for t in root.iter(SVG + "title")]
    assert any("或签" in (t or "") and "时限 2 工作日" in (t or "") for t in texts)  # risk
    groups = {g.get("data-node"): g for g in root.iter(SVG + "g") if g.get("data-node")}
    assert set(groups) == {n["id"] for n in crm["nodes"]}
    assert groups["decision"].find(SVG + "polygon") is not None
    assert groups["start"].find(SVG + "circle") is not None
    edges = [g for g in root.iter(SVG + "g") if g.get("data-from")]
    assert len(edges) == len(crm["edges"])
    assert all(g.find(SVG + "path").get("marker-end") == "url(#arrow)" for g in edges)
    # every drawn thing lies inside the viewBox
    for r in root.iter(SVG + "rect"):
        assert float(r.get("x")) >= left - 0.1 and float(r.get("y")) >= top - 0.1
        assert float(r.get("x")) + float(r.get("width")) <= left + width + 0.1


def test_overlay_badges_link_where_told(crm):
    stats = {"analysis": {"waiting": 3, "overdue": 1, "median_seconds": 1.5 * 86400},
             "risk": {"waiting": 0, "overdue": 0, "median_seconds": 5400}}
    out = flowchart.svg(crm, overlay=stats, title="<标题>",
                        link=lambda node, kind: None if kind == "median"
                        else f"/at/{node}?k={kind}&x=1")
    root = _parse(out)
    assert "&amp;x=1" in out
    links = {a.get("href") for a in root.iter(SVG + "a")}
    assert "/at/analysis?k=overdue&x=1" in links and "/at/risk?k=waiting&x=1" in links
    words = {"".join(g.itertext()) for g in root.iter(SVG + "g") if g.get("data-kind")}
    assert {"等待 3", "超时 1", "中位 1.5 天", "中位 1.5 小时", "等待 0"} <= words
    assert "<标题>" in [t.text for t in root.iter(SVG + "text")]
    plain = _parse(flowchart.svg(crm))
    assert not [g for g in plain.iter(SVG + "g") if g.get("data-kind")]


def test_durations():
    assert flowchart.duration(None) is None
    assert flowchart.duration(90) == "中位 1.5 分钟"
    assert flowchart.duration(7200) == "中位 2 小时"
    assert flowchart.duration(3 * 86400) == "中位 3 天"


def test_the_page_stylesheet_is_the_drawings_style_scoped():
    static = Path(flowchart.__file__).parent / "static" / "flowchart.css"
    assert static.read_text(encoding="utf-8") == flowchart.page_css(), \
        "regenerate static/flowchart.css from flowchart.page_css()"
    assert "<style>" not in flowchart.svg({"nodes": [{"id": "s", "type": "start"}]},
                                          inline_style=False)
