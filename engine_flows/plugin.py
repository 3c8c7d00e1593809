"""Plugs the flow engine into the app factory (entry point ``qiao.plugins``: ``flows``):
node types, assignment strategies, service-step actions, the SLA scan, flows as menu
items, the API and the customer progress links' API."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI


def register_builtins() -> None:
    """Fill the flow engine's registries (idempotent)."""
    from engine_flows import actions, assign, nodes, sla, timeline
    from engine_flows.definitions import flow_names
    from engine_flows.openapi import contribute
    from engine_forms.menus import MENU_TARGETS
    from engine_forms.openapi import PATH_CONTRIBUTORS
    from platform_core.scans import SCANS

    nodes.register_builtins()
    assign.register_builtins()
    actions.register_builtins()
    timeline.register_builtins()
    if "flows.sla" not in SCANS:
        SCANS.register("flows.sla", sla.scan)
    if "flows" not in PATH_CONTRIBUTORS:
        PATH_CONTRIBUTORS.register("flows", contribute)
    if "flow" not in MENU_TARGETS:
        MENU_TARGETS.register("flow", flow_names)


def register(app: FastAPI, context: Any) -> None:
    from engine_flows.api import router
    from engine_flows.handover_api import router as handover_router
    from engine_flows.links_api import router as links_router
    from engine_flows.progress_links import bind_site

    register_builtins()
    # rules render {{ progress_url }} with this installation's secret and public URL
    bind_site(context.secret_key, context.settings.base_url)
    app.include_router(router)
    app.include_router(handover_router)
    app.include_router(links_router)
