"""HTTP hardening: security headers, a request-body limit and an in-process rate limiter.

Both middlewares are plain ASGI callables rather than ``BaseHTTPMiddleware``: they only
touch the ``http.response.start`` message and the ``receive`` channel, so streamed
responses and uploads pass through without being buffered or copied into a task.
"""

from __future__ import annotations

import json
import math
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping

from fastapi import FastAPI
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from platform_core.errors import DomainError
from platform_core.settings import Settings

PROBLEM = "application/problem+json"
CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
       "font-src 'self'; connect-src 'self'; object-src 'none'; base-uri 'self'; "
       "form-action 'self'; frame-ancestors 'none'")
_BASE_HEADERS = {
    "x-content-type-options": "nosniff",
    "x-frame-options": "DENY",
    "referrer-policy": "same-origin",
    "cross-origin-opener-policy": "same-origin",
    "permissions-policy": "camera=(), microphone=(), geolocation=()",
}


class RateLimited(DomainError):
    """Too many attempts from one key; ``retry_after`` is whole seconds for ``Retry-After``."""

    status, code, title = 429, "rate_limited", "Too many requests"

    def __init__(self, detail: str = "too many requests; try again later", *,
                 retry_after: float):
        # Round up: telling a client to come back a fraction too early earns it another 429.
        self.retry_after = max(1, math.ceil(retry_after))
        super().__init__(detail, retry_after=self.retry_after)


class PayloadTooLarge(DomainError):
    """A request body over the installation's limit (``QIAO_MAX_REQUEST_BYTES``)."""

    status, code, title = 413, "payload_too_large", "Payload too large"

    def __init__(self, limit_bytes: int):
        super().__init__(f"the request body is larger than the limit of {_size(limit_bytes)}",
                         limit_bytes=limit_bytes)


def _size(n: int) -> str:
    mib = n / (1024 * 1024)
    if mib >= 1:
        return f"{mib:.1f}".removesuffix(".0") + " MB"
    return f"{n / 1024:.1f}".removesuffix(".0") + " KB"


class SecurityHeaders:
    """Adds CSP, nosniff, framing, referrer and (optionally) HSTS headers to every response.

    A header the app already set wins, so a route can deliberately relax one. The CSP can
    be replaced per path prefix (``csp_overrides``, longest prefix wins), e.g. for an API
    docs page that loads its own scripts. ``/api/`` responses get ``Cache-Control:
    no-store`` unless they set their own, so customer data never lands in a shared cache.
    """

    def __init__(self, app: ASGIApp, *, hsts: bool = False,
                 csp_overrides: Mapping[str, str] | None = None):
        self.app = app
        base = dict(_BASE_HEADERS)
        if hsts:
            base["strict-transport-security"] = "max-age=31536000"
        self._base = [(k.encode(), v.encode()) for k, v in base.items()]
        self._csp = sorted(((p, v.encode()) for p, v in (csp_overrides or {}).items()),
                           key=lambda pv: len(pv[0]), reverse=True)

    def _headers_for(self, path: str) -> list[tuple[bytes, bytes]]:
        csp = next((v for prefix, v in self._csp if path.startswith(prefix)), CSP.encode())
        extra = [(b"content-security-policy", csp)]
        if path.startswith("/api/"):
            extra.append((b"cache-control", b"no-store"))
        return self._base + extra

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        wanted = self._headers_for(scope.get("path", ""))

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                present = {bytes(name).lower() for name, _ in headers}
                headers += [(k, v) for k, v in wanted if k not in present]
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, send_with_headers)


class _BodyTooLarge(Exception):
    """Raised from ``receive`` once a body passes the limit; never leaves the middleware."""


class BodySizeLimit:
    """Refuses request bodies over ``max_bytes`` with a 413 problem+json.

    A declared ``Content-Length`` over the limit is refused before the app runs. A body
    without one (chunked) is counted as the app reads it; past the limit ``receive``
    raises, and whatever the app then answers (frameworks turn read errors into a 400)
    is replaced by the 413. If the app had already started its response the connection
    is aborted instead, because a status can no longer be sent.
    """

    def __init__(self, app: ASGIApp, *, max_bytes: int):
        self.app = app
        self.max_bytes = max_bytes
        body = PayloadTooLarge(max_bytes).problem()
        self._body = json.dumps(body).encode()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = _content_length(scope)
        if declared is not None and declared > self.max_bytes:
            await self._refuse(send)
            return
        await _LimitedRequest(self, receive, send).run(scope)

    async def _refuse(self, send: Send) -> None:
        # "connection: close" tells the server not to read the rest of a huge body just
        # to keep the connection alive for another request.
        await send({"type": "http.response.start", "status": 413, "headers": [
            (b"content-type", PROBLEM.encode()),
            (b"content-length", str(len(self._body)).encode()),
            (b"connection", b"close"),
        ]})
        await send({"type": "http.response.body", "body": self._body})


class _LimitedRequest:
    """One request under ``BodySizeLimit``: counts what is received, guards what is sent."""

    def __init__(self, limit: BodySizeLimit, receive: Receive, send: Send):
        self.limit, self._receive, self._send = limit, receive, send
        self.received = 0
        self.over = False
        self.started = False  # the app's response has reached the client
        self.refused = False  # our 413 went out in place of the app's response

    async def run(self, scope: Scope) -> None:
        try:
            await self.limit.app(scope, self.receive, self.send)
        except Exception:
            # Once over the limit, any failure is the app tripping on the cut-off body:
            # answer 413 for it. After the response started it is too late for a status,
            # so re-raise and let the server drop the connection.
            if not self.over or self.started:
                raise
        if self.over and not self.started and not self.refused:
            self.refused = True
            await self.limit._refuse(self._send)

    async def receive(self) -> Message:
        if self.over:
            raise _BodyTooLarge
        message = await self._receive()
        if message["type"] == "http.request":
            self.received += len(message.get("body", b""))
            if self.received > self.limit.max_bytes:
                self.over = True
                raise _BodyTooLarge
        return message

    async def send(self, message: Message) -> None:
        if self.over and not self.started:
            if not self.refused:
                self.refused = True
                await self.limit._refuse(self._send)
            return  # the app's own answer to the failed read is dropped
        if message["type"] == "http.response.start":
            self.started = True
        await self._send(message)


def _content_length(scope: Scope) -> int | None:
    for name, value in scope.get("headers", []):
        if name.lower() == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None  # the server rejects a malformed length itself
    return None


class RateLimiter:
    """A token bucket per key: ``limit`` hits at once, refilled at ``limit`` per ``per_seconds``.

    Thread-safe (one lock; a hit is a few float operations). Memory is bounded: a key
    idle for a whole window has a full bucket again, so it is forgotten, being no
    different from a new key; past ``max_keys`` the least recently used key is evicted,
    which can only err toward allowing. Per process: each worker keeps its own buckets.
    """

    def __init__(self, limit: int, per_seconds: float,
                 clock: Callable[[], float] = time.monotonic, *, max_keys: int = 100_000):
        if limit < 1 or per_seconds <= 0 or max_keys < 1:
            raise ValueError("limit, per_seconds and max_keys must be positive")
        self.limit, self.per_seconds, self.max_keys = limit, per_seconds, max_keys
        self._rate = limit / per_seconds  # tokens per second
        self._clock = clock
        self._lock = threading.Lock()
        # key -> (tokens, last hit); ordered by last hit, oldest first.
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._buckets)

    def hit(self, key: str) -> float | None:
        """Count one attempt; None if allowed, else the seconds until one would be."""
        with self._lock:
            now = self._clock()
            self._forget_idle(now)
            tokens, last = self._buckets.pop(key, (float(self.limit), now))
            tokens = min(float(self.limit), tokens + (now - last) * self._rate)
            wait: float | None = None
            if tokens >= 1 - 1e-9:  # tolerate float drift when the clock moved by exactly wait
                tokens = max(0.0, tokens - 1)
            else:
                wait = (1 - tokens) / self._rate
            self._buckets[key] = (tokens, now)
            if len(self._buckets) > self.max_keys:
                self._buckets.popitem(last=False)
            return wait

    def _forget_idle(self, now: float) -> None:
        while self._buckets:
            _, (_, last) = next(iter(self._buckets.items()))
            if now - last < self.per_seconds:
                return
            self._buckets.popitem(last=False)


def install_hardening(app: FastAPI, settings: Settings, *,
                      csp_overrides: Mapping[str, str] | None = None) -> None:
    """Add the body limit and the security headers (HSTS when served over https).

    The headers wrap the whole middleware stack, outside Starlette's error middleware, so
    a 500 built by the app's catch-all handler carries them too; ``add_middleware`` would
    put them inside it. Call before the app serves its first request.
    """
    app.add_middleware(BodySizeLimit, max_bytes=settings.max_request_bytes)
    build = app.build_middleware_stack
    hsts = settings.cookie_secure

    def build_hardened() -> ASGIApp:
        return SecurityHeaders(build(), hsts=hsts, csp_overrides=csp_overrides)

    app.build_middleware_stack = build_hardened  # type: ignore[method-assign]


def retry_after_header(exc: DomainError) -> dict[str, str]:
    """The ``Retry-After`` header for a ``RateLimited`` error (empty for any other)."""
    return {"Retry-After": str(exc.retry_after)} if isinstance(exc, RateLimited) else {}
