"""The audit log (administrators): filters, newest first, "older" pages by id cursor.

The page reads through ``get_audit``, the API's own handler. "Older" is a plain link to
the next page; with htmx it instead appends that page's rows below these
(``hx-select``) and replaces the link (``hx-select-oob``), so one response serves both.
Dates are UTC days; "until" includes its whole day.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse

from frontend.i18n import _
from frontend.web import render
from platform_core.app import ContextDep
from platform_core.errors import DomainError, InvalidInput
from platform_core.security.api_admin import get_audit
from platform_core.security.guard import rule

router = APIRouter(include_in_schema=False)
PAGE = "/admin/audit"
Filter = Annotated[str, Query(max_length=200)]
PAGE_SIZE = 50


def _day(value: str, name: str) -> datetime | None:
    if not value:
        return None
    try:
        return datetime.combine(date.fromisoformat(value), datetime.min.time(), tzinfo=UTC)
    except ValueError:
        raise InvalidInput(_("{name}：日期格式应为 YYYY-MM-DD，例如 2024-05-01").format(name=name),
                           field=name) from None


def _query(filters: dict[str, str], limit: int, before: int | None) -> dict[str, Any]:
    action = filters["action"]
    if len(action) > 64:
        raise InvalidInput(_("操作：最多 64 个字符"), field="action")
    until = _day(filters["until"], "until")
    return {"action": action or None, "actor": filters["actor"][:100] or None,
            "target": filters["target"] or None, "since": _day(filters["since"], "since"),
            "until": until + timedelta(days=1) if until else None, "before": before,
            "limit": limit}


@router.get(PAGE, response_class=HTMLResponse, openapi_extra=rule("admin"))
def audit(ctx: ContextDep, request: Request, action: Filter = "", actor: Filter = "",
          target: Filter = "", since: Filter = "", until: Filter = "",
          before: Annotated[int | None, Query(ge=1)] = None,
          limit: Annotated[int, Query(ge=1, le=200)] = PAGE_SIZE) -> HTMLResponse:
    filters = {"action": action.strip(), "actor": actor.strip(), "target": target.strip(),
               "since": since.strip(), "until": until.strip()}
    try:
        page = get_audit(ctx, **_query(filters, limit, before))
    except DomainError as exc:
        return render(request, "audit.html", status=exc.status, error=exc.detail,
                      filters=filters, items=[], older=None)
    older = None
    if page["next_before"]:
        kept = {k: v for k, v in filters.items() if v}
        if limit != PAGE_SIZE:
            kept["limit"] = str(limit)
        older = f"{PAGE}?{urlencode(kept | {'before': page['next_before']})}"
    return render(request, "audit.html", filters=filters, items=page["items"], older=older)
