"""Periodic scans over indexed due-time columns (SLA reminders and overdue marking, timer
nodes; later date-relative rules): a registry the engines fill at start-up, run by the
background loop on every tick.

A scan is ``scan(db, now) -> int`` (how many items it handled). It claims what it
handles in the database (a conditional update, ``SKIP LOCKED`` on PostgreSQL), so
several worker processes may run the same scan; it handles at most a batch per call and
is called again while it reports work.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime
from typing import Any

from platform_core.db import Database
from platform_core.registry import Registry

log = logging.getLogger("qiao.scans")
Scan = Callable[[Database, datetime], int]
SCANS: Registry[Scan] = Registry("periodic scan")
# Work every worker does on every tick (claimed in the database, so shared safely): the
# rules engine's outside calls. ``send(ctx, client, now, worker_id) -> int``.
Sender = Callable[[Any, Any, datetime, str], int]
SENDERS: Registry[Sender] = Registry("background sender")


def run_scans(db: Database, now: datetime) -> int:
    """Every registered scan once; one failing scan does not stop the others."""
    done = 0
    for key, scan in SCANS.items():
        try:
            done += scan(db, now)
        except Exception:  # logged; the next tick tries again
            log.exception("scan %s failed", key)
    return done


def run_senders(ctx: Any, client: Any, now: datetime, worker_id: str) -> int:
    """Every registered sender once; one failing does not stop the others."""
    done = 0
    for key, send in SENDERS.items():
        try:
            done += send(ctx, client, now, worker_id)
        except Exception:  # logged; the next tick tries again
            log.exception("sender %s failed", key)
    return done
