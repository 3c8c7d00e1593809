"""Notification channels (administrators): the SMTP server, the SMS gateway and the WeCom
robot, each with a "send test" whose result shows in place.

Each action calls the ``/api/v1/channels`` handler itself (``engine_rules.channels_api``),
so the page saves through the same checks as an integrator's PUT (URL destination, SMS
template, lengths). Secrets are write-only here too: a password box is always empty; it
says whether a secret is set and where from, and a left-empty box keeps it, "clear"
clears it. A refused save shows the channel's form again as typed (secrets excepted).
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, Response
from pydantic import ValidationError
from starlette.concurrency import run_in_threadpool

from engine_rules.channels_api import (
    ChannelKey,
    ChannelsChange,
    channels_doc,
    put_channels,
    send_test,
)
from frontend.i18n import N_
from frontend.pages_me import invalid
from frontend.web import nav_for, principal_of, redirect, render
from platform_core.app import ContextDep
from platform_core.channels.store import CHANNELS
from platform_core.errors import DomainError
from platform_core.security.guard import PrincipalDep, rule

router = APIRouter(include_in_schema=False)
PAGE = "/admin/channels"
ADMIN = rule("admin")
# the tabs of the integration pages (this one, webhooks, tokens), message ids
TABS = ((PAGE, N_("通知渠道")), ("/admin/webhooks", N_("Webhook")),
        ("/admin/tokens", N_("API 令牌")))


def integration_page(request: Request, template: str, *, status: int = 200,
                     **values: Any) -> HTMLResponse:
    """Render one of the integration pages: its tabs, and the 集成 link marked current."""
    return render(request, template, status=status, tabs=TABS,
                  nav=nav_for(principal_of(request), PAGE), **values)


def _page(ctx: ContextDep, request: Request, *, status: int = 200,
          **extra: Any) -> HTMLResponse:
    return integration_page(request, "channels.html", status=status,
                            channels=channels_doc(ctx), **extra)


@router.get(PAGE, response_class=HTMLResponse, openapi_extra=ADMIN)
def channels(ctx: ContextDep, request: Request) -> HTMLResponse:
    return _page(ctx, request)


def _body(channel: str, form: Any) -> ChannelsChange:
    """The channel's fields from the posted form; a secret box left empty keeps it."""
    spec = CHANNELS[channel]
    values: dict[str, Any] = {}
    for name in spec.fields:
        value = str(form.get(name, "")).strip()
        if name == "starttls":
            values[name] = name in form  # a checkbox: absent when not ticked
        elif name not in form or (name == "port" and not value):
            continue  # the default
        elif name == "body_template":
            values[name] = str(form.get(name, ""))  # as typed: spaces may matter
        else:
            values[name] = value
    for name in spec.secrets:
        typed = str(form.get(name, ""))
        values[name] = "" if form.get(f"clear_{name}") else (typed.strip() or None)
    try:
        return ChannelsChange.model_validate({channel: values})
    except ValidationError as exc:
        raise invalid(exc) from exc


@router.post(PAGE + "/{channel}", response_class=HTMLResponse, openapi_extra=ADMIN)
async def channel_save(ctx: ContextDep, request: Request, principal: PrincipalDep,
                       channel: ChannelKey) -> Response:
    form = await request.form()
    try:
        await run_in_threadpool(lambda: put_channels(ctx, principal, _body(channel, form)))
    except DomainError as exc:
        typed = {k: v for k, v in form.items() if k not in CHANNELS[channel].secrets}
        return await run_in_threadpool(_page, ctx, request, status=exc.status,
                                       errors_of={channel: exc.detail},
                                       typed={channel: typed})
    return redirect(f"{PAGE}?msg=channel_saved#{channel}")


@router.post(PAGE + "/{channel}/reset", response_class=HTMLResponse, openapi_extra=ADMIN)
def channel_reset(ctx: ContextDep, principal: PrincipalDep, channel: ChannelKey) -> Response:
    """Forget the saved settings: the environment's apply again."""
    put_channels(ctx, principal, ChannelsChange.model_validate({channel: None}))
    return redirect(f"{PAGE}?msg=channel_reset#{channel}")


@router.post(PAGE + "/{channel}/test", response_class=HTMLResponse, openapi_extra=ADMIN)
def channel_test(ctx: ContextDep, request: Request, principal: PrincipalDep,
                 channel: ChannelKey,
                 to: Annotated[str, Form(max_length=254)] = "") -> HTMLResponse:
    """Send a real test message with the saved settings; with htmx only the result (in
    place of the last one), else the whole page with it."""
    try:
        result = send_test(ctx, principal, channel, to.strip() or None)
        status = 200
    except DomainError as exc:
        result = {"channel": channel, "ok": False, "refused": exc.detail}
        status = exc.status
    if request.headers.get("hx-request"):  # the fragment is the answer, refusal or not
        return render(request, "_channel_test.html", result=result)
    return _page(ctx, request, status=status, results={channel: result},
                 tested={channel: to})
