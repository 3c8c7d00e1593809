"""The notification centre (通知): a user's in-app notifications from rules, unread
first counted, each marked read by opening it or all at once."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response
from sqlalchemy import select, update

from engine_rules.models import Notification
from engine_rules.service import unread
from frontend.web import redirect, render
from platform_core.app import ContextDep, IdPath
from platform_core.errors import NotFound
from platform_core.models import utcnow
from platform_core.security.guard import PrincipalDep, rule

router = APIRouter(include_in_schema=False)
PAGE = "/notifications"


@router.get(PAGE, response_class=HTMLResponse, openapi_extra=rule("user"))
def notifications(ctx: ContextDep, principal: PrincipalDep, request: Request) -> HTMLResponse:
    with ctx.db.read() as s:
        items = list(s.execute(select(Notification).where(
            Notification.user_id == principal.user_id)
            .order_by(Notification.read_at.is_not(None), Notification.id.desc())
            .limit(200)).scalars())
        count = unread(s, principal.user_id)
    return render(request, "notifications.html", items=items, unread=count)


@router.post(PAGE + "/{notification_id}/read", response_class=HTMLResponse,
             openapi_extra=rule("user"))
def read_one(ctx: ContextDep, principal: PrincipalDep, notification_id: IdPath) -> Response:
    with ctx.db.write() as s:
        row = s.get(Notification, notification_id)
        if row is None or row.user_id != principal.user_id:
            raise NotFound(f"notification {notification_id} does not exist")
        row.read_at = row.read_at or utcnow()
    return redirect(PAGE)


@router.post(PAGE + "/read-all", response_class=HTMLResponse, openapi_extra=rule("user"))
def read_all(ctx: ContextDep, principal: PrincipalDep) -> Response:
    with ctx.db.write() as s:
        s.execute(update(Notification).where(Notification.user_id == principal.user_id,
                                             Notification.read_at.is_(None))
                  .values(read_at=utcnow()))
    return redirect(PAGE, "notifications_read")
