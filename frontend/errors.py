"""Readable error pages for the browser when a page fails before its handler runs.

Page handlers catch their own domain errors and render a message (``web.error_page``).
Some refusals happen earlier, in the app-wide ``guard`` (no rights: 403, a stale form:
``csrf_failed``, a one-time password not yet changed) or outside any route (404, 405,
422): the app answers those with problem+json, which is right for the API and for
htmx, but a person following a link should see a page. ``HtmlErrors`` swaps that body
for an HTML page with the same status — only for page paths, only when the browser asks
for HTML, and never for htmx requests (``qiao.js`` shows their problem's ``detail``).
The app-wide JSON handlers stay as they are.
"""

from __future__ import annotations

import json
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from frontend.web import NO_STORE, TEMPLATES, page_context

PROBLEM = b"application/problem+json"
NOT_PAGES = ("/api/", "/static/", "/healthz")
KEPT_HEADERS = frozenset({b"retry-after", b"set-cookie"})


def _header(scope: Scope, name: bytes) -> str:
    return next((v.decode("latin-1") for k, v in scope.get("headers", []) if k == name), "")


def wants_page(scope: Scope) -> bool:
    return (scope["type"] == "http" and scope["method"] != "HEAD"
            and not scope["path"].startswith(NOT_PAGES)
            and "text/html" in _header(scope, b"accept")
            and not _header(scope, b"hx-request"))


def _is_problem(message: Message) -> bool:
    return any(k.lower() == b"content-type" and v.startswith(PROBLEM)
               for k, v in message.get("headers", []))


class HtmlErrors:
    """ASGI middleware: a problem+json answer to a browser's page request becomes an HTML
    error page (same status); ``password_change_required`` becomes a redirect to the
    password page. Other responses pass through untouched (streamed, not buffered)."""

    def __init__(self, app: ASGIApp):
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if not wants_page(scope):
            await self.app(scope, receive, send)
            return
        held: Message | None = None
        body: list[bytes] = []

        async def capture(message: Message) -> None:
            nonlocal held
            if message["type"] == "http.response.start" and _is_problem(message):
                held = message
                return
            if held is None or message["type"] != "http.response.body":
                await send(message)
                return
            body.append(message.get("body", b""))
            if not message.get("more_body", False):
                await self._replace(scope, held, b"".join(body), send)

        await self.app(scope, receive, capture)

    async def _replace(self, scope: Scope, start: Message, raw: bytes, send: Send) -> None:
        try:
            problem: dict[str, Any] = json.loads(raw)
        except ValueError:
            problem = {}
        status = int(start["status"])
        kept = [(k, v) for k, v in start.get("headers", []) if k.lower() in KEPT_HEADERS]
        if problem.get("code") == "password_change_required":
            await _send(send, 303, kept + [(b"location", b"/password")], b"")
            return
        principal = (scope.get("state") or {}).get("principal")
        html = TEMPLATES.get_template("error.html").render(
            page_context(principal, scope["path"]) | {
                "title": problem.get("title") or "Error", "code": problem.get("code", ""),
                "detail": problem.get("detail") or "", "http_status": status})
        headers = kept + [(b"content-type", b"text/html; charset=utf-8")] + [
            (k.lower().encode(), v.encode()) for k, v in NO_STORE.items()]
        await _send(send, status, headers, html.encode())


async def _send(send: Send, status: int, headers: list[tuple[bytes, bytes]],
                body: bytes) -> None:
    headers = headers + [(b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
