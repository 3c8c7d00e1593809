"""The flow engine's part of each app's OpenAPI document (``PATH_CONTRIBUTORS``).

The routes under ``/api/v1/apps/{app}/flows`` are app routes and come with the app's
other routes; this adds what lives elsewhere but belongs to the app's integration: the
task inbox and task operations, the flow meta-schema and working-day calendar, and the
progress route of every form a published flow of the app runs over — each only where
its rule lets the caller in, as FastAPI describes it (typed bodies).
"""

from __future__ import annotations

from typing import Any

from engine_flows.definitions import list_flows
from engine_forms.openapi.operations import copy_route

SHARED = ("/api/v1/tasks", "/api/v1/flows/meta-schema", "/api/v1/calendar/days")
PROGRESS = "/api/v1/apps/{app}/forms/{form}/records/{record_id}/progress"


def contribute(doc: Any) -> None:
    """Add the flow engine's routes to ``doc`` (an ``engine_forms.openapi.AppDoc``); an
    app without a published flow has no tasks and gets none of them."""
    forms = {f.draft.get("form") for f in list_flows(doc.session, doc.app)
             if f.published_version is not None}
    if not forms:
        return
    for template, ops in doc.described.get("paths", {}).items():
        if template.startswith(SHARED):
            for method in ops:
                copy_route(doc, template, method)
    for form in sorted(f for f in forms if f):
        access = doc.principal.access(doc.app, form)
        if access.allows("read"):
            copy_route(doc, PROGRESS, "get",
                       PROGRESS.replace("{app}", doc.app).replace("{form}", form),
                       fixed={"form": form}, access=access)
    doc.tags.append({"name": "flows", "description": "流程与待办 / flows and tasks"})
