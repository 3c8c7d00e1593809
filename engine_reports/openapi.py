"""The report engine's part of each app's OpenAPI document (``PATH_CONTRIBUTORS``).

The routes under ``/api/v1/apps/{app}/reports`` and ``…/dashboards`` are app routes and
come with the app's other routes; this adds the two meta-schemas an integrator needs to
write report and dashboard definitions."""

from __future__ import annotations

from typing import Any

from engine_forms.openapi.operations import copy_route

SHARED = ("/api/v1/reports/meta-schema", "/api/v1/dashboards/meta-schema")


def contribute(doc: Any) -> None:
    """Only for an app with reports, or for whoever may define them."""
    from engine_reports.service import list_reports

    if not (list_reports(doc.session, doc.app) or doc.principal.app_allows(doc.app, "manage")):
        return
    for template, ops in doc.described.get("paths", {}).items():
        if template in SHARED:
            for method in ops:
                copy_route(doc, template, method)
    doc.tags.append({"name": "reports", "description": "报表与看板 / reports and dashboards"})
