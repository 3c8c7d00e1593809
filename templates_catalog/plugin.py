"""Plugs the template catalogue into the app factory (entry point ``qiao.plugins``:
``templates``): the kernel's ``app_catalog()`` and the ``/api/v1/templates`` routes."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI


def register(app: FastAPI, context: Any) -> None:  # noqa: ARG001 - the plugin signature
    from templates_catalog import service
    from templates_catalog.api import router

    service.register()
    app.include_router(router)
