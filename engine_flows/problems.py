"""Where a flow's problems are: each validation message (``"<node id>: …"``,
``"<from> → <to>: …"``, ``"edges[i]: …"``, ``"nodes.3.type: …"`` from the meta-schema,
``"public.…"``, ``"form: …"``) located on a node or an edge of the definition, so the
flow designer can mark the shape it is about. Pure functions over the raw definition:
they work on a draft that does not even parse."""

from __future__ import annotations

import re
from typing import Any

_EDGE_INDEX = re.compile(r"^edges(?:\[(\d+)\]|\.(\d+))")
_NODE_INDEX = re.compile(r"^nodes\.(\d+)")
_LAYOUT = re.compile(r"^layout\.([A-Za-z][A-Za-z0-9_]{0,63})")
_TWICE = re.compile(r"^node ([A-Za-z][A-Za-z0-9_]{0,63}): ")
_ARROW = " → "


def _list(raw: Any, key: str) -> list[Any]:
    items = raw.get(key) if isinstance(raw, dict) else None
    return items if isinstance(items, list) else []


def _edge_of(item: Any) -> dict[str, str] | None:
    if not isinstance(item, dict):
        return None
    source, to = item.get("from"), item.get("to")
    return {"from": source, "to": to} if isinstance(source, str) and isinstance(to, str) \
        else None


def locate(problem: str, raw: Any) -> dict[str, Any]:
    """``{"message", "node", "edge"}`` for one problem of the definition ``raw``: the node
    id (or ``None``) and the edge ``{"from", "to"}`` (or ``None``) it is about."""
    nodes, edges = _list(raw, "nodes"), _list(raw, "edges")
    ids = {n["id"] for n in nodes if isinstance(n, dict) and isinstance(n.get("id"), str)}
    # node checks name a node by its label (its name, else its id)
    labels: dict[str, str] = {}
    for n in nodes:
        if isinstance(n, dict) and isinstance(n.get("id"), str):
            labels.setdefault(str(n.get("name") or n["id"]), n["id"])
    node: str | None = None
    edge: dict[str, str] | None = None
    head = problem.split(": ", 1)[0] if ": " in problem else ""
    if (m := _EDGE_INDEX.match(problem)) is not None:
        index = int(m.group(1) or m.group(2))
        edge = _edge_of(edges[index]) if index < len(edges) else None
    elif (m := _NODE_INDEX.match(problem)) is not None:
        index = int(m.group(1))
        item = nodes[index] if index < len(nodes) else None
        node = item.get("id") if isinstance(item, dict) and isinstance(item.get("id"),
                                                                       str) else None
    elif (m := _LAYOUT.match(problem)) is not None:
        node = m.group(1) if m.group(1) in ids else None
    elif (m := _TWICE.match(problem)) is not None:
        node = m.group(1)
    elif _ARROW in head:
        source, to = head.split(_ARROW, 1)
        if source in ids:
            edge = {"from": source, "to": to}
    elif head in ids:
        node = head
    elif head in labels:
        node = labels[head]
    return {"message": problem, "node": node, "edge": edge}


def locate_all(problems: list[str], raw: Any) -> list[dict[str, Any]]:
    return [locate(p, raw) for p in problems]
