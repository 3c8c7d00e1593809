"""``/metrics``: what an operator watches, in Prometheus text format.

Each process counts its own requests; the figures carry a ``pid`` label, so with
``--workers N`` (or several ``qiao serve`` processes) Prometheus scrapes every process
(or sums the series of one scrape target: ``sum without (pid)``). The database figures
(outbox lag, dead letters) are read at scrape time and are the same from any process.
No ``prometheus_client`` dependency: the text format is a few lines.

Access is not public: a request from loopback, or one sending
``Authorization: Bearer <QIAO_METRICS_TOKEN>`` (a scrape token from the environment),
or an administrator's bearer token.
"""

from __future__ import annotations

import hmac
import os
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import PlainTextResponse
from sqlalchemy import func, select, text

from platform_core import leader
from platform_core.models import OutboxEvent

BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
KINDS = ("list", "record", "create", "bulk", "report", "dashboard", "page", "auth", "other")
LOOPBACK = {"127.0.0.1", "::1"}
SYSTEM_ROUTES = {"/healthz", "/metrics", "/openapi.json"}
MAX_ATTEMPTS = 10  # as outbox.dead_letters: no dispatcher tries such an event again


def route_kind(method: str, template: str | None) -> str:
    """The kind of a request, from its route template (never the raw path: bounded labels)."""
    if template is None or template in SYSTEM_ROUTES:
        return "other"
    if any(word in template for word in ("/auth", "/login", "/logout", "/session", "/me/")):
        return "auth"
    if not template.startswith("/api/"):
        return "page"
    for word in ("bulk", "report", "dashboard"):
        if word in template:
            return word
    if template.endswith("/records"):
        return "create" if method == "POST" else "list"
    if "/records/{" in template:
        return "record"
    return "other"


class Latency:
    """Request latency histograms per route kind, for this process."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts = {kind: [0] * (len(BUCKETS) + 1) for kind in KINDS}
        self._sums = dict.fromkeys(KINDS, 0.0)

    def observe(self, kind: str, seconds: float) -> None:
        slot = next((i for i, bound in enumerate(BUCKETS) if seconds <= bound), len(BUCKETS))
        with self._lock:
            self._counts[kind][slot] += 1
            self._sums[kind] += seconds

    def lines(self, pid: int) -> list[str]:
        out = ["# HELP qiao_request_seconds Request latency by route kind.",
               "# TYPE qiao_request_seconds histogram"]
        with self._lock:
            for kind in KINDS:
                total = 0
                labels = f'kind="{kind}",pid="{pid}"'
                for bound, count in zip((*BUCKETS, None), self._counts[kind], strict=True):
                    total += count
                    le = "+Inf" if bound is None else repr(bound)
                    out.append(f'qiao_request_seconds_bucket{{{labels},le="{le}"}} {total}')
                out.append(f"qiao_request_seconds_count{{{labels}}} {total}")
                out.append(f"qiao_request_seconds_sum{{{labels}}} {self._sums[kind]:.6f}")
        return out


def _allowed(request: Request) -> bool:
    client = request.client.host if request.client else ""
    if client in LOOPBACK:
        return True
    scheme, _, secret = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not secret.strip():
        return False
    token = os.environ.get("QIAO_METRICS_TOKEN", "")
    if token and hmac.compare_digest(secret.strip().encode(), token.encode()):
        return True
    from platform_core.errors import DomainError
    from platform_core.security.auth import resolve_token
    try:
        return resolve_token(request.app.state.qiao.db, secret.strip(), client=client).is_admin
    except DomainError:
        return False


def _database_lines(ctx: Any, pid: int) -> list[str]:
    now = datetime.now(UTC)
    with ctx.db.read() as session:
        pending, oldest = session.execute(
            select(func.count(), func.min(OutboxEvent.created_at))
            .where(OutboxEvent.processed_at.is_(None),
                   OutboxEvent.attempts < MAX_ATTEMPTS)).one()
        leaders = (session.execute(text(
            "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND granted "
            "AND objid = :k"), {"k": leader.LOCK_KEY}).scalar_one()
            if ctx.db.dialect == "postgresql" else int(leader.leading()))
        dead = session.execute(
            select(func.count()).where(OutboxEvent.processed_at.is_(None),
                                       OutboxEvent.attempts >= MAX_ATTEMPTS)
            .select_from(OutboxEvent)).scalar_one()
    if oldest is not None and oldest.tzinfo is None:
        oldest = oldest.replace(tzinfo=UTC)
    lag = (now - oldest).total_seconds() if oldest is not None else 0.0
    pool = ctx.db.engine.pool
    checked_out = pool.checkedout() if hasattr(pool, "checkedout") else 0
    size = pool.size() if hasattr(pool, "size") else 0
    return [
        "# HELP qiao_outbox_pending Events no dispatcher has handled yet.",
        "# TYPE qiao_outbox_pending gauge", f"qiao_outbox_pending {pending}",
        "# HELP qiao_outbox_lag_seconds Age of the oldest unhandled event.",
        "# TYPE qiao_outbox_lag_seconds gauge", f"qiao_outbox_lag_seconds {lag:.3f}",
        "# HELP qiao_outbox_dead_letters Events no dispatcher will try again.",
        "# TYPE qiao_outbox_dead_letters gauge", f"qiao_outbox_dead_letters {dead}",
        "# HELP qiao_scheduler_leader 1 when this process leads the scheduler.",
        "# TYPE qiao_scheduler_leader gauge",
        f'qiao_scheduler_leader{{pid="{pid}"}} {1 if leader.leading() else 0}',
        "# HELP qiao_scheduler_leaders Processes leading the scheduler (PostgreSQL: holders "
        "of its advisory lock, any process; should be 1).",
        "# TYPE qiao_scheduler_leaders gauge", f"qiao_scheduler_leaders {leaders}",
        "# HELP qiao_db_pool_checked_out Database connections in use in this process.",
        "# TYPE qiao_db_pool_checked_out gauge",
        f'qiao_db_pool_checked_out{{pid="{pid}"}} {checked_out}',
        "# HELP qiao_db_pool_size Database pool size in this process.",
        "# TYPE qiao_db_pool_size gauge", f'qiao_db_pool_size{{pid="{pid}"}} {size}',
    ]


def install_metrics(app: FastAPI) -> None:
    """Time every request by route kind and serve ``GET /metrics``."""
    from platform_core.security.guard import rule
    from platform_core.security.permissions import Forbidden

    latency = Latency()

    @app.middleware("http")
    async def _time(request: Request, call_next: Callable[[Request], Any]) -> Any:
        started = time.perf_counter()
        response = await call_next(request)
        route = request.scope.get("route")
        latency.observe(route_kind(request.method, getattr(route, "path", None)),
                        time.perf_counter() - started)
        return response

    @app.get("/metrics", include_in_schema=False, openapi_extra=rule("public"))
    def metrics(request: Request) -> PlainTextResponse:
        if not _allowed(request):
            raise Forbidden("metrics: loopback, the scrape token or an administrator only")
        pid = os.getpid()
        body = latency.lines(pid) + _database_lines(request.app.state.qiao, pid)
        return PlainTextResponse("\n".join(body) + "\n",
                                 media_type="text/plain; version=0.0.4; charset=utf-8")
