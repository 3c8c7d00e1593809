"""Plugs the report engine into the app factory (entry point ``qiao.plugins``: ``reports``):
the API and the scheduled report e-mails."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI


def register_builtins() -> None:
    """Fill the report engine's registries (idempotent)."""
    from engine_forms.openapi import PATH_CONTRIBUTORS
    from engine_reports import openapi, schedule
    from platform_core.scans import SENDERS

    if "reports" not in PATH_CONTRIBUTORS:
        PATH_CONTRIBUTORS.register("reports", openapi.contribute)
    if "reports.schedule" not in SENDERS:
        SENDERS.register("reports.schedule", schedule.send_due)


def register(app: FastAPI, context: Any) -> None:  # noqa: ARG001 - the plugin interface
    from engine_reports.api import router

    register_builtins()
    app.include_router(router)
