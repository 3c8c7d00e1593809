"""The background work: periodic scans, the outbox dispatcher, outside calls of rules and
webhook deliveries.

``run_background`` is one tick of all of it (``qiao worker --once`` loops on it).
``BackgroundJobs`` is the scheduler a running app or ``qiao worker`` starts: APScheduler
as a clock only — a work job (dispatch, calls, deliveries) every second, again at once
while busy, and a scan job every few seconds on the leader only (``platform_core.leader``:
one process among many on PostgreSQL). ``lifespan`` starts it with the app when
``QIAO_BACKGROUND_JOBS`` is on and stops it (finishing the running job) on shutdown. What
must happen once is claimed in the database, so several processes may each run one.
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
                   now: datetime | None = None, scans: bool = True) -> int:
    """One tick: the periodic scans (SLA, timers, time-based rules — unless ``scans`` is
    off: the scheduler runs them on the leader only), then dispatch due outbox events,
    make due outside calls and send due deliveries; how much was done."""
    from platform_core.models import utcnow
    from platform_core.scans import run_scans, run_senders

    done = run_scans(ctx.db, now or utcnow()) if scans else 0
    done += dispatcher.run_once(now=now)
    done += run_senders(ctx, client, now or utcnow(), dispatcher.worker_id)
    return done + deliver_due(ctx.db, ctx.keyring, ctx.settings, client=client, now=now,
                              worker_id=dispatcher.worker_id)


def http_client() -> httpx.Client:
    """The client deliveries go out with: no proxy from the environment (a proxy would
    resolve names itself, past the SSRF check), no redirects."""
    return httpx.Client(trust_env=False, follow_redirects=False)


class BackgroundJobs:
    """The scheduler (APScheduler, only a clock): every ``interval`` seconds the work job
    dispatches events and makes due calls (again at once while there is work); every
    ``scan_interval`` seconds the scan job runs the periodic scans — on the leader only
    (``platform_core.leader``). Jobs never overlap themselves; ``stop`` lets the running
    one finish."""

    def __init__(self, ctx: AppContext, *, interval: float = 1.0,
                 scan_interval: float = 5.0):
        from apscheduler.schedulers.background import BackgroundScheduler

        from platform_core.leader import Leadership

        register_builtins()
        self.ctx = ctx
        self.dispatcher = Dispatcher.from_registry(ctx.db, context=ctx)
        self.leadership = Leadership(ctx.db)
        self._stop = threading.Event()
        self._client = http_client()
        self.scheduler = BackgroundScheduler(
            timezone="UTC", job_defaults={"coalesce": True, "max_instances": 1,
                                          "misfire_grace_time": 30})
        self.scheduler.add_job(self._work, "interval", seconds=interval, id="work")
        self.scheduler.add_job(self._scan, "interval", seconds=scan_interval, id="scans")

    def start(self) -> None:
        self.scheduler.start()

    def stop(self, timeout: float = 30.0) -> None:  # noqa: ARG002 - waits for the job
        self._stop.set()
        self.scheduler.shutdown(wait=True)
        self.leadership.release()
        self._client.close()

    def _work(self) -> None:
        for _ in range(200):  # while busy, but give the scan job its turn now and then
            if self._stop.is_set():
                return
            try:
                busy = run_background(self.ctx, dispatcher=self.dispatcher,
                                      client=self._client, scans=False)
            except Exception:  # keep the scheduler alive; the next tick tries again
                log.exception("background tick failed")
                return
            if not busy:
                return
            if self.ctx.db.dialect == "sqlite":
                # SQLite has one writer: a gap lets a page's write in. The pages of this
                # process wait on Database.write's queue and take the lock at once; a
                # writer in another process polls SQLite's lock (every 100 ms at most)
                self._stop.wait(0.02)

    def _scan(self) -> None:
        from platform_core.models import utcnow
        from platform_core.scans import run_scans

        try:
            if not self._stop.is_set() and self.leadership.held():
                run_scans(self.ctx.db, utcnow())
        except Exception:
            log.exception("scan tick failed")


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
