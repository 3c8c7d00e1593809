"""Front-end pages, plugged into the app factory through the ``qiao.plugins`` group.

Pages are server-rendered (Jinja2) with htmx for a few in-place updates; every page route
declares its permission rule like any API route. Static files (CSS, JS, the vendored
libraries under ``static/vendor``) are a plain mount at ``/static``: no rule, no
sign-in, nothing private in them. plotly.js (``/static/plotly.min.js``, ``plotly.css``)
comes from the plotly Python package through two public routes of ``pages_reports``,
included before the mount so they answer first.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles

from frontend import (
    pages_apps,
    pages_audit,
    pages_auth,
    pages_channels,
    pages_dashboard_editor,
    pages_directory,
    pages_docs,
    pages_flows,
    pages_handover,
    pages_icon,
    pages_me,
    pages_notifications,
    pages_progress,
    pages_report_builder,
    pages_report_extra,
    pages_reports,
    pages_roles,
    pages_search,
    pages_tasks,
    pages_tokens,
    pages_users,
    pages_webhooks,
)
from frontend.designer import flow_pages, menu_editor
from frontend.designer import pages as pages_designer
from frontend.errors import HtmlErrors
from frontend.i18n import LocaleMiddleware
from frontend.rules import pages as pages_rules
from frontend.web import STATIC_DIR
from frontend.workspace import (
    pages_actions,
    pages_import,
    pages_list,
    pages_record,
    pages_stands,
    pages_timeline,
    setup,
)

ROUTERS = (pages_auth, pages_me, pages_users, pages_roles, pages_directory, pages_audit,
           pages_channels, pages_webhooks, pages_tokens, pages_handover,
           pages_docs, pages_tasks, pages_notifications,
           pages_dashboard_editor,  # before pages_reports: /dashboards/new is not a key
           pages_report_builder,  # before pages_reports: /reports/new is not a key
           pages_reports, pages_search, pages_list,
           pages_record, pages_actions, pages_stands, pages_import, pages_designer,
           pages_flows,
           flow_pages, menu_editor, pages_apps, pages_progress, pages_timeline,
           pages_rules, pages_report_extra, pages_icon)


def register(app: FastAPI, context: Any) -> None:  # noqa: ARG001 - the plugin signature
    """Add the pages, the static files, the HTML error pages and the per-request
    language (``frontend.i18n``) to ``app``."""
    setup.install()
    for module in ROUTERS:
        app.include_router(module.router)
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
    app.add_middleware(HtmlErrors)
    app.add_middleware(LocaleMiddleware)  # outside HtmlErrors: its pages are translated too
