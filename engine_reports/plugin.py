"""Plugs the report engine into the app factory (entry point ``qiao.plugins``: ``reports``):
the API, the scheduled report e-mails, and reports and dashboards as menu items."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI


def register_builtins() -> None:
    """Fill the report engine's registries (idempotent)."""
    from functools import partial

    from engine_forms.menus import MENU_TARGETS
    from engine_forms.openapi import PATH_CONTRIBUTORS
    from engine_reports import openapi, schedule, service
    from engine_reports.models import Dashboard, Report
    from platform_core.scans import SENDERS

    if "reports" not in PATH_CONTRIBUTORS:
        PATH_CONTRIBUTORS.register("reports", openapi.contribute)
    if "reports.schedule" not in SENDERS:
        SENDERS.register("reports.schedule", schedule.send_due)
    for kind, model in (("report", Report), ("dashboard", Dashboard)):
        if kind not in MENU_TARGETS:
            MENU_TARGETS.register(kind, partial(service.names, model=model))


def register(app: FastAPI, context: Any) -> None:  # noqa: ARG001 - the plugin interface
    from engine_reports.api import router

    register_builtins()
    app.include_router(router)
