"""The in-process background loop: outbox dispatcher, then webhook deliveries.

``run_background`` is one tick (``platform_core.scans``, ``Dispatcher.run_once``, then
``deliver_due``); a worker
process or a scheduler may call it. ``BackgroundJobs`` runs ticks on one daemon thread —
straight away again while there is work, else every ``interval`` seconds — and
``lifespan`` starts it with the app when ``QIAO_BACKGROUND_JOBS`` is on and stops it
(finishing the current tick) on shutdown. It is only a clock: what must happen once is
claimed in the database, so several processes may each run one.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import datetime
from typing import TYPE_CHECKING, Any

import httpx
from starlette.concurrency import run_in_threadpool

from platform_core.outbox import Dispatcher
from platform_core.webhooks.events import register_builtins
from platform_core.webhooks.sender import deliver_due

if TYPE_CHECKING:
    from platform_core.app import AppContext

log = logging.getLogger("qiao.background")


def run_background(ctx: AppContext, *, dispatcher: Dispatcher, client: httpx.Client,
                   now: datetime | None = None) -> int:
    """One tick: the periodic scans (SLA, timers …), then dispatch due outbox events and
    send due deliveries; how much was done."""
    from platform_core.models import utcnow
    from platform_core.scans import run_scans, run_senders

    done = run_scans(ctx.db, now or utcnow())
    done += dispatcher.run_once(now=now)
    done += run_senders(ctx, client, now or utcnow(), dispatcher.worker_id)
    return done + deliver_due(ctx.db, ctx.keyring, ctx.settings, client=client, now=now,
                              worker_id=dispatcher.worker_id)


def http_client() -> httpx.Client:
    """The client deliveries go out with: no proxy from the environment (a proxy would
    resolve names itself, past the SSRF check), no redirects."""
    return httpx.Client(trust_env=False, follow_redirects=False)


class BackgroundJobs:
    """``run_background`` on a daemon thread until ``stop``."""

    def __init__(self, ctx: AppContext, *, interval: float = 1.0):
        register_builtins()
        self.ctx = ctx
        self.interval = interval
        self.dispatcher = Dispatcher.from_registry(ctx.db, context=ctx)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="qiao-background",
                                        daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout: float = 30.0) -> None:
        self._stop.set()
        self._thread.join(timeout)

    def _loop(self) -> None:
        with http_client() as client:
            wait = self.interval  # a short-lived app (a test client) never ticks
            while not self._stop.wait(wait):
                try:
                    busy = run_background(self.ctx, dispatcher=self.dispatcher, client=client)
                except Exception:  # keep the loop alive; the next tick tries again
                    log.exception("background tick failed")
                    busy = 0
                wait = 0.05 if busy else self.interval


@asynccontextmanager
async def lifespan(app: Any) -> AsyncIterator[None]:
    """FastAPI lifespan: the background loop runs while the app does (if switched on)."""
    ctx = app.state.qiao
    jobs = BackgroundJobs(ctx) if ctx.settings.background_jobs else None
    if jobs is not None:
        jobs.start()
    try:
        yield
    finally:
        if jobs is not None:
            await run_in_threadpool(jobs.stop)
