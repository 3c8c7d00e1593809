"""Plugs the form engine into the app factory (entry point ``qiao.plugins``: ``forms``)."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI


def register(app: FastAPI, context: Any) -> None:  # noqa: ARG001 - the plugin signature
    from engine_forms import fieldtypes, menus, timeline
    from engine_forms.api import router
    from engine_forms.imports.api import router as imports_router
    from engine_forms.imports.runner import send as run_imports
    from engine_forms.openapi import router as openapi_router
    from engine_forms.publishing import send_migrations
    from platform_core.expressions import register_builtins as register_functions

    register_functions()
    fieldtypes.register_builtins()
    menus.register_builtins()
    timeline.register_builtins()
    app.include_router(router)
    app.include_router(imports_router)
    from platform_core.scans import SENDERS

    if "forms.imports" not in SENDERS:  # the background tick starts queued imports
        SENDERS.register("forms.imports", run_imports)
    if "forms.migrations" not in SENDERS:  # ... and resumes interrupted form migrations
        SENDERS.register("forms.migrations", send_migrations)
    app.include_router(openapi_router)
