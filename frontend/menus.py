"""An app's menus (``menus.json`` of its template) as the links one user may follow.

Only items with a page are shown, and only when the user may open it: the record list
of a form they may read, dashboards and reports shared with them, their task inbox.
An item limited to some ``roles`` is shown only to holders of one of them (administrators
see every item), on top of that. Flow items wait for the flow pages; a group left empty is
not shown.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from engine_forms.forms import list_forms
from engine_reports import service
from engine_reports.running import Viewer


def _for_roles(item: dict[str, Any], principal: Any) -> bool:
    roles = item.get("roles")
    return not roles or principal.is_admin or bool(set(roles) & set(principal.roles))


def app_menu(session: Session, app: Any, viewer: Viewer,
             menus: list[dict[str, Any]] | None = None) -> list[dict[str, Any]]:
    """``[{"label", "items": [{"label", "url"}]}]`` for ``app`` (an ``App`` row): its
    stored menus, or ``menus`` (well-formed: the menu editor's preview)."""
    menus = app.menus if menus is None else menus
    if not menus:
        return []
    reports = {r.key for r in service.visible_reports(session, app.key, viewer)}
    boards = {d.key for d in service.visible_dashboards(session, app.key, viewer)}
    forms = {f.key for f in list_forms(session, app.key) if f.published_version
             and viewer.principal.access(app.key, f.key).allows("read")}
    links = {"report": (reports, f"/apps/{app.key}/reports/"),
             "dashboard": (boards, f"/apps/{app.key}/dashboards/")}
    groups = []
    for group in menus:
        items = []
        for item in group.get("items", []):
            if not _for_roles(item, viewer.principal):
                continue
            if item["kind"] == "tasks":
                items.append({"label": item["label"], "url": "/tasks"})
            elif item["kind"] == "form" and item.get("key") in forms:
                items.append({"label": item["label"],
                              "url": f"/apps/{app.key}/forms/{item['key']}"})
            elif item["kind"] in links and item.get("key") in links[item["kind"]][0]:
                items.append({"label": item["label"],
                              "url": links[item["kind"]][1] + item["key"]})
        if items:
            groups.append({"label": group["label"], "items": items})
    return groups
