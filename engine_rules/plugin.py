"""Plugs the rules engine into the app factory (entry point ``qiao.plugins``: ``rules``):
the actions, the outbox handler, the time-based scans, the action sender and the APIs
(rules; the notification channels' settings)."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI


def register_builtins() -> None:
    """Fill the rules engine's registries (idempotent)."""
    from engine_flows.plugin import register_builtins as flows_builtins
    from engine_rules import actions, scans, timeline
    from engine_rules.runner import RulesHandler, track_depth
    from platform_core.outbox import HANDLERS
    from platform_core.scans import SCANS, SENDERS

    flows_builtins()
    actions.register_builtins()
    timeline.register_builtins()
    track_depth()
    if "rules" not in HANDLERS:
        HANDLERS.register("rules", RulesHandler())
    if "rules.time" not in SCANS:
        SCANS.register("rules.time", scans.scan)
    if "rules.actions" not in SENDERS:
        SENDERS.register("rules.actions", _send)


def _send(ctx: Any, client: Any, now: Any, worker_id: str) -> int:
    from engine_rules.sender import send_due

    return send_due(ctx.db, ctx.settings, client=client, worker=worker_id, now=now,
                    keyring=getattr(ctx, "keyring", None))


def register(app: FastAPI, context: Any) -> None:
    from engine_rules.api import router
    from engine_rules.channels_api import router as channels_router
    from engine_rules.scans import bind_keyring

    register_builtins()
    bind_keyring(getattr(context, "keyring", None))  # the scans' (one installation)
    app.include_router(router)
    app.include_router(channels_router)
