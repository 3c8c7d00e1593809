"""A flow drawn on the server: ``layout`` places every node of a flow spec (the spec's
own ``layout`` positions where present, else a layered layout), ``svg`` draws it as a
standalone SVG, optionally with live numbers per step (the overlay).

Why hand-written and not a library: the layered (Sugiyama) layouts on PyPI are either
copyleft (grandalf: GPLv2/EPL), unmaintained, or native extensions; networkx has no
layered layout with crossing reduction. A flow has tens of nodes, so the classic four
phases fit in a page of Python: break cycles (back edges found by a depth-first walk
from the start node, in the spec's edge order), rank = longest path over the
remaining forward edges, order within a rank by the barycentre of the predecessors
(a few down/up sweeps), then coordinates top to bottom, each node pulled towards
its predecessors and pushed apart so none overlap. Everything iterates in the spec's
order, so the same spec always gives the same drawing.

The spec is a plain dict (the JSON the API and the designer hold): drawing a draft
that does not validate yet must still work.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any
from xml.sax.saxutils import escape

from frontend.i18n import N_, _
from frontend.workspace.steps import outcome_labels

# (width, height) per node type: boxes for steps people or services act on, a
# diamond for gateways, circles for start and end.
BOX = (176.0, 72.0)
DIAMOND = (64.0, 64.0)
CIRCLE = (44.0, 44.0)
NODE_SIZE: dict[str, tuple[float, float]] = {
    "start": CIRCLE,
    "end": CIRCLE,
    "gateway": DIAMOND,
    "parallel": DIAMOND,
    "join": DIAMOND,
    "user_task": BOX,
    "approval": BOX,
    "service": BOX,
    "timer": BOX,
    "subflow": BOX,
}
SHAPE = {"start": "circle", "end": "circle", "gateway": "diamond",
         "parallel": "diamond", "join": "diamond"}
GAP_X = 48.0  # between neighbours in a rank
GAP_Y = 64.0  # between ranks (room for an edge label)
SWEEPS = 4


def size(node: dict[str, Any]) -> tuple[float, float]:
    """The drawn size of a node (unknown types are boxes)."""
    return NODE_SIZE.get(str(node.get("type")), BOX)


def shape(node: dict[str, Any]) -> str:
    return SHAPE.get(str(node.get("type")), "box")


def _nodes(spec: dict[str, Any]) -> list[dict[str, Any]]:
    seen: set[str] = set()
    out = []
    for n in spec.get("nodes") or []:
        if isinstance(n, dict) and isinstance(n.get("id"), str) and n["id"] not in seen:
            seen.add(n["id"])
            out.append(n)
    return out


def _edges(spec: dict[str, Any], ids: set[str]) -> list[tuple[str, str]]:
    """(from, to) of every edge between known nodes, self-loops left out."""
    out = []
    for e in spec.get("edges") or []:
        if not isinstance(e, dict):
            continue
        a, b = e.get("from"), e.get("to")
        if a in ids and b in ids and a != b:
            out.append((a, b))
    return out


def back_edges(spec: dict[str, Any]) -> set[tuple[str, str]]:
    """The edges closing a cycle (e.g. risk reject → materials): found by a depth-first
    walk from the start node(s), then from every node not reached, in spec order."""
    nodes = _nodes(spec)
    ids = [n["id"] for n in nodes]
    succ: dict[str, list[str]] = {i: [] for i in ids}
    for a, b in _edges(spec, set(ids)):
        succ[a].append(b)
    roots = [n["id"] for n in nodes if n.get("type") == "start"] + ids
    state: dict[str, int] = {}  # 1 on the walk's stack, 2 done
    back: set[tuple[str, str]] = set()
    for root in roots:
        if root in state:
            continue
        stack: list[tuple[str, Iterable[str]]] = [(root, iter(succ[root]))]
        state[root] = 1
        while stack:
            node, it = stack[-1]
            nxt = next(it, None)
            if nxt is None:
                state[node] = 2
                stack.pop()
            elif state.get(nxt) == 1:
                back.add((node, nxt))
            elif nxt not in state:
                state[nxt] = 1
                stack.append((nxt, iter(succ[nxt])))
    return back


def ranks(spec: dict[str, Any]) -> dict[str, int]:
    """Rank of each node: the longest path to it over forward edges (0 for sources)."""
    ids = [n["id"] for n in _nodes(spec)]
    back = back_edges(spec)
    fwd = [(a, b) for a, b in _edges(spec, set(ids)) if (a, b) not in back]
    indeg = dict.fromkeys(ids, 0)
    succ: dict[str, list[str]] = {i: [] for i in ids}
    for a, b in fwd:
        succ[a].append(b)
        indeg[b] += 1
    rank = dict.fromkeys(ids, 0)
    ready = [i for i in ids if indeg[i] == 0]
    while ready:
        node = ready.pop(0)
        for b in succ[node]:
            rank[b] = max(rank[b], rank[node] + 1)
            indeg[b] -= 1
            if indeg[b] == 0:
                ready.append(b)
    return rank


def _orders(ids: list[str], rank: dict[str, int], fwd: list[tuple[str, str]]
            ) -> list[list[str]]:
    """Nodes per rank, ordered by barycentre sweeps to reduce crossings."""
    rows: list[list[str]] = [[] for _ in range(max(rank.values(), default=0) + 1)]
    for i in ids:
        rows[rank[i]].append(i)
    preds: dict[str, list[str]] = {i: [] for i in ids}
    succs: dict[str, list[str]] = {i: [] for i in ids}
    for a, b in fwd:
        preds[b].append(a)
        succs[a].append(b)
    spec_index = {i: k for k, i in enumerate(ids)}

    def sweep(order: range, neighbours: dict[str, list[str]]) -> None:
        pos = {n: k / max(len(r), 1) for r in rows for k, n in enumerate(r)}
        for r in order:
            row = rows[r]
            for k, n in enumerate(row):
                pos[n] = (k + 0.5) / len(row)

            def key(n: str) -> tuple[float, int]:
                near = neighbours[n]
                if not near:
                    return (pos[n], spec_index[n])
                return (sum(pos[m] for m in near) / len(near), spec_index[n])

            rows[r] = sorted(row, key=key)
            for k, n in enumerate(rows[r]):
                pos[n] = (k + 0.5) / len(rows[r])

    for _sweep in range(SWEEPS):
        sweep(range(1, len(rows)), preds)
        sweep(range(len(rows) - 2, -1, -1), succs)
    sweep(range(1, len(rows)), preds)
    return rows


def _auto(spec: dict[str, Any]) -> dict[str, dict[str, float]]:
    nodes = _nodes(spec)
    ids = [n["id"] for n in nodes]
    by_id = {n["id"]: n for n in nodes}
    rank = ranks(spec)
    back = back_edges(spec)
    fwd = [(a, b) for a, b in _edges(spec, set(ids)) if (a, b) not in back]
    rows = _orders(ids, rank, fwd)
    preds: dict[str, list[str]] = {i: [] for i in ids}
    for a, b in fwd:
        preds[b].append(a)
    centre: dict[str, float] = {}
    out: dict[str, dict[str, float]] = {}
    y = 0.0
    for row in rows:
        if not row:
            continue
        height = max(size(by_id[n])[1] for n in row)
        widths = [size(by_id[n])[0] for n in row]
        # the wish: under the predecessors' centre; then pushed apart left to right
        want = []
        for k, n in enumerate(row):
            near = [centre[p] for p in preds[n] if p in centre]
            default = sum(widths[:k]) + GAP_X * k + widths[k] / 2
            want.append(sum(near) / len(near) if near else default)
        xs: list[float] = []
        for k, w in enumerate(want):
            if k and w < xs[-1] + (widths[k - 1] + widths[k]) / 2 + GAP_X:
                w = xs[-1] + (widths[k - 1] + widths[k]) / 2 + GAP_X
            xs.append(w)
        # shift the row back so that on average it sits where it wanted to be
        shift = (sum(want) - sum(xs)) / len(xs)
        for k, n in enumerate(row):
            centre[n] = xs[k] + shift
            w, h = size(by_id[n])
            out[n] = {"x": round(centre[n] - w / 2, 1), "y": round(y + (height - h) / 2, 1)}
        y += height + GAP_Y
    if out:  # the drawing starts at (0, 0)
        left = min(p["x"] for p in out.values())
        for p in out.values():
            p["x"] = round(p["x"] - left, 1)
    return out


def _overlaps(a: dict[str, float], sa: tuple[float, float],
              b: dict[str, float], sb: tuple[float, float]) -> bool:
    return (a["x"] < b["x"] + sb[0] + 8 and b["x"] < a["x"] + sa[0] + 8
            and a["y"] < b["y"] + sb[1] + 8 and b["y"] < a["y"] + sa[1] + 8)


def layout(spec: dict[str, Any]) -> dict[str, dict[str, float]]:
    """Top-left ``{"x", "y"}`` of every node of ``spec``: the spec's own ``layout``
    where present, else the layered layout; a laid-out node that would overlap one
    already placed moves right until it does not. Deterministic."""
    nodes = _nodes(spec)
    given = spec.get("layout") or {}
    fixed: dict[str, dict[str, float]] = {}
    for n in nodes:
        p = given.get(n["id"]) if isinstance(given, dict) else None
        if isinstance(p, dict) and all(isinstance(p.get(k), int | float) for k in "xy"):
            fixed[n["id"]] = {"x": float(p["x"]), "y": float(p["y"])}
    if len(fixed) == len(nodes):
        return fixed
    auto = _auto(spec)
    by_id = {n["id"]: n for n in nodes}
    out = dict(fixed)
    for n in nodes:
        if n["id"] in out:
            continue
        pos = dict(auto[n["id"]])
        while any(_overlaps(pos, size(n), q, size(by_id[m])) for m, q in out.items()):
            pos["x"] = round(pos["x"] + size(n)[0] / 2 + GAP_X / 2, 1)
        out[n["id"]] = pos
    return {n["id"]: out[n["id"]] for n in nodes}


# -- the SVG ----------------------------------------------------------------------------

FONT = '"Noto Sans CJK SC", "PingFang SC", "Microsoft YaHei", sans-serif'
MARGIN = 24.0
LANE = 14.0  # spacing of the side lanes long and back edges run in
MODES = {"single": N_("单人审批"), "any": N_("或签"), "all": N_("会签"),
         "sequential": N_("依次审批")}
KINDS = {"user_task": N_("任务"), "approval": N_("审批"), "service": N_("自动"),
         "timer": N_("定时"), "subflow": N_("子流程"), "parallel": N_("并行"),
         "join": N_("汇合"), "gateway": N_("条件")}
RULES = (
    ("text", f"font-family: {FONT}; fill: #1f2933;"),
    (".node rect, .node circle, .node polygon", "fill: #fff; stroke: #52606d; stroke-width: 1.5;"),
    (".node.start circle", "fill: #e3f8ec; stroke: #2f8a57;"),
    (".node.end circle", "fill: #f5f7fa; stroke: #1f2933; stroke-width: 3;"),
    (".node.approval rect", "fill: #eef4ff;"),
    (".node.waiting rect, .node.waiting polygon, .node.waiting circle",
     "stroke: #2563eb; stroke-width: 2.5;"),
    (".name", "font-size: 14px; font-weight: 600;"),
    (".hint", "font-size: 11px; fill: #52606d;"),
    (".edge path", "fill: none; stroke: #7b8794; stroke-width: 1.4;"),
    (".edge.default path", "stroke-dasharray: 5 4;"),
    (".edge.back path", "stroke: #b45309;"),
    (".label", "font-size: 11px; fill: #52606d;"),
    (".label-bg", "fill: #fff; opacity: .85;"),
    (".badge rect", "fill: #dbeafe;"),
    (".badge text", "font-size: 11px; fill: #1e3a8a;"),
    (".badge.overdue rect", "fill: #dc2626;"),
    (".badge.overdue text", "fill: #fff; font-weight: 600;"),
    (".badge.median rect", "fill: #f1f5f9;"),
    (".badge.median text", "fill: #334155;"),
    ("a .badge rect", "stroke: #1e3a8a; stroke-width: .8;"),
    ("a:hover .badge rect, a:focus .badge rect", "stroke-width: 2;"),
)
CSS = "\n".join(f"{sel} {{ {body} }}" for sel, body in RULES)


def page_css() -> str:
    """The drawing's style for a page (``static/flowchart.css``): the CSP refuses a
    ``<style>`` inside the page, and the rules are scoped to ``svg.flowchart`` so they
    never touch the page's own ``.badge`` or ``.name``."""
    head = ("/* Generated by frontend.flowchart.page_css() — the style of a flow drawn\n"
            "   inline in a page (the SVG file carries the same rules in its <style>). */\n")
    scoped = []
    for sel, body in RULES:
        joined = ", ".join(f"svg.flowchart {part.strip()}" for part in sel.split(","))
        scoped.append(f"{joined} {{ {body} }}")
    page = ("svg.flowchart { display: block; max-width: 100%; height: auto; margin: 0 auto; }\n"
            ".flow-drawing { overflow-x: auto; padding: .5rem 0; }\n"
            ".flow-numbers td.num, .flow-numbers th.num { text-align: right; }\n"
            ".flow-numbers { overflow-x: auto; }\n")
    return head + "\n".join(scoped) + "\n" + page


def _w(text: str, font: float) -> float:
    """The rough width of ``text`` at ``font`` px: CJK glyphs are square, others ~0.6."""
    return sum(font if ord(c) > 0x2E80 else font * 0.6 for c in text)


def _fit(text: str, width: float, font: float) -> str:
    if _w(text, font) <= width:
        return text
    while text and _w(text + "…", font) > width:
        text = text[:-1]
    return text + "…"


def _num(value: float) -> str:
    return f"{value:.1f}".rstrip("0").rstrip(".")


def duration(seconds: float | None) -> str | None:
    """``中位 1.5 天`` words for a median time (days, hours or minutes)."""
    if seconds is None:
        return None
    if seconds >= 86400:
        return _("中位 {n} 天").format(n=_num(seconds / 86400))
    if seconds >= 3600:
        return _("中位 {n} 小时").format(n=_num(seconds / 3600))
    return _("中位 {n} 分钟").format(n=_num(max(seconds, 0) / 60))


def hint(node: dict[str, Any]) -> str:
    """The small second line of a step: its kind, approval mode, SLA."""
    kind = str(node.get("type"))
    parts = []
    if kind == "approval":
        parts.append(_(MODES.get(str(node.get("mode") or "single"), MODES["single"])))
    elif kind in KINDS:
        parts.append(_(KINDS[kind]))
    sla = node.get("sla") if isinstance(node.get("sla"), dict) else {}
    if sla.get("working_days"):
        parts.append(_("时限 {n} 工作日").format(n=sla["working_days"]))
    elif sla.get("hours"):
        parts.append(_("时限 {n} 小时").format(n=sla["hours"]))
    return " · ".join(parts)


def edge_label(edge: dict[str, Any]) -> str:
    """An edge's words: its name, else the outcome (提交, 同意, 驳回 …), the condition,
    or 默认 for a gateway's default edge."""
    if edge.get("name"):
        return str(edge["name"])
    if edge.get("default"):
        return _("默认")
    if edge.get("on"):
        return outcome_labels().get(str(edge["on"]), str(edge["on"]))
    if edge.get("condition"):
        return str(edge["condition"])
    return ""


def _attr(value: Any) -> str:
    return escape(str(value), {'"': "&quot;"})


class _Drawing:
    """Collects the SVG elements and the drawing's extent."""

    def __init__(self) -> None:
        self.parts: list[str] = []
        self.right = 0.0
        self.bottom = 0.0
        self.left = 0.0

    def add(self, text: str) -> None:
        self.parts.append(text)

    def text(self, x: float, y: float, text: str, cls: str, anchor: str = "middle") -> None:
        self.add(f'<text x="{x:.1f}" y="{y:.1f}" class="{cls}" text-anchor="{anchor}">'
                 f"{escape(text)}</text>")


def _node(d: _Drawing, node: dict[str, Any], pos: dict[str, float],
          stats: dict[str, Any] | None, link: Callable[..., str | None] | None) -> None:
    w, h = size(node)
    x, y = pos["x"], pos["y"]
    kind = str(node.get("type"))
    name = str(node.get("name") or node["id"])
    waiting = bool(stats and stats.get("waiting"))
    cls = f"node {_attr(kind)}" + (" waiting" if waiting else "")
    d.add(f'<g class="{cls}" data-node="{_attr(node["id"])}"><title>{escape(name)}</title>')
    form = shape(node)
    if form == "circle":
        d.add(f'<circle cx="{x + w / 2:.1f}" cy="{y + h / 2:.1f}" r="{w / 2:.1f}"/>')
        word = name if node.get("name") else (_("开始") if kind == "start" else _("结束"))
        d.text(x + w / 2, y + h / 2 + 4, _fit(word, w - 8, 12), "hint")
        d.right = max(d.right, x + w)
    elif form == "diamond":
        cx, cy = x + w / 2, y + h / 2
        d.add(f'<polygon points="{cx:.1f},{y:.1f} {x + w:.1f},{cy:.1f} {cx:.1f},{y + h:.1f} '
              f'{x:.1f},{cy:.1f}"/>')
        d.text(cx, cy + 4, _(KINDS.get(kind, "")) if kind in KINDS else "", "hint")
        if node.get("name"):  # the gateway's name beside it
            label = _fit(name, 150, 12)
            d.text(x + w + 6, cy - 6, label, "hint", anchor="start")
            d.right = max(d.right, x + w + 6 + _w(label, 12))
        d.right = max(d.right, x + w)
    else:
        d.add(f'<rect x="{x:.1f}" y="{y:.1f}" width="{w:.1f}" height="{h:.1f}" rx="8"/>')
        line = hint(node)
        top = y + (22 if stats is not None else (h / 2 - 2 if line else h / 2 + 5))
        d.text(x + w / 2, top, _fit(name, w - 16, 14), "name")
        if line:
            d.text(x + w / 2, top + 17, _fit(line, w - 12, 11), "hint")
        d.right = max(d.right, x + w)
    d.bottom = max(d.bottom, y + h)
    d.add("</g>")
    if stats is not None and (form == "box" or stats.get("waiting") or stats.get("overdue")):
        _badges(d, node, x, y, w, h, form, stats, link)


def _badges(d: _Drawing, node: dict[str, Any], x: float, y: float, w: float, h: float,
            form: str, stats: dict[str, Any], link: Callable[..., str | None] | None
            ) -> None:
    badges = [("waiting", _("等待 {n}").format(n=stats.get("waiting") or 0))]
    if stats.get("overdue"):
        badges.append(("overdue", _("超时 {n}").format(n=stats["overdue"])))
    median = duration(stats.get("median_seconds"))
    if median:
        badges.append(("median", median))
    sizes = [_w(text, 11) + 10 for _k, text in badges]
    if form == "box":  # a row along the bottom of the box
        bx, by = x + (w - sum(sizes) - 4 * (len(sizes) - 1)) / 2, y + h - 22
    else:  # left of the shape (a gateway's name is on its right)
        bx, by = x - 6 - sum(sizes) - 4 * (len(sizes) - 1), y + h / 2 - 8
        d.left = min(d.left, bx)
    for (kind, text), width in zip(badges, sizes, strict=True):
        href = link(node["id"], kind) if link else None
        body = (f'<g class="badge {kind}" data-kind="{kind}">'
                f'<rect x="{bx:.1f}" y="{by:.1f}" width="{width:.1f}" height="17" rx="8.5"/>'
                f'<text x="{bx + width / 2:.1f}" y="{by + 12.5:.1f}" text-anchor="middle">'
                f"{escape(text)}</text></g>")
        if href:
            body = f'<a href="{_attr(href)}">{body}</a>'
        d.add(body)
        bx += width + 4
        d.right = max(d.right, bx)


def _box(node: dict[str, Any], pos: dict[str, float]) -> tuple[float, float, float, float]:
    w, h = size(node)
    return pos["x"], pos["y"], pos["x"] + w, pos["y"] + h


def _crosses(points: list[tuple[float, float]], boxes: list[tuple[float, ...]]) -> bool:
    """Whether an orthogonal polyline runs through any of ``boxes``."""
    for (x1, y1), (x2, y2) in zip(points, points[1:], strict=False):
        lo_x, hi_x, lo_y, hi_y = min(x1, x2), max(x1, x2), min(y1, y2), max(y1, y2)
        for bx1, by1, bx2, by2 in boxes:
            if lo_x < bx2 + 2 and hi_x > bx1 - 2 and lo_y < by2 + 2 and hi_y > by1 - 2:
                return True
    return False


def _route(edge: tuple[str, str], pos: dict[str, dict[str, float]],
           by_id: dict[str, dict[str, Any]], back: bool, lanes: dict[str, float],
           extent: tuple[float, float]) -> list[tuple[float, float]]:
    """The polyline of an edge: down from the source's bottom to the target's top with
    one bend; if that would cut through another node, or the edge goes back up, along
    a lane beside the drawing (back edges on the left, long ones on the right)."""
    a, b = edge
    ax1, ay1, ax2, ay2 = _box(by_id[a], pos[a])
    bx1, by1, bx2, by2 = _box(by_id[b], pos[b])
    sx, tx = (ax1 + ax2) / 2, (bx1 + bx2) / 2
    if not back and by1 > ay2:
        mid = by1 - GAP_Y / 2 if abs(sx - tx) > 1 else (ay2 + by1) / 2
        points = [(sx, ay2), (sx, mid), (tx, mid), (tx, by1)] if abs(sx - tx) > 1 \
            else [(sx, ay2), (tx, by1)]
        others = [_box(n, pos[i]) for i, n in by_id.items() if i not in (a, b)]
        if not _crosses(points, others):
            return points
    sy, ty = (ay1 + ay2) / 2, (by1 + by2) / 2
    side = "left" if back else "right"
    lane_key = f"{side}:{b}"  # edges into one node share its lane: they merge, not cross
    if lane_key not in lanes:
        lanes[side] += -LANE if back else LANE
        lanes[lane_key] = extent[0] + lanes[side] if back else extent[1] + lanes[side]
    lane = lanes[lane_key]
    if back:
        return [(ax1, sy), (lane, sy), (lane, ty), (bx1, ty)]
    return [(ax2, sy), (lane, sy), (lane, ty), (bx2, ty)]


def svg(spec: dict[str, Any], *, overlay: dict[str, dict[str, Any]] | None = None,
        link: Callable[..., str | None] | None = None, title: str | None = None,
        inline_style: bool = True) -> str:
    """The flow as one standalone SVG document (its own viewBox, fonts and style), laid
    out by ``layout``. ``overlay`` (node id → ``waiting``, ``overdue``,
    ``median_seconds``): badges on each step, each an ``<a href>`` when
    ``link(node_id, kind)`` gives one (kind: waiting, overdue, median). Without
    ``inline_style`` the page styles it (``static/flowchart.css``: the CSP)."""
    nodes = _nodes(spec)
    by_id = {n["id"]: n for n in nodes}
    pos = layout(spec)
    back = back_edges(spec)
    boxes = [_box(n, pos[n["id"]]) for n in nodes]
    extent = (min((b[0] for b in boxes), default=0.0), max((b[2] for b in boxes),
                                                            default=0.0))
    d = _Drawing()
    d.left = extent[0]
    lanes = {"left": -8.0, "right": 8.0}
    edges_out: list[str] = []
    for e in spec.get("edges") or []:
        if not isinstance(e, dict) or e.get("from") not in by_id or e.get("to") not in by_id \
                or e["from"] == e["to"]:
            continue
        key = (e["from"], e["to"])
        points = _route(key, pos, by_id, key in back, lanes, extent)
        path = "M " + " L ".join(f"{px:.1f} {py:.1f}" for px, py in points)
        cls = "edge" + (" default" if e.get("default") else "") + (" back" if key in back
                                                                   else "")
        label = _fit(edge_label(e), 180, 11)
        body = [f'<g class="{cls}" data-from="{_attr(e["from"])}" data-to="{_attr(e["to"])}">',
                f"<title>{escape(edge_label(e))}</title>",
                f'<path d="{path}" marker-end="url(#arrow)"/>']
        if label:
            (x1, y1), (x2, _y2) = points[0], points[1]
            if len(points) == 2:  # straight down: the label beside its start
                lx, ly, anchor = x1 + 5, y1 + 14, "start"
            elif abs(x1 - x2) < 1:  # down with a bend: beside the last stretch, so the
                # edges of a gateway sharing the first stretch keep their words apart
                lx, ly, anchor = points[-1][0] + 5, points[-2][1] + 14, "start"
            else:  # leaves sideways: above the first stretch
                lx, ly = (x1 + x2) / 2, y1 - 4
                anchor = "middle"
            lw = _w(label, 11)
            left = lx if anchor == "start" else lx - lw / 2
            body.append(f'<rect class="label-bg" x="{left - 2:.1f}" y="{ly - 11:.1f}" '
                        f'width="{lw + 4:.1f}" height="14"/>')
            body.append(f'<text x="{lx:.1f}" y="{ly:.1f}" class="label" '
                        f'text-anchor="{anchor}">{escape(label)}</text>')
            d.right = max(d.right, left + lw + 2)
        d.left = min(d.left, *(px for px, _py in points))
        d.right = max(d.right, *(px for px, _py in points))
        body.append("</g>")
        edges_out.append("".join(body))
    for n in nodes:
        _node(d, n, pos[n["id"]], None if overlay is None else overlay.get(n["id"], {}),
              link)
    left, top = d.left - MARGIN, -MARGIN - (28 if title else 0)
    width, height = d.right - d.left + 2 * MARGIN, d.bottom - top + MARGIN
    head = (f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="{left:.1f} {top:.1f} '
            f'{width:.1f} {height:.1f}" width="{width:.0f}" height="{height:.0f}" '
            f'role="img" class="flowchart">')
    out = [head, f"<title>{escape(title or str(spec.get('name') or ''))}</title>",
           f"<style>{CSS}</style>" if inline_style else "",
           '<defs><marker id="arrow" viewBox="0 0 10 10" refX="9" refY="5" '
           'markerWidth="8" markerHeight="8" orient="auto-start-reverse">'
           '<path d="M 0 0 L 10 5 L 0 10 z" fill="#7b8794"/></marker></defs>',
           f'<rect x="{left:.1f}" y="{top:.1f}" width="{width:.1f}" height="{height:.1f}" '
           'fill="#fff"/>']
    if title:
        out.append(f'<text x="{left + MARGIN:.1f}" y="{top + 30:.1f}" class="name" '
                   f'text-anchor="start">{escape(title)}</text>')
    out += edges_out + d.parts + ["</svg>"]
    return "\n".join(out)
