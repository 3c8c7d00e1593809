"""Plugs the form engine into the app factory (entry point ``qiao.plugins``: ``forms``)."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI


def register(app: FastAPI, context: Any) -> None:  # noqa: ARG001 - the plugin signature
    from engine_forms import fieldtypes, menus, timeline
    from engine_forms.api import router
    from engine_forms.openapi import router as openapi_router
    from platform_core.expressions import register_builtins as register_functions

    register_functions()
    fieldtypes.register_builtins()
    menus.register_builtins()
    timeline.register_builtins()
    app.include_router(router)
    app.include_router(openapi_router)
