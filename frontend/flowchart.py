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

from collections.abc import Iterable
from typing import Any

# (width, height) per node type: boxes for steps people or services act on, a
# diamond for gateways, circles for start and end.
BOX = (168.0, 56.0)
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

    for _ in range(SWEEPS):
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
